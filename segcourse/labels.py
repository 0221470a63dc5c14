"""The label conventions every part of segcourse shares: class numbers ``0..K-1`` and one
ignore label, checked by :func:`validate_labels`.

A leaf module (NumPy only, nothing of segcourse, no Keras), so that the data loaders, the
metrics, the losses and the figures can all use it without importing each other
(docs/design.md §3).
"""

from __future__ import annotations

import numpy as np

#: The label of pixels that count for nothing (no loss, no confusion-matrix cell): VOC's object
#: boundaries, a pet's trimap border, pixels an augmentation brought in from outside the picture.
IGNORE_INDEX = 255


def pixel_count(count: int) -> str:
    """``"1 pixel"`` or ``"N pixels"``, for messages."""
    return f"{count} pixel" + ("" if count == 1 else "s")


def check_whole_numbers(labels, what: str = "labels") -> np.ndarray:
    """Labels as an int64 array if they are whole numbers (integers, booleans, or floats that
    hold whole numbers), else a ``ValueError``: NaN or infinite values come from a division or
    a network's output, fractional ones from a mask resized with bilinear interpolation."""
    labels = np.asarray(labels)
    if labels.dtype.kind == "f":
        finite = np.isfinite(labels)
        if not finite.all():
            raise ValueError(
                f"{what} must be whole class numbers; found {int((~finite).sum())} NaN or "
                "infinite values. Labels are integers 0..K-1 (or the ignore label): build masks "
                "from integer arrays, not from a division or a network's output (take scores' "
                "argmax).")
        fractional = labels[labels != np.round(labels)]
        if fractional.size:
            raise ValueError(
                f"{what} must be whole class numbers; found {fractional.size} fractional values "
                f"such as {fractional.flat[0]:g}. A mask was probably resized with bilinear "
                "interpolation: resize masks with nearest-neighbour only.")
    elif labels.dtype.kind not in "iub":
        raise ValueError(f"{what} must be an integer array; got dtype {labels.dtype}.")
    return labels.astype(np.int64)


def validate_labels(labels, num_classes: int, ignore_index: int | None = IGNORE_INDEX,
                    what: str = "labels", hint: str | None = None) -> np.ndarray:
    """Integer labels as an int64 array, or a ``ValueError`` that names the offending values.

    Labels must be whole numbers in ``[0, num_classes)`` or ``ignore_index``: a fractional value
    means a mask was interpolated (resize masks with nearest only); a value out of range means
    the wrong number of classes or an unmapped label. ``hint`` replaces the closing advice on
    out-of-range values, for a caller that knows where ``num_classes`` came from.
    """
    labels = check_whole_numbers(labels, what)
    bad = (labels < 0) | (labels >= num_classes)
    if ignore_index is not None:
        bad &= labels != ignore_index
    if bad.any():
        values = np.unique(labels[bad])
        allowed = f"0..{num_classes - 1}" + ("" if ignore_index is None
                                             else f" or {ignore_index}, ignore label")
        raise ValueError(
            f"{what} {'hold' if what.endswith('s') else 'holds'} values {values[:8].tolist()} "
            f"outside the {num_classes} classes "
            f"({allowed}) in {pixel_count(int(bad.sum()))}. "
            + (hint or "Check num_classes, or map those labels to a class or to the ignore "
                       "label."))
    return labels
