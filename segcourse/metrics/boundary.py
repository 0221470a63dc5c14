"""Boundary quality: the band of pixels near label changes (a trimap, on which any score can be
restricted), and the boundary F-score (BF), which asks whether each predicted boundary pixel
lies near a true one and each true one near a predicted one (Csurka et al. 2013, "What is a good
evaluation measure for semantic segmentation?", BMVC, the BF score; Perazzi et al. 2016, DAVIS, the
contour accuracy F).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from segcourse.labels import IGNORE_INDEX, check_whole_numbers
from segcourse.metrics.confusion import scored_labels


def _check_map_shape(shape, owner: str, name: str) -> None:
    """Refuse, naming the shape, anything but label maps ``(H, W)`` or ``(N, H, W)``: above
    all a trailing axis of 1, which would make the differences run over the wrong axes."""
    shape = tuple(shape)
    if len(shape) in (3, 4) and shape[-1] == 1:
        raise ValueError(
            f"{owner}: {name} of shape {shape} end in an axis of 1, a channel axis: label maps "
            f"are (H, W) or (N, H, W), and with it the picture's rows and columns would be read "
            f"as the wrong axes (changes along one of them missed). Squeeze it first: "
            f"{name}[..., 0].")
    if len(shape) not in (2, 3):
        scores = (" Scores (N, H, W, K)? Take their argmax over the last axis first."
                  if len(shape) == 4 else "")
        raise ValueError(f"{owner}: {name} are label maps (H, W) or (N, H, W); got shape "
                         f"{shape}.{scores}")


def boundary_band(masks, width: int = 2) -> np.ndarray:
    """Pixels within ``width`` of a label change, as a boolean array like ``masks (N, H, W)``:
    the "trimap" band on which boundary quality is measured (scores restricted to it, as in
    DeepLab's trimap experiments: Chen et al. ICLR 2015, Fig. 5; TPAMI 2018, Fig. 10).

    ``masks``: integer label maps ``(H, W)`` or ``(N, H, W)`` (floats holding whole numbers
    pass); ``width``: a whole number of pixels, at least 1 (1: the pixels on either side of a
    change; each more grows the band by one 4-neighbour step). Anything else is a
    ``ValueError`` naming the value."""
    if isinstance(width, bool) or not isinstance(width, numbers.Integral) or width < 1:
        raise ValueError(f"boundary_band: width is the band's reach in whole pixels, at least 1 "
                         f"(1: the pixels next to a label change); got {width!r}.")
    masks = np.asarray(masks)
    _check_map_shape(masks.shape, "boundary_band", "masks")
    masks = check_whole_numbers(masks, "boundary_band: masks (label maps)")
    band = np.zeros(masks.shape, bool)
    for axis in (-2, -1):
        change = np.diff(masks, axis=axis) != 0
        lead = [(0, 0)] * masks.ndim
        trail = [(0, 0)] * masks.ndim
        lead[axis], trail[axis] = (1, 0), (0, 1)
        band |= np.pad(change, lead) | np.pad(change, trail)
    for _ in range(int(width) - 1):  # grow by one 4-neighbour step, never across the edge
        band = _dilate(band, 1)
    return band


def _disk(radius: int) -> list[tuple[int, int]]:
    """The offsets ``(dy, dx)`` within Euclidean distance ``radius`` of a pixel (itself too)."""
    dy, dx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    inside = dy ** 2 + dx ** 2 <= radius ** 2
    return list(zip(dy[inside].tolist(), dx[inside].tolist(), strict=True))


def _dilate(masks, radius: int) -> np.ndarray:
    """Boolean ``masks (..., H, W)`` grown by a disk of ``radius`` pixels (Euclidean), without
    wrapping around the picture's edges."""
    height, width = masks.shape[-2:]
    grown = np.zeros_like(masks)
    for dy, dx in _disk(radius):
        grown[..., max(dy, 0):height + min(dy, 0), max(dx, 0):width + min(dx, 0)] |= masks[
            ..., max(-dy, 0):height + min(-dy, 0), max(-dx, 0):width + min(-dx, 0)]
    return grown


@dataclass(frozen=True)
class BoundaryFScore:
    """Per class, the boundary pixel counts and the precision, recall and F-score made from them
    (``nan`` marks what is undefined; see :func:`boundary_f_score`)."""

    true_boundary: np.ndarray  # (K,) boundary pixels of the truth
    predicted_boundary: np.ndarray  # (K,) scored boundary pixels of the prediction (off ignore)
    matched_true: np.ndarray  # (K,) true boundary pixels with a predicted one within tolerance
    matched_predicted: np.ndarray  # (K,) scored predicted ones with a true one within tolerance
    predicted_on_ignore: np.ndarray  # (K,) predicted ones on ignore pixels: unscored
    tolerance: int

    @property
    def precision(self) -> np.ndarray:
        """Matched scored predicted boundary pixels over all scored ones; ``nan`` where none
        (none predicted, or all on ignore pixels)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.predicted_boundary > 0,
                            self.matched_predicted / self.predicted_boundary, np.nan)

    @property
    def recall(self) -> np.ndarray:
        """Matched true boundary pixels over all true ones; ``nan`` where none."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.true_boundary > 0, self.matched_true / self.true_boundary,
                            np.nan)

    @property
    def present(self) -> np.ndarray:
        """Classes with a scored boundary pixel in the truth or the prediction: those whose
        precision or recall is defined."""
        return (self.true_boundary + self.predicted_boundary) > 0

    @property
    def f_score(self) -> np.ndarray:
        """Per class, 2PR / (P + R) where both are defined (0 when both are 0); where only one
        is defined, that one (a class missed: R = 0; predicted where the truth has none:
        P = 0; predicted only on ignore pixels: R); ``nan`` where neither is (absent)."""
        precision, recall = self.precision, self.recall
        with np.errstate(invalid="ignore", divide="ignore"):
            both = np.where(precision + recall > 0,
                            2 * precision * recall / (precision + recall), 0.0)
        return np.where(np.isnan(precision), recall, np.where(np.isnan(recall), precision, both))

    @property
    def mean_f_score(self) -> float:
        """The mean F-score over the present classes (``nan`` when none is present)."""
        return float(np.mean(self.f_score[self.present])) if self.present.any() else np.nan


def boundary_f_score(y_true, y_pred, num_classes: int, tolerance: int = 2,
                     ignore_index: int | None = IGNORE_INDEX) -> BoundaryFScore:
    """The boundary F-score of label maps ``(H, W)`` or ``(N, H, W)`` (predictions as labels,
    logits or probabilities, as :func:`segcourse.metrics.confusion_matrix` takes them).

    - A **boundary pixel** of class ``c`` is a pixel of class ``c`` with at least one of its
      four neighbours (up, down, left, right, inside the picture) of another label: the pixels
      :func:`boundary_band` marks with ``width=1``, restricted to the class. The picture's edge
      is no boundary. In the truth a change to ``ignore_index`` is a change too (VOC's ignore
      band lines the objects' outlines, so the objects' boundaries are next to it); a true
      boundary pixel is never an ignore pixel itself.
    - A predicted boundary pixel may lie on a pixel the truth ignores (VOC's 5-pixel void band
      straddles the true outline, so a good prediction's boundary lies inside it). Such a pixel
      is **unscored** for precision, neither matched nor unmatched (counted apart, in
      ``predicted_on_ignore``), but it **still matches** the true boundary pixels near it.
    - **Precision**: of the predicted boundary pixels off ignore pixels, the fraction with a
      true boundary pixel of the same class in the same picture at a Euclidean distance of at
      most ``tolerance`` pixels (a disk of that radius; ``tolerance=0``: the same pixel);
      ``nan`` where there is none (nothing predicted, or all of it on ignore pixels).
    - **Recall**: of the true boundary pixels, the fraction with a predicted boundary pixel of
      the same class (on an ignore pixel or not) in the same picture within ``tolerance``;
      ``nan`` where the truth has none.
    - **F** = 2PR / (P + R) (Csurka et al. 2013, with a fixed distance in pixels rather than a
      fraction of the diagonal) where both are defined; where one is undefined, F is the other
      one; ``nan`` where neither is (the class is absent). See :class:`BoundaryFScore`.
    - The true boundary pixels next to an ignore band lie at the band's edge, not on the
      outline inside it: with a band straddling the outline, a perfect prediction's recall is
      1 once ``tolerance`` reaches the band's wider side (3 for 5 pixels split 2 + 3); its
      precision is 1 wherever defined (at any tolerance).
    - Counts are summed over the pictures and then divided (the dataset-level definition, as
      for the confusion matrix); Csurka et al. average per-picture scores instead, which is this
      function called on one picture at a time.
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, numbers.Integral) or tolerance < 0:
        raise ValueError(f"tolerance is a distance in whole pixels, 0 or more; got "
                         f"{tolerance!r}.")
    if np.ndim(y_true) not in (2, 3):
        raise ValueError(f"boundary_f_score takes label maps (H, W) or (N, H, W); got y_true of "
                         f"shape {np.shape(y_true)}. Drop a trailing axis of 1 first.")
    _check_map_shape(np.shape(y_true), "boundary_f_score", "y_true")
    truth, predicted, keep = scored_labels(y_true, y_pred, num_classes, ignore_index)
    true_band, predicted_band = boundary_band(truth, width=1), boundary_band(predicted, width=1)
    counts = np.zeros((5, num_classes), np.int64)
    for k in range(num_classes):
        true_edge = true_band & (truth == k) & keep
        predicted_edge = predicted_band & (predicted == k)  # on ignore pixels too
        if not (true_edge.any() or predicted_edge.any()):
            continue  # absent: all counts 0
        scored_edge = predicted_edge & keep
        counts[:, k] = [true_edge.sum(), scored_edge.sum(),
                        (true_edge & _dilate(predicted_edge, int(tolerance))).sum(),
                        (scored_edge & _dilate(true_edge, int(tolerance))).sum(),
                        (predicted_edge & ~keep).sum()]
    return BoundaryFScore(*counts, tolerance=int(tolerance))
