"""Training, evaluation and prediction, shared by the ``segcourse`` CLI and the labs.

``train(TrainConfig(model="unet"))`` builds the model from the registry, trains it on the
chosen dataset with a progress bar, keeps the best checkpoint on validation mIoU, evaluates it
on the held-out test split, and writes a run folder:

    runs/<model>-<dataset>-<time>/
        config.json      the configuration, resolved (profile defaults filled in)
        data.json        what the data was: classes, the split notes (how a flat folder was
                         split, a test split that is the val split) and each split's files
        status.json      running / interrupted / finished, epochs done, the best epoch so far
        model.keras      the best model (by validation mIoU), once training has finished
        checkpoints/     best.keras, written during training; state-epoch-<k>/, the training
                         state after the last finished epoch (weights, optimizer, random
                         state), kept until the run finishes so that ``resume`` can continue
        log.csv          one row per epoch (loss, mIoU, validation loss and mIoU)
        metrics.json     test scores: pixel accuracy, mIoU, per-class IoU and Dice, confusion
        *.png            learning curves, predictions, confusion matrix, per-class IoU

An interrupted run (Ctrl-C, an error, a killed process) keeps its folder: ``status.json`` says
it is unfinished, ``segcourse evaluate RUN`` scores its best checkpoint so far, and
``resume(RUN)`` (``segcourse train --resume RUN``) continues it from the last finished epoch so
that it ends exactly where an uninterrupted run would: the same weights, optimizer state and
learning-rate schedule, the same random state and the same batches in the epochs that follow.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import numbers
import os
import shutil
import socket
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import keras
import numpy as np

from segcourse.metrics import IGNORE_INDEX, SegmentationScores, confusion_matrix, scores

PROFILE_DEFAULTS = {
    "cpu": {"epochs": 20, "image_size": 64, "batch_size": 32, "learning_rate": 5e-3,
            "train_count": 4000, "val_count": 500, "test_count": 1000, "preset": "cpu"},
    "gpu": {"epochs": 40, "image_size": 128, "batch_size": 32, "learning_rate": 3e-3,
            "train_count": 20000, "val_count": 1000, "test_count": 2000, "preset": "full"},
}
DISTRIBUTE = ("auto", "mirrored", "none")
_COUNTS = ("epochs", "image_size", "batch_size", "train_count", "val_count", "test_count")


def _whole(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass
class TrainConfig:
    """What to train; ``None`` fields take the profile's defaults (:data:`PROFILE_DEFAULTS`)."""

    model: str = "unet"
    dataset: str = "shapes"
    profile: str = "cpu"
    epochs: int | None = None
    image_size: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    seed: int = 0
    train_count: int | None = None
    val_count: int | None = None
    test_count: int | None = None
    preset: str | None = None
    model_options: dict = field(default_factory=dict)
    out_dir: str = "runs"
    distribute: str = "auto"

    def resolved(self) -> TrainConfig:
        if self.profile not in PROFILE_DEFAULTS:
            raise ValueError(f"profile must be one of {tuple(PROFILE_DEFAULTS)}; "
                             f"got {self.profile!r}.")
        filled = {k: v for k, v in PROFILE_DEFAULTS[self.profile].items()
                  if getattr(self, k) is None}
        return replace(self, **filled)

    def validate(self) -> TrainConfig:
        """The resolved configuration, checked whole before any work: a ``ValueError`` that
        names every value that cannot train (counts and sizes of 0, a learning rate that is
        not a positive number, an unknown model, an option of the wrong type, an image size
        the model's total stride does not divide, ...)."""
        from segcourse import models
        from segcourse.models.registry import PRESETS

        config = self.resolved()
        problems = []
        for name in _COUNTS:
            value = getattr(config, name)
            if not _whole(value) or value < 1:
                problems.append(f"{name} must be a whole number of at least 1; got {value!r}.")
        rate = config.learning_rate
        if not (isinstance(rate, numbers.Real) and not isinstance(rate, bool)
                and math.isfinite(rate) and rate > 0):
            problems.append(f"learning_rate must be a number above 0 (e.g. 3e-3); got {rate!r}.")
        if not _whole(config.seed) or not 0 <= config.seed < 2 ** 32:
            problems.append(f"seed must be a whole number from 0 to 2**32 - 1; got "
                            f"{config.seed!r}.")
        if config.preset not in PRESETS:
            problems.append(f"preset must be one of {PRESETS}; got {config.preset!r}.")
        if config.distribute not in DISTRIBUTE:
            problems.append(f"distribute must be one of {DISTRIBUTE}; got {config.distribute!r}.")
        if not isinstance(config.dataset, str) or not config.dataset:
            problems.append(f"dataset must be shapes, pets, pets:class or folder:PATH; got "
                            f"{config.dataset!r}.")
        if Path(config.out_dir).exists() and not Path(config.out_dir).is_dir():
            problems.append(f"out_dir {config.out_dir} is a file, not a folder: run folders go "
                            "inside it; choose another out_dir.")
        if not isinstance(config.model_options, dict):
            problems.append(f"model_options must be a dict of the model's options; got "
                            f"{config.model_options!r}.")
        elif config.preset in PRESETS:
            sized = _whole(config.image_size) and config.image_size >= 1
            size = config.image_size if sized else None  # a bad size is reported above
            try:
                models.check(config.model, None, (size, size, 3), preset=config.preset,
                             **config.model_options)
            except ValueError as error:
                problems.append(str(error))
        if problems:
            raise ValueError(f"cannot train {config.model!r} on {config.dataset!r}: "
                             f"{' '.join(problems)} Nothing was trained and no run folder was "
                             "made.")
        return config


@dataclass
class RunResult:
    run_dir: Path
    scores: SegmentationScores
    history: dict
    seconds: float
    split: str = "test"  # the split scored: "test", or "val (no test split)"
    notes: tuple[str, ...] = ()  # what the run had to decide for itself (see metrics.json)


def predict_labels(model, images, batch_size: int = 32) -> np.ndarray:
    """Label maps ``(N, H, W)`` for images ``(N, H, W, 3)`` (a model with several outputs is
    read at its first, the main one)."""
    outputs = model.predict(images, batch_size=batch_size, verbose=0)
    if isinstance(outputs, (list, tuple)):
        outputs = outputs[0]
    return np.argmax(outputs, axis=-1).astype(np.uint8)


def evaluate(model, data, num_classes: int, class_names=None,
             ignore_index: int = IGNORE_INDEX, progress: bool = True) -> SegmentationScores:
    """Dataset-level scores: one confusion matrix summed over every batch of ``data`` (a
    ``tf.data.Dataset`` or an iterable of ``(images, masks)``)."""
    from tqdm.auto import tqdm

    total = np.zeros((num_classes, num_classes), np.int64)
    for images, masks in tqdm(data, desc="evaluate", unit="batch", disable=not progress,
                              leave=False):
        predictions = predict_labels(model, np.asarray(images))
        total += confusion_matrix(np.asarray(masks), predictions, num_classes, ignore_index)
    return scores(total, class_names)


def distribution_strategy(kind: str = "auto"):
    """``auto``: MirroredStrategy when TensorFlow sees several GPUs, else the default one;
    ``mirrored``: MirroredStrategy over every GPU, or every (logical) CPU when there is none;
    ``none``: the default strategy."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if kind not in DISTRIBUTE:
        raise ValueError(f"distribute must be auto, mirrored or none; got {kind!r}.")
    if kind == "none" or (kind == "auto" and len(gpus) < 2):
        return tf.distribute.get_strategy()
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices=devices)


def _run_dir(config: TrainConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(config.out_dir) / f"{config.model}-{config.dataset.split(':')[0]}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    (path / "checkpoints").mkdir(parents=True)
    return path


def _save_figures(run_dir, model, data, history, test_scores, palette):
    # No backend switch: matplotlib picks a headless one by itself where there is no display,
    # and a notebook's inline backend must stay as it is.
    import matplotlib.pyplot as plt

    from segcourse import viz

    images, masks = data.sample(6)
    figures = {
        "learning_curves.png": viz.learning_curves(history),
        "predictions.png": viz.prediction_grid(images, masks, predict_labels(model, images),
                                               palette, list(data.class_names)),
        "confusion.png": viz.confusion_figure(test_scores.confusion, data.class_names),
        "class_iou.png": viz.class_iou_figure(test_scores),
    }
    for name, figure in figures.items():
        figure.savefig(run_dir / name, dpi=100, bbox_inches="tight")
        plt.close(figure)



# The run folder's records: status, data, training state --------------------------------------

RUN_CONTENTS = ("a run folder of `segcourse train` holds config.json, data.json, status.json, "
                "log.csv and checkpoints/best.keras, and model.keras and metrics.json once its "
                "training has finished")
STATE_PREFIX = "state-epoch-"  # checkpoints/state-epoch-<k>/: the training state after epoch k


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def _write_json(path: Path, data) -> None:
    """Replaced whole: a kill mid-write leaves the previous version, never half a file."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data, indent=2))
    os.replace(partial, path)


def _finite(value) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


class _Status:
    """A run's ``status.json``: ``status`` (running, interrupted, finished), ``epochs_done``,
    the best epoch so far, the process that trains it; rewritten whole at every change."""

    def __init__(self, run_dir: Path, fields: dict):
        self.path = Path(run_dir) / "status.json"
        self.fields = dict(fields)

    def update(self, **changes) -> None:
        self.fields.update(changes, updated=_now())
        _write_json(self.path, self.fields)


def read_status(run_dir) -> dict | None:
    """A run folder's ``status.json``, or ``None`` where there is none (a run made before runs
    recorded their status)."""
    path = Path(run_dir) / "status.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"{path} is not readable JSON ({error}); it is written whole by "
                         "`segcourse train`, so something else changed it. Restore it or "
                         "start a new run.") from None


def _process_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _still_training(status: dict) -> bool:
    """Whether the process that status.json says trains the run is alive on this machine."""
    return (status.get("status") == "running" and status.get("host") == socket.gethostname()
            and status.get("pid") != os.getpid() and _process_alive(status.get("pid")))


def _not_a_run(path: Path) -> str:
    if not path.exists():
        what = "it does not exist"
    elif not path.is_dir():
        what = "it is a file"
    else:
        names = sorted(p.name for p in path.iterdir())
        more = f" and {len(names) - 5} more" if len(names) > 5 else ""
        what = (f"it holds {', '.join(names[:5])}{more} but no config.json" if names
                else "it is empty")
    return f"{path} is not a run folder ({what}): {RUN_CONTENTS}."


def _unfinished(run_dir: Path, status: dict | None) -> str:
    """How far an unfinished run got, in words."""
    if status is None:
        return "it has no model.keras: its training did not end"
    done, epochs = status.get("epochs_done", 0), status.get("epochs", "?")
    if status.get("status") == "interrupted":
        return f"interrupted after epoch {done} of {epochs} by {status.get('reason')}"
    if status.get("status") == "running":
        alive = (f", or it is still training in process {status.get('pid')}"
                 if _still_training(status) else "")
        return (f"its status.json still says running, after epoch {done} of {epochs}: its "
                f"process was killed{alive}")
    return f"status {status.get('status')!r} after epoch {done} of {epochs}"


def _number(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _read_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _history(rows: list[dict]) -> dict:
    """``log.csv``'s rows as Keras' ``History.history``: a list of numbers per column."""
    keys = [key for key in (rows[0] if rows else {}) if key != "epoch"]
    return {key: [_number(row[key]) for row in rows] for key in keys}


def _best_in_log(rows: list[dict], monitor: str):
    """``(best value, its epoch)`` of the finite values of ``monitor``; ``(None, None)``."""
    values = [_number(row.get(monitor)) for row in rows]
    finite = [(value, epoch) for epoch, value in enumerate(values, 1) if math.isfinite(value)]
    if not finite:
        return None, None
    best = max(value for value, _ in finite)
    return best, next(epoch for value, epoch in finite if value == best)


def _truncate_log(path: Path, epochs: int) -> list[dict]:
    """Keep ``log.csv``'s header and its first ``epochs`` rows (an epoch that ended after the
    last saved training state is trained again, so its row is written again)."""
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        lines = list(csv.reader(handle))
    if epochs == 0:
        path.unlink()
        return []
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("w", newline="") as handle:
        csv.writer(handle).writerows(lines[:1 + epochs])
    os.replace(partial, path)
    return _read_log(path)


def test_split_name(data) -> str:
    """``"test"``, or ``"val (no test split)"`` for a dataset whose test split is its val split
    (a folder without a test split: its notes say so)."""
    files = data.split_files or {}
    if files.get("test") is not None and list(files["test"]) == list(files.get("val") or ()):
        return "val (no test split)"
    return "test"


def data_record(config: TrainConfig, data) -> dict:
    """What a run's ``data.json`` says about its data: the classes, which split the test
    scores come from, the dataset's notes and, for a folder, each split's files."""
    files = data.split_files
    return {"dataset": config.dataset, "classes": list(data.class_names),
            "ignore_index": int(data.ignore_index), "test_split": test_split_name(data),
            "notes": list(data.notes),
            "split_files": {name: list(f) for name, f in files.items()} if files else None}


def _check_same_data(run_dir: Path, record: dict) -> None:
    path = run_dir / "data.json"
    if not path.is_file():
        return
    before, now = json.loads(path.read_text()), json.loads(json.dumps(record))
    changed = sorted(key for key in set(before) | set(now) if before.get(key) != now.get(key))
    if changed:
        raise ValueError(f"the data of {run_dir} changed since the run started (its "
                         f"{', '.join(changed)} differ from {path}): the remaining epochs would "
                         "train on other data than the first ones. Restore the data as it was, "
                         "or start a new run. Nothing was changed in the run folder.")


def _random_variables(model) -> list:
    """The model's random state (the seed generators of its dropout layers): a weights file
    does not hold it."""
    return [v for v in model.variables if v.name == "seed_generator_state"]


def _save_state(model, folder: Path) -> None:
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


def _load_state(model, folder: Path, strategy) -> None:
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


def _remove_states(checkpoints: Path, keep: int | None = None) -> None:
    for path in list(checkpoints.glob(f"{STATE_PREFIX}*")) + list(
            checkpoints.glob(f".{STATE_PREFIX}*.partial")):
        if keep is None or path.name != f"{STATE_PREFIX}{keep}":
            shutil.rmtree(path, ignore_errors=True)


class _BestCheckpoint(keras.callbacks.Callback):
    """Saves the model whenever ``monitor`` beats its best so far (higher is better). Unlike
    ``ModelCheckpoint``: a NaN is never a best (Keras keeps a NaN first epoch as the best for
    good), the best so far can be given (a resumed run's, from its log), and the file is
    replaced whole (a kill mid-save keeps the previous best)."""

    def __init__(self, path: Path, monitor: str, status: _Status, best=None, best_epoch=None):
        super().__init__()
        self.path, self.monitor, self.status = Path(path), monitor, status
        self.best, self.best_epoch = best, best_epoch

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if not _finite(value) or (self.best is not None and value <= self.best):
            return
        partial = self.path.with_name(f".{self.path.stem}.partial.keras")
        self.model.save(partial)
        os.replace(partial, self.path)
        self.best, self.best_epoch = float(value), epoch + 1
        self.status.update(best_epoch=self.best_epoch, best_value=self.best)


class _TrainingState(keras.callbacks.Callback):
    """After each epoch, the state to resume from (``checkpoints/state-epoch-<k>/``), then
    ``status.json``'s ``epochs_done``: the status never names a state that is not whole."""

    def __init__(self, checkpoints: Path, status: _Status):
        super().__init__()
        self.checkpoints, self.status = checkpoints, status

    def on_epoch_end(self, epoch, logs=None):
        _save_state(self.model, self.checkpoints / f"{STATE_PREFIX}{epoch + 1}")
        self.status.update(epochs_done=epoch + 1)
        _remove_states(self.checkpoints, keep=epoch + 1)


# Training ---------------------------------------------------------------------------------------

def train(config: TrainConfig, verbose: int | str = "auto", callbacks=()) -> RunResult:
    """Train ``config.model`` on ``config.dataset``; see the module docstring for the run folder.
    ``callbacks``: more Keras callbacks, called before the run's own (so one that changes
    ``logs`` changes what the run records)."""
    config = config.validate()  # before any work: a bad value makes no run folder
    return _session(config, None, verbose, callbacks)


def resumable(run_dir) -> TrainConfig:
    """The configuration of the unfinished run in ``run_dir`` (its ``config.json``), checked;
    a ``ValueError`` says why it cannot be resumed (a finished run, a folder that is no run,
    a run that is still training)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise ValueError(f"cannot resume {run_dir}: {_not_a_run(run_dir)} Give the folder of "
                         "an interrupted `segcourse train` run.")
    status = read_status(run_dir)
    if status is None:
        raise ValueError(f"cannot resume {run_dir}: it has no status.json, so it holds no "
                         "training state to continue from (runs made by an older segcourse "
                         "do not). `segcourse evaluate` can score its checkpoint; to finish "
                         "the training, start a new run.")
    if status.get("status") == "finished":
        raise ValueError(f"cannot resume {run_dir}: it finished ({status.get('epochs')} "
                         f"epochs, {status.get('updated')}), so there is nothing to continue; "
                         f"its model is {run_dir / 'model.keras'}. To train longer or "
                         "otherwise, start a new run (without --resume).")
    if _still_training(status):
        raise ValueError(f"cannot resume {run_dir}: process {status.get('pid')} on this "
                         "machine is still training it (its status.json says running), and "
                         "two trainings would write the same folder. Let it end, or stop it "
                         f"(Ctrl-C, or kill {status.get('pid')}) and resume then.")
    try:
        config = TrainConfig(**json.loads((run_dir / "config.json").read_text()))
    except (TypeError, ValueError) as error:
        raise ValueError(f"cannot resume {run_dir}: its config.json is not a training "
                         f"configuration of this segcourse ({error}); start a new run.") from None
    return config.validate()


def resume(run_dir, verbose: int | str = "auto", callbacks=()) -> RunResult:
    """Continue the unfinished run in ``run_dir`` from its last finished epoch, with the
    configuration it started with: it ends where the uninterrupted run would have (the same
    weights, log.csv and scores; see ``tests/test_train.py``). The epochs already trained
    are not trained again, but their data pipeline is replayed (a few seconds per epoch) so
    that the following epochs see the uninterrupted run's batches, in its order."""
    run_dir = Path(run_dir)
    return _session(resumable(run_dir), run_dir, verbose, callbacks)


def _build(config, data, strategy):
    from segcourse import losses, metrics, models

    with strategy.scope():
        model = models.build(config.model, data.num_classes,
                             (config.image_size, config.image_size, 3), preset=config.preset,
                             **config.model_options)
        steps = config.epochs * max(1, data.train_steps)
        schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, steps, alpha=0.05)
        main_metric = metrics.ConfusionMatrixMetric(data.num_classes, data.ignore_index)
        outputs = model.outputs if len(model.outputs) > 1 else None
        loss = losses.MaskedCrossEntropy(ignore_index=data.ignore_index)
        model.compile(
            optimizer=keras.optimizers.Adam(schedule),
            loss=[loss] * len(outputs) if outputs else loss,
            loss_weights=[1.0, 0.4] if outputs else None,  # PSPNet's auxiliary loss weight
            metrics=[[main_metric], []] if outputs else [main_metric])
    monitor = f"val_{model.output_names[0]}_miou" if outputs else "val_miou"
    return model, monitor


def _session(config: TrainConfig, run_dir: Path | None, verbose, extra_callbacks) -> RunResult:
    """One training session: a new run (``run_dir`` None) or the rest of an unfinished one."""
    import tensorflow as tf

    from segcourse.data.sources import open_dataset

    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    started = time.time()
    data = open_dataset(config)
    record = data_record(config, data)
    if run_dir is not None:
        _check_same_data(run_dir, record)
    strategy = distribution_strategy(config.distribute)
    model, monitor = _build(config, data, strategy)
    # One pass over the training data is one epoch; the pipeline is repeated rather than
    # restarted each epoch, so that epoch k's batches are its k-th pass for a resumed run too.
    steps = int(data.train.cardinality())
    steps = steps if steps > 0 else max(1, data.train_steps)
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2

    if run_dir is None:
        # The run folder only once data and model exist: a start that fails leaves none behind.
        run_dir = _run_dir(config)
        (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))
        _write_json(run_dir / "data.json", record)
        done, best, best_epoch, resumed = 0, None, None, False
        status = _Status(run_dir, {"status": "running", "epochs": config.epochs,
                                   "epochs_done": 0, "monitor": monitor, "best_epoch": None,
                                   "best_value": None, "started": _now()})
        if verbose:
            print(f"run folder: {run_dir}")
    else:
        fields = read_status(run_dir)
        done, resumed = int(fields.get("epochs_done") or 0), True
        state = run_dir / "checkpoints" / f"{STATE_PREFIX}{done}"
        if done and not (state / "model.weights.h5").is_file():
            raise ValueError(f"cannot resume {run_dir}: its training state after epoch {done} "
                             f"({state}) is missing, so the run cannot continue where it "
                             "stopped; start a new run.")
        if done:
            _load_state(model, state, strategy)
        _remove_states(run_dir / "checkpoints", keep=done)
        best, best_epoch = _best_in_log(_truncate_log(run_dir / "log.csv", done), monitor)
        status = _Status(run_dir, fields)
        status.fields["resumed"] = [*fields.get("resumed", []),
                                    {"after_epoch": done, "at": _now()}]
        if verbose:
            replay = (f"; the data of the {done} finished epoch(s) is replayed first (not "
                      "trained on) so that the next batches are the uninterrupted run's"
                      if done else "")
            print(f"resuming {run_dir} after epoch {done} of {config.epochs}{replay}")
    status.update(status="running", reason=None, pid=os.getpid(), host=socket.gethostname(),
                  best_epoch=best_epoch, best_value=best)

    checkpoint = _BestCheckpoint(run_dir / "checkpoints" / "best.keras", monitor, status, best,
                                 best_epoch)
    callbacks = [*extra_callbacks, checkpoint,
                 keras.callbacks.CSVLogger(str(run_dir / "log.csv"), append=resumed),
                 _TrainingState(run_dir / "checkpoints", status)]
    try:
        model.fit(data.train.repeat().skip(done * steps), validation_data=data.val,
                  epochs=config.epochs, initial_epoch=done, steps_per_epoch=steps,
                  callbacks=callbacks, verbose=verbose, shuffle=False)
        history = _history(_read_log(run_dir / "log.csv"))
        final, model_epoch, notes = _final_model(model, checkpoint, history, monitor)
        for note in notes:
            print(f"note: {note}")
        final.save(run_dir / "model.keras")
        split = test_split_name(data)
        test_scores = evaluate(final, data.test, data.num_classes, data.class_names,
                               data.ignore_index, progress=bool(verbose))
        results = {**test_scores.as_dict(), "split": split,
                   "seconds": round(time.time() - started, 1),
                   "best_epoch": checkpoint.best_epoch, "model_epoch": model_epoch}
        if resumed:
            results["resumed_after_epoch"] = done
        if notes:
            results["notes"] = notes
        (run_dir / "metrics.json").write_text(json.dumps(results, indent=2))
        _save_figures(run_dir, final, data, history, test_scores, data.palette)
        status.update(status="finished")
        _remove_states(run_dir / "checkpoints")  # a finished run is not resumed
    except BaseException as error:
        reason = ("KeyboardInterrupt (Ctrl-C)" if isinstance(error, KeyboardInterrupt)
                  else f"{type(error).__name__}: {error}")
        status.update(status="interrupted", reason=reason)
        with contextlib.suppress(AttributeError, TypeError):
            error.run_dir = run_dir  # for the command's message
        print(f"\ninterrupted ({reason}): {run_dir} keeps {status.fields['epochs_done']} "
              f"finished epoch(s) of {config.epochs}; `segcourse train --resume {run_dir}` "
              f"continues it from there and `segcourse evaluate {run_dir}` scores its best "
              "checkpoint so far.", file=sys.stderr)
        raise
    return RunResult(run_dir, test_scores, history, time.time() - started, split, tuple(notes))


def _final_model(model, checkpoint: _BestCheckpoint, history: dict, monitor: str):
    """``(model, its epoch, notes)``: the best checkpoint, or, where there is none, the last
    epoch's model and a note that says why."""
    epochs = len(history.get(monitor, [])) or None
    if checkpoint.best_epoch is not None and checkpoint.path.is_file():
        return keras.saving.load_model(checkpoint.path), checkpoint.best_epoch, []
    values = history.get(monitor, [])
    if checkpoint.best_epoch is not None:
        why = f"{checkpoint.path} (epoch {checkpoint.best_epoch}, the best) is missing"
    elif values and all(math.isnan(v) for v in values):
        why = (f"{monitor} was NaN in every epoch ({len(values)}), so no epoch could be "
               "chosen by it")
    else:
        why = (f"{monitor} was never a finite number (values: {values or 'none logged'}), so "
               "no epoch could be chosen by it")
    return model, epochs, [f"no best checkpoint was saved: {why}; model.keras is the last "
                           f"epoch's model (epoch {epochs}) instead of the best one."]


# Reading runs and models --------------------------------------------------------------------

@dataclass
class LoadedRun:
    model: object
    config: dict | None  # the run's config.json; None for a bare .keras file
    source: Path  # the .keras file read
    note: str | None = None  # set for an unfinished run: what it is and which checkpoint


def load_keras_file(path, compile: bool = True, what: str = "a .keras model file"):
    """A model from a ``.keras`` file; a ``ValueError`` that names the problem for a path that
    does not exist and for a file that is not a valid Keras archive (Keras itself says "File
    not found" for a file that exists but is not a zip)."""
    import zipfile

    import segcourse.layers
    import segcourse.losses  # noqa: F401  (register the custom layers and losses)

    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path} does not exist: give the path of {what}.")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not {what}.")
    problem = None
    if not zipfile.is_zipfile(path):
        with path.open("rb") as handle:
            head = handle.read(16)
        problem = (f"a .keras file is a zip archive and this one is not ({path.stat().st_size} "
                   f"bytes, starting {head!r})")
    else:
        try:
            with zipfile.ZipFile(path) as archive:
                names, broken = archive.namelist(), archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            problem = f"its zip structure is broken ({error})"
        else:
            if "config.json" not in names:
                problem = "it is a zip archive without the config.json every Keras archive holds"
            elif broken:
                problem = f"its member {broken} is corrupt (it fails its CRC check)"
    if problem:
        raise ValueError(f"{path} is not a valid Keras archive: {problem}. It may be truncated "
                         "(a copy or a save that did not end) or not a model at all; save the "
                         "model again with model.save(...) or give another file.")
    try:
        return keras.saving.load_model(path, compile=compile)
    except Exception as error:
        raise ValueError(f"{path} is a Keras archive but cannot be loaded as a model "
                         f"({type(error).__name__}: {error}); it may come from another version "
                         "of Keras or hold layers this package does not define.") from error


def _best_epoch_of(run_dir: Path, status: dict | None) -> str:
    if status and status.get("best_epoch"):
        value = status.get("best_value")
        monitor = status.get("monitor", "val_miou")
        return f"epoch {status['best_epoch']}" + (f" ({monitor} {value:.4f})"
                                                  if _finite(value) else "")
    _, epoch = _best_in_log(_read_log(run_dir / "log.csv"), (status or {}).get("monitor",
                                                                               "val_miou"))
    return f"epoch {epoch} (by log.csv)" if epoch else "an epoch its log does not show"


def open_run(path, unfinished: bool = True) -> LoadedRun:
    """The model of a run folder or a ``.keras`` file, with the run's configuration. A
    finished run gives its ``model.keras``; an unfinished one (interrupted, killed) its best
    checkpoint so far, with a ``note`` that says so and which epoch it is from (or a
    ``ValueError`` where ``unfinished`` is false)."""
    path = Path(path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"{_not_a_run(path)} Give a run folder of `segcourse train` or a "
                             ".keras file.")
        config = json.loads((path / "config.json").read_text())
        status = read_status(path)
        finished = (status.get("status") == "finished" if status
                    else (path / "model.keras").is_file())
        if finished:
            if not (path / "model.keras").is_file():
                raise ValueError(f"{path} finished but its model.keras is missing (moved or "
                                 "deleted?): put it back, or give the .keras file itself.")
            return LoadedRun(load_keras_file(path / "model.keras"), config, path / "model.keras")
        state = _unfinished(path, status)
        best = path / "checkpoints" / "best.keras"
        if not unfinished:
            raise ValueError(f"{path} is not a finished run ({state}), so it has no model.keras "
                             f"yet. `segcourse train --resume {path}` finishes it; `segcourse "
                             "evaluate` scores its best checkpoint so far.")
        if not best.is_file():
            raise ValueError(f"{path} is not a finished run ({state}) and has no checkpoint yet "
                             "(checkpoints/best.keras is written when an epoch ends with a best "
                             f"validation score): there is nothing to score. `segcourse train "
                             f"--resume {path}` continues its training.")
        note = (f"{path} is not a finished run ({state}): scoring its best checkpoint so far, "
                f"checkpoints/best.keras, from {_best_epoch_of(path, status)}; "
                f"`segcourse train --resume {path}` finishes the run.")
        return LoadedRun(load_keras_file(best, what="a checkpoint"), config, best, note)
    if path.suffix == ".keras":
        return LoadedRun(load_keras_file(path), None, path)
    where = "it does not exist" if not path.exists() else "it is another kind of file"
    raise ValueError(f"{path} is neither a run folder (with config.json: {RUN_CONTENTS}) nor a "
                     f".keras model file: {where}.")


def load_run(path):
    """A trained model and its run configuration, from a finished run folder or a ``.keras``
    file."""
    run = open_run(path, unfinished=False)
    return run.model, run.config


def check_classes(model, num_classes: int, dataset: str, class_names=()) -> None:
    """A ``ValueError`` where the model's output classes are not the dataset's classes."""
    shape = model.output_shape
    shape = shape[0] if isinstance(shape, list) else shape
    outputs = shape[-1]
    if outputs != num_classes:
        names = f" ({', '.join(class_names)})" if class_names else ""
        raise ValueError(f"the model outputs {outputs} classes but the dataset {dataset} has "
                         f"{num_classes}{names}: its scores would compare unrelated class "
                         "numbers. Evaluate the model on a dataset with the classes it was "
                         f"trained on (--dataset), or a model trained on {dataset}.")
