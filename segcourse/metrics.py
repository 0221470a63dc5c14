"""Segmentation metrics from one confusion matrix accumulated over the whole dataset.

The PASCAL VOC / Cityscapes definition: sum the confusion matrix over every pixel of every image,
then derive the scores — never average per-image IoUs (a small object in one image would weigh
as much as a whole dataset's background). Pixels labelled ``ignore_index`` (255: VOC's object
boundaries) are left out. A class absent from both the truth and the predictions has no IoU: it
is reported as absent and left out of the mean; a class predicted but never true has IoU 0.

Rows of the matrix are the true classes, columns the predicted ones.

Labels outside ``[0, K)`` that are not the ignore label, and fractional labels, are refused: by
a ``ValueError`` that names them where the values are at hand (NumPy, eager tensors), and inside
a compiled step by :class:`ConfusionMatrixMetric` counting them and reporting ``nan`` until the
next eager look raises (see there). A pixel never silently drops out of the matrix.
"""

from __future__ import annotations

import json
import numbers
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from segcourse.labels import IGNORE_INDEX, pixel_count, validate_labels
from segcourse.layers._validation import concrete, shapes_match


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
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or (
            num_classes < 1):
        raise ValueError(f"num_classes must be a whole number of at least 1 (the classes' "
                         f"count); got {num_classes!r}.")
    truth = validate_labels(y_true, num_classes, ignore_index, "y_true")
    predicted = validate_labels(to_labels(y_pred, truth.shape), num_classes, None, "y_pred")
    keep = truth != ignore_index if ignore_index is not None else np.ones(truth.shape, bool)
    pairs = truth[keep] * num_classes + predicted[keep]
    return np.bincount(pairs, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def picture_confusions(y_true, y_pred, num_classes: int,
                       ignore_index: int | None = IGNORE_INDEX) -> np.ndarray:
    """One confusion matrix per picture: ``(N, num_classes, num_classes)`` int64 for label maps
    ``(N, ...)`` (predictions as labels, logits or probabilities, as :func:`confusion_matrix`
    takes them). Their sum over the pictures is the dataset's matrix; each one says what its
    picture got wrong (a failure gallery: :func:`picture_miou`, :func:`top_confusion`)."""
    truth = validate_labels(y_true, num_classes, ignore_index, "y_true")
    if truth.ndim < 2:
        raise ValueError(f"picture_confusions takes a batch of label maps (N, H, W); got shape "
                         f"{truth.shape}. For one picture use confusion_matrix, or add a batch "
                         "axis (truth[None]).")
    predicted = validate_labels(to_labels(y_pred, truth.shape), num_classes, None, "y_pred")
    count = len(truth)
    keep = truth != ignore_index if ignore_index is not None else np.ones(truth.shape, bool)
    picture = np.broadcast_to(np.arange(count).reshape((-1,) + (1,) * (truth.ndim - 1)),
                              truth.shape)
    cells = (picture[keep] * num_classes + truth[keep]) * num_classes + predicted[keep]
    return np.bincount(cells, minlength=count * num_classes ** 2).reshape(
        count, num_classes, num_classes)


def picture_miou(confusions) -> np.ndarray:
    """Each picture's own mIoU, ``(N,)``, from its matrix (``(N, K, K)``, e.g.
    :func:`picture_confusions`): the mean IoU over the classes in that picture's truth or
    prediction, ``nan`` for a picture without a scored pixel. It ranks pictures for a failure
    gallery; the dataset's mIoU is never their mean (docs/design.md §6): it comes from the
    matrices' sum (:func:`scores`)."""
    confusions = np.asarray(confusions)
    if confusions.ndim != 3 or confusions.shape[1] != confusions.shape[2]:
        raise ValueError(f"picture_miou takes one square matrix per picture, (N, K, K); got "
                         f"shape {confusions.shape}. Make them with picture_confusions(truths, "
                         "predictions, num_classes).")
    diagonal = np.diagonal(confusions, axis1=1, axis2=2).astype(np.float64)
    union = confusions.sum(axis=1) + confusions.sum(axis=2) - diagonal
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, diagonal / union, np.nan)
    present = union > 0
    return np.where(present.any(axis=1),
                    np.nansum(iou, axis=1) / np.maximum(present.sum(axis=1), 1), np.nan)


def top_confusion(confusion) -> tuple[int, int, int] | None:
    """The largest off-diagonal cell of one confusion matrix (truth in rows):
    ``(true class, predicted class, pixels)``, the first in row order on a tie; ``None`` when
    no pixel is wrong. What a picture (or a dataset) confused most."""
    matrix = _as_counts(confusion)
    off = matrix * (1 - np.eye(len(matrix), dtype=np.int64))
    if not off.any():
        return None
    true_class, predicted_class = np.unravel_index(int(np.argmax(off)), off.shape)
    return int(true_class), int(predicted_class), int(off[true_class, predicted_class])


@dataclass(frozen=True)
class SegmentationScores:
    """Everything derived from one confusion matrix (``nan`` marks an absent class)."""

    confusion: np.ndarray
    class_names: tuple[str, ...]

    @property
    def true_counts(self):
        """Pixels of each class in the truth: the confusion matrix's row sums."""
        return self.confusion.sum(axis=1)

    @property
    def predicted_counts(self):
        """Pixels predicted as each class: the column sums."""
        return self.confusion.sum(axis=0)

    @property
    def present(self):
        """Classes in the truth or the predictions; the others are absent from both."""
        return (self.true_counts + self.predicted_counts) > 0

    @property
    def pixel_accuracy(self) -> float:
        """Correct pixels over all scored pixels (one of the four metrics of Long et al. 2015)."""
        return float(np.trace(self.confusion) / max(self.confusion.sum(), 1))

    @property
    def class_accuracy(self):
        """Per class, the fraction of its true pixels predicted right (recall)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.true_counts > 0, np.diag(self.confusion) / self.true_counts,
                            np.nan)

    @property
    def mean_class_accuracy(self) -> float:
        """The mean of the classes' accuracies over the classes present in the truth."""
        return float(np.nanmean(self.class_accuracy)) if (self.true_counts > 0).any() else np.nan

    @property
    def iou(self):
        """Per class, TP / (TP + FP + FN): intersection over union (Jaccard)."""
        union = self.true_counts + self.predicted_counts - np.diag(self.confusion)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, np.diag(self.confusion) / union, np.nan)

    @property
    def miou(self) -> float:
        """The mean of the present classes' IoU (mean IU in Long et al. 2015)."""
        return float(np.nanmean(self.iou)) if self.present.any() else np.nan

    @property
    def frequency_weighted_iou(self) -> float:
        """IoU weighted by each class's share of the true pixels (Long et al. 2015)."""
        frequency = self.true_counts / max(self.true_counts.sum(), 1)
        return float(np.nansum(frequency * self.iou))

    @property
    def dice(self):
        """Per class, 2·TP / (2·TP + FP + FN), the F1 score of the class's pixels."""
        total = self.true_counts + self.predicted_counts
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, 2 * np.diag(self.confusion) / total, np.nan)

    @property
    def absent(self) -> list[str]:
        """Names of the classes in neither the truth nor the predictions (scored ``nan``)."""
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
        """``as_dict()`` as indented JSON text."""
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


def _as_counts(confusion) -> np.ndarray:
    """A confusion matrix as int64 pixel counts, or a ``ValueError`` saying what it holds."""
    matrix = np.asarray(confusion)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"a confusion matrix is square (true classes in rows, predicted in "
                         f"columns); got shape {matrix.shape}.")
    if matrix.dtype.kind not in "iuf":
        raise ValueError(f"a confusion matrix holds pixel counts; got dtype {matrix.dtype}.")
    advice = ("Pass the counts, e.g. segcourse.metrics.confusion_matrix(y_true, y_pred, "
              "num_classes)")
    if matrix.dtype.kind == "f":
        bad = np.argwhere(~np.isfinite(matrix))
        if bad.size:
            row, col = bad[0]
            raise ValueError(f"a confusion matrix holds pixel counts; this one has {len(bad)} "
                             f"NaN or infinite entries (the first at row {row}, column {col}). "
                             + advice + ".")
        bad = np.argwhere(matrix != np.round(matrix))
        if bad.size:
            row, col = bad[0]
            rows = matrix.sum(axis=1)
            normalized = (np.allclose(rows[rows > 0], 1) or np.isclose(matrix.sum(), 1)
                          or matrix.max() <= 1)
            raise ValueError(
                f"a confusion matrix holds whole pixel counts; this one has {len(bad)} fractional "
                f"entries such as {matrix[row, col]:g} (row {row}, column {col})"
                + (", so it looks normalized: the scores need the counts it came from"
                   if normalized else "") + ". " + advice + ", and normalize only for display.")
    bad = np.argwhere(matrix < 0)
    if bad.size:
        row, col = bad[0]
        raise ValueError(f"a confusion matrix counts pixels, so no entry is negative; this one "
                         f"has {len(bad)} negative entries such as {matrix[row, col]:g} (row "
                         f"{row}, column {col}). Was it a difference of two matrices? "
                         + advice + ".")
    return matrix.astype(np.int64)


def scores(confusion, class_names=None) -> SegmentationScores:
    """Derive every score from a confusion matrix of pixel counts (see
    :class:`SegmentationScores`).

    The matrix must be square and hold whole, non-negative, finite counts (integer-valued floats
    such as ``3.0`` are fine); a normalized or otherwise fractional matrix is refused, since its
    pixel accuracy and IoUs would be silently wrong.
    """
    confusion = _as_counts(confusion)
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


def _align(y_true, y_pred, num_classes, owner):
    """Truth and predictions of one shape, and whether the predictions are scores (one more,
    class, axis) rather than labels; a trailing axis of 1 on labels is dropped. Shapes are
    compared where known (at trace time: no cost in a compiled step)."""
    truth_shape, pred_shape = tuple(y_true.shape), tuple(y_pred.shape)
    if truth_shape[-1:] == (1,) and (len(truth_shape) == len(pred_shape) + 1
                                     or (len(truth_shape) == len(pred_shape)
                                         and pred_shape[-1] != 1)):
        y_true, truth_shape = ops.squeeze(y_true, -1), truth_shape[:-1]
    if len(pred_shape) == len(truth_shape) + 1 and pred_shape[-1] == 1 and num_classes > 1:
        y_pred, pred_shape = ops.squeeze(y_pred, -1), pred_shape[:-1]  # labels, not 1 score
    from_scores = len(pred_shape) == len(truth_shape) + 1
    if from_scores and pred_shape[-1] not in (None, num_classes):
        raise ValueError(
            f"{owner}: y_pred has {pred_shape[-1]} class scores per pixel (shape {pred_shape}) "
            f"but the metric counts {num_classes} classes; give the metric num_classes="
            f"{pred_shape[-1]}, or the model {num_classes} output channels.")
    if not shapes_match(truth_shape, pred_shape[:-1] if from_scores else pred_shape):
        raise ValueError(
            f"{owner}: y_pred of shape {pred_shape} does not fit y_true of shape "
            f"{truth_shape}: give labels (batch, height, width), or (..., 1), and predictions of "
            "the same shape as labels or with one more axis of class scores (logits or "
            "probabilities). One-hot truth: pass its argmax over the last axis instead.")
    return y_true, y_pred, from_scores


def flat_label_check(labels, num_classes, ignore_index=IGNORE_INDEX):
    """The ``keras.ops`` twin of :func:`validate_labels`, for compiled code, which cannot raise
    with values: flat int32 labels (0 where not countable), a flat bool of the countable pixels
    (whole numbers in ``[0, num_classes)``), and a flat bool of the bad ones (neither that nor
    ``ignore_index``)."""
    flat = ops.reshape(labels, (-1,))
    if keras.backend.standardize_dtype(flat.dtype) == "bool":
        flat = ops.cast(flat, "int32")
    # Compared in the labels' own dtype: a float label such as 1e10 or nan is no class, however
    # a cast to int32 would wrap it.
    bad = (flat < 0) | (flat >= num_classes)
    if keras.backend.is_float_dtype(flat.dtype):
        bad = bad | (flat != ops.floor(flat))  # fractional, and nan
    countable = ops.logical_not(bad)
    if ignore_index is not None:
        ignored = flat == ignore_index
        bad = bad & ops.logical_not(ignored)
        countable = countable & ops.logical_not(ignored)
    return ops.cast(ops.where(countable, flat, 0), "int32"), countable, bad


def streaming_confusion_update(y_true, y_pred, num_classes, ignore_index,
                               owner="streaming_confusion_update"):
    """One batch's confusion matrix with ``keras.ops`` (XLA-friendly: a one-hot matrix
    product, no bincount), and what it could not count.

    Returns ``(counts, invalid)``: float32 counts, exact below 2**24 per cell and batch, and an
    int32 pair: the pixels whose true label is neither a whole number in ``[0, num_classes)``
    nor ``ignore_index``, and those whose predicted label (when ``y_pred`` holds labels, not
    scores) is not one in ``[0, num_classes)``. Such pixels are in no cell of ``counts``, so no
    score may be reported from a matrix while its ``invalid`` is non-zero.
    """
    y_true = ops.convert_to_tensor(y_true)
    y_pred = ops.convert_to_tensor(y_pred)
    y_true, y_pred, from_scores = _align(y_true, y_pred, num_classes, owner)
    if from_scores:
        y_pred = ops.argmax(y_pred, axis=-1)
    truth, truth_countable, truth_bad = flat_label_check(y_true, num_classes, ignore_index)
    predicted, pred_countable, pred_bad = flat_label_check(y_pred, num_classes, None)
    truth_hot = ops.one_hot(truth, num_classes) * ops.cast(truth_countable, "float32")[:, None]
    predicted_hot = ops.one_hot(predicted, num_classes) * ops.cast(pred_countable,
                                                                  "float32")[:, None]
    invalid = ops.stack([ops.sum(ops.cast(truth_bad, "int32")),
                         ops.sum(ops.cast(pred_bad, "int32"))])
    return ops.matmul(ops.transpose(truth_hot), predicted_hot), invalid


REPORTS = ("miou", "pixel_accuracy", "mean_class_accuracy", "frequency_weighted_iou")


@keras.saving.register_keras_serializable(package="segcourse")
class ConfusionMatrixMetric(keras.metrics.Metric):
    """A streaming confusion matrix for ``compile(metrics=[...])``: accumulates over every batch
    of an epoch (the dataset-level definition), reports ``report`` (mIoU by default) as its
    result, and gives every score through :meth:`scores`. Accepts logits, probabilities or
    labels; ``ignore_index`` pixels are skipped.

    Bad labels (a true label that is neither a whole number in ``[0, num_classes)`` nor
    ``ignore_index``, or a predicted label out of range) never drop out silently:

    - called eagerly (``update_state`` on NumPy arrays or eager tensors, or
      ``compile(run_eagerly=True)``), ``update_state`` raises a ``ValueError`` naming the values;
    - inside a compiled step (``model.fit`` / ``evaluate``) values cannot be raised, so the
      pixels are counted apart and the result is ``nan`` (the progress bar shows ``miou: nan``);
      the next eager look — Keras reads every metric eagerly at the end of each epoch and of
      ``evaluate`` — raises a ``ValueError`` with the count and what to do, as does
      :meth:`scores`. ``reset_state`` clears the count.

    It takes no ``sample_weight``: each labelled pixel counts once (the ignore label leaves
    pixels out).
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
        # Pixels that fit no cell: [bad true labels, bad predicted labels] (see the docstring).
        self.invalid = self.add_variable((2,), "zeros", dtype="int64", name="invalid_pixels")

    def update_state(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            raise ValueError(
                f"{type(self).__name__} counts every labelled pixel once and takes no "
                f"sample_weight; to leave pixels out, give them the ignore label "
                f"{self.ignore_index}. Put the metric in compile(metrics=...), not "
                "weighted_metrics.")
        counts, invalid = streaming_confusion_update(y_true, y_pred, self.num_classes,
                                                     self.ignore_index, type(self).__name__)
        found = concrete(invalid)
        if found is not None and found.any():  # eager: name the values, count nothing
            self._raise_with_values(y_true, y_pred, found)
        self.confusion.assign_add(ops.cast(counts, "int64"))
        self.invalid.assign_add(ops.cast(invalid, "int64"))

    def _raise_with_values(self, y_true, y_pred, found):
        owner = f"{type(self).__name__} '{self.name}'"
        truth, predicted = np.asarray(y_true), np.asarray(y_pred)
        if found[0]:
            validate_labels(truth, self.num_classes, self.ignore_index, f"{owner}: y_true")
        if found[1]:
            validate_labels(predicted, self.num_classes, None, f"{owner}: y_pred (labels)",
                            hint="Predicted labels come from the model's class axis: give it "
                                 f"{self.num_classes} output channels, or pass its scores.")
        raise ValueError(self._invalid_message(found))  # not reached: the rules are the same

    def _refuse_if_invalid(self) -> None:
        """Eagerly (the end of an epoch, ``scores()``): refuse once bad labels were counted."""
        found = concrete(self.invalid)
        if found is not None and found.any():
            raise ValueError(self._invalid_message(found))

    def _invalid_message(self, found) -> str:
        truth, predicted = int(found[0]), int(found[1])
        what = " and ".join(
            ([f"{pixel_count(truth)} of y_true"] if truth else [])
            + ([f"{pixel_count(predicted)} of y_pred (predicted labels)"] if predicted else []))
        allowed = f"0..{self.num_classes - 1}" + (
            "" if self.ignore_index is None else f" or the ignore label {self.ignore_index}")
        return (
            f"{type(self).__name__} '{self.name}': since the last reset it met {what} with "
            f"a label that is not a whole class number in {allowed}. Such pixels fit no cell "
            "of the confusion matrix, so every score would be wrong (inside the compiled step "
            "the metric reported nan). Find the "
            f"values with segcourse.labels.validate_labels(masks, {self.num_classes}), or "
            "compile(..., run_eagerly=True) to have them named; then fix num_classes (the "
            "model's output channels) or map those labels to a class or to the ignore label.")

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
        """The report; ``nan`` inside a compiled step once bad labels were seen, and a
        ``ValueError`` when read eagerly then (see the class docstring)."""
        self._refuse_if_invalid()
        return ops.where(ops.sum(self.invalid) > 0, float("nan"), self._derived())

    def scores(self) -> SegmentationScores:
        """Every score of the matrix gathered so far (refused after bad labels, like ``result``)."""
        self._refuse_if_invalid()
        return scores(ops.convert_to_numpy(self.confusion), self.class_names)

    def reset_state(self):
        self.confusion.assign(ops.zeros((self.num_classes, self.num_classes), "int64"))
        self.invalid.assign(ops.zeros((2,), "int64"))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "ignore_index": self.ignore_index, "report": self.report,
                "class_names": self.class_names}
