"""Segmentation metrics from one confusion matrix accumulated over the whole dataset, and the
measures built beside it.

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

One concept per module, every public name re-exported here:

- ``confusion``: labels from predictions, the dataset's and each picture's confusion matrix,
  the checks a matrix passes, the picture's top confusion;
- ``derived``: :class:`SegmentationScores` and :func:`scores` (pixel accuracy, IoU, mIoU, Dice…),
  the one IoU formula (:func:`class_iou`, :func:`mean_iou`) and :func:`picture_miou`;
- ``streaming``: the matrix inside a compiled step, :class:`ConfusionMatrixMetric`;
- ``boundary``: :func:`boundary_band` (a trimap) and :func:`boundary_f_score`;
- ``bootstrap``: :func:`bootstrap_miou`, a confidence interval for the dataset's mIoU;
- ``panoptic``: :func:`panoptic_quality` (PQ, SQ, RQ);
- ``calibration``: :func:`calibration_bins`, a reliability diagram's bins and the ECE.

(The scores' module is ``derived``, not ``scores``: a submodule named like the function
``scores`` re-exported here would make ``import segcourse.metrics.scores as m`` give the
function.)
"""

from segcourse.metrics.bootstrap import BootstrapInterval, bootstrap_miou
from segcourse.metrics.boundary import BoundaryFScore, boundary_band, boundary_f_score
from segcourse.metrics.calibration import CalibrationBins, calibration_bins
from segcourse.metrics.confusion import (
    confusion_matrix,
    picture_confusions,
    to_labels,
    top_confusion,
)
from segcourse.metrics.derived import (
    SegmentationScores,
    class_iou,
    mean_iou,
    picture_miou,
    scores,
)
from segcourse.metrics.panoptic import PanopticQuality, panoptic_quality
from segcourse.metrics.streaming import (
    REPORTS,
    ConfusionMatrixMetric,
    flat_label_check,
    streaming_confusion_update,
)

__all__ = [
    "REPORTS", "BootstrapInterval", "BoundaryFScore", "CalibrationBins", "ConfusionMatrixMetric",
    "PanopticQuality", "SegmentationScores", "bootstrap_miou", "boundary_band",
    "boundary_f_score", "calibration_bins", "class_iou", "confusion_matrix",
    "flat_label_check", "mean_iou", "panoptic_quality", "picture_confusions", "picture_miou",
    "scores", "streaming_confusion_update", "to_labels", "top_confusion",
]
