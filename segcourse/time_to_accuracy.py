"""Time to accuracy: how long a training recipe takes to reach a validation mIoU on ``shapes``.

``segcourse bench --time-to-accuracy`` trains three recipes on the same pictures (the CPU
profile's ``shapes`` pipelines, one seed), one after another on the same machine, each in a
fresh process, and records the wall time (training and the validation pass of every epoch)
at which validation mIoU first reaches each target:

- ``segcourse``: the registered U-Net at its small size with the course's recipe
  (:func:`segcourse.train.compile_model`: masked cross-entropy, Adam on a cosine decay);
- ``keras-io``: the peer most people copy, the keras-io example "Image segmentation with a
  U-Net-like architecture" (F. Chollet, 2019, updated for Keras 3): its Xception-style model
  (:func:`unet_like`) with its own compile line, Adam at a constant 1e-4 and sparse categorical
  cross-entropy on softmax outputs, batch 32 as there;
- ``keras-io model, segcourse recipe``: the same model, trained with the course's recipe.

The mIoU is :class:`segcourse.metrics.ConfusionMatrixMetric` on the validation split for all
three (added to the keras-io compile line, which has none). The keras-io example feeds 0–255
pixels; ``shapes`` pipelines give 0–1 ones, to every recipe alike.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import keras

TARGETS = (0.85, 0.90)
RECIPES = ("segcourse", "keras-io", "keras-io model, segcourse recipe")
KERAS_IO_LEARNING_RATE = 1e-4
KERAS_IO_EPOCHS = 50  # the example's own budget


def unet_like(input_shape, num_classes: int, softmax: bool = True):
    """The keras-io "U-Net-like" segmentation model (Chollet 2019), as that example builds it:
    a stride-2 3×3 entry convolution (32); three down blocks (64, 128, 256) of two
    ReLU → separable 3×3 convolution → batch norm, a 3×3 stride-2 max pool and a 1×1 stride-2
    projection of the block's input added back; four up blocks (256, 128, 64, 32) of two
    ReLU → 3×3 transposed convolution (stride 1) → batch norm, a ×2 nearest upsampling and an
    upsampled 1×1 projection of the block's input added back; a 3×3 classifier. Its skips are
    residual (within a block), not U-Net's encoder-to-decoder copies. ``softmax=False`` gives
    logits, for the course's loss. 2,058,979 parameters for 3 channels in and 3 classes."""
    from keras import layers

    inputs = keras.Input(input_shape)
    x = layers.Conv2D(32, 3, strides=2, padding="same")(inputs)
    x = layers.Activation("relu")(layers.BatchNormalization()(x))
    carried = x
    for filters in (64, 128, 256):
        for _ in range(2):
            x = layers.Activation("relu")(x)
            x = layers.BatchNormalization()(layers.SeparableConv2D(filters, 3, padding="same")(x))
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        x = layers.add([x, layers.Conv2D(filters, 1, strides=2, padding="same")(carried)])
        carried = x
    for filters in (256, 128, 64, 32):
        for _ in range(2):
            x = layers.Activation("relu")(x)
            x = layers.BatchNormalization()(layers.Conv2DTranspose(filters, 3, padding="same")(x))
        x = layers.UpSampling2D(2)(x)
        carried = layers.Conv2D(filters, 1, padding="same")(layers.UpSampling2D(2)(carried))
        x = layers.add([x, carried])
        carried = x
    outputs = layers.Conv2D(num_classes, 3, padding="same",
                            activation="softmax" if softmax else None)(x)
    return keras.Model(inputs, outputs, name="keras_io_unet_like")


@dataclass
class Race:
    """One recipe's run: validation mIoU after each epoch and the wall time by then."""
    recipe: str
    macs_per_picture: int
    parameters: int
    seconds: list[float]
    val_miou: list[float]
    stopped: str  # why training ended: a target reached, the epochs or the time budget

    def reached(self, target: float) -> float | None:
        """Seconds until validation mIoU first reached ``target``; None if it never did."""
        return next((s for s, m in zip(self.seconds, self.val_miou, strict=True)
                     if m >= target), None)


class Stopwatch(keras.callbacks.Callback):
    """After each epoch, the wall time since training began and the validation mIoU; stops
    training once the mIoU reaches ``target`` or the time passes ``budget_seconds``.
    ``stopped`` says why training ended (``otherwise`` when neither happened)."""

    def __init__(self, target: float, budget_seconds: float, otherwise: str):
        super().__init__()
        self.target, self.budget_seconds, self.stopped = target, budget_seconds, otherwise
        self.seconds, self.val_miou = [], []

    def on_train_begin(self, logs=None):
        self.began = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(round(time.perf_counter() - self.began, 1))
        self.val_miou.append(round(float(logs["val_miou"]), 4))
        if self.val_miou[-1] >= self.target:
            self.stopped, self.model.stop_training = f"reached {self.target}", True
        elif self.seconds[-1] >= self.budget_seconds:
            self.stopped = f"the budget of {self.budget_seconds:.0f} s ran out"
            self.model.stop_training = True


def _model_and_compile(recipe, config, data):
    """The recipe's model, compiled; the epochs it trains for at most."""
    _check_recipe(recipe)
    from segcourse import metrics, models
    from segcourse.train import compile_model

    shape = (config.image_size, config.image_size, 3)
    if recipe == "segcourse":
        model = models.build(config.model, data.num_classes, shape,
                             model_size=config.model_size)
        compile_model(model, config, data.num_classes, data.train_steps, data.ignore_index)
        return model, config.epochs
    if recipe == "keras-io":
        model = unet_like(shape, data.num_classes, softmax=True)
        model.compile(optimizer=keras.optimizers.Adam(KERAS_IO_LEARNING_RATE),
                      loss="sparse_categorical_crossentropy",  # shapes has no ignored pixels
                      metrics=[metrics.ConfusionMatrixMetric(data.num_classes,
                                                             data.ignore_index)])
        return model, KERAS_IO_EPOCHS
    model = unet_like(shape, data.num_classes, softmax=False)  # keras-io's model, our recipe
    compile_model(model, config, data.num_classes, data.train_steps, data.ignore_index)
    return model, config.epochs


def _check_recipe(recipe) -> None:
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; the recipes are {', '.join(RECIPES)}.")


def run_recipe(recipe: str, config, targets=TARGETS, budget_seconds: float = 1800.0) -> Race:
    """Train ``recipe`` on ``config``'s data (a :class:`segcourse.train.TrainConfig`, seeded,
    with op determinism on as ``segcourse train`` runs) until validation mIoU reaches the
    highest target, its epochs end, or ``budget_seconds`` of wall time pass."""
    from segcourse.analysis import summarize
    from segcourse.data.sources import open_dataset
    from segcourse.train import seed_everything

    config = config.resolved()
    seed_everything(config.seed)
    data = open_dataset(config)
    model, epochs = _model_and_compile(recipe, config, data)
    clock = Stopwatch(max(targets), budget_seconds, f"its {epochs} epochs ended")
    model.fit(data.train.repeat(), validation_data=data.val, epochs=epochs,
              steps_per_epoch=max(1, data.train_steps), callbacks=[clock], verbose=2,
              shuffle=False)
    return Race(recipe, summarize(model).macs, model.count_params(), clock.seconds,
                clock.val_miou, clock.stopped)


def _fresh_recipe(recipe, config, targets, budget_seconds) -> Race:
    from segcourse.labs.environment import prepare_tensorflow

    prepare_tensorflow()  # as the CLI does, before TensorFlow loads (oneDNN on x86-64)
    return run_recipe(recipe, config, targets, budget_seconds)


def report(out="benchmarks/time_to_accuracy.md", *, recipes=RECIPES, targets=TARGETS,
           budget_minutes: float = 30.0, config=None) -> str:
    """Race ``recipes`` (each in a fresh process, the machine's matmul ceiling measured before
    and after); write ``out`` (Markdown) and its ``.json``; return the Markdown. ``config``:
    the data and the segcourse recipe's settings (default: the CPU profile's)."""
    from tqdm.auto import tqdm

    from segcourse.speed import in_fresh_process, matmul_gflops
    from segcourse.train import TrainConfig

    config = (config or TrainConfig()).validate()
    if not isinstance(budget_minutes, (int, float)) or not 0 < budget_minutes < float("inf"):
        raise ValueError(f"budget_minutes must be a number of minutes above 0 (e.g. 30); got "
                         f"{budget_minutes!r}.")
    for recipe in recipes:
        _check_recipe(recipe)
    ceiling_start = matmul_gflops()
    races = []
    for recipe in tqdm(recipes, desc="time to accuracy", unit="recipe"):
        races.append(in_fresh_process(_fresh_recipe, recipe, config, tuple(targets),
                                      60.0 * budget_minutes))
    ceiling_end = matmul_gflops()
    figures = {"machine": {"platform": platform.platform(terse=True), "cores": os.cpu_count(),
                           "date": time.strftime("%Y-%m-%d %H:%M"),
                           "matmul_gflops_start": round(ceiling_start, 1),
                           "matmul_gflops_end": round(ceiling_end, 1)},
               "settings": {"image_size": config.image_size, "batch_size": config.batch_size,
                            "train_count": config.train_count, "val_count": config.val_count,
                            "epochs": config.epochs, "learning_rate": config.learning_rate,
                            "seed": config.seed, "targets": list(targets),
                            "budget_minutes": budget_minutes},
               "races": [vars(race) | {"reached": {str(t): race.reached(t) for t in targets}}
                         for race in races]}
    text = markdown(figures)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)
    Path(out).with_suffix(".json").write_text(json.dumps(figures, indent=1) + "\n")
    return text


def _minutes(seconds) -> str:
    return "not reached" if seconds is None else f"{seconds / 60:.1f}"


def markdown(figures) -> str:
    """The report's Markdown, from the figures :func:`report` writes as JSON."""
    machine, settings, races = figures["machine"], figures["settings"], figures["races"]
    targets = settings["targets"]
    ceiling = (f"{machine['matmul_gflops_start']:.0f} → {machine['matmul_gflops_end']:.0f} "
               "GFLOP/s")
    lines = [
        "# Time to accuracy on shapes", "",
        f"{machine['platform']}, {machine['cores']} cores, {machine['date']}; the machine's "
        f"float32 2048² matmul ran at {ceiling} (start → end of the run): read every time "
        "against it.", "",
        f"Same pictures for every recipe: shapes, {settings['image_size']}×"
        f"{settings['image_size']}, {settings['train_count']} fresh training pictures an "
        f"epoch, {settings['val_count']} validation pictures, batch {settings['batch_size']}, "
        f"seed {settings['seed']}, op determinism on. Time = wall time of training and of each "
        "epoch's validation pass, until validation mIoU first reaches the target. The "
        f"course's recipe: Adam, cosine decay from {settings['learning_rate']} over "
        f"{settings['epochs']} epochs; keras-io's: Adam at a constant {KERAS_IO_LEARNING_RATE}"
        f", up to its {KERAS_IO_EPOCHS} epochs. Each recipe stops at {max(targets)} or after "
        f"{settings['budget_minutes']:.0f} minutes.", "",
        "| recipe | MACs / picture | parameters | epochs | "
        + " | ".join(f"minutes to {t}" for t in targets)
        + " | best val mIoU | ended because | matmul ceiling |",
        "|---|---|---|---|" + "---|" * len(targets) + "---|---|---|"]
    for race in races:
        lines.append(
            f"| {race['recipe']} | {race['macs_per_picture'] / 1e6:.0f} M | "
            f"{race['parameters']:,} | {len(race['seconds'])} | "
            + " | ".join(_minutes(race["reached"][str(t)]) for t in targets)
            + f" | {max(race['val_miou'], default=float('nan')):.3f} | {race['stopped']} | "
            f"{ceiling} |")
    ours = next((r for r in races if r["recipe"] == "segcourse"), None)
    peers = [r for r in races if r["recipe"] != "segcourse"]
    if ours is not None and ours["reached"][str(max(targets))] is not None and peers:
        lines += ["", _peer_ratio(ours, peers, str(max(targets)))]
    return "\n".join(lines) + "\n"


def _peer_ratio(ours, peers, top: str) -> str:
    """How the peers' time to ``top`` compares with the course recipe's. A peer whose run ended
    below it would have needed more than that run (if it got there at all): its run's length is
    a lower bound, and the earliest peer to reach it an upper one."""
    mine = ours["reached"][top]
    reached = [(peer["reached"][top], peer) for peer in peers if peer["reached"][top] is not None]
    short = [(peer["seconds"][-1], peer) for peer in peers
             if peer["reached"][top] is None and peer["seconds"]]
    best = min(reached, key=lambda pair: pair[0], default=None)
    below = [(seconds, peer) for seconds, peer in short if best is None or seconds < best[0]]
    if best is not None and not below:
        return f"To {top}: the best peer took {best[0] / mine:.1f}× the course recipe's time."
    stopped = "; ".join(
        f"\"{peer['recipe']}\" ended below it after {seconds / 60:.1f} minutes "
        f"({seconds / mine:.1f}× the course recipe's {mine / 60:.1f}), at val mIoU "
        f"{max(peer['val_miou'], default=float('nan')):.3f}, {peer['stopped']}"
        for seconds, peer in sorted(below, key=lambda pair: pair[0]))
    if best is None:
        return f"To {top}: no peer recipe reached it within its own recipe: {stopped}."
    lower = min(seconds for seconds, _ in below)
    return (f"To {top}: the best peer took between {lower / mine:.1f}× and {best[0] / mine:.1f}× "
            f"the course recipe's time (\"{best[1]['recipe']}\" reached it after "
            f"{best[0] / 60:.1f} minutes; {stopped}).")
