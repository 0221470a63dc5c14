"""The first epoch's pace: after a training session's first epoch, how long the rest will take.

The estimate ``segcourse train`` prints before it starts (:mod:`segcourse.speed`) is rough: a
small network's step is many small operations, whose cost the matmul probe does not see. The
first epoch measures it. Its first training and validation steps also hold one-off work
(tracing the step functions; for a resumed run, replaying the finished epochs' pictures), told
apart from the steady pace by the steps after them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import keras

from segcourse.speed import duration_text


@dataclass
class StepTimes:
    """When a phase (training or validation) of one epoch began, and when its first and last
    steps ended: enough to tell the first step's one-off work from the steady pace."""

    began: float | None = None
    first_end: float | None = None
    last_end: float | None = None
    steps: int = 0

    def step_ended(self, now: float) -> None:
        """Record a step that ended at ``now``."""
        if self.first_end is None:
            self.first_end = now
        self.last_end, self.steps = now, self.steps + 1

    @property
    def one_off_seconds(self) -> float:
        """What the first step took beyond a steady step (0 when one step tells nothing)."""
        if self.steps < 2:
            return 0.0
        steady = (self.last_end - self.first_end) / (self.steps - 1)
        return max(self.first_end - self.began - steady, 0.0)


class FirstEpochPace(keras.callbacks.Callback):
    """Prints, as a session's second epoch begins, what its first took and, at that pace
    without the first steps' one-off work, how long the epochs left will take and when they
    end. Printed at the next epoch's start, so that the progress bar's line for the first
    epoch comes before it. Assumes every epoch validates (``validation_freq=1``, as
    :func:`segcourse.train.train` runs). ``clock`` and ``wall`` are for tests."""

    def __init__(self, clock=time.perf_counter, wall=time.time):
        super().__init__()
        self.clock, self.wall = clock, wall
        self._first = self._began = None
        self._train, self._validation = StepTimes(), StepTimes()
        self._done = False

    def _in_first_epoch(self) -> bool:
        return self._began is not None and not self._done

    def on_epoch_begin(self, epoch, logs=None):
        if self._began is None:
            self._first, self._began = epoch, self.clock()
            self._train.began = self._began
        elif not self._done:
            self._done = True
            print(self.line(self.clock() - self._began, self.params["epochs"] - epoch))

    def on_train_batch_end(self, batch, logs=None):
        if self._in_first_epoch():
            self._train.step_ended(self.clock())

    def on_test_begin(self, logs=None):
        if self._in_first_epoch() and self._validation.began is None:
            self._validation.began = self.clock()

    def on_test_batch_end(self, batch, logs=None):
        if self._in_first_epoch():
            self._validation.step_ended(self.clock())

    def line(self, seconds: float, epochs_left: int) -> str:
        """The pace line: the first epoch took ``seconds``; ``epochs_left`` are to come."""
        one_off = self._train.one_off_seconds + self._validation.one_off_seconds
        rest = (seconds - one_off) * epochs_left
        until = time.strftime("%H:%M", time.localtime(self.wall() + rest))
        return (f"pace: epoch {self._first + 1} took {seconds:.0f} s, {one_off:.0f} s of it "
                f"one-off start-up (tracing the steps, first batches); at its pace the "
                f"{epochs_left} epoch(s) left take about {duration_text(rest)} (until about "
                f"{until})")
