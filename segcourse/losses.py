"""Losses for segmentation: cross-entropy with an ignore label and class weights, the soft IoU
(Jaccard) loss, the Dice loss, and weighted sums of them.

All take integer label maps ``(B, H, W)`` (or ``(B, H, W, 1)``) and scores ``(B, H, W, K)``,
logits by default; pixels labelled ``ignore_index`` contribute nothing.

Soft IoU, as on the slides (Rahman & Wang, "Optimizing Intersection-Over-Union in Deep Neural
Networks for Image Segmentation", ISVC 2016): with X the predicted probabilities and Y the
one-hot truth, I = Σ X·Y, U = Σ (X + Y − X·Y), L = 1 − I / U. Where X is one-hot too, I / U is
exactly the IoU, so the loss is a differentiable stand-in for the metric.
"""

from __future__ import annotations

import keras
from keras import ops

from segcourse.metrics import IGNORE_INDEX

register = keras.saving.register_keras_serializable(package="segcourse")


def _prepare(y_true, y_pred, ignore_index, from_logits):
    """Labels (B*H*W,), a validity mask (B*H*W, 1) and probabilities or logits (B*H*W, K)."""
    y_pred = ops.convert_to_tensor(y_pred)
    num_classes = y_pred.shape[-1]
    labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
    valid = labels != ignore_index
    labels = ops.where(valid, labels, 0)
    scores = ops.reshape(y_pred, (-1, num_classes))
    probabilities = ops.softmax(scores, axis=-1) if from_logits else scores
    return labels, ops.cast(valid, y_pred.dtype)[:, None], scores, probabilities


class _SegmentationLoss(keras.losses.Loss):
    def __init__(self, from_logits=True, ignore_index=IGNORE_INDEX, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.from_logits = from_logits
        self.ignore_index = ignore_index

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits,
                "ignore_index": self.ignore_index}


@register
class MaskedCrossEntropy(_SegmentationLoss):
    """Pixel-wise cross-entropy, ignore label skipped, optional per-class weights.

    The mean is taken over the non-ignored pixels, each weighted by its class weight
    (Σ w·CE / Σ w, as PyTorch's ``CrossEntropyLoss(weight=..., ignore_index=...)``).
    """

    def __init__(self, class_weights=None, from_logits=True, ignore_index=IGNORE_INDEX,
                 name="masked_cross_entropy", **kwargs):
        super().__init__(from_logits, ignore_index, name, **kwargs)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]

    def call(self, y_true, y_pred):
        labels, valid, scores, _ = _prepare(y_true, y_pred, self.ignore_index, self.from_logits)
        losses = ops.sparse_categorical_crossentropy(labels, scores, from_logits=self.from_logits)
        weights = valid[:, 0]
        if self.class_weights is not None:
            weights = weights * ops.take(ops.convert_to_tensor(self.class_weights, weights.dtype),
                                         labels)
        return ops.sum(losses * weights) / ops.maximum(ops.sum(weights), 1e-12)

    def get_config(self):
        return {**super().get_config(), "class_weights": self.class_weights}


@register
class SoftIoULoss(_SegmentationLoss):
    """L = 1 − I / U with I = Σ X·Y and U = Σ (X + Y − X·Y) over the batch.

    ``per_class=False`` (the slides): one ratio over all pixels and classes. ``per_class=True``:
    a ratio per class (classes absent from truth and prediction skipped), then their mean — the
    soft counterpart of mIoU.
    """

    def __init__(self, per_class=False, from_logits=True, ignore_index=IGNORE_INDEX,
                 smooth=1e-6, name="soft_iou", **kwargs):
        super().__init__(from_logits, ignore_index, name, **kwargs)
        self.per_class = per_class
        self.smooth = smooth

    def _terms(self, y_true, y_pred):
        labels, valid, _, x = _prepare(y_true, y_pred, self.ignore_index, self.from_logits)
        y = ops.one_hot(labels, x.shape[-1], dtype=x.dtype) * valid
        x = x * valid
        axis = 0 if self.per_class else None
        return ops.sum(x * y, axis=axis), ops.sum(x + y - x * y, axis=axis), x, y

    def call(self, y_true, y_pred):
        intersection, union, _, _ = self._terms(y_true, y_pred)
        ratio = intersection / (union + self.smooth)
        if self.per_class:
            present = ops.cast(union > self.smooth, ratio.dtype)
            ratio = ops.sum(ratio * present) / ops.maximum(ops.sum(present), 1.0)
        return 1.0 - ratio

    def get_config(self):
        return {**super().get_config(), "per_class": self.per_class, "smooth": self.smooth}


@register
class DiceLoss(SoftIoULoss):
    """L = 1 − 2 Σ X·Y / (Σ X + Σ Y) (Milletari et al., V-Net, 2016); ``per_class`` as above."""

    def __init__(self, per_class=False, from_logits=True, ignore_index=IGNORE_INDEX,
                 smooth=1e-6, name="dice", **kwargs):
        super().__init__(per_class, from_logits, ignore_index, smooth, name, **kwargs)

    def call(self, y_true, y_pred):
        intersection, _, x, y = self._terms(y_true, y_pred)
        total = ops.sum(x + y, axis=0 if self.per_class else None)
        ratio = 2 * intersection / (total + self.smooth)
        if self.per_class:
            present = ops.cast(total > self.smooth, ratio.dtype)
            ratio = ops.sum(ratio * present) / ops.maximum(ops.sum(present), 1.0)
        return 1.0 - ratio


@register
class CombinedLoss(keras.losses.Loss):
    """A weighted sum of losses, e.g. ``CombinedLoss([MaskedCrossEntropy(), SoftIoULoss()],
    [1.0, 0.5])``."""

    def __init__(self, losses, weights=None, name="combined_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.losses = [keras.losses.get(loss) if isinstance(loss, (str, dict)) else loss
                       for loss in losses]
        self.weights = [1.0] * len(self.losses) if weights is None else [float(w) for w in weights]
        if len(self.weights) != len(self.losses):
            raise ValueError(f"CombinedLoss: {len(self.losses)} losses but "
                             f"{len(self.weights)} weights.")

    def call(self, y_true, y_pred):
        return sum(w * loss(y_true, y_pred) for loss, w in zip(self.losses, self.weights,
                                                               strict=True))

    def get_config(self):
        return {**super().get_config(), "weights": self.weights,
                "losses": [keras.losses.serialize(loss) for loss in self.losses]}
