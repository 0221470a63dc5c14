"""Panoptic quality: one number for stuff and things, from segments matched at IoU > 0.5
(Kirillov et al. 2019, "Panoptic Segmentation", CVPR, Sec. 4: the matching theorem of Sec. 4.1,
PQ eq. 1 and its split into segmentation quality × recognition quality, eq. 2).

A segment is the set of pixels that share a class and an instance id in one picture. A true and
a predicted segment of the same class match when their IoU is above 0.5; no segment can then
match two (Theorem 1), so the matching needs no assignment step. Per class, with TP the matches,
FP the unmatched predicted segments and FN the unmatched true ones:

    PQ = Σ_TP IoU / (|TP| + ½|FP| + ½|FN|) = SQ · RQ,
    SQ = Σ_TP IoU / |TP|,  RQ = |TP| / (|TP| + ½|FP| + ½|FN|).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segcourse.labels import IGNORE_INDEX, validate_labels
from segcourse.metrics.confusion import check_num_classes


@dataclass(frozen=True)
class PanopticQuality:
    """Per class, the matched, false-positive and false-negative segments summed over the
    pictures, and the IoU summed over the matches; PQ, SQ and RQ derived from them."""

    tp: np.ndarray  # (K,) matched segment pairs
    fp: np.ndarray  # (K,) predicted segments without a match (and not mostly void)
    fn: np.ndarray  # (K,) true segments without a match
    iou_sum: np.ndarray  # (K,) the IoU summed over the matches
    things: np.ndarray | None = None  # (K,) True for thing classes, when the caller said which

    @property
    def present(self) -> np.ndarray:
        """Classes with a segment in the truth or the prediction (TP + FP + FN > 0)."""
        return (self.tp + self.fp + self.fn) > 0

    def _per_class(self, values) -> np.ndarray:
        return np.where(self.present, values, np.nan)

    @property
    def rq(self) -> np.ndarray:
        """Recognition quality per class, |TP| / (|TP| + ½|FP| + ½|FN|) (an F1 score of
        segments); ``nan`` for an absent class."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._per_class(self.tp / (self.tp + 0.5 * self.fp + 0.5 * self.fn))

    @property
    def sq(self) -> np.ndarray:
        """Segmentation quality per class, the mean IoU of the matches; 0 for a present class
        without a match (as the COCO panoptic evaluation does), ``nan`` for an absent one."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._per_class(np.where(self.tp > 0, self.iou_sum / self.tp, 0.0))

    @property
    def pq(self) -> np.ndarray:
        """Panoptic quality per class, Σ IoU / (|TP| + ½|FP| + ½|FN|) = SQ · RQ (eq. 1);
        ``nan`` for an absent class."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._per_class(self.iou_sum / (self.tp + 0.5 * self.fp + 0.5 * self.fn))

    def mean(self, which: str = "all") -> dict:
        """``{"pq", "sq", "rq", "classes"}``: each quality's mean over the present classes of
        ``which`` ("all", or "things" / "stuff" when the thing classes were given); ``nan``
        means when no class of them is present."""
        if which == "all":
            chosen = np.ones(len(self.tp), bool)
        elif which in ("things", "stuff") and self.things is not None:
            chosen = self.things if which == "things" else ~self.things
        else:
            raise ValueError(f"which is 'all', or 'things' / 'stuff' when panoptic_quality was "
                             f"given things=...; got {which!r}"
                             + ("" if self.things is not None else " without things") + ".")
        chosen = chosen & self.present
        means = {name: float(np.mean(getattr(self, name)[chosen])) if chosen.any() else np.nan
                 for name in ("pq", "sq", "rq")}
        return {**means, "classes": int(chosen.sum())}


def _segment_ids(classes, instances, valid, span):
    """Each valid pixel's segment as one number ``class · span + instance`` (``-1`` elsewhere)."""
    return np.where(valid, classes * span + instances, -1)


def _check_segments(segments, what: str, num_classes: int, ignore_index):
    """A (class map, instance-id map) pair as two int64 arrays of one shape, or a ValueError."""
    try:
        class_map, instance_map = segments
    except (TypeError, ValueError):
        raise ValueError(f"{what} is a pair (class map, instance-id map) of label maps (H, W) or "
                         f"(N, H, W); got {type(segments).__name__}.") from None
    classes = validate_labels(class_map, num_classes, ignore_index, f"{what}: the class map")
    instances = np.asarray(instance_map)
    if instances.dtype.kind not in "iub":
        raise ValueError(f"{what}: the instance-id map holds whole numbers; got dtype "
                         f"{instances.dtype}.")
    if instances.shape != classes.shape or classes.ndim not in (2, 3):
        raise ValueError(f"{what}: the class map and the instance-id map are label maps of one "
                         f"shape, (H, W) or (N, H, W); got shapes {classes.shape} and "
                         f"{instances.shape}.")
    return classes, instances.astype(np.int64)


def panoptic_quality(true_segments, pred_segments, num_classes: int, things=None,
                     ignore_index: int | None = IGNORE_INDEX) -> PanopticQuality:
    """PQ, SQ and RQ per class of predicted segments against true ones, summed over the pictures
    (as the COCO panoptic evaluation does) before the division.

    ``true_segments`` and ``pred_segments`` are pairs ``(class_map, instance_map)`` of label
    maps ``(H, W)`` or ``(N, H, W)``: a pixel's class in ``0..num_classes-1`` (or
    ``ignore_index``) and its instance id (any whole numbers; one segment per class and id in
    a picture). ``things``: the thing classes; the other classes are stuff, and their
    instance ids are not read (all of a stuff class in a picture is one segment). Without it
    every class is split by its instance ids.

    Void, as the paper's "void labels" paragraph (Sec. 4) treats it; exactly this:

    - pixels with ``ignore_index`` as the true class are void; a predicted pixel with
      ``ignore_index`` as its class is in no predicted segment (the prediction may abstain);
    - for matching, a predicted segment's void pixels are removed: its IoU with a true segment
      is ``|t ∩ p| / (|t| + |p \\ void| - |t ∩ p|)``;
    - an unmatched predicted segment with more than half of its pixels void is no false
      positive (it is dropped); any other unmatched one is.

    Crowd regions ("group labels" of the paper) are not handled: label them void.
    """
    num_classes = check_num_classes(num_classes)
    true_classes, true_instances = _check_segments(true_segments, "true_segments", num_classes,
                                                   ignore_index)
    pred_classes, pred_instances = _check_segments(pred_segments, "pred_segments", num_classes,
                                                   ignore_index)
    if true_classes.shape != pred_classes.shape:
        raise ValueError(f"true_segments of shape {true_classes.shape} and pred_segments of "
                         f"shape {pred_classes.shape}: give both for the same pictures.")
    thing_mask = None
    if things is not None:
        thing_mask = np.zeros(num_classes, bool)
        for k in things:
            if isinstance(k, bool) or not isinstance(k, int | np.integer) or not (
                    0 <= k < num_classes):
                raise ValueError(f"things lists thing classes, whole numbers in "
                                 f"0..{num_classes - 1}; got {k!r}.")
            thing_mask[k] = True
        true_instances = np.where(thing_mask[np.minimum(true_classes, num_classes - 1)],
                                  true_instances, 0)
        pred_instances = np.where(thing_mask[np.minimum(pred_classes, num_classes - 1)],
                                  pred_instances, 0)
    if true_classes.ndim == 2:
        true_classes, true_instances, pred_classes, pred_instances = (
            a[None] for a in (true_classes, true_instances, pred_classes, pred_instances))
    low = min(true_instances.min(initial=0), pred_instances.min(initial=0))
    span = max(true_instances.max(initial=0), pred_instances.max(initial=0)) - low + 1
    counts = np.zeros((3, num_classes), np.int64)  # tp, fp, fn
    iou_sum = np.zeros(num_classes)
    for picture in range(len(true_classes)):
        nothing = np.zeros(true_classes[picture].shape, bool)
        void = nothing if ignore_index is None else true_classes[picture] == ignore_index
        abstain = nothing if ignore_index is None else pred_classes[picture] == ignore_index
        true_ids = _segment_ids(true_classes[picture], true_instances[picture] - low, ~void, span)
        pred_ids = _segment_ids(pred_classes[picture], pred_instances[picture] - low, ~abstain,
                                span)
        true_keys, true_index = np.unique(true_ids, return_inverse=True)
        pred_keys, pred_index = np.unique(pred_ids, return_inverse=True)
        true_index, pred_index = true_index.ravel(), pred_index.ravel()
        # Pixel counts of every (true segment, predicted segment) pair, the void "segment" and
        # the abstaining pixels (key -1) included as rows and columns.
        pairs = np.bincount(true_index * len(pred_keys) + pred_index,
                            minlength=len(true_keys) * len(pred_keys)).reshape(
            len(true_keys), len(pred_keys))
        true_real, pred_real = true_keys >= 0, pred_keys >= 0
        pred_void = pairs[~true_real].sum(axis=0)[pred_real]  # each predicted segment's void
        true_area, pred_area = pairs.sum(axis=1)[true_real], pairs.sum(axis=0)[pred_real]
        pairs = pairs[true_real][:, pred_real]
        true_keys, pred_keys = true_keys[true_real], pred_keys[pred_real]
        union = true_area[:, None] + (pred_area - pred_void)[None, :] - pairs
        true_class_of, pred_class_of = true_keys // span, pred_keys // span
        same_class = true_class_of[:, None] == pred_class_of[None, :]
        iou = np.where(same_class & (union > 0), pairs / np.maximum(union, 1), 0.0)
        matched = iou > 0.5  # at most one per row and per column (Theorem 1)
        rows, columns = np.nonzero(matched)
        np.add.at(counts[0], true_class_of[rows], 1)
        np.add.at(iou_sum, true_class_of[rows], iou[rows, columns])
        false_positive = ~matched.any(axis=0) & (pred_void <= 0.5 * pred_area)
        np.add.at(counts[1], pred_class_of[false_positive], 1)
        np.add.at(counts[2], true_class_of[~matched.any(axis=1)], 1)
    return PanopticQuality(*counts, iou_sum=iou_sum, things=thing_mask)
