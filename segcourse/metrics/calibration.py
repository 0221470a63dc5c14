"""Is a confidence of 0.9 right 90% of the time? Reliability-diagram bins and the expected
calibration error of per-pixel class probabilities (Guo et al. 2017, "On Calibration of Modern
Neural Networks", ICML, Sec. 2: the bins ``((m-1)/M, m/M]``, accuracy and confidence per bin,
ECE eq. 3, and the MCE).

Each pixel that counts (not ``ignore_index`` in the truth) is one prediction: its confidence is
its largest class probability, and it is right when that class is the true one.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from segcourse.labels import IGNORE_INDEX, validate_labels


@dataclass(frozen=True)
class CalibrationBins:
    """Per confidence bin: the pixels' count, mean confidence and accuracy (``nan`` in an empty
    bin); the ECE and MCE derived from them."""

    edges: np.ndarray  # (M + 1,) 0, 1/M, ..., 1: bin m holds confidences in (edges[m], edges[m+1]]
    confidence: np.ndarray  # (M,) the mean confidence of the bin's pixels
    accuracy: np.ndarray  # (M,) the fraction of them predicted right
    count: np.ndarray  # (M,) pixels in the bin

    @property
    def gap(self) -> np.ndarray:
        """Per bin, accuracy − confidence: negative where the model is overconfident."""
        return self.accuracy - self.confidence

    @property
    def expected_calibration_error(self) -> float:
        """ECE = Σ_m |B_m| / n · |acc(B_m) − conf(B_m)| (Guo et al. 2017, eq. 3)."""
        total = self.count.sum()
        if not total:
            return np.nan
        return float(np.nansum(self.count / total * np.abs(self.gap)))

    @property
    def maximum_calibration_error(self) -> float:
        """MCE = max over non-empty bins of |acc(B_m) − conf(B_m)| (Guo et al. 2017, Sec. 2)."""
        return float(np.nanmax(np.abs(self.gap))) if self.count.any() else np.nan


def calibration_bins(probabilities, y_true, num_bins: int = 10,
                     ignore_index: int | None = IGNORE_INDEX) -> CalibrationBins:
    """The reliability diagram's bins of class probabilities ``(..., K)`` (softmax outputs, each
    pixel's summing to 1) against true labels ``(...)``: ``num_bins`` equal-width bins of the
    confidence (the largest probability), pixels labelled ``ignore_index`` left out. Logits are
    refused: apply a softmax first (``keras.ops.softmax``)."""
    if isinstance(num_bins, bool) or not isinstance(num_bins, numbers.Integral) or num_bins < 1:
        raise ValueError(f"num_bins is how many equal-width confidence bins to make, a whole "
                         f"number of at least 1 (Guo et al. use 15; 10 is common); got "
                         f"{num_bins!r}.")
    probabilities = np.asarray(probabilities)
    if probabilities.dtype.kind not in "fiu" or probabilities.ndim != np.ndim(y_true) + 1 \
            or probabilities.shape[:-1] != np.shape(y_true):
        raise ValueError(f"calibration_bins takes class probabilities (..., K) and labels (...) "
                         f"of the same leading shape; got probabilities of shape "
                         f"{probabilities.shape} (dtype {probabilities.dtype}) and labels of "
                         f"shape {np.shape(y_true)}.")
    num_classes = probabilities.shape[-1]
    truth = validate_labels(y_true, num_classes, ignore_index, "y_true")
    keep = truth != ignore_index if ignore_index is not None else np.ones(truth.shape, bool)
    probabilities, truth = probabilities[keep], truth[keep]
    if probabilities.size:
        sums = probabilities.sum(axis=-1, dtype=np.float64)
        if not np.isfinite(probabilities).all() or probabilities.min() < 0 \
                or probabilities.max() > 1 or not np.allclose(sums, 1, atol=1e-3):
            worst = int(np.argmax(np.abs(sums - 1))) if np.isfinite(sums).all() else int(
                np.argmin(np.isfinite(sums)))
            raise ValueError(
                f"calibration_bins takes probabilities (each pixel's in [0, 1], summing to 1); "
                f"got values from {probabilities.min():g} to {probabilities.max():g}, and a "
                f"pixel whose values sum to {sums[worst]:g}. Logits? Apply a softmax over the "
                "class axis first (keras.ops.softmax(logits, axis=-1)).")
    confidence = probabilities.max(axis=-1, initial=0.0).astype(np.float64)
    correct = probabilities.argmax(axis=-1) == truth if probabilities.size else np.zeros(0, bool)
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    # Bin m holds (edges[m], edges[m+1]], the very edges reported (a confidence of 0, which a
    # largest probability never is, would join the first bin).
    bin_of = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, num_bins - 1)
    count = np.bincount(bin_of, minlength=num_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.where(
            count > 0, np.bincount(bin_of, confidence, num_bins) / count, np.nan)
        accuracy = np.where(count > 0, np.bincount(bin_of, correct, num_bins) / count, np.nan)
    return CalibrationBins(edges, mean_confidence, accuracy, count)
