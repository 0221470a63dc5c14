"""Receptive fields against the reference facts (DESIGN §9) and a gradient probe."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from segcourse import models
from segcourse.analysis import receptive_field, receptive_fields
from segcourse.layers import ContextModule


def test_three_stacked_3x3_convolutions_see_7x7():
    inp = keras.Input((None, None, 1))
    x = inp
    for i in range(3):
        x = keras.layers.Conv2D(1, 3, padding="same", name=f"c{i}")(x)
    model = keras.Model(inp, x)
    assert [receptive_field(model, f"c{i}").size for i in range(3)] == [3, 5, 7]


def test_vgg16_conv5_3_is_196_and_pool5_is_212():
    vgg = keras.applications.VGG16(weights=None, include_top=False)
    fields = receptive_fields(vgg)
    assert fields["block5_conv3"].size == 196 and fields["block5_pool"].size == 212
    assert fields["block5_pool"].jump == 32


def test_yu_koltun_context_module_3_5_9_17_33_65_67():
    inp = keras.Input((None, None, 4))
    module = ContextModule()
    module(inp)  # builds the sub-layers
    x = inp
    for conv in module.convs:
        x = conv(x)
    fields = receptive_fields(keras.Model(inp, x))
    assert [fields[c.name].size for c in module.convs[:-1]] == [3, 5, 9, 17, 33, 65, 67]
    assert fields["ctx_final"].size == 67


def test_the_padded_unet_contracting_path():
    unet = models.build("unet", 2, (64, 64, 3), depth=2, base_filters=4)
    fields = receptive_fields(keras.Model(unet.input, unet.get_layer("bottom_relu2").output))
    assert fields["down1_relu2"].size == 5 and fields["down2_pool"].jump == 4
    # 3, 5 | pool 6 (jump 2) | 10, 14 | pool 16 (jump 4) | 24, 32
    assert fields["bottom_relu2"].size == 32


def test_branches_merge_by_the_union_of_their_fields():
    inp = keras.Input((None, None, 1))
    small = keras.layers.Conv2D(1, 3, padding="same", name="small")(inp)
    large = keras.layers.Conv2D(1, 3, padding="same", dilation_rate=3, name="large")(inp)
    model = keras.Model(inp, keras.layers.Add(name="sum")([small, large]))
    assert receptive_field(model, "sum").size == 7
    shifted = keras.layers.Conv2D(1, 3, strides=2, padding="same", name="strided")(inp)
    with pytest.raises(ValueError, match="same stride"):
        receptive_fields(keras.Model(inp, keras.layers.Add()([small, shifted])))


def test_the_field_bounds_what_a_gradient_probe_can_reach():
    inp = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(1, 3, padding="same", dilation_rate=2, name="a")(inp)
    x = keras.layers.MaxPooling2D(2, name="p")(x)
    x = keras.layers.Conv2D(1, 3, padding="same", name="b")(x)
    model = keras.Model(inp, x)
    for layer in (model.get_layer("a"), model.get_layer("b")):
        layer.kernel.assign(np.ones(layer.kernel.shape, "float32"))
    image = tf.Variable(np.random.default_rng(0).random((1, 64, 64, 1)).astype("float32"))
    with tf.GradientTape() as tape:
        unit = model(image)[0, 16, 16, 0]
    rows = np.nonzero(np.abs(tape.gradient(unit, image).numpy()[0, :, :, 0]).sum(axis=1))[0]
    field = receptive_field(model, "b")
    assert field.size == 5 + 1 + 2 * 2  # dilated 3x3 spans 5; pool adds 1; then 2 jumps of 2
    assert rows.max() - rows.min() + 1 <= field.size
    assert field.start + 16 * field.jump == pytest.approx((rows.min() + rows.max()) / 2, abs=1)


def test_unknown_layers_are_refused_by_name():
    model = models.build("deeplabv3", 2, (32, 32, 3), preset="cpu")
    with pytest.raises(ValueError, match="does not handle layer .*ASPP"):
        receptive_fields(model)


def test_padding_and_an_fcn_style_crop_shift_the_start_back():
    from segcourse.layers import CropToReference

    inp = keras.Input((16, 16, 1))
    padded = keras.layers.ZeroPadding2D(5, name="pad")(inp)
    conv = keras.layers.Conv2D(1, 3, name="conv")(padded)
    model = keras.Model(inp, CropToReference(4, name="crop")([conv, inp]))
    fields = receptive_fields(model)
    assert fields["pad"].start == -5 and fields["conv"].start == -4
    assert fields["crop"].start == 0 and fields["crop"].size == 3  # aligned with the input
