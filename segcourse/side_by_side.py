"""Several networks trained on the very same batches and scored on the same pictures: the fair
comparison the labs run when they ask "which of these is better at this budget?".

:func:`build_side_by_side` builds them, each seeded as if it were trained alone and compiled
with its own optimizer on the course's recipe. :func:`train_side_by_side` takes networks
compiled with their own optimizer and applies one step of each to every batch, all
of them in one TensorFlow graph traced once, so that a difference in their scores comes from the
networks, never from the pictures they saw or the order they saw them in.
:func:`score_side_by_side` (and :func:`score_labels`, for label maps at hand) counts one
confusion matrix per network over all the pictures, over the whole picture and over the band of
pixels near a label change (DeepLab's trimap, :func:`segcourse.metrics.boundary_band`), where
skips and output strides make their difference.
Dataset-level scores, as everywhere in the course (lab 06).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segcourse.labels import IGNORE_INDEX
from segcourse.metrics import SegmentationScores, boundary_band, confusion_matrix, scores
from segcourse.outputs import main_output


@dataclass(frozen=True)
class SideBySideScores:
    """One network's dataset-level scores over the whole pictures and within ``band_width``
    pixels of a true label change."""

    whole: SegmentationScores
    band: SegmentationScores

    @property
    def miou(self) -> float:
        """The mIoU over the whole pictures."""
        return self.whole.miou

    @property
    def band_miou(self) -> float:
        """The mIoU over the boundary band's pixels only."""
        return self.band.miou


def _check_contenders(contenders, owner: str) -> None:
    if not isinstance(contenders, dict) or not contenders:
        raise ValueError(f"{owner}: contenders is a dict of name -> Keras model with at least one "
                         f"entry; got {type(contenders).__name__} {contenders!r:.80}.")


def build_side_by_side(architectures: dict, num_classes: int, input_shape, learning_rate: float,
                       steps: int, seed: int = 0, batch_norm_momentum: float | None = None) -> dict:
    """The contenders, each built as if it were trained alone: for every ``name: (architecture,
    options)`` of ``architectures``, Keras' seeds set to ``seed``, then
    ``segcourse.models.build(architecture, num_classes, input_shape, **options)`` (options may
    hold ``model_size``), compiled with its own optimizer on the course's recipe
    (:func:`segcourse.train.compile_model`: Adam on the cosine decay over ``steps`` steps from
    ``learning_rate``, no warm-up). The same architecture under the same seed starts from the
    same weights. ``batch_norm_momentum`` replaces every batch norm's momentum (0.9: moving
    statistics that keep up with a run of a few hundred steps; Keras' default is 0.99)."""
    import keras

    from segcourse import models
    from segcourse.graph import sublayers
    from segcourse.train import TrainConfig, compile_model

    if not isinstance(architectures, dict) or not architectures:
        raise ValueError(f"build_side_by_side: architectures is a dict of name -> "
                         f"(architecture, options), e.g. {{'U-Net': ('unet', {{}})}}; got "
                         f"{architectures!r:.80}.")
    built = {}
    for name, (architecture, options) in architectures.items():
        keras.utils.set_random_seed(seed)
        model = models.build(architecture, num_classes, input_shape, **options)
        if batch_norm_momentum is not None:
            for layer in sublayers(model):  # nested ones too, such as ASPP's
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.momentum = batch_norm_momentum
        compile_model(model, TrainConfig(model=architecture, epochs=1,
                                         learning_rate=learning_rate, warmup_epochs=0),
                      num_classes, steps)
        built[name] = model
    return built


def train_side_by_side(contenders: dict, batches, loss, progress: bool = True) -> int:
    """Train every network of ``contenders`` (name → Keras model, each compiled with its own
    optimizer) one step on each ``(images, masks)`` of ``batches``, in one graph traced once:
    each network sees the same pictures in the same order. ``loss(masks, logits)`` is the loss
    all of them minimise (e.g. :class:`segcourse.losses.MaskedCrossEntropy`), or a dict giving
    each network its own (the same network under several losses). Of what ``compile`` set, only
    the optimizer is used (not the compiled loss, its weights or the metrics); networks with
    one output only. The graph is traced again for a batch of another shape (a short last
    batch). Returns the number of steps taken; shows Keras' progress bar unless ``progress`` is
    False."""
    import keras
    import tensorflow as tf  # TensorFlow-only: GradientTape

    _check_contenders(contenders, "train_side_by_side")
    for name, model in contenders.items():
        if getattr(model, "optimizer", None) is None:
            raise ValueError(f"train_side_by_side: {name!r} has no optimizer; compile it first "
                             f"(segcourse.train.compile_model gives the course's recipe).")
        if len(model.outputs) != 1:
            raise ValueError(f"train_side_by_side: {name!r} has {len(model.outputs)} outputs; "
                             f"this trains networks with one output (logits (N, H, W, K)). "
                             f"Train one with several (PSPNet's auxiliary head) with fit, after "
                             f"segcourse.train.compile_model.")
        model.optimizer.build(model.trainable_variables)
    if isinstance(loss, dict):
        if set(loss) != set(contenders):
            raise ValueError(f"train_side_by_side: a dict of losses names every network, and "
                             f"only those: networks {sorted(contenders)}, losses {sorted(loss)}.")
        pairs = [(model, loss[name]) for name, model in contenders.items()]
    else:
        pairs = [(model, loss) for model in contenders.values()]

    @tf.function(autograph=False, reduce_retracing=True)
    def step(images, masks):
        for model, its_loss in pairs:
            with tf.GradientTape() as tape:
                batch_loss = its_loss(masks, model(images, training=True))
            gradients = tape.gradient(batch_loss, model.trainable_variables)
            model.optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))

    bar = keras.utils.Progbar(_length(batches), unit_name="step") if progress else None
    steps = 0
    for batch in batches:
        images, masks = _pair(batch, "train_side_by_side")
        step(tf.convert_to_tensor(images), tf.convert_to_tensor(masks))
        steps += 1
        if bar is not None:
            bar.update(steps)
    if bar is not None and bar.target is None:  # a known length ends the bar by itself
        bar.update(steps, finalize=True)
    return steps


def _pair(batch, owner):
    """One ``(images, masks)`` item of ``batches``, or a ValueError that says what to pass."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch
    shape = getattr(batch, "shape", None)
    raise ValueError(
        f"{owner}: each item of batches is one (images, masks) pair; got "
        f"{type(batch).__name__}{'' if shape is None else f' of shape {tuple(shape)}'}. Pass "
        f"an iterable of pairs: [(images, masks)] for one batch, a list of slices, or a "
        f"tf.data.Dataset of (images, masks).")


def _length(batches):
    """How many batches, where ``batches`` knows (a list, a finite tf.data.Dataset), else None."""
    try:
        return len(batches)
    except TypeError:  # a generator, or a Dataset of unknown or infinite length
        return None


def score_side_by_side(contenders: dict, batches, num_classes: int, band_width: int = 2,
                       ignore_index: int = IGNORE_INDEX,
                       batch_size: int = 32) -> dict[str, SideBySideScores]:
    """Each network's dataset-level scores on every ``(images, masks)`` of ``batches``: one
    confusion matrix over all the pictures, and one over the pixels within ``band_width`` of a
    true label change (pixels labelled ``ignore_index`` count in neither). A contender is a Keras
    network (scored on its arg-max labels) or a function from a batch of pictures to label maps
    ``(N, H, W)``, e.g. a network's labels post-processed."""
    import keras

    from segcourse.train import predict_labels

    _check_contenders(contenders, "score_side_by_side")
    for name, contender in contenders.items():
        if not callable(contender):
            raise ValueError(f"score_side_by_side: contender {name!r} is a "
                             f"{type(contender).__name__}; pass a Keras network or a function "
                             f"from pictures to label maps.")
    totals = {name: np.zeros((2, num_classes, num_classes), np.int64) for name in contenders}
    for batch in batches:
        images, masks = _pair(batch, "score_side_by_side")
        images, masks = np.asarray(images), np.asarray(masks)
        near_edge = boundary_band(masks, band_width)  # once a batch, for every network
        for name, model in contenders.items():
            labels = (predict_labels(model, images, batch_size, num_classes)
                      if isinstance(model, keras.Model) else np.asarray(model(images)))
            totals[name] += _confusions(masks, labels, near_edge, num_classes, ignore_index)
    return {name: SideBySideScores(scores(whole), scores(in_band))
            for name, (whole, in_band) in totals.items()}


def score_labels(masks, labels, num_classes: int, band_width: int = 2,
                 ignore_index: int = IGNORE_INDEX) -> SideBySideScores:
    """The same scores for label maps already at hand (``(N, H, W)`` each), e.g. an oracle's:
    over the whole pictures and within ``band_width`` of a true label change."""
    masks = np.asarray(masks)
    whole, in_band = _confusions(masks, labels, boundary_band(masks, band_width), num_classes,
                                 ignore_index)
    return SideBySideScores(scores(whole), scores(in_band))


def _confusions(masks, labels, near_edge, num_classes, ignore_index):
    """``(2, K, K)``: the confusion matrix over every pixel, and over the band's pixels."""
    labels = np.asarray(labels)
    return np.stack([confusion_matrix(masks, labels, num_classes, ignore_index),
                     confusion_matrix(masks[near_edge], labels[near_edge], num_classes,
                                      ignore_index)])


def _called_labels(model, images):
    """Labels from one direct call: a few pictures, no ``predict`` function traced for them."""
    return np.asarray(main_output(model(images, training=False))).argmax(-1)


def show_side_by_side(images, masks, contenders: dict, palette=None, rows: int = 4,
                      ignore_index: int = IGNORE_INDEX, prepare=None):
    """A figure: per row a picture, its truth and each network's labels, with the pixels it gets
    wrong (ignored ones aside) tinted red. ``prepare``, if given, maps the pictures to what the
    networks take (e.g. a pretrained backbone's input scaling); the figure shows them as given.
    Returns the figure."""
    import matplotlib.pyplot as plt

    from segcourse.viz import _figure, _unit, colorize

    _check_contenders(contenders, "show_side_by_side")
    rows = min(rows, len(images))
    images, masks = np.asarray(images[:rows]), np.asarray(masks[:rows])
    inputs = images if prepare is None else np.asarray(prepare(images))
    columns = [("picture", None), ("truth", masks)] + [
        (name, _called_labels(model, inputs)) for name, model in contenders.items()]
    figure, axes = _figure(rows, len(columns), size=1.9)
    for row in range(rows):
        for ax, (title, labels) in zip(axes[row], columns, strict=True):
            ax.imshow(_unit(images[row]) if labels is None
                      else colorize(labels[row], palette, ignore_index))
            if labels is not None and title != "truth":
                wrong = (labels[row] != masks[row]) & (masks[row] != ignore_index)
                ax.imshow(np.dstack([wrong, 0 * wrong, 0 * wrong, 0.8 * wrong]).astype(float))
            if row == 0:
                ax.set_title(title, fontsize="small")
            ax.set_axis_off()
    plt.tight_layout()
    return figure
