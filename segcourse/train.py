"""Training, evaluation and prediction, shared by the ``segcourse`` CLI and the labs: the
training configuration (:class:`TrainConfig`, the profiles' defaults, its checks), the
training recipe a model is compiled with (:func:`compile_model`, for the labs too; what a model
needs beyond it, e.g. PSPNet's auxiliary loss weight, it declares in the registry), the
training session (seeded by :func:`seed_everything`), and :func:`reset_optimizer` for labs
that run one compiled model several times.

``train(TrainConfig(model="unet"))`` builds the model from the registry, trains it on the
chosen dataset with a progress bar, keeps the best checkpoint on validation mIoU, evaluates it
on the held-out test split, and writes a run folder. ``resume(RUN)`` (``segcourse train
--resume RUN``) continues an interrupted run from its last finished epoch so that it ends
exactly where an uninterrupted run would: the same weights, optimizer state and learning-rate
schedule, the same random state and the same batches in the epochs that follow.

Elsewhere: the run folder (its layout, status and log; reading a run or a ``.keras`` file back
with ``open_run`` / ``load_run``) is :mod:`segcourse.runs`; the best checkpoint and the training
state saved after each epoch are :mod:`segcourse.checkpoints`.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from segcourse import runs
from segcourse.labels import IGNORE_INDEX
from segcourse.metrics import SegmentationScores
from segcourse.runs import load_run  # noqa: F401  (the README names segcourse.train.load_run)
from segcourse.scoring import evaluate, predict_labels  # noqa: F401  (named here by labs, README)

if TYPE_CHECKING:
    from segcourse import checkpoints

PROFILE_DEFAULTS = {
    "cpu": {"epochs": 14, "image_size": 64, "batch_size": 16, "learning_rate": 3e-3,
            "warmup_epochs": 0, "train_count": 4000, "val_count": 500, "test_count": 1000,
            "model_size": "small"},
    "gpu": {"epochs": 40, "image_size": 128, "batch_size": 32, "learning_rate": 3e-3,
            "warmup_epochs": 0, "train_count": 20000, "val_count": 1000, "test_count": 2000,
            "model_size": "paper"},
}
DISTRIBUTE = ("auto", "mirrored", "none")
_COUNTS = ("epochs", "image_size", "batch_size", "train_count", "val_count", "test_count")


def _memory_bytes() -> int:
    """The machine's physical memory (a large number where it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 2 ** 50


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
    warmup_epochs: float | None = None
    seed: int = 0
    train_count: int | None = None
    val_count: int | None = None
    test_count: int | None = None
    model_size: str | None = None
    model_options: dict = field(default_factory=dict)
    out_dir: str = "runs"
    distribute: str = "auto"

    def resolved(self) -> TrainConfig:
        """A copy whose ``None`` fields hold the profile's defaults (unchecked)."""
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

        config = self.resolved()
        problems = []
        for name in _COUNTS:
            value = getattr(config, name)
            if not _whole(value) or value < 1:
                problems.append(f"{name} must be a whole number of at least 1; got {value!r}.")
        rate = config.learning_rate
        if not (runs.finite_number(rate) and rate > 0):
            problems.append(f"learning_rate must be a number above 0 (e.g. 3e-3); got {rate!r}.")
        warmup = config.warmup_epochs
        if not (runs.finite_number(warmup) and warmup >= 0 and
                (not runs.finite_number(config.epochs) or warmup < config.epochs)):
            problems.append(f"warmup_epochs must be a number from 0 up to, not including, the "
                            f"{config.epochs!r} epochs (e.g. 1); got {warmup!r}.")
        if not _whole(config.seed) or not 0 <= config.seed < 2 ** 32:
            problems.append(f"seed must be a whole number from 0 to 2**32 - 1; got "
                            f"{config.seed!r}.")
        if _whole(config.image_size) and _whole(config.batch_size) and config.batch_size >= 1:
            needed = config.batch_size * config.image_size ** 2 * 3 * 4  # one float32 batch
            if needed > _memory_bytes():
                problems.append(
                    f"image_size {config.image_size} with batch_size {config.batch_size}: one "
                    f"batch of pictures alone takes {needed / 1e9:.3g} GB, more than this "
                    f"machine's {_memory_bytes() / 1e9:.3g} GB of memory; choose a smaller "
                    "image_size (the profiles use 64 and 128).")
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
        else:  # models.check also refuses an unknown model size
            sized = _whole(config.image_size) and config.image_size >= 1
            size = config.image_size if sized else None  # a bad size is reported above
            try:
                models.check(config.model, None, (size, size, 3), model_size=config.model_size,
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
    """What :func:`train` and :func:`resume` return: the run folder, its scores and log."""

    run_dir: Path
    scores: SegmentationScores
    history: dict
    seconds: float
    split: str = "test"  # the split scored: "test", or "val (no test split)"
    notes: tuple[str, ...] = ()  # what the run had to decide for itself (see metrics.json)
    scored_at: str = ""  # at what size the scores were counted (segcourse.scoring)


def distribution_strategy(kind: str = "auto"):
    """``auto``: MirroredStrategy when TensorFlow sees several GPUs, else the default one;
    ``mirrored``: MirroredStrategy over every GPU, or every (logical) CPU when there is none;
    ``none``: the default strategy."""
    import tensorflow as tf  # TensorFlow-only: tf.distribute

    gpus = tf.config.list_logical_devices("GPU")
    if kind not in DISTRIBUTE:
        raise ValueError(f"distribute must be auto, mirrored or none; got {kind!r}.")
    if kind == "none" or (kind == "auto" and len(gpus) < 2):
        return tf.distribute.get_strategy()
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices=devices)


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


# Training ---------------------------------------------------------------------------------------

def train(config: TrainConfig, verbose: int | str = "auto", callbacks=()) -> RunResult:
    """Train ``config.model`` on ``config.dataset``; its run folder: :mod:`segcourse.runs`.
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
        raise ValueError(f"cannot resume {run_dir}: {runs.not_a_run(run_dir)} Give the folder "
                         "of an interrupted `segcourse train` run.")
    status = runs.read_status(run_dir)
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
    if runs.still_training(status):
        raise ValueError(f"cannot resume {run_dir}: process {status.get('pid')} on this "
                         "machine is still training it (its status.json says running), and "
                         "two trainings would write the same folder. Let it end, or stop it "
                         f"(Ctrl-C, or kill {status.get('pid')}) and resume then.")
    try:
        config = TrainConfig(**runs.read_config(run_dir))
    except (TypeError, ValueError) as error:
        raise ValueError(f"cannot resume {run_dir}: its config.json is not a training "
                         f"configuration of this segcourse ({error}); start a new run.") from None
    return config.validate()


def resume(run_dir, verbose: int | str = "auto", callbacks=(),
           config: TrainConfig | None = None) -> RunResult:
    """Continue the unfinished run in ``run_dir`` from its last finished epoch, with the
    configuration it started with: it ends where the uninterrupted run would have (the same
    weights, log.csv and scores; see ``tests/test_train.py``). The epochs already trained
    are not trained again, but their data pipeline is replayed (a few seconds per epoch) so
    that the following epochs see the uninterrupted run's batches, in its order. ``config``:
    what :func:`resumable` returned for this run, when the caller has checked it already."""
    run_dir = Path(run_dir)
    return _session(config or resumable(run_dir), run_dir, verbose, callbacks)


def learning_rate_schedule(config: TrainConfig, steps_per_epoch: int):
    """The recipe's learning rate per step: a linear warm-up from a tenth of
    ``config.learning_rate`` to it over ``config.warmup_epochs`` (gradual warm-up, Goyal et al.
    2017 §2.2), then a cosine decay to 5 % of it (Loshchilov & Hutter 2017, without restarts)
    over the remaining steps of ``config.epochs``. Without warm-up it is the cosine decay alone,
    over every step."""
    import keras

    config = config.resolved()
    total = config.epochs * max(1, steps_per_epoch)
    warmup = min(round(config.warmup_epochs * max(1, steps_per_epoch)), total - 1)
    if warmup == 0:
        return keras.optimizers.schedules.CosineDecay(config.learning_rate, total, alpha=0.05)
    return keras.optimizers.schedules.CosineDecay(
        config.learning_rate / 10, total - warmup, alpha=0.05,
        warmup_target=config.learning_rate, warmup_steps=warmup)


def compile_model(model, config: TrainConfig, num_classes: int, steps_per_epoch: int,
                  ignore_index: int = IGNORE_INDEX) -> str:
    """Compile ``model`` with the course's training recipe, the one :func:`train` uses:
    masked cross-entropy (``ignore_index`` pixels count for nothing), Adam on
    :func:`learning_rate_schedule`, mIoU on the main (first) output, and the loss weights
    ``config.model`` declares in the registry
    (:class:`segcourse.models.registry.TrainingRecipe`; PSPNet's auxiliary 0.4, Zhao et al.
    2017 §3.3). Several outputs without declared weights are refused. Call it in the
    distribution strategy's scope, if any. Returns the validation metric to monitor."""
    import keras

    from segcourse import losses, metrics
    from segcourse.models import registry

    config = config.resolved()  # the profile's epochs and learning rate where None
    outputs = len(model.outputs)
    loss_weights = registry.recipe(config.model).loss_weights(config.model, outputs)
    schedule = learning_rate_schedule(config, steps_per_epoch)
    main_metric = metrics.ConfusionMatrixMetric(num_classes, ignore_index)
    loss = losses.MaskedCrossEntropy(ignore_index=ignore_index)
    several = outputs > 1
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=[loss] * outputs if several else loss, loss_weights=loss_weights,
                  metrics=([[main_metric]] + [[]] * (outputs - 1)) if several else [main_metric])
    return f"val_{model.output_names[0]}_miou" if several else "val_miou"


def seed_everything(seed: int) -> None:
    """The same run every time: Python's, NumPy's and Keras' random numbers seeded
    (``keras.utils.set_random_seed``) and TensorFlow's ops deterministic. Call it before building
    a model or a pipeline that shuffles or augments (``JointAugment``'s random ops need the
    seed under determinism). Op determinism cannot be switched off again in the process."""
    import keras
    import tensorflow as tf  # TensorFlow-only: op determinism

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def reset_optimizer(optimizer) -> None:
    """Put a Keras ``optimizer`` back to the state of a new one of the same configuration, in
    place, between two runs that share it: its step count to 0 and every slot (Adam's moments,
    SGD's momentum, an accumulator, ...) to the value a new optimizer of the same class and
    ``get_config()`` starts with (zeros for Adam and SGD; Adagrad's accumulators start at
    ``initial_accumulator_value``). The learning rate is left alone: a fixed rate keeps its
    value (Keras 3 keeps it among ``optimizer.variables``, so zeroing them all would set it to
    0), and a schedule, read at the step count, starts again from its first step. Variables
    it does not own (the model's weights) are not touched; compiled train steps keep working,
    as only the values change.

    Refused: anything but a Keras 3 optimizer (``TypeError``; a model's is
    ``model.optimizer``), a ``LossScaleOptimizer`` and an optimizer that cannot be rebuilt
    from its configuration (``ValueError``): build a new optimizer for those instead."""
    import keras

    if not isinstance(optimizer, keras.optimizers.Optimizer):
        hint = (" For a compiled model pass model.optimizer." if hasattr(optimizer, "optimizer")
                else "")
        raise TypeError(f"reset_optimizer takes a Keras 3 optimizer (keras.optimizers.Adam, "
                        f"SGD, ...); got {type(optimizer).__name__}.{hint}")
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        raise ValueError("reset_optimizer cannot reset a LossScaleOptimizer (its loss scale "
                         "has a state of its own); build a new LossScaleOptimizer instead.")
    # a placeholder rate: the rate is never copied, and a schedule need not be rebuilt
    config = {**optimizer.get_config(), "learning_rate": 0.001}
    try:
        fresh = type(optimizer).from_config(config)
    except Exception as error:  # a subclass whose get_config does not give its arguments
        raise ValueError(f"reset_optimizer cannot make a new {type(optimizer).__name__} from "
                         f"its get_config() ({type(error).__name__}: {error}); build a new "
                         "optimizer instead.") from error
    if optimizer.built:
        fresh.build(optimizer._trainable_variables)  # the variables it was built for

    def state(opt):
        return [v for v in opt.variables if v.name != "learning_rate"]

    old, new = state(optimizer), state(fresh)
    if [(tuple(v.shape), v.dtype) for v in old] != [(tuple(v.shape), v.dtype) for v in new]:
        raise ValueError(f"reset_optimizer: a new {type(optimizer).__name__} of the same "
                         f"configuration has other variables ({len(new)}) than this one "
                         f"({len(old)}); build a new optimizer instead.")
    for variable, initial in zip(old, new, strict=True):
        variable.assign(initial.value)


def _build(config, data, strategy):
    """The model of ``config`` for ``data``, compiled in ``strategy``'s scope, and its
    monitor."""
    from segcourse import models

    with strategy.scope():
        model = models.build(config.model, data.num_classes,
                             (config.image_size, config.image_size, 3),
                             model_size=config.model_size,
                             **config.model_options)
        monitor = compile_model(model, config, data.num_classes, data.train_steps,
                                data.ignore_index)
    return model, monitor


def _session(config: TrainConfig, run_dir: Path | None, verbose, extra_callbacks) -> RunResult:
    """One training session: a new run (``run_dir`` None) or the rest of an unfinished one."""

    from segcourse import checkpoints, scoring
    from segcourse.data.sources import open_dataset

    if run_dir is None:
        runs.check_out_dir(config.out_dir)
    seed_everything(config.seed)
    started = time.time()
    data = open_dataset(config)
    record = runs.data_record(config, data)
    if run_dir is not None:
        runs.check_same_data(run_dir, record)
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
        run_dir = runs.new_run_dir(config)
        runs.write_json(run_dir / "config.json", asdict(config))
        runs.write_json(run_dir / "data.json", record)
        done, best, best_epoch, resumed = 0, None, None, False
        status = runs.RunStatus(run_dir, {"status": "running", "epochs": config.epochs,
                                          "epochs_done": 0, "monitor": monitor,
                                          "started": runs.timestamp()})
        if verbose:
            print(f"run folder: {run_dir}")
    else:
        fields = runs.read_status(run_dir)
        done, resumed = int(fields.get("epochs_done") or 0), True
        state = run_dir / "checkpoints" / f"{checkpoints.STATE_PREFIX}{done}"
        if done and not (state / "model.weights.h5").is_file():
            raise ValueError(f"cannot resume {run_dir}: its training state after epoch {done} "
                             f"({state}) is missing, so the run cannot continue where it "
                             "stopped; start a new run.")
        if done:
            checkpoints.load_state(model, state, strategy)
        checkpoints.remove_states(run_dir / "checkpoints", keep=done)
        rows = runs.truncate_log(run_dir / "log.csv", done)
        best, best_epoch = runs.best_in_log(rows, monitor)
        status = runs.RunStatus(run_dir, fields)
        status.fields["resumed"] = [*fields.get("resumed", []),
                                    {"after_epoch": done, "at": runs.timestamp()}]
        if verbose:
            replay = (f"; the data of the {done} finished epoch(s) is replayed first (not "
                      "trained on) so that the next batches are the uninterrupted run's"
                      if done else "")
            print(f"resuming {run_dir} after epoch {done} of {config.epochs}{replay}")
    if verbose and done < config.epochs:
        from segcourse import pace, speed

        # A pipeline of unknown length (cardinality < 0) leaves validation out of the estimate.
        val_pictures = max(int(data.val.cardinality()), 0) * config.batch_size
        print(speed.estimate_training(model, steps * config.batch_size, val_pictures,
                                      config.epochs - done))
        extra_callbacks = [*extra_callbacks, pace.FirstEpochPace()]
    status.update(status="running", reason=None, pid=os.getpid(), host=socket.gethostname(),
                  best_epoch=best_epoch, best_value=best)

    checkpoint = checkpoints.BestCheckpoint(run_dir / "checkpoints" / "best.keras", monitor,
                                            status, best, best_epoch)
    callbacks = [*extra_callbacks, checkpoint,
                 checkpoints.EpochLog(str(run_dir / "log.csv"), append=resumed),
                 checkpoints.TrainingState(run_dir / "checkpoints", status)]
    try:
        model.fit(data.train.repeat().skip(done * steps), validation_data=data.val,
                  epochs=config.epochs, initial_epoch=done, steps_per_epoch=steps,
                  callbacks=callbacks, verbose=verbose, shuffle=False)
        history = runs.log_history(runs.read_log(run_dir / "log.csv"))
        final, model_epoch, notes = _final_model(model, checkpoint, history, monitor)
        for note in notes:
            print(f"note: {note}")
        final.save(run_dir / "model.keras")
        split = record["test_split"]
        test_scores, scored_at = scoring.score_split(final, data, "test",
                                                      progress=bool(verbose))
        results = {**test_scores.as_dict(), "split": split, "scored_at": scored_at,
                   "seconds": round(time.time() - started, 1),
                   "best_epoch": checkpoint.best_epoch, "model_epoch": model_epoch}
        if resumed:
            results["resumed_after_epoch"] = done
        if notes:
            results["notes"] = notes
        runs.write_json(run_dir / "metrics.json", results)
        _save_figures(run_dir, final, data, history, test_scores, data.palette)
        status.update(status="finished")
        checkpoints.remove_states(run_dir / "checkpoints")  # a finished run is not resumed
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
    return RunResult(run_dir, test_scores, history, time.time() - started, split, tuple(notes),
                     scored_at)


def _final_model(model, checkpoint: checkpoints.BestCheckpoint, history: dict, monitor: str):
    """``(model, its epoch, notes)``: the best checkpoint, or, where there is none, the last
    epoch's model and a note that says why."""
    import keras

    if checkpoint.best_epoch is not None and checkpoint.path.is_file():
        return keras.saving.load_model(checkpoint.path), checkpoint.best_epoch, []
    values = history.get(monitor, [])
    epochs = len(values) or None
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
