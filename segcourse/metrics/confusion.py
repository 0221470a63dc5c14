"""The confusion matrix: predictions as labels, one matrix for a dataset or one per picture, and
the checks every matrix passes before a score is derived from it.

Rows are the true classes, columns the predicted ones; pixels labelled ``ignore_index`` are
left out, any other label outside ``[0, K)`` is refused (:func:`segcourse.labels.validate_labels`).
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np

from segcourse.labels import IGNORE_INDEX, validate_labels
from segcourse.layers._validation import shapes_match


class PredictionLayout(NamedTuple):
    """How a prediction lines up with its truth (see :func:`prediction_layout`)."""

    squeeze_truth: bool  # the truth's trailing axis of 1 is dropped: (..., 1) labels
    labels_in_channel: bool  # the prediction's single trailing channel holds labels: dropped
    from_scores: bool  # the prediction's last axis holds num_classes scores: reduce by argmax


def prediction_layout(truth_shape, pred_shape, num_classes: int, owner: str = "",
                      metric: bool = False) -> PredictionLayout:
    """The one rule, by shape alone, for what a prediction holds next to its truth (shared by
    :func:`to_labels` and the compiled :class:`ConfusionMatrixMetric`; sizes may be ``None``,
    unknown, which match anything):

    - a truth with a trailing axis of 1 (``(..., 1)`` labels) loses it when the prediction has
      one axis fewer, or the same number with a last size other than 1;
    - a prediction of the truth's shape holds labels;
    - a prediction with one more axis holds ``num_classes`` class scores (logits or
      probabilities) in it, except one of size 1 when ``num_classes > 1``: that channel holds
      labels (``(..., 1)``), whose values the caller checks (a single score, a sigmoid's, is no
      label: :func:`to_labels` refuses it by its fractional values);
    - a truth of four or more axes whose last one holds ``num_classes`` (> 1) values is one-hot,
      not labels, and refused;
    - anything else is refused, naming the shapes: ``ValueError``.

    ``owner`` prefixes the messages; ``metric`` words the advice for a Keras metric.
    """
    truth_shape, pred_shape = tuple(truth_shape), tuple(pred_shape)
    prefix = f"{owner}: " if owner else ""
    if len(truth_shape) >= 4 and num_classes > 1 and truth_shape[-1] == num_classes:
        # labels are (N, H, W) or (..., 1): a last axis of num_classes is one-hot truth, and a
        # one-hot prediction of its shape would be read as labels 0 and 1
        raise ValueError(
            f"{prefix}y_true of shape {truth_shape} has num_classes ({num_classes}) values per "
            "pixel: one-hot truth, not labels. Pass its argmax over the last axis, "
            "(batch, height, width) labels (and labels or class scores as y_pred).")
    squeeze_truth = truth_shape[-1:] == (1,) and (
        len(truth_shape) == len(pred_shape) + 1
        or (len(truth_shape) == len(pred_shape) and pred_shape[-1] != 1))
    if squeeze_truth:
        truth_shape = truth_shape[:-1]
    extra_axis = len(pred_shape) == len(truth_shape) + 1
    labels_in_channel = extra_axis and pred_shape[-1] == 1 and num_classes > 1
    from_scores = extra_axis and not labels_in_channel
    if from_scores and pred_shape[-1] not in (None, num_classes):
        channels = pred_shape[-1]
        counted = (f"the metric counts {num_classes} classes; give the metric num_classes="
                   f"{channels}, or the model" if metric else
                   f"num_classes is {num_classes}; pass num_classes={channels}, or give the "
                   "model")
        raise ValueError(
            f"{prefix}y_pred has {channels} class scores per pixel (shape {pred_shape}) but "
            f"{counted} {num_classes} output channels.")
    if not shapes_match(truth_shape, pred_shape[:-1] if extra_axis else pred_shape):
        raise ValueError(
            f"{prefix}y_pred of shape {pred_shape} does not fit y_true of shape "
            f"{truth_shape}: give labels (batch, height, width), or (..., 1), and predictions of "
            "the same shape as labels or with one more axis of class scores (logits or "
            "probabilities). One-hot truth: pass its argmax over the last axis instead.")
    return PredictionLayout(squeeze_truth, labels_in_channel, from_scores)


def to_labels(y_pred, y_true_shape, num_classes: int) -> np.ndarray:
    """Predictions as labels of the truth's shape ``y_true_shape``, by the rule of
    :func:`prediction_layout`: labels of that shape pass through; scores with one more axis of
    exactly ``num_classes`` channels (logits or probabilities) are reduced by argmax; a single
    trailing channel holds labels, and is refused when its values are fractional (a sigmoid's
    output: threshold it first). Any other shape is a ``ValueError``."""
    num_classes = check_num_classes(num_classes)
    y_pred = np.asarray(y_pred)
    layout = prediction_layout(y_true_shape, y_pred.shape, num_classes)
    if layout.from_scores:
        labels = np.argmax(y_pred, axis=-1)
    elif layout.labels_in_channel:
        labels = y_pred[..., 0]
        if labels.dtype.kind == "f":
            finite = labels[np.isfinite(labels)]  # NaN and inf: validate_labels names them
            fractional = finite[finite != np.round(finite)]
            if fractional.size:
                raise ValueError(
                    f"y_pred of shape {y_pred.shape} has one channel per pixel holding "
                    f"{fractional.size} fractional values such as {fractional.flat[0]:g}: a "
                    f"single score (a sigmoid's probability or a logit), not one of "
                    f"{num_classes} class scores, and an argmax over one channel is always 0. "
                    "Threshold it into labels first, e.g. (y_pred[..., 0] > 0.5).astype(int) "
                    f"for probabilities (> 0 for logits), or give the model {num_classes} "
                    "output channels and pass their scores.")
    else:
        labels = y_pred
    return labels[..., None] if layout.squeeze_truth else labels


def check_num_classes(num_classes) -> int:
    """``num_classes`` as an int, or a ``ValueError`` when it is not a whole number >= 1."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or (
            num_classes < 1):
        raise ValueError(f"num_classes must be a whole number of at least 1 (the classes' "
                         f"count); got {num_classes!r}.")
    return int(num_classes)


def check_ignore_index(ignore_index, num_classes: int, owner: str = "") -> None:
    """A ``ValueError`` when ``ignore_index`` is one of the classes ``0..num_classes - 1``: that
    class's true pixels would all be dropped while predictions of it still counted as errors,
    an IoU of 0 (or nan) in every mean."""
    if ignore_index is not None and 0 <= ignore_index < num_classes:
        prefix = f"{owner}: " if owner else ""
        raise ValueError(
            f"{prefix}ignore_index {ignore_index} is one of the {num_classes} classes "
            f"(0..{num_classes - 1}): its true pixels would all be left out while predictions "
            "of it still counted as errors, so its IoU would be 0 and pull every mean down. "
            f"Give the pixels to ignore a label outside 0..{num_classes - 1} (the default, "
            "255, serves up to 255 classes) and pass it as ignore_index (None: no pixel is "
            "ignored), or renumber the classes without that one and lower num_classes.")


def scored_labels(y_true, y_pred, num_classes: int, ignore_index: int | None = IGNORE_INDEX):
    """The one validation path of the confusion matrices: ``(truth, predicted, keep)``, the
    int64 true and predicted labels (predictions given as scores reduced by argmax) and the
    boolean mask of the pixels that count (not ``ignore_index`` in the truth)."""
    num_classes = check_num_classes(num_classes)
    check_ignore_index(ignore_index, num_classes)
    truth = validate_labels(y_true, num_classes, ignore_index, "y_true")
    predicted = validate_labels(to_labels(y_pred, truth.shape, num_classes), num_classes, None,
                                "y_pred")
    keep = truth != ignore_index if ignore_index is not None else np.ones(truth.shape, bool)
    return truth, predicted, keep


def confusion_matrix(y_true, y_pred, num_classes: int, ignore_index: int | None = IGNORE_INDEX):
    """The ``(num_classes, num_classes)`` int64 matrix: truth in rows, prediction in columns.

    ``y_pred`` holds labels, logits or probabilities (then with a trailing class axis).
    """
    truth, predicted, keep = scored_labels(y_true, y_pred, num_classes, ignore_index)
    pairs = truth[keep] * num_classes + predicted[keep]
    return np.bincount(pairs, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def picture_confusions(y_true, y_pred, num_classes: int,
                       ignore_index: int | None = IGNORE_INDEX) -> np.ndarray:
    """One confusion matrix per picture: ``(N, num_classes, num_classes)`` int64 for label maps
    ``(N, ...)`` (predictions as labels, logits or probabilities, as :func:`confusion_matrix`
    takes them). Their sum over the pictures is the dataset's matrix; each one says what its
    picture got wrong (a failure gallery: :func:`picture_miou`, :func:`top_confusion`)."""
    if np.ndim(y_true) < 3:  # (H, W) would be read as H pictures of one row each
        raise ValueError(f"picture_confusions takes a batch of label maps (N, H, W); got shape "
                         f"{np.shape(y_true)}. For one picture use confusion_matrix, or add a "
                         "batch axis (truth[None]).")
    truth, predicted, keep = scored_labels(y_true, y_pred, num_classes, ignore_index)
    count = len(truth)
    picture = np.broadcast_to(np.arange(count).reshape((-1,) + (1,) * (truth.ndim - 1)),
                              truth.shape)
    cells = (picture[keep] * num_classes + truth[keep]) * num_classes + predicted[keep]
    return np.bincount(cells, minlength=count * num_classes ** 2).reshape(
        count, num_classes, num_classes)


def top_confusion(confusion) -> tuple[int, int, int] | None:
    """The largest off-diagonal cell of one confusion matrix (truth in rows):
    ``(true class, predicted class, pixels)``, the first in row order on a tie; ``None`` when
    no pixel is wrong. What a picture (or a dataset) confused most."""
    matrix = as_counts(confusion)
    off = matrix * (1 - np.eye(len(matrix), dtype=np.int64))
    if not off.any():
        return None
    true_class, predicted_class = np.unravel_index(int(np.argmax(off)), off.shape)
    return int(true_class), int(predicted_class), int(off[true_class, predicted_class])


def as_counts(confusion, per_picture_for: str | None = None) -> np.ndarray:
    """A confusion matrix as int64 pixel counts, or a ``ValueError`` saying what it holds.

    ``per_picture_for``: the name of a function that takes one matrix per picture,
    ``(N, K, K)`` (as :func:`picture_confusions` makes them); each is checked the same way.
    """
    batched = per_picture_for is not None
    matrix = np.asarray(confusion)
    square = matrix.ndim == 2 + batched and matrix.shape[-1] == matrix.shape[-2]
    if not square and batched:
        raise ValueError(f"{per_picture_for} takes one square matrix per picture, (N, K, K); "
                         f"got shape {matrix.shape}. Make them with picture_confusions(truths, "
                         "predictions, num_classes).")
    if not square:
        raise ValueError(f"a confusion matrix is square (true classes in rows, predicted in "
                         f"columns); got shape {matrix.shape}.")
    if matrix.dtype.kind not in "iuf":
        raise ValueError(f"a confusion matrix holds pixel counts; got dtype {matrix.dtype}.")
    advice = ("Pass the counts, e.g. segcourse.metrics.confusion_matrix(y_true, y_pred, "
              "num_classes)")

    def where(index):
        picture = f"picture {index[0]}, " if batched else ""
        return f"{picture}row {index[-2]}, column {index[-1]}"

    if matrix.dtype.kind == "f":
        bad = np.argwhere(~np.isfinite(matrix))
        if bad.size:
            raise ValueError(f"a confusion matrix holds pixel counts; this one has {len(bad)} "
                             f"NaN or infinite entries (the first at {where(bad[0])}). "
                             + advice + ".")
        bad = np.argwhere(matrix != np.round(matrix))
        if bad.size:
            rows = matrix.sum(axis=-1)
            normalized = (np.allclose(rows[rows > 0], 1)
                          or np.isclose(matrix.sum(axis=(-2, -1)), 1).any() or matrix.max() <= 1)
            raise ValueError(
                f"a confusion matrix holds whole pixel counts; this one has {len(bad)} fractional "
                f"entries such as {matrix[tuple(bad[0])]:g} ({where(bad[0])})"
                + (", so it looks normalized: the scores need the counts it came from"
                   if normalized else "") + ". " + advice + ", and normalize only for display.")
    bad = np.argwhere(matrix < 0)
    if bad.size:
        raise ValueError(f"a confusion matrix counts pixels, so no entry is negative; this one "
                         f"has {len(bad)} negative entries such as {matrix[tuple(bad[0])]:g} "
                         f"({where(bad[0])}). Was it a difference of two matrices? "
                         + advice + ".")
    return matrix.astype(np.int64)
