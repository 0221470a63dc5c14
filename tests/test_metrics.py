"""Metrics against hand-computed examples, keras.metrics.MeanIoU and an independent numpy loop."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from segcourse.metrics import (
    ConfusionMatrixMetric,
    boundary_band,
    boundary_f_score,
    confusion_matrix,
    picture_confusions,
    picture_miou,
    scores,
    to_labels,
    top_confusion,
)


def loop_iou(truth, prediction, num_classes, ignore=255):
    """Per-class IoU by set counting, class by class (nan where a class is nowhere)."""
    keep = truth != ignore
    out = []
    for k in range(num_classes):
        t, p = (truth == k) & keep, (prediction == k) & keep
        union = np.sum(t | p)
        out.append(np.sum(t & p) / union if union else np.nan)
    return np.array(out)


def test_a_hand_computed_example():
    truth = np.array([[0, 0, 1, 1], [0, 0, 1, 255], [2, 2, 2, 2]])
    prediction = np.array([[0, 1, 1, 1], [0, 0, 0, 2], [2, 2, 2, 1]])
    cm = confusion_matrix(truth, prediction, 4)
    np.testing.assert_array_equal(cm, [[3, 1, 0, 0], [1, 2, 0, 0], [0, 1, 3, 0], [0, 0, 0, 0]])
    s = scores(cm, ["a", "b", "c", "d"])
    assert s.pixel_accuracy == pytest.approx(8 / 11)
    np.testing.assert_allclose(s.iou[:3], [3 / 5, 2 / 5, 3 / 4])
    assert np.isnan(s.iou[3]) and s.absent == ["d"]
    assert s.miou == pytest.approx((3 / 5 + 2 / 5 + 3 / 4) / 3)
    assert s.mean_class_accuracy == pytest.approx((3 / 4 + 2 / 3 + 3 / 4) / 3)
    assert s.frequency_weighted_iou == pytest.approx((4 * 3 / 5 + 3 * 2 / 5 + 4 * 3 / 4) / 11)
    np.testing.assert_allclose(s.dice[:3], [6 / 8, 4 / 7, 6 / 7])
    assert re.search(r"^d +absent +0$", s.table(), re.MULTILINE)


def test_a_class_predicted_but_never_true_counts_as_zero():
    s = scores(confusion_matrix(np.array([0, 0, 0]), np.array([0, 0, 1]), 2))
    assert s.iou[1] == 0 and s.miou == pytest.approx((2 / 3 + 0) / 2)


def test_dataset_level_is_not_the_mean_of_per_image_ious():
    big_truth, big_prediction = np.ones((10, 10), int), np.ones((10, 10), int)
    small_truth, small_prediction = np.zeros((10, 10), int), np.zeros((10, 10), int)
    small_truth[0, 0] = 1  # one pixel of class 1, missed
    truth, prediction = np.stack([big_truth, small_truth]), np.stack([big_prediction,
                                                                      small_prediction])
    dataset = scores(confusion_matrix(truth, prediction, 2)).iou[1]
    per_image = np.nanmean([loop_iou(t, p, 2)[1] for t, p in zip(truth, prediction,
                                                                 strict=True)])
    assert dataset == pytest.approx(100 / 101) and per_image == pytest.approx(0.5)


@given(seed=st.integers(0, 10_000), num_classes=st.integers(2, 7))
@settings(max_examples=30, deadline=None)
def test_agrees_with_keras_mean_iou_and_a_numpy_loop(seed, num_classes):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, num_classes, (3, 9, 7))
    truth[rng.random(truth.shape) < 0.1] = 255
    truth[truth == num_classes - 1] = 0  # the last class: absent from the truth...
    logits = rng.normal(size=(*truth.shape, num_classes)).astype("float32")
    logits[..., num_classes - 1] -= 100  # ... and from the predictions
    s = scores(confusion_matrix(truth, logits, num_classes))
    prediction = logits.argmax(-1)
    np.testing.assert_allclose(s.iou, loop_iou(truth, prediction, num_classes))
    keras_miou = keras.metrics.MeanIoU(num_classes, ignore_class=255, sparse_y_pred=False)
    keras_miou.update_state(truth, logits)
    assert s.miou == pytest.approx(float(keras_miou.result()), rel=1e-6)
    assert s.confusion.sum() == np.sum(truth != 255)
    assert s.absent == [f"class {num_classes - 1}"]


def test_labels_logits_and_probabilities_give_the_same_matrix(rng):
    truth = rng.integers(0, 3, (2, 5, 5))
    logits = rng.normal(size=(2, 5, 5, 3))
    probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    reference = confusion_matrix(truth, logits.argmax(-1), 3)
    np.testing.assert_array_equal(confusion_matrix(truth, logits, 3), reference)
    np.testing.assert_array_equal(confusion_matrix(truth, probabilities, 3), reference)


def test_bad_labels_are_refused_with_the_reason():
    with pytest.raises(ValueError, match=r"values \[7\] outside the 3 classes \(0..2 or 255"):
        confusion_matrix(np.array([0, 7, 1]), np.array([0, 1, 1]), 3)
    with pytest.raises(ValueError, match="fractional values such as 0.5.*nearest"):
        confusion_matrix(np.array([0.0, 0.5, 1.0]), np.array([0, 1, 1]), 3)
    with pytest.raises(ValueError, match="must be an integer array"):
        confusion_matrix(np.array(["a", "b"]), np.array([0, 1]), 3)
    with pytest.raises(ValueError, match=r"y_pred of shape \(2, 3\) does not fit y_true of "
                                         r"shape \(2, 4\)"):
        confusion_matrix(np.zeros((2, 4), int), np.zeros((2, 3), int), 3)


def test_a_single_score_channel_is_refused_not_argmaxed_to_zeros(rng):
    """A sigmoid's output (N, H, W, 1) once became all zeros by an argmax over one channel."""
    truth = rng.integers(0, 2, (2, 5, 5))
    sigmoid = rng.random((2, 5, 5, 1))
    message = (r"y_pred of shape \(2, 5, 5, 1\) has one channel per pixel holding 50 fractional "
               r"values such as .*Threshold it into labels first.*or give the model 2 output "
               r"channels")
    for owner in (confusion_matrix, picture_confusions, boundary_f_score):
        with pytest.raises(ValueError, match=message):
            owner(truth, sigmoid, 2)
    with pytest.raises(ValueError, match=message):
        to_labels(sigmoid, truth.shape, 2)
    # Thresholded, as the message says, it is counted; whole numbers in one channel are labels.
    thresholded = (sigmoid[..., 0] > 0.5).astype(int)
    np.testing.assert_array_equal(confusion_matrix(truth, thresholded[..., None], 2),
                                  confusion_matrix(truth, thresholded, 2))


@pytest.mark.parametrize("channels, num_classes", [(3, 4), (5, 2)])
def test_scores_for_another_number_of_classes_are_refused_by_the_numpy_path(channels,
                                                                           num_classes, rng):
    """3 scores for 4 classes always argmax in range, 5 for 2 mostly did: both were counted."""
    truth = rng.integers(0, min(channels, num_classes), (2, 4, 4))
    logits = np.eye(channels)[truth] * 3  # every argmax a valid class of num_classes
    message = (rf"y_pred has {channels} class scores per pixel \(shape \(2, 4, 4, {channels}\)\) "
               rf"but num_classes is {num_classes}; pass num_classes={channels}, or give the "
               rf"model {num_classes} output channels")
    for owner in (confusion_matrix, picture_confusions, boundary_f_score):
        with pytest.raises(ValueError, match=message):
            owner(truth, logits, num_classes)
    with pytest.raises(ValueError, match=message):
        to_labels(logits, truth.shape, num_classes)


def test_to_labels_keeps_the_normal_cases(rng):
    truth = rng.integers(0, 3, (2, 4, 5))
    logits = rng.normal(size=(2, 4, 5, 3))
    labels = logits.argmax(-1)
    probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    for y_pred in (labels, logits, probabilities, labels[..., None], labels.astype(float)):
        np.testing.assert_array_equal(to_labels(y_pred, truth.shape, 3), labels)
    # A truth with a trailing axis of 1: labels come back in its shape.
    np.testing.assert_array_equal(to_labels(logits, truth[..., None].shape, 3), labels[..., None])
    np.testing.assert_array_equal(confusion_matrix(truth[..., None], logits, 3),
                                  confusion_matrix(truth, labels, 3))
    # One class: its one score per pixel is that class.
    np.testing.assert_array_equal(to_labels(rng.random((2, 4, 5, 1)), truth.shape, 1), 0)
    with pytest.raises(ValueError, match="num_classes must be a whole number"):
        to_labels(labels, truth.shape, 0)


@pytest.mark.parametrize("truth_shape, pred_shape", [
    ((2, 3), (2, 3)), ((2, 3), (2, 3, 3)), ((2, 3, 1), (2, 3, 3)), ((2, 3), (2, 3, 1)),
    ((2, 3, 1), (2, 3)), ((2, 3, 1), (2, 3, 1)), ((2, 3), (2, 3, 4)), ((2, 3), (2, 4)),
    ((2, 3), (2, 3, 2, 3)), ((2, 3, 1), (2, 3, 2))])
def test_the_numpy_path_and_the_metric_share_one_shape_rule(truth_shape, pred_shape):
    """Whatever the shapes, confusion_matrix and ConfusionMatrixMetric both count the same
    matrix or both refuse, for the same reason (the advice is worded for each)."""
    truth = np.arange(np.prod(truth_shape)).reshape(truth_shape) % 3
    pred = (np.arange(np.prod(pred_shape)).reshape(pred_shape) * 7) % 3
    outcomes = []
    for count in (lambda: confusion_matrix(truth, pred, 3),
                  lambda: _streamed(truth, pred, 3)):
        try:
            outcomes.append(("matrix", count().tolist()))
        except ValueError as error:
            reason = re.sub(r"^.*?: (?=y_pred)", "", str(error))
            outcomes.append(("refused", re.split(r" but |: ", reason)[0]))
    assert outcomes[0] == outcomes[1]


def _streamed(truth, pred, num_classes):
    metric = ConfusionMatrixMetric(num_classes)
    metric.update_state(truth, pred)
    return metric.scores().confusion


def test_the_keras_metric_streams_over_batches_inside_fit(rng):
    images = rng.random((8, 8, 8, 3)).astype("float32")
    masks = rng.integers(0, 3, (8, 8, 8))
    masks[:, 0] = 255
    inp = keras.Input((8, 8, 3))
    model = keras.Model(inp, keras.layers.Conv2D(3, 3, padding="same")(inp))
    metric = ConfusionMatrixMetric(3)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                   ignore_class=255),
                  metrics=[metric], jit_compile=True)
    logged = model.evaluate(images, masks, batch_size=3, verbose=0, return_dict=True)
    expected = scores(confusion_matrix(masks, model.predict(images, verbose=0), 3))
    assert logged["miou"] == pytest.approx(expected.miou, rel=1e-5)
    np.testing.assert_array_equal(metric.scores().confusion, expected.confusion)
    metric.reset_state()
    assert metric.scores().confusion.sum() == 0
    with pytest.raises(ValueError, match="report must be one of"):
        ConfusionMatrixMetric(3, report="accuracy")


def test_the_boundary_band_surrounds_label_changes():
    from segcourse.metrics import boundary_band

    mask = np.zeros((1, 8, 8), int)
    mask[0, :, 4:] = 1
    band = boundary_band(mask, width=1)[0]
    assert band[:, 3:5].all() and not band[:, :3].any() and not band[:, 5:].any()
    wide = boundary_band(mask, width=2)[0]
    assert wide[:, 2:6].all() and not wide[:, :2].any()


@pytest.mark.parametrize("width", [0, -1, 1.5, True, "2", None])
def test_the_boundary_band_refuses_a_width_below_one(width):
    """Width 0 and negative widths once gave the width-1 band."""
    with pytest.raises(ValueError, match=re.escape(f"at least 1 (1: the pixels next to a label "
                                                   f"change); got {width!r}.")):
        boundary_band(np.zeros((1, 4, 4), int), width=width)


def test_the_boundary_band_refuses_masks_it_would_misread():
    mask = np.zeros((1, 8, 8), int)
    mask[0, 2:6, 2:6] = 1
    assert boundary_band(mask, 2).sum() == 52
    assert boundary_band(mask[0], np.int64(2)).sum() == 52  # (H, W); a NumPy integer width
    # A trailing channel axis once read rows as columns: 32 band pixels, vertical changes missed.
    for channel in (mask[..., None], mask[0, ..., None]):
        with pytest.raises(ValueError, match=re.escape(
                f"masks of shape {channel.shape} end in an axis of 1, a channel axis") +
                r".*Squeeze it first: masks\[\.\.\., 0\]"):
            boundary_band(channel, 2)
    with pytest.raises(ValueError, match=r"label maps \(H, W\) or \(N, H, W\); got shape "
                                         r"\(1, 8, 8, 3\)\. Scores .* argmax"):
        boundary_band(np.zeros((1, 8, 8, 3)), 2)
    with pytest.raises(ValueError, match=r"got shape \(8,\)"):
        boundary_band(np.zeros(8, int), 2)
    with pytest.raises(ValueError, match="found 16 fractional values such as 0.5.*nearest"):
        boundary_band(np.where(mask == 1, 0.5, 0.0), 2)
    with pytest.raises(ValueError, match="found 64 NaN or infinite values"):
        boundary_band(np.full((8, 8), np.nan), 2)
    with pytest.raises(ValueError, match="an integer array; got dtype <U1"):
        boundary_band(np.full((8, 8), "a"), 2)
    assert boundary_band(mask.astype(float), 2).sum() == 52  # whole numbers as floats
    assert boundary_band(mask.astype(bool), 2).sum() == 52
    with pytest.raises(ValueError, match=r"boundary_f_score: y_true of shape \(8, 8, 1\) end in "
                                         r"an axis of 1"):
        boundary_f_score(mask[0, ..., None], mask[0, ..., None], 2)


def test_the_boundary_band_does_not_wrap_around_the_picture_edge():
    # A change between columns 0 and 1: width 3 reaches column 3 on the right, and nothing
    # on the far side of the picture (np.roll once marked columns 6 and 7 too).
    mask = np.zeros((1, 6, 8), int)
    mask[0, :, 1:] = 1
    band = boundary_band(mask, width=3)[0]
    assert band[:, :4].all() and not band[:, 4:].any()
    mask = np.zeros((1, 8, 6), int)
    mask[0, 7:, :] = 1  # the same along rows, at the bottom edge
    band = boundary_band(mask, width=2)[0]
    assert band[5:, :].all() and not band[:5, :].any()


# Bad input: a clear error, never a silent wrong score.


def test_scores_refuse_what_is_not_a_matrix_of_counts():
    counts = np.array([[3, 1], [1, 2]])
    with pytest.raises(ValueError, match=r"fractional entries such as 0.75 \(row 0, column 0\), "
                                         "so it looks normalized.*Pass the counts"):
        scores(counts / counts.sum(axis=1, keepdims=True))
    with pytest.raises(ValueError, match=r"no entry is negative.*such as -1 \(row 1, column 0\)"):
        scores([[3, 1], [-1, 2]])
    with pytest.raises(ValueError, match=r"1 NaN or infinite entries \(the first at row 0, "
                                         "column 1\\)"):
        scores([[3.0, np.nan], [1.0, 2.0]])
    with pytest.raises(ValueError, match=r"is square .*got shape \(2, 3\)"):
        scores(np.zeros((2, 3), int))
    with pytest.raises(ValueError, match="holds pixel counts; got dtype <U1"):
        scores([["a", "b"], ["c", "d"]])
    # Whole counts stored as floats are counts: the same scores as the integers (hand-computed).
    s = scores(counts.astype(float))
    np.testing.assert_array_equal(s.confusion, counts)
    assert s.pixel_accuracy == pytest.approx(5 / 7) and s.miou == pytest.approx((3 / 5 + 2 / 4) / 2)


def test_the_keras_metric_refuses_bad_labels_eagerly_and_counts_nothing():
    metric = ConfusionMatrixMetric(3)
    with pytest.raises(ValueError, match=r"'miou': y_true holds values \[7\] outside the 3 classes "
                                         r"\(0..2 or 255, ignore label\) in 1 pixel\."):
        metric.update_state(np.array([[0, 7, 1]]), np.array([[0, 1, 1]]))
    with pytest.raises(ValueError, match=r"y_pred \(labels\) holds values \[5\] outside the 3 "
                                         r"classes \(0..2\) in 1 pixel\..*3 output channels"):
        metric.update_state(np.array([[0, 2, 1]]), np.array([[0, 5, 1]]))
    with pytest.raises(ValueError, match="fractional values such as 1.5"):
        metric.update_state(np.array([[0, 1.5, 1]]), np.eye(3)[None])
    with pytest.raises(ValueError, match=r"y_pred of shape \(1, 4, 3\) does not fit y_true of "
                                         r"shape \(1, 3\)"):
        metric.update_state(np.array([[0, 1, 1]]), np.zeros((1, 4, 3)))
    with pytest.raises(ValueError, match="takes no sample_weight.*ignore label 255"):
        metric.update_state(np.array([[0, 1, 1]]), np.array([[0, 1, 1]]), np.ones((1, 3)))
    assert metric.scores().confusion.sum() == 0  # the refused batches left no trace
    truth, prediction = np.array([[0, 255, 1], [2, 2, 0]]), np.array([[0, 1, 1], [1, 2, 0]])
    metric.update_state(truth, prediction)
    np.testing.assert_array_equal(metric.scores().confusion, [[2, 0, 0], [0, 1, 0], [0, 1, 1]])


def test_labels_with_a_trailing_axis_of_one_stream_like_plain_labels(rng):
    truth = rng.integers(0, 3, (2, 5, 5))
    truth[0, 0] = 255
    logits = rng.normal(size=(2, 5, 5, 3)).astype("float32")
    expected = confusion_matrix(truth, logits, 3)
    for y_true, y_pred in [(truth[..., None], logits),
                           (truth, logits.argmax(-1)[..., None]),  # labels, not one score
                           (truth[..., None], logits.argmax(-1)[..., None])]:
        metric = ConfusionMatrixMetric(3)
        metric.update_state(y_true, y_pred)
        np.testing.assert_array_equal(metric.scores().confusion, expected)


def test_scores_for_another_number_of_classes_are_refused():
    with pytest.raises(ValueError, match=r"y_pred has 4 class scores per pixel \(shape "
                                         r"\(1, 2, 4\)\) but the metric counts 3 classes"):
        ConfusionMatrixMetric(3).update_state(np.zeros((1, 2), int), np.zeros((1, 2, 4)))


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
def test_inside_fit_and_evaluate_bad_labels_are_counted_and_then_refused(jit, rng):
    """What a student sees: ``miou: nan`` on the progress bar during the epoch, then, when Keras
    reads the metrics at the end of the epoch (or of evaluate), a ValueError with the count."""
    images = rng.random((4, 4, 4, 3)).astype("float32")
    masks = rng.integers(0, 3, (4, 4, 4))
    masks[1, 2, 3] = 5
    masks[3, 0, 0] = 9
    inp = keras.Input((4, 4, 3))
    model = keras.Model(inp, keras.layers.Conv2D(3, 1)(inp))
    metric = ConfusionMatrixMetric(3)
    model.compile("sgd", lambda y_true, y_pred: keras.ops.mean(y_pred * 0.0), metrics=[metric],
                  jit_compile=jit)
    refusal = (r"ConfusionMatrixMetric 'miou': since the last reset it met 2 pixels of y_true "
               r"with a label that is not a whole class number in 0..2 or the ignore label 255"
               r".*validate_labels\(masks, 3\)")
    with pytest.raises(ValueError, match=refusal):
        model.evaluate(images, masks, batch_size=2, verbose=0)
    assert np.isnan(float(tf.function(metric.result)()))  # what the compiled step reported
    with pytest.raises(ValueError, match=refusal):
        metric.scores()
    with pytest.raises(ValueError, match=refusal):
        model.fit(images, masks, batch_size=2, epochs=2, verbose=0)
    # The good pixels were counted as ever (against the NumPy matrix of the same pixels).
    masks[1, 2, 3] = masks[3, 0, 0] = 255
    expected = confusion_matrix(masks, model.predict(images, verbose=0), 3)
    logged = model.evaluate(images, masks, batch_size=2, verbose=0, return_dict=True)
    np.testing.assert_array_equal(metric.scores().confusion, expected)
    assert logged["miou"] == pytest.approx(scores(expected).miou, rel=1e-6)


def test_run_eagerly_names_the_bad_values(rng):
    images = rng.random((2, 4, 4, 3)).astype("float32")
    masks = rng.integers(0, 3, (2, 4, 4))
    masks[0, 0, 0] = 4
    inp = keras.Input((4, 4, 3))
    model = keras.Model(inp, keras.layers.Conv2D(3, 1)(inp))
    model.compile("sgd", lambda y_true, y_pred: keras.ops.mean(y_pred * 0.0),
                  metrics=[ConfusionMatrixMetric(3)], run_eagerly=True)
    with pytest.raises(ValueError, match=r"y_true holds values \[4\] outside the 3 classes"):
        model.evaluate(images, masks, verbose=0)


@pytest.mark.parametrize("num_classes", [2.0, True, 0, "2"])
def test_confusion_matrix_wants_a_whole_number_of_classes(num_classes):
    with pytest.raises(ValueError, match="num_classes must be a whole number of at least 1"):
        confusion_matrix(np.array([0, 1]), np.array([1, 1]), num_classes)


def test_picture_confusions_are_each_pictures_matrix_and_sum_to_the_datasets(rng):
    truth = rng.integers(0, 4, (5, 6, 7))
    truth[rng.random(truth.shape) < 0.2] = 255
    logits = rng.normal(size=(*truth.shape, 4))
    per_picture = picture_confusions(truth, logits, 4)
    assert per_picture.shape == (5, 4, 4) and per_picture.dtype == np.int64
    for t, scores_of_picture, matrix in zip(truth, logits, per_picture, strict=True):
        np.testing.assert_array_equal(matrix, confusion_matrix(t, scores_of_picture, 4))
    np.testing.assert_array_equal(per_picture.sum(axis=0), confusion_matrix(truth, logits, 4))
    with pytest.raises(ValueError, match="a batch of label maps"):
        picture_confusions(np.zeros(5, int), np.zeros(5, int), 2)


@given(seed=st.integers(0, 10_000), num_classes=st.integers(2, 6))
@settings(max_examples=20, deadline=None)
def test_picture_miou_is_each_pictures_keras_mean_iou(seed, num_classes):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, num_classes, (4, 5, 6))
    truth[rng.random(truth.shape) < 0.2] = 255
    prediction = rng.integers(0, num_classes, truth.shape)
    prediction[1] = np.where(truth[1] == 255, 0, truth[1])  # a perfect picture: mIoU 1
    found = picture_miou(picture_confusions(truth, prediction, num_classes))
    for t, p, value in zip(truth, prediction, found, strict=True):
        keras_miou = keras.metrics.MeanIoU(num_classes, ignore_class=255)
        keras_miou.update_state(t, p)
        assert value == pytest.approx(float(keras_miou.result()), rel=1e-6)
        assert value == pytest.approx(np.nanmean(loop_iou(t, p, num_classes)))
    assert found[1] == 1.0


def test_picture_miou_by_hand_and_a_picture_without_scored_pixels():
    truth = np.array([[[0, 0], [1, 1]], [[255, 255], [255, 255]]])
    prediction = np.array([[[0, 1], [1, 1]], [[0, 0], [0, 0]]])
    found = picture_miou(picture_confusions(truth, prediction, 3))  # class 2 absent: left out
    assert found[0] == pytest.approx((1 / 2 + 2 / 3) / 2) and np.isnan(found[1])
    with pytest.raises(ValueError, match=r"\(N, K, K\); got shape \(3, 3\)"):
        picture_miou(np.eye(3))


def test_top_confusion_is_the_largest_off_diagonal_cell():
    assert top_confusion(np.array([[9, 1, 3], [0, 8, 2], [3, 0, 7]])) == (0, 2, 3)  # first tie
    assert top_confusion(np.diag([4, 5])) is None
    truth = np.array([[1, 1, 1, 2], [2, 2, 0, 255]])
    prediction = np.array([[2, 2, 1, 2], [0, 0, 0, 1]])  # the ignored pixel does not count
    assert top_confusion(confusion_matrix(truth, prediction, 3)) == (1, 2, 2)


# The package split: one validation path, one IoU formula.


@pytest.mark.parametrize("num_classes", [2.0, True, 0, "2"])
def test_picture_confusions_want_a_whole_number_of_classes_like_confusion_matrix(num_classes):
    with pytest.raises(ValueError, match="num_classes must be a whole number of at least 1"):
        picture_confusions(np.zeros((2, 2, 2), int), np.zeros((2, 2, 2), int), num_classes)


@given(seed=st.integers(0, 10_000), num_classes=st.integers(1, 6))
@settings(max_examples=25, deadline=None)
def test_picture_miou_is_scores_miou_of_each_pictures_matrix(seed, num_classes):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, num_classes, (4, 3, 5))
    truth[rng.random(truth.shape) < 0.3] = 255
    truth[0] = 255  # a picture without a scored pixel: nan, as scores() of a zero matrix
    prediction = rng.integers(0, num_classes, truth.shape)
    confusions = picture_confusions(truth, prediction, num_classes)
    # set counting, picture by picture: nan for a picture with no scored pixel
    per_picture = [loop_iou(t, p, num_classes) for t, p in zip(truth, prediction, strict=True)]
    expected = [np.nan if np.isnan(ious).all() else np.nanmean(ious) for ious in per_picture]
    np.testing.assert_allclose(picture_miou(confusions), expected)  # nan where nan


def test_picture_miou_refuses_what_is_not_counts():
    with pytest.raises(ValueError, match=r"2 fractional entries such as 0.5 \(picture 1, row 0, "
                                         r"column 0\)"):
        picture_miou(np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.5, 0.5], [0.0, 1.0]]]))
    with pytest.raises(ValueError, match=r"negative entries such as -2 \(picture 0, row 1"):
        picture_miou(np.array([[[1, 0], [-2, 1]]]))


def test_the_metric_calls_a_sigmoids_single_channel_what_it_is():
    # (N, H, W, 1) probabilities, not labels: the message says to threshold them, not that a
    # mask was resized with bilinear interpolation
    truth = np.zeros((2, 4, 4), int)
    truth[:, :, 2:] = 1
    sigmoid = np.full((2, 4, 4, 1), 0.7, np.float32)
    with pytest.raises(ValueError, match=r"one channel per pixel .*sigmoid.*Threshold it"):
        ConfusionMatrixMetric(2).update_state(truth, sigmoid)


def test_one_hot_truth_is_refused_not_read_as_labels_0_and_1():
    """With one-hot truth and a one-hot prediction of its shape, 'same shape means labels' read
    both as labels 0 and 1: mIoU 0.689 where the labels' is 0.667 (keras.metrics.MeanIoU)."""
    truth, predicted = np.array([[[0, 1, 2, 2]]]), np.array([[[0, 1, 1, 2]]])
    reference = keras.metrics.MeanIoU(3)
    reference.update_state(truth.ravel(), predicted.ravel())
    assert scores(confusion_matrix(truth, predicted, 3)).miou == pytest.approx(
        float(reference.result()))
    one_hot = np.eye(3, dtype=int)
    with pytest.raises(ValueError, match="one-hot truth, not labels"):
        confusion_matrix(one_hot[truth], one_hot[predicted], 3)
    with pytest.raises(ValueError, match="one-hot truth, not labels"):
        ConfusionMatrixMetric(3).update_state(one_hot[truth], one_hot[predicted])
    # labels with a trailing axis of 1 still pass
    assert confusion_matrix(truth[..., None], predicted[..., None], 3).sum() == 4


def test_mean_iou_and_class_iou_refuse_what_is_not_a_matrix_of_counts():
    from segcourse.metrics.derived import class_iou, mean_iou

    counts = np.array([[90, 10], [5, 5]])
    assert mean_iou(counts) == pytest.approx((90 / 105 + 5 / 20) / 2)
    with pytest.raises(ValueError, match="normali"):
        mean_iou(counts / counts.sum(axis=1, keepdims=True))
    with pytest.raises(ValueError, match="NaN"):
        class_iou(np.array([[90.0, 10.0], [5.0, np.nan]]))
    stack = np.stack([counts, counts.T])  # one per picture still works
    assert mean_iou(stack).shape == (2,)


def test_picture_confusions_refuses_one_picture_it_would_read_as_rows():
    with pytest.raises(ValueError, match="a batch of label maps"):
        picture_confusions(np.zeros((2, 3), int), np.zeros((2, 3), int), 2)


def test_an_ignore_index_or_class_count_the_label_dtype_cannot_hold_is_not_wrapped():
    """uint8 truth with ignore_index=-1: cast into uint8, -1 became 255, and pixels labelled 255
    dropped out uncounted; 300 classes became 44, and labels 44..255 were 'out of range'."""
    from segcourse.metrics.streaming import flat_label_check

    truth, predicted = np.array([[0, 1, 255, 1]], np.uint8), np.array([[0, 1, 0, 1]])
    with pytest.raises(ValueError, match="255"):
        confusion_matrix(truth, predicted, 2, ignore_index=-1)
    metric = ConfusionMatrixMetric(2, ignore_index=-1)
    with pytest.raises(ValueError, match="255"):
        metric.update_state(truth, predicted)
    labels, countable, bad = flat_label_check(np.array([0, 44, 255], np.uint8), 300, None)
    assert np.asarray(countable).tolist() == [True, True, True]
    assert np.asarray(bad).tolist() == [False, False, False]
    assert np.asarray(labels).tolist() == [0, 44, 255]


@pytest.mark.slow  # a batch of 2**24 + 100,000 pixels, compiled with XLA: a few seconds
def test_a_cell_of_more_than_2_to_the_24_pixels_is_counted_exactly_under_xla():
    """A float32 sum of ones stops at 2**24 = 16,777,216: in one matrix product, XLA's count of
    a cell that large lost the pixels beyond it (eagerly it did not)."""
    from segcourse.metrics.streaming import streaming_confusion_update

    pixels = 2**24 + 100_000
    compiled = tf.function(lambda t, p: streaming_confusion_update(t, p, 2, 255)[0],
                           jit_compile=True)
    truth = tf.zeros((1, pixels), tf.int32)
    predicted = tf.concat([tf.zeros((1, pixels - 3), tf.int32), tf.ones((1, 3), tf.int32)], 1)
    counts = np.asarray(compiled(truth, predicted))
    assert counts.tolist() == [[pixels - 3, 3], [0, 0]]
    eager = streaming_confusion_update(truth, predicted, 2, 255)[0]
    np.testing.assert_array_equal(eager, counts)


def test_an_ignore_index_that_is_one_of_the_classes_is_refused():
    """ignore_index=0 for classes 0..2: class 0's true pixels dropped, its predictions still
    errors; scored, its IoU was 0 and the mIoU 0.5 where the other two classes give 0.75."""
    truth, predicted = np.array([[0, 0, 1, 1, 2, 2]]), np.array([[0, 0, 0, 1, 2, 2]])
    with pytest.raises(ValueError, match="ignore_index 0 is one of the 3 classes"):
        confusion_matrix(truth, predicted, 3, ignore_index=0)
    with pytest.raises(ValueError, match="ignore_index 2 is one of the 3 classes"):
        ConfusionMatrixMetric(3, ignore_index=2)
    assert confusion_matrix(truth, predicted, 3, ignore_index=None).sum() == 6


def test_an_empty_confusion_matrix_scores_nan_not_zero():
    # 0 correct of 0 pixels is no accuracy at all, not "every pixel wrong"
    empty = scores(np.zeros((3, 3), np.int64))
    assert np.isnan(empty.pixel_accuracy) and np.isnan(empty.frequency_weighted_iou)
    assert np.isnan(empty.miou) and np.isnan(empty.mean_class_accuracy)
