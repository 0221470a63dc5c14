"""The mask head (He et al. 2017, Fig. 4 right): shape and parameter count by hand, a loss that
only the ground-truth class's channel feels, and one batch it can learn."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from segcourse.models.mask_head import mask_head, mask_loss, select_class_masks


def test_paper_head_shape_and_parameters_by_hand():
    model = mask_head(num_classes=80)
    assert model.output_shape == (None, 28, 28, 80)
    conv3 = 3 * 3 * 256 * 256 + 256
    deconv = 2 * 2 * 256 * 256 + 256
    logits = 256 * 80 + 80
    assert model.count_params() == 4 * conv3 + deconv + logits  # 2,643,280
    assert model.get_layer("mask_probs").output.shape == (None, 28, 28, 80)


def test_small_head_runs_and_gives_probabilities(rng):
    model = mask_head(num_classes=3, roi_size=7, in_channels=8, filters=16, convs=2)
    probs = np.asarray(model(rng.random((5, 7, 7, 8)).astype("float32")))
    assert probs.shape == (5, 14, 14, 3)
    assert ((probs > 0) & (probs < 1)).all()


def test_the_loss_is_binary_cross_entropy_on_the_true_class_channel_only(rng):
    probs = rng.uniform(0.05, 0.95, (4, 6, 6, 3)).astype("float32")
    masks = (rng.random((4, 6, 6)) > 0.5).astype("float32")
    classes = np.array([2, 0, 1, 2])
    variable = tf.Variable(probs)
    with tf.GradientTape() as tape:
        loss = mask_loss(masks, classes, variable)
    gradient = tape.gradient(loss, variable).numpy()
    for n, k in enumerate(classes):
        others = [c for c in range(3) if c != k]
        assert (gradient[n, ..., others] == 0).all()  # no other class's mask contributes
        assert (gradient[n, ..., k] != 0).all()
    # the value, by the formula: mean of -(t log p + (1 - t) log(1 - p)) over RoIs and pixels
    chosen = probs[np.arange(4), :, :, classes]
    expected = -np.mean(masks * np.log(chosen) + (1 - masks) * np.log(1 - chosen))
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_select_class_masks_picks_each_rois_channel(rng):
    probs = rng.random((3, 4, 4, 5)).astype("float32")
    np.testing.assert_allclose(select_class_masks(probs, [4, 0, 2]),
                               probs[[0, 1, 2], :, :, [4, 0, 2]])


STEPS = 60


def test_one_batch_is_learned():
    # Four RoIs of three classes, each target a different rectangle: the head must give each
    # RoI's class channel its mask from the RoI's features.
    rng = np.random.default_rng(0)
    features = rng.normal(size=(4, 7, 7, 4)).astype("float32")
    masks = np.zeros((4, 14, 14), dtype="float32")
    for n, (top, left) in enumerate([(1, 1), (5, 2), (2, 7), (8, 6)]):
        masks[n, top:top + 5, left:left + 6] = 1
    classes = np.array([0, 1, 2, 1])
    model = mask_head(num_classes=3, roi_size=7, in_channels=4, filters=16, convs=2)
    optimizer = keras.optimizers.Adam(1e-2)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = mask_loss(masks, classes, model(features, training=True))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss

    first = float(step())
    for _ in range(STEPS):
        loss = step()
    predicted = np.asarray(select_class_masks(model(features), classes)) > 0.5
    assert float(loss) < 0.05 * first
    assert (predicted == masks.astype(bool)).mean() > 0.99


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="num_classes"):
        mask_head(num_classes=0)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        select_class_masks(np.zeros((2, 4, 4, 3), "float32"), [0, 3])
    with pytest.raises(ValueError, match="one \\(m, m\\) target per RoI"):
        mask_loss(np.zeros((2, 8, 8)), [0, 1], np.zeros((2, 4, 4, 3), "float32"))
