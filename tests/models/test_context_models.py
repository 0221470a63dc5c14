"""DeepLabV3 (+) and PSPNet: output stride, ASPP rates, pyramid bins, auxiliary head."""

import keras
import numpy as np
import pytest

from segcourse import models
from segcourse.models import backbones


@pytest.mark.parametrize("output_stride, rates", [(16, (6, 12, 18)), (8, (12, 24, 36))])
def test_deeplabv3_rates_double_at_output_stride_8(output_stride, rates):
    model = models.build("deeplabv3", 21, (64, 64, 3), output_stride=output_stride,
                         model_size="small")
    aspp = model.get_layer("aspp")
    assert aspp.rates == rates
    assert aspp.input.shape[1:3] == (64 // output_stride,) * 2
    assert model.output_shape == (None, 64, 64, 21)


def test_deeplabv3_full_size_has_256_channel_aspp_on_resnet50():
    model = models.build("deeplabv3", 21)
    assert model.get_layer("aspp").filters == 256
    assert model.get_layer("aspp").input.shape[-1] == 2048


def test_deeplabv3plus_decoder_fuses_stride_4_features():
    model = models.build("deeplabv3", 5, (64, 96, 3), decoder=True, model_size="small")
    assert model.get_layer("decoder_concat").output.shape[1:3] == (16, 24)
    assert model(np.zeros((2, 64, 96, 3), "float32")).shape == (2, 64, 96, 5)


def test_pspnet_pools_bins_1_2_3_6_at_output_stride_8_with_an_auxiliary_head():
    model = models.build("pspnet", 7, (64, 64, 3), aux_head=True, model_size="small")
    pyramid = model.get_layer("pyramid_pooling")
    assert pyramid.bins == (1, 2, 3, 6)
    assert pyramid.input.shape[1:3] == (8, 8)
    main, aux = model(np.zeros((1, 64, 64, 3), "float32"))
    assert main.shape == aux.shape == (1, 64, 64, 7)


@pytest.mark.parametrize("name, options, stride", [
    ("deeplabv3", {}, 16), ("deeplabv3", {"output_stride": 8}, 8),
    ("deeplabv3", {"decoder": True}, 32), ("pspnet", {}, 8)])
def test_sizes_the_output_stride_does_not_divide_are_refused(name, options, stride):
    with pytest.raises(ValueError, match=f"width {stride + 4} is not a multiple of its total "
                                         f"stride {stride}"):
        models.build(name, 3, (stride * 2, stride + 4, 3), **options)


def test_resnet50_imagenet_weights_are_copied_by_layer_name(monkeypatch):
    resnet = keras.applications.ResNet50(include_top=False, weights=None)  # the download's stand-in
    monkeypatch.setattr(backbones, "keras_application", lambda *args, **kwargs: resnet)
    model = models.build("deeplabv3", 21, weights="imagenet", output_stride=8)
    for name in ("conv1_conv", "conv4_block6_2_conv", "conv5_block3_3_bn"):
        for ours, theirs in zip(model.get_layer(name).get_weights(),
                                resnet.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(ours, theirs)


def test_realign_shifts_down_right_by_half_the_stride_difference_repeating_the_edge():
    from segcourse.models.deeplab import realign

    labels = np.arange(36).reshape(1, 6, 6)
    shifted = realign(labels, 8, 4)  # (8 - 4) / 2 = 2 pixels
    np.testing.assert_array_equal(shifted[0, 2:, 2:], labels[0, :4, :4])
    np.testing.assert_array_equal(shifted[0, :2, 2:], np.repeat(labels[0, :1, :4], 2, axis=0))
    np.testing.assert_array_equal(shifted[0, 0, 0], labels[0, 0, 0])
    np.testing.assert_array_equal(realign(labels, 16, 16), labels)
    with pytest.raises(ValueError, match="the larger, by an even number"):
        realign(labels, 8, 16)


def test_the_final_resize_puts_unit_i_at_s_i_plus_s_minus_1_over_2():
    """The fact realign rests on: a one-hot map unit upsampled by the builder's bilinear Resize
    peaks at pixel s * i + (s - 1) / 2 (half-pixel centres), between two pixels for even s."""
    from segcourse.layers import Resize

    for stride in (8, 16):
        units = np.zeros((1, 4, 4, 1), "float32")
        units[0, 1, 1] = 1.0
        up = np.asarray(Resize(stride, interpolation="bilinear")(units))[0, :, :, 0]
        peak_rows = np.flatnonzero(up.max(axis=1) == up.max())
        assert peak_rows.mean() == stride * 1 + (stride - 1) / 2


def test_at_output_stride_runs_the_trained_weights_with_doubled_dilations():
    """Trained at 16, run at 8: the same weights, ASPP's rates doubled, and on the positions the
    two maps share (every other unit of the stride-8 map) the very same backbone features."""
    from segcourse.models.deeplab import at_output_stride

    keras.utils.set_random_seed(3)
    trained = models.build("deeplabv3", 2, (64, 64, 3), model_size="small")
    copy = at_output_stride(trained, 8, model_size="small")
    assert copy.get_layer("aspp").rates == (12, 24, 36)
    for ours, theirs in zip(copy.get_weights(), trained.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    pictures = np.random.default_rng(0).random((2, 64, 64, 3)).astype("float32")
    features = [np.asarray(keras.Model(net.input, net.get_layer("aspp").input)(pictures))
                for net in (trained, copy)]
    assert features[1].shape[1:3] == (8, 8)
    np.testing.assert_allclose(features[1][:, ::2, ::2], features[0], atol=1e-5)
    anywhere = at_output_stride(trained, 16, (None, None, 3), model_size="small")
    np.testing.assert_allclose(anywhere(pictures), trained(pictures), atol=1e-5)
    assert anywhere(np.zeros((1, 96, 32, 3), "float32")).shape == (1, 96, 32, 2)


def test_at_output_stride_refuses_other_options_and_other_models():
    from segcourse.models.deeplab import at_output_stride

    plus = models.build("deeplabv3", 2, (64, 64, 3), model_size="small", decoder=True)
    with pytest.raises(ValueError, match="built with other options"):
        at_output_stride(plus, 8, model_size="small")  # the decoder left out
    with pytest.raises(ValueError, match="built with other options"):
        at_output_stride(plus, 8, decoder=True)  # full width
    assert at_output_stride(plus, 8, model_size="small", decoder=True).name == "deeplabv3plus"
    with pytest.raises(ValueError, match="takes a DeepLabV3 built by segcourse.models"):
        at_output_stride(models.build("unet", 2, (32, 32, 3), model_size="small"), 8)
