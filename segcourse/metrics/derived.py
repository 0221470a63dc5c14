"""Every score derived from one confusion matrix of pixel counts (Long et al. 2015, "Fully
Convolutional Networks for Semantic Segmentation", Sec. 5: pixel accuracy, mean accuracy, mean
IU, frequency weighted IU), and each picture's own mIoU for a failure gallery.

IoU and mIoU have one formula here (:func:`class_iou`, :func:`mean_iou`), which works on one
matrix ``(K, K)`` or a stack of them ``(..., K, K)``: :class:`SegmentationScores`,
:func:`picture_miou` and :func:`segcourse.metrics.bootstrap_miou` all use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segcourse.metrics.confusion import as_counts


def _checked(confusion, owner: str) -> np.ndarray:
    """One matrix ``(K, K)``, or one per picture ``(N, K, K)``, as pixel counts
    (:func:`as_counts`: a normalised or NaN matrix is refused, not scored)."""
    return as_counts(confusion, None if np.ndim(confusion) == 2 else owner)


def class_iou(confusion) -> np.ndarray:
    """Per class, TP / (TP + FP + FN) of a confusion matrix ``(K, K)`` (truth in rows), or of
    one per picture ``(N, K, K)``: ``(K,)`` or ``(N, K)``, ``nan`` for a class in neither the
    truth nor the predictions. The matrices must hold pixel counts."""
    confusion = _checked(confusion, "class_iou")
    diagonal = np.diagonal(confusion, axis1=-2, axis2=-1)
    union = confusion.sum(axis=-1) + confusion.sum(axis=-2) - diagonal
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, diagonal / union, np.nan)


def mean_iou(confusion) -> np.ndarray:
    """The mean of the present classes' IoU of a confusion matrix ``(K, K)`` or of one per
    picture ``(N, K, K)``: ``()`` or ``(N,)``, ``nan`` for a matrix without a counted pixel.
    Absent classes (``nan`` in :func:`class_iou`) are left out of the mean, never counted as 0
    or 1."""
    iou = class_iou(confusion)  # which checks the counts
    present = ~np.isnan(iou)
    return np.where(present.any(axis=-1),
                    np.nansum(iou, axis=-1) / np.maximum(present.sum(axis=-1), 1), np.nan)


def picture_miou(confusions) -> np.ndarray:
    """Each picture's own mIoU, ``(N,)``, from its matrix (``(N, K, K)``, e.g.
    :func:`picture_confusions`): the mean IoU over the classes in that picture's truth or
    prediction, ``nan`` for a picture without a scored pixel. It ranks pictures for a failure
    gallery; the dataset's mIoU is never their mean (docs/design.md §6): it comes from the
    matrices' sum (:func:`scores`)."""
    return mean_iou(as_counts(confusions, per_picture_for="picture_miou"))


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
        """Correct pixels over all scored pixels (one of the four metrics of Long et al. 2015);
        ``nan`` when no pixel was scored (0 would read as "every pixel wrong")."""
        total = self.confusion.sum()
        return float(np.trace(self.confusion) / total) if total else np.nan

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
        return class_iou(self.confusion)

    @property
    def miou(self) -> float:
        """The mean of the present classes' IoU (mean IU in Long et al. 2015)."""
        return float(mean_iou(self.confusion))

    @property
    def frequency_weighted_iou(self) -> float:
        """IoU weighted by each class's share of the true pixels (Long et al. 2015); ``nan``
        when no pixel was scored."""
        if not self.true_counts.sum():
            return np.nan
        frequency = self.true_counts / self.true_counts.sum()
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
    """Derive every score from a confusion matrix of pixel counts (see
    :class:`SegmentationScores`).

    The matrix must be square and hold whole, non-negative, finite counts (integer-valued floats
    such as ``3.0`` are fine); a normalized or otherwise fractional matrix is refused, since its
    pixel accuracy and IoUs would be silently wrong.
    """
    confusion = as_counts(confusion)
    names = tuple(class_names or (f"class {k}" for k in range(confusion.shape[0])))
    if len(names) != confusion.shape[0]:
        raise ValueError(f"{len(names)} class names for a {confusion.shape[0]}-class matrix.")
    return SegmentationScores(confusion, names)
