"""What a run saves while it trains, as Keras callbacks: the best model so far
(``checkpoints/best.keras``) and, after each epoch, the training state that
:func:`segcourse.train.resume` continues from (``checkpoints/state-epoch-<k>/``: weights,
optimizer variables and random state). The run folder itself: :mod:`segcourse.runs`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import keras
import numpy as np

from segcourse.runs import RunStatus, finite_number

STATE_PREFIX = "state-epoch-"  # checkpoints/state-epoch-<k>/: the training state after epoch k


def _random_variables(model) -> list:
    """The model's random state (the seed generators of its dropout layers): a weights file
    does not hold it."""
    return [v for v in model.variables if v.name == "seed_generator_state"]


def save_state(model, folder: Path) -> None:
    """Weights with the optimizer's variables (iterations, hence the learning-rate schedule)
    and the random state, into ``folder``, which appears only once whole."""
    partial = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    model.save_weights(partial / "model.weights.h5")
    np.savez(partial / "random.npz",
             *[keras.ops.convert_to_numpy(v.value) for v in _random_variables(model)])
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(partial, folder)


def load_state(model, folder: Path, strategy) -> None:
    """Put a saved training state back into ``model``: weights, optimizer, random streams."""
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)  # its variables, to load into
    model.load_weights(folder / "model.weights.h5")
    variables = _random_variables(model)
    with np.load(folder / "random.npz") as saved:
        arrays = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    if len(arrays) != len(variables):
        raise ValueError(f"{folder} holds {len(arrays)} random states for a model that has "
                         f"{len(variables)}: it was saved by another model; start a new run.")
    for variable, array in zip(variables, arrays, strict=True):
        variable.assign(array)


def remove_states(checkpoints: Path, keep: int | None = None) -> None:
    """Delete the saved training states (and half-written ones), all but epoch ``keep``'s."""
    for path in list(checkpoints.glob(f"{STATE_PREFIX}*")) + list(
            checkpoints.glob(f".{STATE_PREFIX}*.partial")):
        if keep is None or path.name != f"{STATE_PREFIX}{keep}":
            shutil.rmtree(path, ignore_errors=True)


class EpochLog(keras.callbacks.CSVLogger):
    """``log.csv``, one row per epoch, with epochs counted from 1 as the progress bar, the
    status file and the best-epoch notes count them (Keras' ``CSVLogger`` counts from 0)."""

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch + 1, logs)


class BestCheckpoint(keras.callbacks.Callback):
    """Saves the model whenever ``monitor`` beats its best so far (higher is better). Unlike
    ``ModelCheckpoint``: a NaN is never a best (Keras keeps a NaN first epoch as the best for
    good), the best so far can be given (a resumed run's, from its log), and the file is
    replaced whole (a kill mid-save keeps the previous best)."""

    def __init__(self, path: Path, monitor: str, status: RunStatus, best=None, best_epoch=None):
        super().__init__()
        self.path, self.monitor, self.status = Path(path), monitor, status
        self.best, self.best_epoch = best, best_epoch

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if not finite_number(value) or (self.best is not None and value <= self.best):
            return
        partial = self.path.with_name(f".{self.path.stem}.partial.keras")
        self.model.save(partial)
        os.replace(partial, self.path)
        self.best, self.best_epoch = float(value), epoch + 1
        self.status.update(best_epoch=self.best_epoch, best_value=self.best)


class TrainingState(keras.callbacks.Callback):
    """After each epoch, the state to resume from (``checkpoints/state-epoch-<k>/``), then
    ``status.json``'s ``epochs_done``: the status never names a state that is not whole."""

    def __init__(self, checkpoints: Path, status: RunStatus):
        super().__init__()
        self.checkpoints, self.status = checkpoints, status

    def on_epoch_end(self, epoch, logs=None):
        save_state(self.model, self.checkpoints / f"{STATE_PREFIX}{epoch + 1}")
        self.status.update(epochs_done=epoch + 1)
        remove_states(self.checkpoints, keep=epoch + 1)

