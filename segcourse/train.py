"""Training, evaluation and prediction, shared by the ``segcourse`` CLI and the labs.

``train(TrainConfig(model="unet"))`` builds the model from the registry, trains it on the
chosen dataset with a progress bar, keeps the best checkpoint on validation mIoU, evaluates it
on the held-out test split, and writes a run folder:

    runs/<model>-<dataset>-<time>/
        config.json      the configuration, resolved (profile defaults filled in)
        model.keras      the best model (by validation mIoU)
        checkpoints/     best.keras, written during training
        log.csv          one row per epoch (loss, mIoU, validation loss and mIoU)
        metrics.json     test scores: pixel accuracy, mIoU, per-class IoU and Dice, confusion
        *.png            learning curves, predictions, confusion matrix, per-class IoU
"""

from __future__ import annotations

import json
import math
import numbers
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

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


def train(config: TrainConfig, verbose: int | str = "auto") -> RunResult:
    """Train ``config.model`` on ``config.dataset``; see the module docstring for the run folder."""
    import keras
    import tensorflow as tf

    from segcourse import losses, metrics, models
    from segcourse.data.sources import open_dataset

    config = config.validate()  # before any work: a bad value makes no run folder
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    started = time.time()
    data = open_dataset(config)

    strategy = distribution_strategy(config.distribute)
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
    # The run folder only once data and model exist: a start that fails leaves none behind.
    run_dir = _run_dir(config)
    (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))
    callbacks = [
        keras.callbacks.ModelCheckpoint(run_dir / "checkpoints" / "best.keras", monitor=monitor,
                                        mode="max", save_best_only=True),
        keras.callbacks.CSVLogger(str(run_dir / "log.csv")),
    ]
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    history = model.fit(data.train, validation_data=data.val, epochs=config.epochs,
                        callbacks=callbacks, verbose=verbose, shuffle=False).history

    best = keras.saving.load_model(run_dir / "checkpoints" / "best.keras")
    best.save(run_dir / "model.keras")
    test_scores = evaluate(best, data.test, data.num_classes, data.class_names,
                           data.ignore_index, progress=bool(verbose))
    results = {**test_scores.as_dict(), "split": "test", "seconds": round(time.time() - started, 1),
               "best_epoch": int(np.argmax(history[monitor])) + 1}
    (run_dir / "metrics.json").write_text(json.dumps(results, indent=2))
    _save_figures(run_dir, best, data, history, test_scores, data.palette)
    return RunResult(run_dir, test_scores, history, time.time() - started)


def load_run(path):
    """A trained model and its run configuration, from a run folder or a ``.keras`` file."""
    import keras

    import segcourse.layers
    import segcourse.losses  # noqa: F401

    path = Path(path)
    if path.is_dir():
        missing = [name for name in ("model.keras", "config.json") if not (path / name).is_file()]
        if missing:
            raise ValueError(f"{path} is not a finished run folder: it has no "
                             f"{' and no '.join(missing)} (a run writes model.keras when its "
                             "training ends). Give a run folder of `segcourse train` or a "
                             ".keras file.")
        config = json.loads((path / "config.json").read_text())
        return keras.saving.load_model(path / "model.keras"), config
    if path.suffix != ".keras" or not path.exists():
        raise ValueError(f"{path} is neither a run folder (with model.keras and config.json) "
                         "nor a .keras model file.")
    return keras.saving.load_model(path), None

