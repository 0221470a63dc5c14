"""Losses against the slides' formula, the papers' equations, numpy, and Keras' own
cross-entropy and focal loss."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from segcourse.losses import CombinedLoss, DiceLoss, FocalLoss, MaskedCrossEntropy, SoftIoULoss
from segcourse.metrics import confusion_matrix, scores


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_soft_iou_pooled_is_one_ratio_over_all_pixels_and_classes(rng):
    truth = rng.integers(0, 3, (2, 4, 4))
    logits = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    x, y = softmax(logits), np.eye(3)[truth]
    expected = 1 - (x * y).sum() / (x + y - x * y).sum()
    assert float(SoftIoULoss()(truth, logits)) == pytest.approx(expected, rel=1e-5)


def test_soft_iou_per_class_is_the_slides_formula_for_each_class_averaged(rng):
    truth = rng.integers(0, 3, (2, 4, 4))
    logits = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    x, y = softmax(logits), np.eye(3)[truth]
    # The slides: I = Σ_v X_v·Y_v, U = Σ_v (X_v + Y_v − X_v·Y_v) for one class's map.
    per_class = [1 - (x[..., k] * y[..., k]).sum()
                 / (x[..., k] + y[..., k] - x[..., k] * y[..., k]).sum() for k in range(3)]
    assert float(SoftIoULoss(per_class=True)(truth, logits)) == pytest.approx(
        np.mean(per_class), rel=1e-5)


@pytest.mark.parametrize("loss", [SoftIoULoss, DiceLoss])
def test_per_class_a_class_absent_from_the_truth_still_counts_under_softmax(loss):
    """The docstring's rule: with softmax scores every class has a union, so a class the truth
    lacks counts with ratio 0: a near-perfect prediction of 2 of 3 classes costs about 1/3."""
    truth = np.zeros((1, 4, 4), int)
    truth[:, :2] = 1  # classes 0 and 1; class 2 nowhere
    logits = 12.0 * (np.eye(3, dtype="float32")[truth] - 0.5)  # the argmax is right everywhere
    assert float(loss(per_class=True)(truth, logits)) == pytest.approx(1 / 3, abs=1e-3)
    # a class with no probability and no truth (one-hot scores) is left out of the mean
    hard = np.eye(3, dtype="float32")[truth]
    assert float(loss(per_class=True, from_logits=False)(truth, hard)) == pytest.approx(0.0,
                                                                                      abs=1e-5)


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


def test_unweighted_cross_entropy_is_keras_with_ignore_class(rng):
    truth = rng.integers(0, 4, (3, 6, 5))
    truth[rng.random(truth.shape) < 0.3] = 255
    truth[2] = 255  # one picture all but ignored: the mean is over pixels, not pictures
    truth[2, 0, 0] = 1
    logits = 3 * rng.normal(size=(3, 6, 5, 4)).astype("float32")
    keras_ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255)
    assert float(MaskedCrossEntropy()(truth, logits)) == pytest.approx(
        float(keras_ce(truth, logits)), rel=1e-6)


@pytest.mark.parametrize("loss", [MaskedCrossEntropy(), SoftIoULoss(), DiceLoss(),
                                  SoftIoULoss(per_class=True), FocalLoss(),
                                  FocalLoss(gamma=0.5, alpha=[0.2, 1.0, 3.0])])
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


# Bad input: refused eagerly with the values named, nan (never a plausible number) when compiled.

ALL_LOSSES = [MaskedCrossEntropy(), SoftIoULoss(), DiceLoss(), SoftIoULoss(per_class=True),
              DiceLoss(per_class=True), FocalLoss(alpha=0.25)]


@pytest.mark.parametrize("loss", ALL_LOSSES, ids=lambda loss: loss.name)
def test_labels_outside_the_classes_are_refused_eagerly_with_their_values(loss, rng):
    logits = rng.normal(size=(1, 2, 3, 3)).astype("float32")
    with pytest.raises(ValueError, match=r"y_true holds values \[7\] outside the 3 classes "
                                         r"\(0..2 or 255.* 1 pixel\. y_pred has 3 classes"):
        loss(np.array([[[0, 7, 1], [2, 255, 0]]]), logits)
    with pytest.raises(ValueError, match=r"values \[-1, 3\] outside .* in 2 pixels"):
        loss(tf.constant([[[0, -1, 1], [3, 255, 0]]]), logits)
    with pytest.raises(ValueError, match="fractional values such as 0.5.*nearest"):
        loss(np.array([[[0, 0.5, 1], [2, 1, 0]]]), logits)


@pytest.mark.parametrize("loss", ALL_LOSSES, ids=lambda loss: loss.name)
def test_shapes_that_do_not_fit_are_refused_naming_both(loss, rng):
    logits = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    with pytest.raises(ValueError, match=r"labels of shape \(2, 4, 5\) do not fit scores of "
                                         r"shape \(2, 4, 4, 3\).*\(2, 4, 4\)"):
        loss(np.zeros((2, 4, 5), int), logits)
    with pytest.raises(ValueError, match="one-hot, pass its argmax"):
        loss(np.eye(3)[rng.integers(0, 3, (2, 4, 4))], logits)
    with pytest.raises(ValueError, match="scores .*not labels"):
        loss(np.zeros((2, 4, 4, 3), int), np.zeros((2, 4, 4), "float32"))


@pytest.mark.parametrize("loss", ALL_LOSSES, ids=lambda loss: loss.name)
def test_labels_with_a_trailing_axis_of_one_give_the_same_loss(loss, rng):
    truth = rng.integers(0, 3, (2, 4, 4))
    truth[0, 0] = 255
    logits = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    assert float(loss(truth[..., None], logits)) == pytest.approx(float(loss(truth, logits)))


def test_one_class_weight_per_class():
    with pytest.raises(ValueError, match="2 class_weights for scores with 3 classes"):
        MaskedCrossEntropy(class_weights=[1.0, 2.0])(np.zeros((1, 2, 2), int),
                                                     np.zeros((1, 2, 2, 3), "float32"))


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
@pytest.mark.parametrize("loss", [SoftIoULoss(), DiceLoss(), DiceLoss(per_class=True)],
                         ids=lambda loss: loss.name)
def test_compiled_a_bad_label_makes_the_loss_nan_and_gives_no_gradient(loss, jit, rng):
    """Inside a graph nothing can be raised with values: the batch's loss is nan (the one-hot of
    an out-of-range label would silently be zeros: a plausible, wrong number)."""
    logits = tf.Variable(rng.normal(size=(1, 3, 3, 3)).astype("float32"))

    @tf.function(jit_compile=jit)
    def value_and_gradient(truth):
        with tf.GradientTape() as tape:
            value = loss(truth, logits)
        return value, tape.gradient(value, logits)

    good = np.array([[[0, 1, 2], [2, 255, 0], [1, 1, 0]]])
    value, _ = value_and_gradient(tf.constant(good))
    x, y = softmax(logits.numpy())[good != 255], np.eye(3)[good[good != 255]]
    if isinstance(loss, DiceLoss):
        per_class = 2 * (x * y).sum(0) / (x + y).sum(0)
        expected = 1 - (per_class.mean() if loss.per_class else
                        2 * (x * y).sum() / (x + y).sum())
    else:
        expected = 1 - (x * y).sum() / (x + y - x * y).sum()
    assert float(value) == pytest.approx(expected, rel=1e-5)
    for bad in ([[[0, 1, 2], [2, 5, 0], [1, 1, 0]]], [[[0, 1, 2], [2, -1, 0], [1, 1, 0]]],
                [[[0, 1, 2], [2, 0.5, 0], [1, 1, 0]]]):
        value, gradient = value_and_gradient(tf.constant(bad, "float32"))
        assert np.isnan(float(value))
        assert np.all(gradient.numpy() == 0)


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
def test_compiled_cross_entropy_is_nan_for_a_bad_label(jit, rng):
    """Out of range, TensorFlow's own kernel would raise without XLA and give nan with it;
    fractional labels a cast would silently truncate. Both ways: nan."""
    loss, logits = MaskedCrossEntropy(), rng.normal(size=(1, 2, 2, 3)).astype("float32")
    compiled = tf.function(lambda t: loss(t, logits), jit_compile=jit)
    for bad in ([[[0, 7], [1, 2]]], [[[0, -1], [1, 2]]], [[[0, 1.5], [1, 2]]]):
        assert np.isnan(float(compiled(tf.constant(bad))))
    good = np.array([[[0, 1], [255, 2]]])
    keep = good != 255
    expected = -np.log(softmax(logits)[keep, good[keep]]).mean()
    assert float(compiled(tf.constant(good))) == pytest.approx(expected, rel=1e-5)


def test_what_a_student_sees_in_fit(rng):
    images = rng.random((4, 4, 4, 3)).astype("float32")
    masks = rng.integers(0, 3, (4, 4, 4))
    masks[2, 1, 1] = 3  # a fourth class the model has no output for
    inp = keras.Input((4, 4, 3))
    model = keras.Model(inp, keras.layers.Conv2D(3, 1)(inp))
    model.compile("sgd", DiceLoss(), run_eagerly=True)
    with pytest.raises(ValueError, match=r"values \[3\] outside the 3 classes"):
        model.fit(images, masks, batch_size=4, verbose=0)
    model.compile("sgd", DiceLoss(), jit_compile=True)
    assert np.isnan(model.fit(images, masks, batch_size=4, verbose=0).history["loss"][0])
    masks[2, 1, 1] = 255
    assert np.isfinite(model.fit(images, masks, batch_size=4, verbose=0).history["loss"][0])


@pytest.mark.parametrize("loss", [MaskedCrossEntropy, SoftIoULoss, DiceLoss, FocalLoss])
def test_scores_that_do_not_match_from_logits_warn(loss, rng):
    """Probabilities given with from_logits=True (the default) are softmaxed twice: a plausible
    wrong loss, so an eager call warns; logits with from_logits=False likewise."""
    labels = rng.integers(0, 3, (2, 4, 4))
    logits = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    with pytest.warns(UserWarning, match="looks like probabilities.*from_logits=True"):
        loss()(labels, softmax(logits))
    with pytest.warns(UserWarning, match="from_logits=False but y_pred holds values outside"):
        loss(from_logits=False)(labels, logits)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss()(labels, logits)
        loss(from_logits=False)(labels, softmax(logits))


# The focal loss (Lin et al. 2017, eq. 5): FL(p_t) = −α_t (1 − p_t)^γ log p_t, mean over pixels.


def focal_reference(truth, probabilities, gamma, alpha_per_class=None, ignore=255,
                    weights=None):
    """Eq. 5 pixel by pixel, a plain loop; ``weights`` multiply each pixel's term (the
    denominator stays the labelled pixels' count)."""
    total, count = 0.0, 0
    for index in np.ndindex(truth.shape):
        label = truth[index]
        if label == ignore:
            continue
        p_t = probabilities[index][label]
        alpha_t = 1.0 if alpha_per_class is None else alpha_per_class[label]
        weight = 1.0 if weights is None else weights[index]
        total += -weight * alpha_t * (1 - p_t) ** gamma * np.log(p_t)
        count += 1
    return total / count


def test_focal_loss_of_one_pixel_by_hand():
    # Scores (0, ln 3): p = (1/4, 3/4). Truth 1: p_t = 3/4, FL = (1/4)^2 · ln(4/3) = 0.0179801;
    # truth 0: p_t = 1/4, FL = (3/4)^2 · ln 4 = 0.7797905.
    logits = np.array([[[[0.0, np.log(3.0)]]]], "float32")
    assert float(FocalLoss()(np.array([[[1]]]), logits)) == pytest.approx(0.0179801, rel=1e-5)
    assert float(FocalLoss()(np.array([[[0]]]), logits)) == pytest.approx(0.7797905, rel=1e-5)
    # The paper's α = 0.25 on the foreground class, 1 − α = 0.75 on the background.
    assert float(FocalLoss(alpha=0.25)(np.array([[[1]]]), logits)) == pytest.approx(
        0.25 * 0.0179801, rel=1e-5)
    assert float(FocalLoss(alpha=0.25)(np.array([[[0]]]), logits)) == pytest.approx(
        0.75 * 0.7797905, rel=1e-5)


def test_focal_loss_with_gamma_zero_is_the_cross_entropy(rng):
    truth = rng.integers(0, 4, (2, 5, 6))
    truth[rng.random(truth.shape) < 0.2] = 255
    logits = 3 * rng.normal(size=(2, 5, 6, 4)).astype("float32")
    assert float(FocalLoss(gamma=0)(truth, logits)) == float(MaskedCrossEntropy()(truth, logits))
    probabilities = softmax(logits)
    assert float(FocalLoss(gamma=0, from_logits=False)(truth, probabilities)) == float(
        MaskedCrossEntropy(from_logits=False)(truth, probabilities))
    # With class weights the two differ only in the normalization: Σ w_t / N.
    weights = np.array([0.5, 1.0, 2.0, 4.0])
    keep = truth != 255
    assert float(FocalLoss(gamma=0, alpha=weights)(truth, logits)) == pytest.approx(
        float(MaskedCrossEntropy(class_weights=weights)(truth, logits))
        * weights[truth[keep]].mean(), rel=1e-5)


@pytest.mark.parametrize("gamma", [0.5, 2.0, 5.0])
def test_focal_loss_against_numpy_and_keras(gamma, rng):
    truth = rng.integers(0, 3, (2, 6, 5))
    truth[rng.random(truth.shape) < 0.25] = 255
    logits = 2 * rng.normal(size=(2, 6, 5, 3)).astype("float32")
    probabilities = softmax(logits.astype("float64"))
    alpha = [0.3, 1.0, 2.5]
    expected = focal_reference(truth, probabilities, gamma, alpha)
    assert float(FocalLoss(gamma, alpha)(truth, logits)) == pytest.approx(expected, rel=1e-5)
    assert float(FocalLoss(gamma, 0.25)(truth, logits)) == pytest.approx(
        focal_reference(truth, probabilities, gamma, [0.75, 0.25, 0.25]), rel=1e-5)
    # Keras' own focal loss on the kept pixels, one-hot, the same per-class α.
    keep = truth != 255
    keras_focal = keras.losses.CategoricalFocalCrossentropy(alpha=alpha, gamma=gamma,
                                                            from_logits=True)
    assert float(keras_focal(np.eye(3)[truth[keep]], logits[keep])) == pytest.approx(
        expected, rel=1e-5)


def test_focal_loss_weighs_easy_pixels_down():
    """The paper's Fig. 1: with γ > 0 a well-classified pixel (p_t = 0.9) loses far more of its
    loss than a badly classified one (p_t = 0.1)."""
    def ratio(p_t):
        logits = np.log(np.array([[[[1 - p_t, p_t]]]], "float32"))
        truth = np.array([[[1]]])
        return float(FocalLoss(2.0)(truth, logits)) / float(MaskedCrossEntropy()(truth, logits))

    assert ratio(0.9) == pytest.approx(0.01, rel=1e-4)
    assert ratio(0.1) == pytest.approx(0.81, rel=1e-4)


def test_focal_loss_gradient_stays_finite_where_p_t_rounds_to_one():
    """(1 − p_t)^γ with γ < 1 has an infinite derivative at p_t = 1."""
    logits = tf.Variable(np.array([[[[40.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]], "float32"))
    for gamma in (0.0, 0.5, 2.0):
        with tf.GradientTape() as tape:
            value = FocalLoss(gamma)(np.array([[[0, 1]]]), logits)
        gradient = tape.gradient(value, logits).numpy()
        assert np.isfinite(float(value)) and np.all(np.isfinite(gradient))
        assert np.any(gradient[0, 0, 1] != 0)


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
def test_compiled_focal_loss_is_nan_for_a_bad_label(jit, rng):
    logits = tf.Variable(rng.normal(size=(1, 2, 2, 3)).astype("float32"))
    loss = FocalLoss(alpha=0.25)

    @tf.function(jit_compile=jit)
    def value_and_gradient(truth):
        with tf.GradientTape() as tape:
            value = loss(truth, logits)
        return value, tape.gradient(value, logits)

    good = np.array([[[0, 1], [255, 2]]])
    value, _ = value_and_gradient(tf.constant(good, "float32"))
    expected = focal_reference(good, softmax(logits.numpy()), 2.0, [0.75, 0.25, 0.25])
    assert float(value) == pytest.approx(expected, rel=1e-5)
    for bad in ([[[0, 7], [1, 2]]], [[[0, -1], [1, 2]]], [[[0, 1.5], [1, 2]]]):
        value, gradient = value_and_gradient(tf.constant(bad, "float32"))
        assert np.isnan(float(value)) and np.all(gradient.numpy() == 0)


def test_focal_loss_settings_are_checked():
    with pytest.raises(ValueError, match="gamma must be a finite number >= 0.*got -1.0"):
        FocalLoss(gamma=-1)
    with pytest.raises(ValueError, match=r"scalar alpha .* in \[0, 1\]; got 1.5"):
        FocalLoss(alpha=1.5)
    with pytest.raises(ValueError, match=r"finite, >= 0 and not all zero; got \[1.0, -2.0\]"):
        FocalLoss(alpha=[1.0, -2.0])
    for alpha in ("x", "25", {0: 1.0}):  # a string's digits or a dict's keys are no weights
        with pytest.raises(ValueError, match=r"or one weight per class; got"):
            FocalLoss(alpha=alpha)
    with pytest.raises(ValueError, match="2 alpha weights for scores with 3 classes"):
        FocalLoss(alpha=[1.0, 2.0])(np.zeros((1, 2, 2), int), np.zeros((1, 2, 2, 3), "float32"))


@pytest.mark.parametrize("alpha", [None, 0.25, [0.5, 1.0, 2.0]])
def test_focal_loss_round_trips_through_its_config(alpha, rng):
    truth = rng.integers(0, 3, (2, 4, 4))
    logits = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    loss = FocalLoss(gamma=1.5, alpha=alpha, ignore_index=7)
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, FocalLoss) and again.get_config() == loss.get_config()
    assert float(again(truth, logits)) == float(loss(truth, logits))


def test_a_model_compiled_with_focal_loss_saves_and_loads(tmp_path, rng):
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1)(inputs))
    model.compile("sgd", FocalLoss(gamma=1.0, alpha=[0.5, 1.0, 2.0]))
    images, masks = rng.random((2, 4, 4, 3), dtype="float32"), rng.integers(0, 3, (2, 4, 4))
    model.save(tmp_path / "focal.keras")
    loaded = keras.saving.load_model(tmp_path / "focal.keras")
    assert isinstance(loaded.loss, FocalLoss)
    assert loaded.loss.get_config() == model.loss.get_config()
    assert loaded.evaluate(images, masks, verbose=0) == pytest.approx(
        model.evaluate(images, masks, verbose=0), rel=1e-6)


# sample_weight: per pixel (N, H, W) / (N, H, W, 1) or per picture (N,), in the numerator only.
# Keras' Loss.__call__ would multiply the batch's scalar loss by the weights and average them
# (the loss only rescaled by the mean weight): these losses take the weights into their sums.


def cross_entropy_terms(truth, logits):
    """−log p_true per pixel (0 where ignored) and the labelled mask."""
    keep = truth != 255
    terms = np.zeros(truth.shape)
    terms[keep] = -np.log(softmax(logits.astype("float64"))[keep, truth[keep]])
    return terms, keep


def one_heavy_pixel():
    """The reviewer's case: all weights 1 but one pixel at 100."""
    truth = np.array([[[0, 1, 2, 0], [1, 2, 0, 1], [2, 0, 1, 2], [0, 1, 2, 0]],
                      [[2, 2, 1, 0], [0, 1, 1, 2], [1, 0, 2, 2], [2, 1, 0, 1]]])
    logits = np.linspace(-2, 2, 2 * 4 * 4 * 3, dtype="float32").reshape(2, 4, 4, 3)
    logits = np.sin(7 * logits) * 2  # deterministic, varied
    weights = np.ones((2, 4, 4), "float32")
    weights[0, 1, 2] = 100.0
    return truth, logits.astype("float32"), weights


def test_one_heavy_pixel_weighs_that_pixel_not_the_whole_batch():
    truth, logits, weights = one_heavy_pixel()
    terms, keep = cross_entropy_terms(truth, logits)
    plain = float(MaskedCrossEntropy()(truth, logits))
    weighted = float(MaskedCrossEntropy()(truth, logits, sample_weight=weights))
    expected = (weights * terms)[keep].sum() / keep.sum()  # Σ w·ℓ / labelled pixels
    assert weighted == pytest.approx(expected, rel=1e-6)
    assert plain == pytest.approx(terms[keep].mean(), rel=1e-6)
    # Not the old silent number: the plain loss times the batch's mean weight.
    assert weighted != pytest.approx(plain * weights.mean(), rel=1e-3)
    assert weighted != pytest.approx(plain, rel=1e-3)
    # The numbers: 1.13083 unweighted; 3.61753 weighted (Keras' sparse cross-entropy with
    # the same weights gives it too); the old scalar times mean(w) = 4.09375 was 4.62935.
    assert (plain, weighted, plain * weights.mean()) == pytest.approx(
        (1.1308339, 3.6175325, 4.6293510), rel=1e-5)
    keras_ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    assert float(keras_ce(truth, logits, sample_weight=weights)) == pytest.approx(weighted,
                                                                                  rel=1e-6)


def test_per_pixel_weights_with_ignore_and_class_weights_follow_the_formula(rng):
    """Σ w·c·ℓ·valid / Σ c·valid: the weights emphasise pixels, the denominator stays the
    class-weighted count of labelled pixels."""
    truth = rng.integers(0, 3, (2, 5, 6))
    truth[rng.random(truth.shape) < 0.25] = 255
    logits = 2 * rng.normal(size=(2, 5, 6, 3)).astype("float32")
    weights = rng.uniform(0, 5, truth.shape).astype("float32")
    class_weights = np.array([0.5, 1.0, 3.0])
    terms, keep = cross_entropy_terms(truth, logits)
    c = np.where(keep, class_weights[np.where(keep, truth, 0)], 0)
    expected = (weights * c * terms).sum() / c.sum()
    loss = MaskedCrossEntropy(class_weights=class_weights)
    assert float(loss(truth, logits, sample_weight=weights)) == pytest.approx(expected, rel=1e-5)


def test_per_pixel_weights_are_keras_sparse_categorical_crossentropy(rng):
    truth = rng.integers(0, 4, (3, 5, 6))
    logits = 3 * rng.normal(size=(3, 5, 6, 4)).astype("float32")
    weights = rng.uniform(0, 4, truth.shape).astype("float32")
    keras_ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    expected = float(keras_ce(truth, logits, sample_weight=weights))
    assert float(MaskedCrossEntropy()(truth, logits, sample_weight=weights)) == pytest.approx(
        expected, rel=1e-6)
    assert float(MaskedCrossEntropy()(truth, logits, sample_weight=weights[..., None])) == (
        pytest.approx(expected, rel=1e-6))


def test_with_ignore_class_keras_divides_by_the_labelled_pixels_as_we_do(rng):
    """Keras' ``ignore_class`` masks the losses and, with the default reduction, divides
    Σ w·ℓ by the number of labelled pixels (not by Σ w): our rule. Its
    ``reduction="mean_with_sample_weight"`` divides by Σ w instead, which we do not."""
    truth = rng.integers(0, 3, (2, 5, 6))
    truth[rng.random(truth.shape) < 0.3] = 255
    logits = 2 * rng.normal(size=(2, 5, 6, 3)).astype("float32")
    weights = rng.uniform(0.5, 4, truth.shape).astype("float32")
    terms, keep = cross_entropy_terms(truth, logits)
    ours = float(MaskedCrossEntropy()(truth, logits, sample_weight=weights))
    keras_ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255)
    assert float(keras_ce(truth, logits, sample_weight=weights)) == pytest.approx(ours, rel=1e-6)
    assert ours == pytest.approx((weights * terms)[keep].sum() / keep.sum(), rel=1e-5)
    try:
        by_weight = keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=255, reduction="mean_with_sample_weight")
    except ValueError:  # the reduction came after Keras 3.6 (CI's oldest pair)
        return
    assert float(by_weight(truth, logits, sample_weight=weights)) == pytest.approx(
        (weights * terms)[keep].sum() / weights[keep].sum(), rel=1e-5)
    assert ours != pytest.approx(float(by_weight(truth, logits, sample_weight=weights)),
                                 rel=1e-3)


def test_focal_loss_with_per_pixel_weights_against_a_loop(rng):
    truth = rng.integers(0, 3, (2, 5, 4))
    truth[rng.random(truth.shape) < 0.25] = 255
    logits = 2 * rng.normal(size=(2, 5, 4, 3)).astype("float32")
    weights = rng.uniform(0, 5, truth.shape).astype("float32")
    expected = focal_reference(truth, softmax(logits.astype("float64")), 2.0,
                               [0.75, 0.25, 0.25], weights=weights)
    assert float(FocalLoss(alpha=0.25)(truth, logits, sample_weight=weights)) == pytest.approx(
        expected, rel=1e-5)
    truth, logits, heavy = one_heavy_pixel()
    assert float(FocalLoss()(truth, logits, sample_weight=heavy)) == pytest.approx(
        focal_reference(truth, softmax(logits.astype("float64")), 2.0, [1.0] * 3,
                        weights=heavy), rel=1e-5)


WEIGHTED_LOSSES = [MaskedCrossEntropy(), MaskedCrossEntropy(class_weights=[0.5, 1.0, 2.0]),
                   FocalLoss(), FocalLoss(gamma=1.0, alpha=[0.2, 1.0, 3.0]),
                   CombinedLoss([MaskedCrossEntropy(), FocalLoss(alpha=0.25)], [1.0, 0.5])]


@pytest.mark.parametrize("loss", WEIGHTED_LOSSES, ids=lambda loss: loss.name)
def test_weights_of_ones_change_nothing_and_per_picture_weights_broadcast(loss, rng):
    truth = rng.integers(0, 3, (3, 4, 5))
    truth[rng.random(truth.shape) < 0.2] = 255
    logits = 2 * rng.normal(size=(3, 4, 5, 3)).astype("float32")
    plain = float(loss(truth, logits))
    assert float(loss(truth, logits, sample_weight=np.ones(truth.shape, "float32"))) == plain
    assert float(loss(truth, logits, sample_weight=np.ones(3, "float32"))) == plain
    per_picture = np.array([0.5, 2.0, 7.0], "float32")
    broadcast = np.broadcast_to(per_picture[:, None, None], truth.shape)
    value = float(loss(truth, logits, sample_weight=per_picture))
    assert value == pytest.approx(float(loss(truth, logits, sample_weight=broadcast)), rel=1e-6)
    assert value == pytest.approx(float(loss(truth, logits, sample_weight=broadcast[..., None])),
                                  rel=1e-6)
    assert value != pytest.approx(plain, rel=1e-3)


def test_a_combined_loss_passes_the_weights_to_each_part(rng):
    truth, logits, weights = one_heavy_pixel()
    parts = [MaskedCrossEntropy(), FocalLoss(alpha=0.25)]
    expected = (float(parts[0](truth, logits, sample_weight=weights))
                + 0.5 * float(parts[1](truth, logits, sample_weight=weights)))
    assert float(CombinedLoss(parts, [1.0, 0.5])(truth, logits, sample_weight=weights)) == (
        pytest.approx(expected, rel=1e-6))


@pytest.mark.parametrize("shape, match", [
    ((2, 4, 5), r"sample_weight of shape \(2, 4, 5\) does not fit; accepted are \(N,\) .*"
                r"\(2,\), \(2, 4, 4\) or \(2, 4, 4, 1\) .*other pictures, another size"),
    ((3,), r"shape \(3,\) does not fit.*\(2,\), \(2, 4, 4\)"),
    ((2, 16), r"shape \(2, 16\) does not fit"),
    ((), r"shape \(\) does not fit.*CombinedLoss or change the learning rate"),
    ((2, 4, 4, 3), r"shape \(2, 4, 4, 3\) does not fit.*class_weights=.*not in sample_weight"),
])
@pytest.mark.parametrize("loss", [MaskedCrossEntropy(), FocalLoss()], ids=lambda loss: loss.name)
def test_weights_of_another_shape_are_refused(loss, shape, match, rng):
    truth, logits = rng.integers(0, 3, (2, 4, 4)), np.zeros((2, 4, 4, 3), "float32")
    with pytest.raises(ValueError, match=match):
        loss(truth, logits, sample_weight=np.ones(shape, "float32"))


def test_negative_or_non_finite_weights_are_refused_eagerly(rng):
    truth, logits = rng.integers(0, 3, (1, 2, 2)), np.zeros((1, 2, 2, 3), "float32")
    for bad in (-1.0, np.nan, np.inf):
        weights = np.ones((1, 2, 2), "float32")
        weights[0, 1, 1] = bad
        with pytest.raises(ValueError, match=r"1 value\(s\) that are negative or not finite, "
                                             r"such as \[(-1.0|nan|inf)\].*finite number >= 0"):
            MaskedCrossEntropy()(truth, logits, sample_weight=weights)


@pytest.mark.parametrize("loss", [SoftIoULoss(), SoftIoULoss(per_class=True), DiceLoss(),
                                  DiceLoss(per_class=True)], ids=lambda loss: loss.name)
def test_soft_iou_and_dice_refuse_a_sample_weight(loss, rng):
    truth, logits = rng.integers(0, 3, (2, 4, 4)), np.zeros((2, 4, 4, 3), "float32")
    name = type(loss).__name__
    with pytest.raises(ValueError, match=rf"{name}: got a sample_weight \(shape \(2, 4, 4\)\).*"
                                         rf"ratio of sums over the whole batch.*"
                                         rf"{name}\(per_class=True\).*MaskedCrossEntropy or "
                                         rf"FocalLoss"):
        loss(truth, logits, sample_weight=np.ones((2, 4, 4), "float32"))
    with pytest.raises(ValueError, match=r"got a sample_weight \(shape \(2,\)\)"):
        loss(truth, logits, sample_weight=np.ones(2, "float32"))
    with pytest.raises(ValueError, match=rf"CombinedLoss, part 1 \({name}\): {name}: got a "
                                         r"sample_weight"):
        CombinedLoss([MaskedCrossEntropy(), loss])(truth, logits,
                                                   sample_weight=np.ones((2, 4, 4), "float32"))
    float(loss(truth, logits))  # without a weight, as before


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
@pytest.mark.parametrize("loss", [MaskedCrossEntropy(class_weights=[0.5, 1.0, 2.0]),
                                  FocalLoss(alpha=0.25)], ids=lambda loss: loss.name)
def test_compiled_weighted_losses_give_the_eager_numbers(loss, jit, rng):
    truth = rng.integers(0, 3, (2, 4, 4))
    truth[0, 0] = 255
    logits = tf.Variable(rng.normal(size=(2, 4, 4, 3)).astype("float32"))
    weights = rng.uniform(0, 5, truth.shape).astype("float32")

    @tf.function(jit_compile=jit)
    def value_and_gradient(truth, weights):
        with tf.GradientTape() as tape:
            value = loss(truth, logits, sample_weight=weights)
        return value, tape.gradient(value, logits)

    for w in (weights, weights[..., None], weights[:, 0, 0]):
        value, gradient = value_and_gradient(tf.constant(truth), tf.constant(w))
        assert float(value) == pytest.approx(float(loss(truth, logits.numpy(), sample_weight=w)),
                                             rel=1e-5)
        assert np.all(gradient.numpy()[0, 0] == 0) and np.all(np.isfinite(gradient.numpy()))
    # Sizes unknown until run time (a graph only): checked where known, applied all the same.
    spec = [tf.TensorSpec((None, None, None), tf.int64), tf.TensorSpec((None, None, None))]
    dynamic = tf.function(lambda t, w: loss(t, logits, sample_weight=w), input_signature=spec)
    assert float(dynamic(tf.constant(truth), tf.constant(weights))) == pytest.approx(
        float(loss(truth, logits.numpy(), sample_weight=weights)), rel=1e-5)


def test_fit_takes_the_per_pixel_weights_of_the_dataset(rng):
    """(x, y, w) batches: with one pixel weighted 10 and the rest 0, that pixel alone is the
    loss fit reports (learning rate 0, so the model is the one predict sees)."""
    images = rng.random((2, 4, 4, 3), dtype="float32")
    masks = rng.integers(0, 3, (2, 4, 4))
    masks[1, 3] = 255
    weights = np.zeros((2, 4, 4), "float32")
    weights[0, 2, 1] = 10.0
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1)(inputs))
    model.compile(keras.optimizers.SGD(0.0), MaskedCrossEntropy())
    terms, keep = cross_entropy_terms(masks, model.predict(images, verbose=0))
    data = tf.data.Dataset.from_tensor_slices((images, masks, weights)).batch(2)
    weighted = model.fit(data, shuffle=False, verbose=0).history["loss"][0]
    assert weighted == pytest.approx(10.0 * terms[0, 2, 1] / keep.sum(), rel=1e-5)
    unweighted = model.fit(data.map(lambda x, y, w: (x, y)), shuffle=False,
                           verbose=0).history["loss"][0]
    assert unweighted == pytest.approx(terms[keep].mean(), rel=1e-5)
    # fit's sample_weight, per picture then per pixel: the second retraces fit's step with the
    # weights' rank relaxed to unknown, and the weights still reach the loss.
    per_picture = np.array([0.0, 3.0], "float32")
    expected = 3.0 * terms[1][keep[1]].sum() / keep.sum()
    for w in (per_picture, np.broadcast_to(per_picture[:, None, None], masks.shape).copy()):
        history = model.fit(images, masks, sample_weight=w, batch_size=2, shuffle=False,
                            verbose=0).history
        assert history["loss"][0] == pytest.approx(expected, rel=1e-5)
    model.compile("sgd", DiceLoss())
    with pytest.raises(ValueError, match="DiceLoss: got a sample_weight"):
        model.fit(data, shuffle=False, verbose=0)


def test_weights_of_a_rank_unknown_until_run_time_are_applied_or_fail_there(rng):
    truth = rng.integers(0, 3, (2, 4, 4))
    logits = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    loss = FocalLoss(alpha=0.25)
    compiled = tf.function(lambda w: loss(truth, logits, sample_weight=w),
                           input_signature=[tf.TensorSpec(None)])
    weights = rng.uniform(0, 5, truth.shape).astype("float32")
    for w in (weights, weights[..., None], weights[:, 0, 0]):
        assert float(compiled(tf.constant(w))) == pytest.approx(
            float(loss(truth, logits, sample_weight=w)), rel=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError):
        compiled(tf.ones((2, 4, 5)))
