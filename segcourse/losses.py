"""Losses for segmentation: cross-entropy with an ignore label and class weights, the focal loss,
the soft IoU (Jaccard) loss, the Dice loss, and weighted sums of them.

All take integer label maps ``(B, H, W)`` (or ``(B, H, W, 1)``) and scores ``(B, H, W, K)``,
logits by default; pixels labelled ``ignore_index`` contribute nothing.

Soft IoU (Rahman & Wang, "Optimizing Intersection-Over-Union in Deep Neural Networks for Image
Segmentation", ISVC 2016, the slides' formula): with X_v the predicted probability of a class at
pixel v and Y_v its 0/1 truth, I = Σ X·Y, U = Σ (X + Y − X·Y), L = 1 − I / U. The paper and the
slides apply it to the foreground class of a binary task. Where X is one-hot too, I / U is
exactly that class's IoU, so the loss is a differentiable stand-in for the metric. For K
classes ``SoftIoULoss(per_class=True)`` takes it per class and averages (the soft mIoU: every
class weighs the same, however few its pixels); ``per_class=False`` pools all pixels and classes
into one ratio, which weighs pixels, not classes.

The contract, for every loss here: labels are whole numbers in ``[0, K)`` with ``K`` the size of
the scores' last axis, or ``ignore_index``; their shape is the scores' without that axis (a
trailing axis of 1 allowed). Shapes are checked when the loss is traced (free). Label values
are checked where they are at hand — NumPy arrays, eager tensors, ``run_eagerly=True`` —
with a ``ValueError`` naming them. Inside a compiled step a value cannot be raised, so a batch
holding a bad label gives the loss ``nan`` (and no gradient), not a plausible number — under
XLA and without, whatever TensorFlow's own kernels would do with it: run once
with ``compile(..., run_eagerly=True)``, or pass the masks to
:func:`segcourse.labels.validate_labels`, to have the values named. That in-graph check is a
few comparisons and one reduction over the labels: measured at about 0.2 ms for 8 × 128 × 128
labels on a 2-core CPU, within the noise of a train step (no ``tf.debugging`` assert: XLA,
Keras' default compiler, drops asserts).

``sample_weight`` (the third element of what ``fit`` is given, or ``loss(y, p, sample_weight=w)``)
is per pixel, ``(N, H, W)`` or ``(N, H, W, 1)`` like the labels, or per picture, ``(N,)``
(broadcast over its pixels); any other shape is refused with a ``ValueError`` (where the rank
is known only at run time, as in ``fit``'s step retraced after weights of another rank, another
size fails there, in TensorFlow's broadcast), as are weights that are negative or not finite
where their values are at hand (eager). :class:`MaskedCrossEntropy` and :class:`FocalLoss`
multiply each labelled pixel's loss by its weight and keep their denominator, so a weight map of
ones changes nothing (e.g. U-Net's border weights, :mod:`segcourse.data.weight_map`).
:class:`SoftIoULoss` and :class:`DiceLoss`, one ratio of sums over the batch, refuse a
``sample_weight`` (a weight per pixel has no agreed meaning there), and so does a
:class:`CombinedLoss` with such a part. (Keras' own ``Loss.__call__`` would multiply
the batch's scalar loss by the weights and average them: the loss only rescaled by the batch's
mean weight. These losses do not let that happen.)
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Mapping

import keras
import numpy as np
from keras import ops

from segcourse.labels import IGNORE_INDEX, validate_labels
from segcourse.layers._validation import concrete, shapes_match
from segcourse.metrics import flat_label_check

register = keras.saving.register_keras_serializable(package="segcourse")


def _check_shapes(y_true, y_pred, owner):
    """Labels ``(..., H, W)`` or ``(..., H, W, 1)`` for scores ``(..., H, W, K)``."""
    truth, pred = tuple(y_true.shape), tuple(y_pred.shape)
    if pred and pred[-1] is None:
        raise ValueError(f"{owner}: y_pred needs a known number of classes on its last axis; "
                         f"got shape {pred}.")
    if shapes_match(truth, pred[:-1]) or shapes_match(truth, (*pred[:-1], 1)):
        return
    if shapes_match(truth, pred):
        hint = ("y_true has the scores' shape: if it is one-hot, pass its argmax over the last "
                "axis (integer labels) instead.")
    elif len(truth) == len(pred) + 1 or len(pred) < 2:
        hint = "y_pred must be the model's scores (logits or probabilities), not labels."
    else:
        hint = "Were labels and scores made for different picture sizes or batches?"
    raise ValueError(
        f"{owner}: labels of shape {truth} do not fit scores of shape {pred}: the labels' shape "
        f"must be the scores' without the class axis, {pred[:-1]}, or {(*pred[:-1], 1)}. "
        + hint)


def _check_scores(scores, from_logits, owner):
    """Warn where eager scores plainly do not match ``from_logits`` (a silently wrong loss)."""
    if scores is None or scores.size == 0 or scores.shape[-1] < 2:
        return
    import numpy as np

    inside = scores.min() >= 0 and scores.max() <= 1
    if from_logits and inside and np.allclose(scores.sum(axis=-1), 1, atol=1e-3):
        warnings.warn(f"{owner}: y_pred looks like probabilities (each pixel's scores lie in "
                      "[0, 1] and sum to 1), but from_logits=True (the default) applies a "
                      "softmax to them again, which gives a wrong loss. Pass the model's logits, "
                      "or set from_logits=False.", stacklevel=4)
    elif not from_logits and not inside:
        warnings.warn(f"{owner}: from_logits=False but y_pred holds values outside [0, 1] "
                      f"({scores.min():.3g} to {scores.max():.3g}): logits, not probabilities, "
                      "so the loss is wrong. Set from_logits=True, or apply a softmax first.",
                      stacklevel=4)


def _prepare(y_true, y_pred, ignore_index, from_logits, owner):
    """Labels (B*H*W,), a validity mask (B*H*W, 1), scores and probabilities (B*H*W, K), and
    ``None`` where the labels were checked eagerly or else a scalar: any label bad (see the
    module docstring)."""
    y_true = ops.convert_to_tensor(y_true)
    y_pred = ops.convert_to_tensor(y_pred)
    _check_shapes(y_true, y_pred, owner)
    num_classes = y_pred.shape[-1]
    _check_scores(concrete(y_pred), from_logits, owner)
    values = concrete(y_true)
    if values is not None:
        validate_labels(values, num_classes, ignore_index, f"{owner}: y_true", hint=(
            f"y_pred has {num_classes} classes on its last axis: give the model as many output "
            "channels as the dataset has classes, or map those labels to a class or to the "
            "ignore label."))
        bad = None
    else:
        bad = ops.any(flat_label_check(y_true, num_classes, ignore_index)[2])
    labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
    valid = (labels != ignore_index if ignore_index is not None
             else ops.ones_like(labels, dtype="bool"))
    # In range whatever came in (the loss is nan then): no kernel may fail or read out of bounds.
    # Computing labels and mask this simply, not from the check's outputs, keeps XLA's fusions
    # as they were: Dice took 2.5x longer under XLA the other way.
    labels = ops.clip(ops.where(valid, labels, 0), 0, num_classes - 1)
    scores = ops.reshape(y_pred, (-1, num_classes))
    probabilities = ops.softmax(scores, axis=-1) if from_logits else scores
    return labels, ops.cast(valid, y_pred.dtype)[:, None], scores, probabilities, bad


def _loud(loss, bad):
    """``nan`` where the batch held a bad label (graph mode), with no gradient."""
    return loss if bad is None else ops.where(bad, float("nan"), loss)


_WEIGHT_SHAPES = ("(N,) one weight per picture, or (N, H, W) or (N, H, W, 1) one weight per "
                  "pixel")


def _pixel_weights(sample_weight, y_true, y_pred, owner, dtype):
    """``sample_weight`` checked against the labels and flattened to one weight per pixel,
    ``(N*H*W,)`` like :func:`_prepare`'s labels (a picture's weight repeated over its pixels)."""
    weights = ops.convert_to_tensor(sample_weight, dtype=dtype)
    shape = _shape_of(weights)
    pixels = tuple(y_pred.shape)[:-1]
    accepted = (f"{_WEIGHT_SHAPES}: {(*pixels[:1],)}, {pixels} or {(*pixels, 1)} for labels of "
                f"shape {tuple(y_true.shape)}")
    if shape is None:
        # Rank unknown until run time: a TensorFlow graph, e.g. fit's step retraced with relaxed
        # shapes after weights of another rank. A picture's row of weights is one weight or one
        # per pixel; anything else fails in the broadcast when the step runs.
        pictures = ops.shape(y_pred)[0]
        weights = ops.reshape(weights, (pictures, -1))
        return ops.reshape(weights * ops.ones_like(ops.reshape(y_pred[..., 0], (pictures, -1))),
                           (-1,))
    if len(shape) == 1 and len(pixels) > 1 and shapes_match(shape, pixels[:1]):
        weights = ops.reshape(weights, (-1,) + (1,) * (len(pixels) - 1))
        weights = weights * ops.ones_like(y_pred[..., 0])
    elif shapes_match(shape, (*pixels, 1)):
        weights = ops.squeeze(weights, axis=-1)
    elif not shapes_match(shape, pixels):
        if not shape:
            hint = ("To scale the whole loss, weigh it in a CombinedLoss or change the learning "
                    "rate.")
        elif len(shape) == len(pixels) + 1 and shape[-1] == tuple(y_pred.shape)[-1]:
            hint = ("A weight per class belongs in the loss (MaskedCrossEntropy(class_weights=...)"
                    ", FocalLoss(alpha=...)), not in sample_weight.")
        else:
            hint = "Were the weights made for other pictures, another size or another batch?"
        raise ValueError(f"{owner}: sample_weight of shape {shape} does not fit; accepted are "
                         f"{accepted}. {hint}")
    values = concrete(weights)
    if values is not None and values.size and not (
            np.all(np.isfinite(values)) and values.min() >= 0):
        bad = values[~(np.isfinite(values) & (values >= 0))]
        raise ValueError(
            f"{owner}: sample_weight holds {bad.size} value(s) that are negative or not finite, "
            f"such as {sorted(set(bad.tolist()))[:3]}; a weight scales a pixel's loss, so it "
            "must be a finite number >= 0 (0 leaves the pixel out; the ignore label does too).")
    return ops.reshape(weights, (-1,))


def _shape_of(x):
    """``x``'s shape as a tuple, ``None`` where its rank is unknown (a TensorFlow graph)."""
    try:
        return tuple(x.shape) if hasattr(x, "shape") else np.shape(x)
    except ValueError:
        return None


class _SegmentationLoss(keras.losses.Loss):
    """A loss of integer label maps and scores; ``call(y_true, y_pred, pixel_weights)`` takes
    the flat per-pixel weights that ``__call__`` makes of a ``sample_weight`` (module
    docstring)."""

    def __init__(self, from_logits=True, ignore_index=IGNORE_INDEX, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.from_logits = from_logits
        self.ignore_index = ignore_index

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is None:
            return super().__call__(y_true, y_pred)
        # Keras' Loss.__call__ would multiply call()'s scalar by the weights and average them:
        # the per-pixel weights go into the loss's own sums here instead.
        owner = type(self).__name__
        with keras.name_scope(self.name):
            y_pred = ops.convert_to_tensor(y_pred, dtype=self.dtype)
            y_true = ops.convert_to_tensor(y_true, dtype=self.dtype)
            _check_shapes(y_true, y_pred, owner)
            weights = _pixel_weights(sample_weight, y_true, y_pred, owner, self.dtype)
            return ops.cast(self.call(y_true, y_pred, pixel_weights=weights), self.dtype)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits,
                "ignore_index": self.ignore_index}


@register
class MaskedCrossEntropy(_SegmentationLoss):
    """Pixel-wise cross-entropy, ignore label skipped, optional per-class weights.

    The mean is taken over the non-ignored pixels, each weighted by its class weight
    (Σ w·CE / Σ w, as PyTorch's ``CrossEntropyLoss(weight=..., ignore_index=...)``). Without
    class weights it equals Keras' own
    ``keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255)``
    (``tests/test_losses.py`` checks it); what it adds are the class weights and the label
    checks of the module docstring.

    A ``sample_weight`` w (per pixel, or per picture broadcast over its pixels) multiplies each
    pixel's term in the numerator only: Σ w·c·CE / Σ c over the labelled pixels, c the class
    weight, so weights of ones give the unweighted loss. Without class weights that is Keras'
    ``SparseCategoricalCrossentropy(from_logits=True)`` with the same per-pixel
    ``sample_weight``, with ``ignore_class=255`` too (Keras divides by the labelled pixels as
    well, not by Σ w; ``tests/test_losses.py`` checks both). Keras' per-picture ``(N,)``
    weights do not fit its per-pixel losses (an error, or a wrong broadcast over the width
    where that equals N); here they apply to each picture's pixels.
    """

    def __init__(self, class_weights=None, from_logits=True, ignore_index=IGNORE_INDEX,
                 name="masked_cross_entropy", **kwargs):
        super().__init__(from_logits, ignore_index, name, **kwargs)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]

    def call(self, y_true, y_pred, pixel_weights=None):
        num_classes = ops.convert_to_tensor(y_pred).shape[-1]
        if self.class_weights is not None and len(self.class_weights) != num_classes:
            raise ValueError(
                f"MaskedCrossEntropy: {len(self.class_weights)} class_weights for scores with "
                f"{num_classes} classes on their last axis; give one weight per class.")
        labels, valid, scores, _, bad = _prepare(y_true, y_pred, self.ignore_index,
                                                 self.from_logits, type(self).__name__)
        losses = ops.sparse_categorical_crossentropy(labels, scores, from_logits=self.from_logits)
        weights = valid[:, 0]
        if self.class_weights is not None:
            weights = weights * ops.take(ops.convert_to_tensor(self.class_weights, weights.dtype),
                                         labels)
        weighted = losses * weights
        if pixel_weights is not None:  # in the numerator only: weights of ones change nothing
            weighted = weighted * ops.cast(pixel_weights, weighted.dtype)
        return _loud(ops.sum(weighted) / ops.maximum(ops.sum(weights), 1e-12), bad)

    def get_config(self):
        return {**super().get_config(), "class_weights": self.class_weights}


@register
class FocalLoss(_SegmentationLoss):
    """The focal loss of Lin et al., "Focal Loss for Dense Object Detection" (ICCV 2017, §3.2,
    eq. 5), FL(p_t) = −α_t (1 − p_t)^γ log p_t, averaged over the non-ignored pixels.

    p_t is the probability the model gives the pixel's true class. The factor (1 − p_t)^γ
    shrinks the loss of pixels already classified with confidence (γ = 2 in the paper), so the
    many easy pixels of large classes stop drowning the few hard ones; γ = 0 with ``alpha=None``
    is :class:`MaskedCrossEntropy` exactly (``tests/test_losses.py``).

    ``alpha``: ``None`` (α_t = 1); per-class weights (one per class, e.g. from
    :func:`segcourse.data.frequencies.median_frequency_weights`), α_t being the weight of the
    pixel's true class; or a scalar α in [0, 1], read as the paper's binary balance with class
    0 as background: α for every other class, 1 − α for class 0 (the paper's 0.25 weighs
    foreground down, since γ already weighs the easy background down). With two classes that
    is eq. 5 exactly. Keras' ``CategoricalFocalCrossentropy`` instead multiplies every class by
    a scalar α, which only rescales the loss (a learning-rate change); where class 0 is not the
    background, pass per-class weights.

    Eq. 5 is the paper's binary form (p_t from a sigmoid, one such loss per class in
    RetinaNet); taking p_t from a softmax over the K classes, as here and in Keras'
    ``CategoricalFocalCrossentropy``, is the usual extension to K classes.

    The sum is divided by the number of labelled (non-ignored) pixels: Σ α_t·FL / N. The paper
    divides an image's sum over all anchors by the number of anchors assigned to a ground-truth
    box, the positives, not by all anchors: most anchors are easy background, whose summed
    loss the focal term keeps small. In segmentation every labelled pixel has a ground-truth
    class (background is a class like the others), so the labelled pixels are the count that
    corresponds; dividing by the non-background pixels instead would make the loss's scale
    swing with the foreground in each batch (and be undefined for a batch of background). Not
    Σ α_t either, so with γ = 0 and weights w this is ``MaskedCrossEntropy(class_weights=w)``
    times Σ w_t / N.

    A ``sample_weight`` w multiplies each labelled pixel's term in the numerator only:
    Σ w·α_t·FL / N, N still the labelled pixels, so weights of ones change nothing.
    """

    def __init__(self, gamma=2.0, alpha=None, from_logits=True, ignore_index=IGNORE_INDEX,
                 name="focal_loss", **kwargs):
        super().__init__(from_logits, ignore_index, name, **kwargs)
        gamma = float(gamma)
        if not (math.isfinite(gamma) and gamma >= 0):
            raise ValueError(f"FocalLoss: gamma must be a finite number >= 0 (the paper uses 2; "
                             f"0 gives the cross-entropy); got {gamma}.")
        self.gamma = gamma
        self.alpha = _focal_alpha(alpha)

    def _alpha_per_class(self, num_classes):
        if self.alpha is None:
            return None
        if isinstance(self.alpha, float):
            return [1.0 - self.alpha] + [self.alpha] * (num_classes - 1)
        if len(self.alpha) != num_classes:
            raise ValueError(
                f"FocalLoss: {len(self.alpha)} alpha weights for scores with {num_classes} "
                "classes on their last axis; give one weight per class (or one scalar).")
        return self.alpha

    def call(self, y_true, y_pred, pixel_weights=None):
        alpha = self._alpha_per_class(ops.convert_to_tensor(y_pred).shape[-1])
        labels, valid, scores, _, bad = _prepare(y_true, y_pred, self.ignore_index,
                                                 self.from_logits, type(self).__name__)
        # −log p_t, computed as MaskedCrossEntropy computes it; 1 − p_t = −expm1(log p_t) keeps
        # its precision where p_t is near 1 (the easy pixels this loss is about).
        cross_entropy = ops.sparse_categorical_crossentropy(labels, scores,
                                                            from_logits=self.from_logits)
        # Floored: d(x^γ)/dx is infinite at x = 0 for γ < 1, and inf · 0 would be a nan
        # gradient where p_t rounds to 1. The floor changes the loss by under 1e-7^(1+γ).
        easiness = ops.maximum(-ops.expm1(-cross_entropy), 1e-7)
        losses = ops.power(easiness, self.gamma) * cross_entropy
        weights = valid[:, 0]
        if alpha is not None:
            losses = losses * ops.take(ops.convert_to_tensor(alpha, losses.dtype), labels)
        weighted = losses * weights
        if pixel_weights is not None:  # in the numerator only: weights of ones change nothing
            weighted = weighted * ops.cast(pixel_weights, weighted.dtype)
        return _loud(ops.sum(weighted) / ops.maximum(ops.sum(weights), 1.0), bad)

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma, "alpha": self.alpha}


def _focal_alpha(alpha):
    """``None``, a float in [0, 1], or a list of finite non-negative per-class weights."""
    if alpha is None:
        return None
    if isinstance(alpha, numbers.Real) or getattr(alpha, "ndim", None) == 0:
        alpha = float(alpha)
        if not 0 <= alpha <= 1:
            raise ValueError(
                f"FocalLoss: a scalar alpha is the weight of the non-background classes (class 0 "
                f"gets 1 - alpha), so it must lie in [0, 1]; got {alpha}. For other weights pass "
                "one per class.")
        return alpha
    try:
        if isinstance(alpha, str | bytes | Mapping):
            raise TypeError("not a sequence of weights")
        weights = [float(w) for w in alpha]
    except (TypeError, ValueError):
        raise ValueError(f"FocalLoss: alpha is None, a float in [0, 1] (the weight of the "
                         f"non-background classes) or one weight per class; got {alpha!r}."
                         ) from None
    if not weights or not all(math.isfinite(w) and w >= 0 for w in weights) or not any(weights):
        raise ValueError(f"FocalLoss: per-class alpha weights must be finite, >= 0 and not all "
                         f"zero; got {weights}.")
    return weights


@register
class SoftIoULoss(_SegmentationLoss):
    """L = 1 − I / U with I = Σ X·Y and U = Σ (X + Y − X·Y) over the batch.

    ``per_class=True``: the slides' ratio for each class, then their mean — the soft
    counterpart of mIoU. A class is left out of the mean only when its union is 0: neither in
    the truth nor given any probability. Softmax scores give every class some, so a class absent
    from the batch's truth is counted with a ratio of 0: it adds 1/K to the loss (a floor of
    (absent classes)/K that changes from batch to batch) and its gradient pushes that class's
    probabilities down (a loss averaged over the truth's classes only would not).
    ``per_class=False``: one ratio pooled over all pixels and classes, in which a small class's
    pixels barely count.

    No ``sample_weight``: it is refused (module docstring).
    """

    def __init__(self, per_class=False, from_logits=True, ignore_index=IGNORE_INDEX,
                 smooth=1e-6, name="soft_iou", **kwargs):
        super().__init__(from_logits, ignore_index, name, **kwargs)
        self.per_class = per_class
        self.smooth = smooth

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            name = type(self).__name__
            raise ValueError(
                f"{name}: got a sample_weight (shape {_shape_of(sample_weight)}), but this "
                "loss is one ratio of sums over the whole batch, where a weight per pixel or per "
                "picture has no agreed meaning (Keras would only rescale the loss by the mean "
                "weight), so it is refused. To balance classes, use "
                f"{name}(per_class=True) (every class counts the same); for a per-pixel weight "
                "map such as U-Net's border weights, train with MaskedCrossEntropy or FocalLoss "
                "(alone, or a CombinedLoss of only such parts), which take it; or leave "
                "sample_weight out. To leave pixels out, give them the ignore label.")
        return super().__call__(y_true, y_pred)

    def _terms(self, y_true, y_pred):
        labels, valid, _, x, bad = _prepare(y_true, y_pred, self.ignore_index, self.from_logits,
                                            type(self).__name__)
        y = ops.one_hot(labels, x.shape[-1], dtype=x.dtype) * valid
        x = x * valid
        axis = 0 if self.per_class else None
        return ops.sum(x * y, axis=axis), ops.sum(x + y - x * y, axis=axis), x, y, bad

    def call(self, y_true, y_pred):
        intersection, union, _, _, bad = self._terms(y_true, y_pred)
        ratio = intersection / (union + self.smooth)
        if self.per_class:
            present = ops.cast(union > self.smooth, ratio.dtype)
            ratio = ops.sum(ratio * present) / ops.maximum(ops.sum(present), 1.0)
        return _loud(1.0 - ratio, bad)

    def get_config(self):
        return {**super().get_config(), "per_class": self.per_class, "smooth": self.smooth}


@register
class DiceLoss(SoftIoULoss):
    """L = 1 − 2 Σ X·Y / (Σ X + Σ Y): the soft Dice coefficient in its linear form; V-Net's
    (Milletari et al. 2016, eq. 1) squares the denominator's terms (Σ X² + Σ Y²): the same on
    0/1 maps, higher on soft ones. ``per_class`` as above."""

    def __init__(self, per_class=False, from_logits=True, ignore_index=IGNORE_INDEX,
                 smooth=1e-6, name="dice", **kwargs):
        super().__init__(per_class, from_logits, ignore_index, smooth, name, **kwargs)

    def call(self, y_true, y_pred):
        intersection, _, x, y, bad = self._terms(y_true, y_pred)
        total = ops.sum(x + y, axis=0 if self.per_class else None)
        ratio = 2 * intersection / (total + self.smooth)
        if self.per_class:
            present = ops.cast(total > self.smooth, ratio.dtype)
            ratio = ops.sum(ratio * present) / ops.maximum(ops.sum(present), 1.0)
        return _loud(1.0 - ratio, bad)


@register
class CombinedLoss(keras.losses.Loss):
    """A weighted sum of losses, e.g. ``CombinedLoss([MaskedCrossEntropy(), SoftIoULoss()],
    [1.0, 0.5])``.

    A ``sample_weight`` is passed on to every part: a sum of :class:`MaskedCrossEntropy` and
    :class:`FocalLoss` parts honours it, one with a :class:`SoftIoULoss` or :class:`DiceLoss`
    part refuses it (the part's ``ValueError``)."""

    def __init__(self, losses, weights=None, name="combined_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.losses = [keras.losses.get(loss) if isinstance(loss, (str, dict)) else loss
                       for loss in losses]
        self.weights = [1.0] * len(self.losses) if weights is None else [float(w) for w in weights]
        if len(self.weights) != len(self.losses):
            raise ValueError(f"CombinedLoss: {len(self.losses)} losses but "
                             f"{len(self.weights)} weights.")

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is None:
            return super().__call__(y_true, y_pred)
        # Each part weighs its own pixels (Keras' Loss.__call__ would rescale the sum).
        with keras.name_scope(self.name):
            total = 0.0
            for index, (loss, weight) in enumerate(zip(self.losses, self.weights, strict=True)):
                try:
                    value = loss(y_true, y_pred, sample_weight=sample_weight)
                except ValueError as error:
                    raise ValueError(f"CombinedLoss, part {index} ({type(loss).__name__}): "
                                     f"{error}") from error
                total = total + weight * ops.cast(value, self.dtype)
            return total

    def call(self, y_true, y_pred):
        return sum(w * loss(y_true, y_pred) for loss, w in zip(self.losses, self.weights,
                                                               strict=True))

    def get_config(self):
        return {**super().get_config(), "weights": self.weights,
                "losses": [keras.losses.serialize(loss) for loss in self.losses]}
