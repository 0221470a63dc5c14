"""FCN against the reference Caffe nets: parameters, layers, crops, bilinear upsampling."""

import keras
import numpy as np
import pytest

from segcourse import models
from segcourse.layers import bilinear_kernel
from segcourse.models import fcn as fcn_module
from tests.models.helpers import conv_params, non_trainable_count, trainable_count

VGG16_CONVS = 14_714_688
FC6_FC7 = conv_params(7, 512, 4096) + conv_params(1, 4096, 4096)


def test_fcn8s_has_the_reference_parameter_count():
    model = models.build("fcn8s", 21)
    assert trainable_count(model) == 134_362_751
    assert non_trainable_count(model) == 127_008  # upscore2, upscore_pool4, upscore8: fixed
    assert model.count_params() == 134_489_759


@pytest.mark.parametrize("name, skips, upsampling", [
    ("fcn32s", 0, [64]), ("fcn16s", 1, [4, 32])])
def test_fcn32s_and_16s_parameter_counts_follow_the_formula(name, skips, upsampling):
    model = models.build(name, 21)
    scorers = conv_params(1, 4096, 21) + [0, conv_params(1, 512, 21)][skips]
    assert trainable_count(model) == VGG16_CONVS + FC6_FC7 + scorers
    assert non_trainable_count(model) == sum(k * k * 21 * 21 for k in upsampling)


@pytest.mark.parametrize("name, crops", [
    ("fcn32s", {"score": 19}), ("fcn16s", {"score_pool4c": 5, "score": 27}),
    ("fcn8s", {"score_pool4c": 5, "score_pool3c": 9, "score": 31})])
def test_reference_layers_crops_and_transposed_convolutions(name, crops):
    model = models.build(name, 21, model_size="small")
    assert model.get_layer("conv1_1_pad").padding == ((100, 100), (100, 100))
    assert {n: model.get_layer(n).offset for n in crops} == crops
    stride = int(name[3:-1])
    final = model.get_layer("upscore" if stride == 32 else f"upscore{stride}")
    assert (final.kernel_size, final.strides) == ((2 * stride,) * 2, (stride,) * 2)
    assert not final.trainable
    np.testing.assert_allclose(final.kernel.numpy()[:, :, 3, 3], bilinear_kernel(2 * stride))
    for up in ("upscore2", "upscore_pool4")[: {32: 0, 16: 1, 8: 2}[stride]]:
        assert model.get_layer(up).kernel_size == (4, 4) and model.get_layer(up).strides == (2, 2)
    assert model.get_layer("fc6").kernel_size == (7, 7)


@pytest.mark.parametrize("name", ["fcn32s", "fcn16s", "fcn8s"])
@pytest.mark.parametrize("size", [(32, 32), (75, 50), (224, 160)])
def test_reference_alignment_gives_back_the_input_size(name, size):
    model = models.build(name, 3, model_size="small")
    assert model(np.zeros((1, *size, 3), "float32")).shape == (1, *size, 3)


def test_same_alignment_needs_a_multiple_of_32_and_has_no_crops():
    model = models.build("fcn8s", 4, (64, 96, 3), alignment="same", model_size="small")
    assert model.output_shape == (None, 64, 96, 4)
    assert not any("crop" in type(layer).__name__.lower() for layer in model.layers)
    with pytest.raises(ValueError, match="height 100 is not a multiple of its total stride 32; "
                                         "the nearest valid sizes are 96 or 128"):
        models.build("fcn8s", 4, (100, 96, 3), alignment="same")


def test_options_learnable_upsampling_and_at_once_pool_scaling():
    model = models.build("fcn8s", 5, learnable_upsampling=True, scale_pools=True,
                         model_size="small")
    assert all(model.get_layer(n).trainable for n in ("upscore2", "upscore_pool4", "upscore8"))
    assert model.get_layer("scale_pool4").scale == 0.01
    assert model.get_layer("scale_pool3").scale == 0.0001


def test_imagenet_weights_fill_the_convolutions_and_fc6_fc7(monkeypatch):
    vgg = keras.applications.VGG16(weights=None)  # stands in for the ImageNet download
    monkeypatch.setattr(fcn_module, "keras_application", lambda *args, **kwargs: vgg)
    model = models.build("fcn32s", 21, weights="imagenet")
    np.testing.assert_array_equal(model.get_layer("block3_conv2").kernel,
                                  vgg.get_layer("block3_conv2").kernel)
    np.testing.assert_array_equal(model.get_layer("fc6").kernel.numpy().reshape(-1, 4096),
                                  vgg.get_layer("fc1").kernel)
    np.testing.assert_array_equal(model.get_layer("fc7").bias, vgg.get_layer("fc2").bias)
