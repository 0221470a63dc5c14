"""Segmentation metrics from one confusion matrix accumulated over the whole dataset.

The PASCAL VOC / Cityscapes definition: sum the confusion matrix over every pixel of every image,
then derive the scores — never average per-image IoUs (a small object in one image would weigh
as much as a whole dataset's background). Pixels labelled ``ignore_index`` (255: VOC's object
boundaries) are left out. A class absent from both the truth and the predictions has no IoU: it
is reported as absent and left out of the mean; a class predicted but never true has IoU 0.

Rows of the matrix are the true classes, columns the predicted ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

IGNORE_INDEX = 255


def validate_labels(labels, num_classes: int, ignore_index: int | None = IGNORE_INDEX,
                    what: str = "labels") -> np.ndarray:
    """Integer labels as an int64 array, or a ``ValueError`` that names the offending values.

    Labels must be whole numbers in ``[0, num_classes)`` or ``ignore_index``: a fractional value
    means a mask was interpolated (resize masks with nearest only); a value out of range means
    the wrong number of classes or an unmapped label.
    """
    labels = np.asarray(labels)
    if labels.dtype.kind == "f":
        fractional = labels[labels != np.round(labels)]
        if fractional.size:
            raise ValueError(
                f"{what} must be whole class numbers; found {fractional.size} fractional values "
                f"such as {fractional.flat[0]:g}. A mask was probably resized with bilinear "
                "interpolation: resize masks with nearest-neighbour only.")
    elif labels.dtype.kind not in "iub":
        raise ValueError(f"{what} must be an integer array; got dtype {labels.dtype}.")
    labels = labels.astype(np.int64)
    bad = (labels < 0) | (labels >= num_classes)
    if ignore_index is not None:
        bad &= labels != ignore_index
    if bad.any():
        values = np.unique(labels[bad])
        allowed = f"0..{num_classes - 1}" + ("" if ignore_index is None else f" or {ignore_index}")
        raise ValueError(
            f"{what} hold values {values[:8].tolist()} outside the {num_classes} classes "
            f"({allowed}, ignore label) in {int(bad.sum())} pixels. Check num_classes, or map "
            "those labels to a class or to the ignore label.")
    return labels


def to_labels(y_pred, y_true_shape) -> np.ndarray:
    """Predictions as labels: scores (logits or probabilities, one more axis than the truth)
    are reduced by argmax; labels pass through."""
    y_pred = np.asarray(y_pred)
    if y_pred.ndim == len(y_true_shape) + 1:
        return np.argmax(y_pred, axis=-1)
    if y_pred.shape != tuple(y_true_shape):
        raise ValueError(f"predictions of shape {y_pred.shape} do not match the truth "
                         f"{tuple(y_true_shape)}: give labels of the same shape or scores with "
                         "one more (class) axis.")
    return y_pred


def confusion_matrix(y_true, y_pred, num_classes: int, ignore_index: int | None = IGNORE_INDEX):
    """The ``(num_classes, num_classes)`` int64 matrix: truth in rows, prediction in columns.

    ``y_pred`` holds labels, logits or probabilities (then with a trailing class axis).
    """
    truth = validate_labels(y_true, num_classes, ignore_index, "y_true")
    predicted = validate_labels(to_labels(y_pred, truth.shape), num_classes, None, "y_pred")
    keep = truth != ignore_index if ignore_index is not None else np.ones(truth.shape, bool)
    pairs = truth[keep] * num_classes + predicted[keep]
    return np.bincount(pairs, minlength=num_classes ** 2).reshape(num_classes, num_classes)


@dataclass(frozen=True)
class SegmentationScores:
    """Everything derived from one confusion matrix (``nan`` marks an absent class)."""

    confusion: np.ndarray
    class_names: tuple[str, ...]

    @property
    def true_counts(self):
        return self.confusion.sum(axis=1)

    @property
    def predicted_counts(self):
        return self.confusion.sum(axis=0)

    @property
    def present(self):
        """Classes in the truth or the predictions; the others are absent from both."""
        return (self.true_counts + self.predicted_counts) > 0

    @property
    def pixel_accuracy(self) -> float:
        return float(np.trace(self.confusion) / max(self.confusion.sum(), 1))

    @property
    def class_accuracy(self):
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.true_counts > 0, np.diag(self.confusion) / self.true_counts,
                            np.nan)

    @property
    def mean_class_accuracy(self) -> float:
        return float(np.nanmean(self.class_accuracy)) if (self.true_counts > 0).any() else np.nan

    @property
    def iou(self):
        union = self.true_counts + self.predicted_counts - np.diag(self.confusion)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, np.diag(self.confusion) / union, np.nan)

    @property
    def miou(self) -> float:
        return float(np.nanmean(self.iou)) if self.present.any() else np.nan

    @property
    def frequency_weighted_iou(self) -> float:
        frequency = self.true_counts / max(self.true_counts.sum(), 1)
        return float(np.nansum(frequency * self.iou))

    @property
    def dice(self):
        total = self.true_counts + self.predicted_counts
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, 2 * np.diag(self.confusion) / total, np.nan)

    @property
    def absent(self) -> list[str]:
        return [name for name, here in zip(self.class_names, self.present, strict=True)
                if not here]

    def as_dict(self) -> dict:
        """JSON-ready: absent classes' per-class values are ``None``."""
        def per_class(values):
            return {name: (None if np.isnan(v) else float(v))
                    for name, v in zip(self.class_names, values, strict=True)}
        return {"pixel_accuracy": self.pixel_accuracy,
                "mean_class_accuracy": self.mean_class_accuracy, "miou": self.miou,
                "frequency_weighted_iou": self.frequency_weighted_iou,
                "iou": per_class(self.iou), "dice": per_class(self.dice),
                "absent": self.absent, "confusion": self.confusion.tolist()}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def table(self) -> str:
        """Per-class IoU and Dice, then mIoU and pixel accuracy, as aligned text."""
        width = max(len("pixel accuracy"), *map(len, self.class_names))
        lines = [f"{'class':<{width}}  {'IoU':>6}  {'Dice':>6}  {'pixels':>10}"]
        for name, iou, dice, count in zip(self.class_names, self.iou, self.dice,
                                          self.true_counts, strict=True):
            if np.isnan(iou):
                lines.append(f"{name:<{width}}  {'absent':>6}  {'':>6}  {count:>10}")
            else:
                lines.append(f"{name:<{width}}  {iou:6.3f}  {dice:6.3f}  {count:>10}")
        lines.append(f"{'mean (mIoU)':<{width}}  {self.miou:6.3f}")
        lines.append(f"{'pixel accuracy':<{width}}  {self.pixel_accuracy:6.3f}")
        return "\n".join(lines)


def scores(confusion, class_names=None) -> SegmentationScores:
    """Derive every score from a confusion matrix (see :class:`SegmentationScores`)."""
    confusion = np.asarray(confusion, dtype=np.int64)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"a confusion matrix is square; got shape {confusion.shape}.")
    names = tuple(class_names or (f"class {k}" for k in range(confusion.shape[0])))
    if len(names) != confusion.shape[0]:
        raise ValueError(f"{len(names)} class names for a {confusion.shape[0]}-class matrix.")
    return SegmentationScores(confusion, names)


def boundary_band(masks, width: int = 2) -> np.ndarray:
    """Pixels within ``width`` of a label change, as a boolean array like ``masks (N, H, W)``:
    the "trimap" band on which boundary quality is measured (scores restricted to it, as in
    DeepLab's trimap experiment, Chen et al. TPAMI 2018, Fig. 5)."""
    masks = np.asarray(masks)
    band = np.zeros(masks.shape, bool)
    for axis in (-2, -1):
        change = np.diff(masks, axis=axis) != 0
        lead = [(0, 0)] * masks.ndim
        trail = [(0, 0)] * masks.ndim
        lead[axis], trail[axis] = (1, 0), (0, 1)
        band |= np.pad(change, lead) | np.pad(change, trail)
    for _ in range(width - 1):
        grown = band.copy()
        for axis in (-2, -1):
            grown |= np.roll(band, 1, axis) | np.roll(band, -1, axis)
        band = grown
    return band


def streaming_confusion_update(y_true, y_pred, num_classes, ignore_index):
    """One batch's confusion matrix with ``keras.ops`` (XLA-friendly: a one-hot matrix
    product, no bincount). Returns float32 counts, exact below 2**24 per cell and batch."""
    y_true = ops.convert_to_tensor(y_true)
    y_pred = ops.convert_to_tensor(y_pred)
    if len(y_pred.shape) == len(y_true.shape) + 1:
        y_pred = ops.argmax(y_pred, axis=-1)
    elif len(y_true.shape) == len(y_pred.shape) + 1 and y_true.shape[-1] == 1:
        y_true = ops.squeeze(y_true, -1)
    truth = ops.reshape(ops.cast(y_true, "int32"), (-1,))
    predicted = ops.reshape(ops.cast(y_pred, "int32"), (-1,))
    valid = ops.cast(truth != ignore_index, "float32")[:, None]
    truth_hot = ops.one_hot(ops.where(truth == ignore_index, 0, truth), num_classes) * valid
    predicted_hot = ops.one_hot(predicted, num_classes)
    return ops.matmul(ops.transpose(truth_hot), predicted_hot)


REPORTS = ("miou", "pixel_accuracy", "mean_class_accuracy", "frequency_weighted_iou")


@keras.saving.register_keras_serializable(package="segcourse")
class ConfusionMatrixMetric(keras.metrics.Metric):
    """A streaming confusion matrix for ``compile(metrics=[...])``: accumulates over every batch
    of an epoch (the dataset-level definition), reports ``report`` (mIoU by default) as its
    result, and gives every score through :meth:`scores`. Accepts logits, probabilities or
    labels; ``ignore_index`` pixels are skipped.
    """

    def __init__(self, num_classes, ignore_index=IGNORE_INDEX, report="miou", class_names=None,
                 name=None, **kwargs):
        if report not in REPORTS:
            raise ValueError(f"report must be one of {REPORTS}; got {report!r}.")
        super().__init__(name=name or report, **kwargs)
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.report = report
        self.class_names = tuple(class_names) if class_names else None
        self.confusion = self.add_variable((num_classes, num_classes), "zeros", dtype="int64",
                                           name="confusion")

    def update_state(self, y_true, y_pred, sample_weight=None):
        counts = streaming_confusion_update(y_true, y_pred, self.num_classes, self.ignore_index)
        self.confusion.assign_add(ops.cast(counts, "int64"))

    def _derived(self):
        """The report computed with ``keras.ops`` (runs inside a compiled step)."""
        confusion = ops.cast(self.confusion, "float32")
        diagonal = ops.diagonal(confusion)
        truth, predicted = ops.sum(confusion, axis=1), ops.sum(confusion, axis=0)
        if self.report == "pixel_accuracy":
            return ops.sum(diagonal) / ops.maximum(ops.sum(confusion), 1.0)
        if self.report == "mean_class_accuracy":
            present = ops.cast(truth > 0, "float32")
            return ops.sum(present * diagonal / ops.maximum(truth, 1.0)) / ops.maximum(
                ops.sum(present), 1.0)
        union = truth + predicted - diagonal
        iou = diagonal / ops.maximum(union, 1.0)
        if self.report == "frequency_weighted_iou":
            return ops.sum(truth * iou) / ops.maximum(ops.sum(truth), 1.0)
        present = ops.cast(union > 0, "float32")
        return ops.sum(present * iou) / ops.maximum(ops.sum(present), 1.0)

    def result(self):
        return self._derived()

    def scores(self) -> SegmentationScores:
        return scores(ops.convert_to_numpy(self.confusion), self.class_names)

    def reset_state(self):
        self.confusion.assign(ops.zeros((self.num_classes, self.num_classes), "int64"))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "ignore_index": self.ignore_index, "report": self.report,
                "class_names": self.class_names}
