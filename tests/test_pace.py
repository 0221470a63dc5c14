"""The first epoch's pace: its arithmetic on a scripted clock, and its line in a real fit."""

import re
import time

import keras
import numpy as np
import pytest

from segcourse import pace


def test_a_phases_one_off_work_is_its_first_step_beyond_a_steady_one():
    # Began at 0 s; steps ended at 5, 6, 7 and 8 s: steady steps of 1 s, so the first step's
    # 5 s hold 4 s of one-off work (tracing the step function).
    phase = pace.StepTimes(began=0.0)
    for now in (5.0, 6.0, 7.0, 8.0):
        phase.step_ended(now)
    assert phase.steps == 4 and phase.one_off_seconds == pytest.approx(4.0)
    single = pace.StepTimes(began=0.0)
    single.step_ended(5.0)
    assert single.one_off_seconds == 0.0  # one step cannot tell tracing from pace


def test_the_pace_line_leaves_the_one_off_work_out_of_the_epochs_left(capsys):
    # A session resumed after epoch 2 of 6 (Keras counts from 0): its first epoch, the third,
    # begins at 100 s. Training steps end at 104, 105, 106, 107 s (3 s beyond steady 1 s
    # steps), validation begins at 108 s and its steps end at 110, 110.5, 111 (1.5 s beyond
    # steady 0.5 s steps); the fourth epoch begins at 112 s. At the pace of 12 - 4.5 = 7.5 s an
    # epoch, the 3 epochs left take 22.5 s, so they end 22.5 s after the wall clock's 1000 s.
    clock = iter([100.0, 104.0, 105.0, 106.0, 107.0, 108.0, 110.0, 110.5, 111.0, 112.0])
    callback = pace.FirstEpochPace(clock=lambda: next(clock), wall=lambda: 1000.0)
    callback.set_params({"epochs": 6, "steps": 4, "verbose": 2})
    callback.on_epoch_begin(2)
    for batch in range(4):
        callback.on_train_batch_end(batch)
    callback.on_test_begin()
    for batch in range(3):
        callback.on_test_batch_end(batch)
    callback.on_epoch_end(2)
    assert capsys.readouterr().out == ""  # nothing until the next epoch begins
    callback.on_epoch_begin(3)
    until = time.strftime("%H:%M", time.localtime(1022.5))
    assert capsys.readouterr().out == (
        "pace: epoch 3 took 12 s, 4 s of it one-off start-up (tracing the steps, first "
        f"batches); at its pace the 3 epoch(s) left take about 22 s (until about {until})\n")
    callback.on_epoch_begin(4)
    assert capsys.readouterr().out == ""  # said once


@pytest.mark.parametrize("verbose", [1, 2])
def test_the_pace_line_comes_between_the_first_and_second_epochs_once(verbose, capsys):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile("sgd", "mse")
    x = np.zeros((8, 4), np.float32)
    model.fit(x, x[:, :1], batch_size=4, epochs=3, validation_data=(x, x[:, :1]),
              verbose=verbose, callbacks=[pace.FirstEpochPace()])
    out = capsys.readouterr().out
    assert len(re.findall(r"pace: epoch 1 took \d+ s", out)) == 1, out
    assert "the 2 epoch(s) left" in out
    assert out.index("Epoch 1/3") < out.index("val_loss") < out.index("pace:") < out.index(
        "Epoch 2/3"), out


def test_a_one_epoch_session_says_no_pace(capsys):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile("sgd", "mse")
    x = np.zeros((8, 4), np.float32)
    model.fit(x, x[:, :1], batch_size=4, epochs=1, verbose=2, callbacks=[pace.FirstEpochPace()])
    assert "pace:" not in capsys.readouterr().out
