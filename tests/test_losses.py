"""Losses against the slides' formula, numpy, and Keras' own cross-entropy."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from segcourse.losses import CombinedLoss, DiceLoss, MaskedCrossEntropy, SoftIoULoss
from segcourse.metrics import confusion_matrix, scores


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_soft_iou_is_the_slides_formula(rng):
    truth = rng.integers(0, 3, (2, 4, 4))
    logits = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    x, y = softmax(logits), np.eye(3)[truth]
    expected = 1 - (x * y).sum() / (x + y - x * y).sum()
    assert float(SoftIoULoss()(truth, logits)) == pytest.approx(expected, rel=1e-5)


def test_on_hard_predictions_soft_iou_is_the_iou(rng):
    truth = rng.integers(0, 4, (2, 6, 6))
    prediction = rng.integers(0, 4, (2, 6, 6))
    probabilities = np.eye(4, dtype="float32")[prediction]
    per_class = 1 - float(SoftIoULoss(per_class=True, from_logits=False)(truth, probabilities))
    assert per_class == pytest.approx(scores(confusion_matrix(truth, prediction, 4)).miou)
    overlap = sum(np.sum((truth == k) & (prediction == k)) for k in range(4))
    union = sum(np.sum((truth == k) | (prediction == k)) for k in range(4))
    glob = 1 - float(SoftIoULoss(from_logits=False)(truth, probabilities))
    assert glob == pytest.approx(overlap / union)


def test_dice_formula(rng):
    truth = rng.integers(0, 3, (2, 4, 4))
    logits = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    x, y = softmax(logits), np.eye(3)[truth]
    assert float(DiceLoss()(truth, logits)) == pytest.approx(
        1 - 2 * (x * y).sum() / (x.sum() + y.sum()), rel=1e-5)


def test_cross_entropy_skips_ignored_pixels_and_weights_classes(rng):
    truth = rng.integers(0, 3, (2, 5, 5))
    truth[0, 0] = 255
    logits = rng.normal(size=(2, 5, 5, 3)).astype("float32")
    keep = truth != 255
    keras_ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    expected = float(keras_ce(truth[keep], logits[keep]))
    assert float(MaskedCrossEntropy()(truth, logits)) == pytest.approx(expected, rel=1e-5)
    weights = np.array([1.0, 2.0, 0.5])
    per_pixel = -np.log(softmax(logits)[keep, truth[keep]])
    w = weights[truth[keep]]
    assert float(MaskedCrossEntropy(class_weights=weights)(truth, logits)) == pytest.approx(
        (w * per_pixel).sum() / w.sum(), rel=1e-5)


@pytest.mark.parametrize("loss", [MaskedCrossEntropy(), SoftIoULoss(), DiceLoss(),
                                  SoftIoULoss(per_class=True)])
def test_ignored_pixels_get_no_gradient(loss, rng):
    truth = rng.integers(0, 3, (1, 4, 4))
    truth[0, :2] = 255
    logits = tf.Variable(rng.normal(size=(1, 4, 4, 3)).astype("float32"))
    with tf.GradientTape() as tape:
        value = loss(truth, logits)
    grad = tape.gradient(value, logits).numpy()
    assert np.all(grad[0, :2] == 0) and np.all(np.isfinite(grad)) and np.any(grad[0, 2:] != 0)


def test_combined_loss_is_the_weighted_sum_and_round_trips(rng):
    truth = rng.integers(0, 3, (2, 4, 4))
    logits = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    combined = CombinedLoss([MaskedCrossEntropy(), SoftIoULoss()], [1.0, 0.5])
    expected = float(MaskedCrossEntropy()(truth, logits)) + 0.5 * float(SoftIoULoss()(truth,
                                                                                    logits))
    assert float(combined(truth, logits)) == pytest.approx(expected, rel=1e-6)
    again = keras.losses.deserialize(keras.losses.serialize(combined))
    assert float(again(truth, logits)) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="2 losses but 1 weights"):
        CombinedLoss([MaskedCrossEntropy(), DiceLoss()], [1.0])
