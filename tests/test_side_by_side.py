"""segcourse.side_by_side against second implementations: Keras' own ``train_on_batch`` for the
training step, ``keras.metrics.MeanIoU`` and a hand count for the scores."""

import keras
import numpy as np
import pytest

from segcourse.losses import MaskedCrossEntropy
from segcourse.metrics import boundary_band
from segcourse.side_by_side import (
    score_labels,
    score_side_by_side,
    show_side_by_side,
    train_side_by_side,
)
from segcourse.viz import colorize


def _tiny(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    hidden = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    # batch norm with the labs' faster moving statistics: its training-mode step is compared too
    hidden = keras.layers.BatchNormalization(momentum=0.9)(hidden)
    hidden = keras.layers.Activation("relu")(hidden)
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1)(hidden))
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=MaskedCrossEntropy())
    return model


def _batches(count, rng):
    return [(rng.random((4, 8, 8, 3), np.float32), rng.integers(0, 3, (4, 8, 8)))
            for _ in range(count)]


def test_each_network_takes_the_steps_keras_would_take_alone(rng):
    batches = _batches(5, rng)
    batches[2][1][0, :2] = 255  # ignored pixels in one batch
    first, second, alone = _tiny(0), _tiny(1), _tiny(0)
    steps = train_side_by_side({"a": first, "b": second}, batches, MaskedCrossEntropy(),
                               progress=False)
    for images, masks in batches:
        alone.train_on_batch(images, masks)
    assert steps == 5
    assert int(first.optimizer.iterations) == int(second.optimizer.iterations) == 5
    for found, expected in zip(first.get_weights(), alone.get_weights(), strict=True):
        np.testing.assert_allclose(found, expected, rtol=1e-5, atol=1e-6)
    # the second network started elsewhere and moved: it was trained, not copied
    assert not np.allclose(second.get_weights()[0], first.get_weights()[0])


def _labels_as_logits(num_classes):
    # a "network" whose logits are its input: its labels are the argmax of the picture
    inputs = keras.Input((None, None, num_classes))
    return keras.Model(inputs, keras.layers.Identity()(inputs))


def test_scores_are_the_dataset_level_ones_whole_and_in_the_band(rng):
    # 2 x 2 blocks of 6 x 6 pixels: flat regions, so the band is only part of the picture
    truth = np.kron(rng.integers(0, 3, (6, 2, 2)), np.ones((6, 6), np.int64))
    truth[0, 0, 0] = 255
    found = np.where(rng.random(truth.shape) < 0.8, truth, rng.integers(0, 3, truth.shape))
    found[truth == 255] = 1
    logits = np.eye(3, dtype=np.float32)[found]
    batches = [(logits[:4], truth[:4]), (logits[4:], truth[4:])]
    result = score_side_by_side({"net": _labels_as_logits(3)}, batches, 3)["net"]

    def mean_iou(where):
        metric = keras.metrics.MeanIoU(3)
        kept = where & (truth != 255)
        metric.update_state(truth[kept], found[kept])
        return float(metric.result())

    band = boundary_band(truth, 2)
    assert 0.1 < band.mean() < 0.9
    assert result.miou == pytest.approx(mean_iou(np.ones(truth.shape, bool)), abs=1e-6)
    assert result.band_miou == pytest.approx(mean_iou(band), abs=1e-6)
    assert result.whole.confusion.sum() == (truth != 255).sum()


def test_refusals_say_what_to_do():
    with pytest.raises(ValueError, match="dict of name -> Keras model"):
        score_side_by_side({}, [], 2)
    uncompiled = _labels_as_logits(2)
    with pytest.raises(ValueError, match="'plain' has no optimizer; compile it first"):
        train_side_by_side({"plain": uncompiled}, [], MaskedCrossEntropy())


def test_the_figure_has_a_row_per_picture_and_a_column_per_network(rng):
    import matplotlib

    matplotlib.use("Agg")
    truth = rng.integers(0, 3, (5, 8, 8))
    logits = np.eye(3, dtype=np.float32)[truth]
    figure = show_side_by_side(logits, truth, {"a": _labels_as_logits(3),
                                               "b": _labels_as_logits(3)}, rows=3)
    assert len(figure.axes) == 3 * 4
    assert [ax.get_title() for ax in figure.axes[:4]] == ["picture", "truth", "a", "b"]
    # prepare feeds the networks, not the picture column: reversed channels flip the labels
    flipped = show_side_by_side(logits, truth, {"a": _labels_as_logits(3)}, rows=1,
                                prepare=lambda x: x[..., ::-1])
    shown = flipped.axes[2].images[0].get_array()
    np.testing.assert_array_equal(shown, colorize(2 - truth[0]))
    np.testing.assert_array_equal(flipped.axes[0].images[0].get_array(), logits[0])
    # the red overlay marks exactly the wrong pixels, ignored ones (255) never
    marked_truth = truth[:1].copy()
    marked_truth[0, 0, :4] = 255
    one = show_side_by_side(logits[:1], marked_truth, {"a": _labels_as_logits(3)}, rows=1,
                            prepare=lambda x: x[..., ::-1])
    overlay = np.asarray(one.axes[2].images[1].get_array())
    wrong = (2 - truth[0] != marked_truth[0]) & (marked_truth[0] != 255)
    np.testing.assert_array_equal(overlay[..., 3], 0.8 * wrong)
    np.testing.assert_array_equal(overlay[..., 0], wrong.astype(float))


def test_each_network_can_minimise_its_own_loss(rng):
    from segcourse.losses import SoftIoULoss

    batches = _batches(3, rng)
    by_cross_entropy, by_soft_iou = _tiny(0), _tiny(0)
    alone = _tiny(0)
    alone.compile(optimizer=keras.optimizers.Adam(1e-2), loss=SoftIoULoss(per_class=True))
    train_side_by_side({"ce": by_cross_entropy, "iou": by_soft_iou}, batches,
                       {"ce": MaskedCrossEntropy(), "iou": SoftIoULoss(per_class=True)},
                       progress=False)
    for images, masks in batches:
        alone.train_on_batch(images, masks)
    for found, expected in zip(by_soft_iou.get_weights(), alone.get_weights(), strict=True):
        np.testing.assert_allclose(found, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(by_cross_entropy.get_weights()[0], by_soft_iou.get_weights()[0])
    with pytest.raises(ValueError, match=r"networks \['ce', 'iou'\], losses \['ce'\]"):
        train_side_by_side({"ce": by_cross_entropy, "iou": by_soft_iou}, batches,
                           {"ce": MaskedCrossEntropy()}, progress=False)


class _ColumnFourToClassZero(keras.layers.Layer):
    """Adds 10 to class 0's logit in column 4 of an 8 x 8 picture: those pixels become class 0."""

    def call(self, logits):
        shift = np.zeros((1, 8, 8, 2), np.float32)
        shift[:, :, 4, 0] = 10.0
        return logits + shift


def test_two_networks_scored_at_once_on_a_band_counted_by_hand():
    # one 8 x 8 picture: class 0 in columns 0-3, class 1 in columns 4-7. Width 2: the pixels
    # within 2 of the change, columns 2-5 (32 pixels)
    truth = np.zeros((1, 8, 8), np.int64)
    truth[..., 4:] = 1
    inputs = keras.Input((8, 8, 2))
    one_column_off = keras.Model(inputs, _ColumnFourToClassZero()(inputs))
    found = score_side_by_side({"right": _labels_as_logits(2), "off": one_column_off},
                               [(np.eye(2, dtype=np.float32)[truth], truth)], 2)
    assert found["right"].miou == found["right"].band_miou == 1.0
    # column 4 called class 0, 8 pixels wrong, all in the band. Whole picture: class 0's IoU
    # 32 / 40, class 1's 24 / 32; in the band: 16 / 24 and 8 / 16
    assert found["off"].miou == pytest.approx((32 / 40 + 24 / 32) / 2)
    assert found["off"].band_miou == pytest.approx((16 / 24 + 8 / 16) / 2)
    assert found["off"].band.confusion.sum() == 32
    # the same from the label maps themselves
    labels = truth.copy()
    labels[..., 4] = 0
    at_hand = score_labels(truth, labels, 2)
    assert (at_hand.miou, at_hand.band_miou) == (found["off"].miou, found["off"].band_miou)
    # a function from pictures to labels competes as a network does: the same scores
    as_function = score_side_by_side({"off": lambda images: labels},
                                     [(np.eye(2, dtype=np.float32)[truth], truth)], 2)["off"]
    assert (as_function.miou, as_function.band_miou) == (at_hand.miou, at_hand.band_miou)
    with pytest.raises(ValueError, match="contender 'x' is a str; pass a Keras network or a "
                                         "function"):
        score_side_by_side({"x": "unet"}, [(np.eye(2, dtype=np.float32)[truth], truth)], 2)


def test_what_is_passed_is_named_when_it_is_not_batches_of_pairs(rng):
    images, masks = _batches(1, rng)[0]
    with pytest.raises(ValueError, match=r"one \(images, masks\) pair; got ndarray of shape "
                                         r"\(4, 8, 8, 3\)\. Pass an iterable of pairs"):
        train_side_by_side({"a": _tiny(0)}, (images, masks), MaskedCrossEntropy(),
                           progress=False)
    with pytest.raises(ValueError, match="one \\(images, masks\\) pair"):
        score_side_by_side({"a": _tiny(0)}, (images, masks), 3)
    inputs = keras.Input((8, 8, 3))
    two_heads = keras.Model(inputs, [keras.layers.Conv2D(3, 1)(inputs),
                                     keras.layers.Conv2D(3, 1)(inputs)])
    two_heads.compile(optimizer="adam")
    with pytest.raises(ValueError, match="'aux' has 2 outputs"):
        train_side_by_side({"aux": two_heads}, [(images, masks)], MaskedCrossEntropy())


def test_contenders_are_built_as_if_each_were_trained_alone():
    from segcourse.graph import sublayers
    from segcourse.side_by_side import build_side_by_side

    built = build_side_by_side({"a": ("plain", {"depth": 2, "filters": 4}),
                                "b": ("plain", {"depth": 2, "filters": 4}),
                                "deeper": ("plain", {"depth": 3, "filters": 4})},
                               3, (16, 16, 3), 3e-3, steps=10, batch_norm_momentum=0.9)
    for found, expected in zip(built["a"].get_weights(), built["b"].get_weights(), strict=True):
        np.testing.assert_array_equal(found, expected)  # one architecture, one seed: one start
    # the same first layer as a model built alone under seed 0
    keras.utils.set_random_seed(0)
    from segcourse import models

    alone = models.build("plain", 3, (16, 16, 3), depth=3, filters=4)
    np.testing.assert_array_equal(built["deeper"].get_layer("conv1").get_weights()[0],
                                  alone.get_layer("conv1").get_weights()[0])
    assert built["a"].optimizer is not built["b"].optimizer
    assert float(built["a"].optimizer.learning_rate) == pytest.approx(3e-3)
    norms = [layer for model in built.values() for layer in model.layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 7 and all(layer.momentum == 0.9 for layer in norms)
    # batch norms nested in a layer (ASPP's six, inside its blocks) get the momentum too
    nested = build_side_by_side({"d": ("deeplabv3", {"model_size": "small"})}, 2, (32, 32, 3),
                                3e-3, steps=10, batch_norm_momentum=0.9)["d"]
    aspp_norms = [layer for layer in sublayers(nested.get_layer("aspp"))
                  if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(aspp_norms) == 6 and all(layer.momentum == 0.9 for layer in aspp_norms)
    with pytest.raises(ValueError, match="architectures is a dict of name -> "):
        build_side_by_side([("unet", {})], 2, (16, 16, 3), 3e-3, 10)
