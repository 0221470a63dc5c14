"""The confusion matrix inside a compiled training step: one batch's matrix with
``keras.ops`` (:func:`streaming_confusion_update`), the label check that compiled code can make
(:func:`flat_label_check`), and the Keras metric that sums the matrix over an epoch
(:class:`ConfusionMatrixMetric`, the dataset-level definition of docs/design.md §6).

Bad labels never drop out silently: eagerly they raise a ``ValueError`` that names them; inside
a compiled step the metric counts them and reports ``nan`` until the next eager look raises.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from segcourse.labels import IGNORE_INDEX, pixel_count, validate_labels
from segcourse.layers._validation import concrete
from segcourse.metrics.confusion import check_ignore_index, prediction_layout, to_labels
from segcourse.metrics.derived import SegmentationScores, scores


def _align(y_true, y_pred, num_classes, owner):
    """Truth and predictions of one shape, and whether the predictions are scores (one more,
    class, axis) rather than labels; a trailing axis of 1 on labels is dropped. The rule is
    :func:`segcourse.metrics.confusion.prediction_layout`, the NumPy path's too; shapes are
    compared where known (at trace time: no cost in a compiled step)."""
    layout = prediction_layout(y_true.shape, y_pred.shape, num_classes, owner, metric=True)
    if layout.squeeze_truth:
        y_true = ops.squeeze(y_true, -1)
    if layout.labels_in_channel:
        y_pred = ops.squeeze(y_pred, -1)  # labels, not 1 score: their values are checked
    return y_true, y_pred, layout.from_scores


def _holds(dtype: str, value: int) -> bool:
    """Whether labels of ``dtype`` can hold the whole number ``value``."""
    if not (dtype.startswith("int") or dtype.startswith("uint")):
        return True  # floats: every bound the metrics use
    limits = np.iinfo(dtype)
    return limits.min <= value <= limits.max


def flat_label_check(labels, num_classes, ignore_index=IGNORE_INDEX):
    """The ``keras.ops`` twin of :func:`validate_labels`, for compiled code, which cannot raise
    with values: flat int32 labels (0 where not countable), a flat bool of the countable pixels
    (whole numbers in ``[0, num_classes)``), and a flat bool of the bad ones (neither that nor
    ``ignore_index``)."""
    flat = ops.reshape(labels, (-1,))
    if keras.backend.standardize_dtype(flat.dtype) == "bool":
        flat = ops.cast(flat, "int32")
    # Compared in the labels' own dtype: a float label such as 1e10 or nan is no class, however
    # a cast to int32 would wrap it. A bound the dtype cannot hold is not compared: it would be
    # cast into the dtype and wrap (uint8 labels: -1 would become 255, 300 would become 44).
    dtype = keras.backend.standardize_dtype(flat.dtype)
    bad = (flat < 0) if _holds(dtype, -1) else ops.zeros_like(flat, "bool")
    if _holds(dtype, num_classes):
        bad = bad | (flat >= num_classes)
    if keras.backend.is_float_dtype(flat.dtype):
        bad = bad | (flat != ops.floor(flat))  # fractional, and nan
    countable = ops.logical_not(bad)
    if ignore_index is not None and _holds(dtype, ignore_index):
        ignored = flat == ignore_index
        bad = bad & ops.logical_not(ignored)
        countable = countable & ops.logical_not(ignored)
    return ops.cast(ops.where(countable, flat, 0), "int32"), countable, bad


def streaming_confusion_update(y_true, y_pred, num_classes, ignore_index,
                               owner="streaming_confusion_update"):
    """One batch's confusion matrix with ``keras.ops`` (XLA-friendly: a one-hot matrix
    product, no bincount), and what it could not count.

    Returns ``(counts, invalid)``: int32 counts, and an int32 pair: the pixels whose true label
    is neither a whole number in ``[0, num_classes)`` nor ``ignore_index``, and those whose
    predicted label (when ``y_pred`` holds labels, not scores) is not one in
    ``[0, num_classes)``. Such pixels are in no cell of ``counts``, so no score may be reported
    from a matrix while its ``invalid`` is non-zero.
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
    return _exact_product(truth_hot, predicted_hot), invalid


EXACT_PIXELS = 2**24  # a float32 sum of ones is exact up to here, and no further


def _exact_product(truth_hot, predicted_hot):
    """``truth_hotᵀ · predicted_hot`` as exact int32 counts: float32 products over chunks of at
    most :data:`EXACT_PIXELS` pixels, each exact, summed as integers. In one product a cell of
    more pixels than that (a large batch of full-size Cityscapes pictures) would stop counting
    at 16,777,216, under XLA."""
    pixels = ops.shape(truth_hot)[0]
    chunks = pixels // EXACT_PIXELS + 1  # at least one; each then under EXACT_PIXELS pixels
    size = (pixels + chunks - 1) // chunks
    padding = chunks * size - pixels  # fewer than chunks rows of zeros: they count nowhere
    num_classes = truth_hot.shape[-1]
    truth_hot, predicted_hot = (
        ops.reshape(ops.pad(hot, [[0, padding], [0, 0]]), (chunks, size, num_classes))
        for hot in (truth_hot, predicted_hot))
    per_chunk = ops.matmul(ops.transpose(truth_hot, (0, 2, 1)), predicted_hot)
    return ops.sum(ops.cast(per_chunk, "int32"), axis=0)


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
        check_ignore_index(ignore_index, num_classes, type(self).__name__)
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
            to_labels(predicted, truth.shape, self.num_classes)  # a sigmoid's channel: says so
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
