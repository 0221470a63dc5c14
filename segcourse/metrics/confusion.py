"""The confusion matrix: predictions as labels, one matrix for a dataset or one per picture, and
the checks every matrix passes before a score is derived from it.

Rows are the true classes, columns the predicted ones; pixels labelled ``ignore_index`` are
left out, any other label outside ``[0, K)`` is refused (:func:`segcourse.labels.validate_labels`).
"""

from __future__ import annotations

import numbers

import numpy as np

from segcourse.labels import IGNORE_INDEX, validate_labels


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


def check_num_classes(num_classes) -> int:
    """``num_classes`` as an int, or a ``ValueError`` when it is not a whole number >= 1."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or (
            num_classes < 1):
        raise ValueError(f"num_classes must be a whole number of at least 1 (the classes' "
                         f"count); got {num_classes!r}.")
    return int(num_classes)


def scored_labels(y_true, y_pred, num_classes: int, ignore_index: int | None = IGNORE_INDEX):
    """The one validation path of the confusion matrices: ``(truth, predicted, keep)``, the
    int64 true and predicted labels (predictions given as scores reduced by argmax) and the
    boolean mask of the pixels that count (not ``ignore_index`` in the truth)."""
    num_classes = check_num_classes(num_classes)
    truth = validate_labels(y_true, num_classes, ignore_index, "y_true")
    predicted = validate_labels(to_labels(y_pred, truth.shape), num_classes, None, "y_pred")
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
    if np.ndim(y_true) < 2:
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
