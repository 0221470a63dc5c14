"""How sure is a dataset's mIoU? A percentile bootstrap over the pictures (Efron & Tibshirani
1993, "An Introduction to the Bootstrap", Ch. 6 and Sec. 13.3, the percentile interval).

The test set is a sample of pictures; another sample would give another mIoU. Resampling the
pictures with replacement, and computing the dataset-level mIoU of each resample (one summed
confusion matrix, never the mean of per-picture IoUs), shows how far it moves.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from segcourse.metrics.confusion import as_counts
from segcourse.metrics.derived import mean_iou


@dataclass(frozen=True)
class BootstrapInterval:
    """A dataset's mIoU, its percentile bootstrap interval, and how it was made."""

    miou: float  # the point estimate: the mIoU of all the pictures' summed matrix
    low: float  # the (1 - confidence) / 2 quantile of the resampled mIoUs
    high: float  # the (1 + confidence) / 2 quantile
    resampled: np.ndarray  # (num_resamples,) the mIoU of each resample
    num_resamples: int
    confidence: float
    seed: int | None
    num_pictures: int  # the pictures resampled: those with a scored pixel

    def __str__(self) -> str:
        return (f"mIoU {self.miou:.3f} ({self.confidence:.0%} interval {self.low:.3f} to "
                f"{self.high:.3f}; {self.num_resamples} resamples of {self.num_pictures} "
                "pictures)")


def bootstrap_miou(confusions, num_resamples: int = 1000, confidence: float = 0.95,
                   seed: int | None = 0) -> BootstrapInterval:
    """The dataset mIoU of per-picture confusion matrices ``(N, K, K)`` (from
    :func:`segcourse.metrics.picture_confusions`) with a percentile bootstrap interval.

    Each resample draws ``N`` pictures with replacement, sums their matrices and takes the mIoU
    of the sum (classes absent from the resample are left out, as :func:`scores` does). The
    interval is the ``(1 ± confidence) / 2`` quantiles of the resampled mIoUs (NumPy's linear
    interpolation). Pictures without a scored pixel weigh nothing in any sum, so they are left
    out before resampling (``N`` counts the others). The draws are
    ``np.random.default_rng(seed).integers(0, N, (num_resamples, N))``, row by row: the same
    ``seed`` gives the same interval.
    """
    counts = as_counts(confusions, per_picture_for="bootstrap_miou")
    if isinstance(num_resamples, bool) or not isinstance(num_resamples, numbers.Integral) or (
            num_resamples < 1):
        raise ValueError(f"num_resamples is how many bootstrap resamples to draw, a whole number "
                         f"of at least 1 (1000 is usual); got {num_resamples!r}.")
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real) or not (
            0 < confidence < 1):
        raise ValueError(f"confidence is the interval's coverage, strictly between 0 and 1 "
                         f"(0.95 for a 95% interval); got {confidence!r}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                             or seed < 0):
        raise ValueError(f"seed is a whole number ≥ 0 (or None for fresh draws each call); got "
                         f"{seed!r}.")
    counts = counts[counts.sum(axis=(1, 2)) > 0]
    if not len(counts):
        raise ValueError(f"bootstrap_miou found no scored pixel in the {np.shape(confusions)[0]} "
                         "pictures' matrices (every pixel ignored, or no picture at all); there "
                         "is no mIoU to bootstrap.")
    num_pictures, num_classes = counts.shape[:2]
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, num_pictures, (num_resamples, num_pictures))
    # How often each resample holds each picture, then one matrix product sums the matrices.
    times = np.bincount((drawn + num_pictures * np.arange(num_resamples)[:, None]).ravel(),
                        minlength=num_resamples * num_pictures).reshape(num_resamples,
                                                                        num_pictures)
    summed = (times @ counts.reshape(num_pictures, -1)).reshape(-1, num_classes, num_classes)
    resampled = mean_iou(summed)
    low, high = np.quantile(resampled, [(1 - confidence) / 2, (1 + confidence) / 2])
    return BootstrapInterval(float(mean_iou(counts.sum(axis=0))), float(low), float(high),
                             resampled, int(num_resamples), float(confidence), seed, num_pictures)
