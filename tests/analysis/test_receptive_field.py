"""Receptive fields against the reference facts (docs/design.md §9) and a gradient probe."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from segcourse import models
from segcourse.analysis.receptive_field import (
    field_table,
    plot_receptive_fields,
    receptive_field,
    receptive_fields,
    unit_fields,
)
from segcourse.layers import BedOfNails, ContextModule, Resize


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
    with pytest.raises(ValueError, match="do not line up"):
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
    inp = keras.Input((8, 8, 1))
    # named: an automatic name is 'flatten_N' once another test has made a Flatten
    flat = keras.layers.Flatten(name="flatten")(inp)
    model = keras.Model(inp, keras.layers.Dense(2, name="dense")(flat))
    with pytest.raises(ValueError, match="'flatten' .*Flatten.* is not handled"):
        receptive_fields(model)


def _one_layer(layer, size=8):
    inp = keras.Input((size, size, 1), name="image")
    return keras.Model(inp, layer(inp))


def test_a_stride_2_transposed_convolution_alternates_one_and_two_inputs():
    # k = 3, s = 2: output u = 2 i + t reads i = ceil((u - 2) / 2) .. floor(u / 2) (unit -1,
    # like padding, lies outside the picture)
    model = _one_layer(keras.layers.Conv2DTranspose(1, 3, strides=2, name="up"))
    first, last = unit_fields(model, "up", np.arange(6))
    np.testing.assert_array_equal(first, [-1, 0, 0, 1, 1, 2])
    np.testing.assert_array_equal(last, [0, 0, 1, 1, 2, 2])
    field = receptive_field(model, "up")
    assert field.size == 2 and field.jump == 0.5
    # k = 4 = 2 s: every output reads exactly two inputs, no checkerboard in the field
    model = _one_layer(keras.layers.Conv2DTranspose(1, 4, strides=2, padding="same", name="up"))
    first, last = unit_fields(model, "up", np.arange(1, 7))
    assert set(last - first) == {1}


def test_resizing_reads_one_two_or_four_neighbours_and_clamps_at_the_edge():
    nearest = _one_layer(keras.layers.UpSampling2D(2, name="up"))
    np.testing.assert_array_equal(unit_fields(nearest, "up", [0, 1, 2, 3])[0], [0, 0, 1, 1])
    bilinear = _one_layer(Resize(2, interpolation="bilinear", name="up"))
    first, last = unit_fields(bilinear, "up", [0, 1, 2, 15])
    # samples at -0.25 (clamped to pixel 0), 0.25, 0.75, 7.25 (clamped to 7)
    np.testing.assert_array_equal(first, [0, 0, 0, 7])
    np.testing.assert_array_equal(last, [0, 1, 1, 7])
    bicubic = _one_layer(Resize(2, interpolation="bicubic", name="up"))
    assert receptive_field(bicubic, "up").size == 4
    to_size = _one_layer(Resize(size=(24, 24), interpolation="bilinear", name="up"))
    assert receptive_field(to_size, "up").jump == pytest.approx(1 / 3)


def test_bed_of_nails_leaves_the_other_units_without_a_field():
    model = _one_layer(BedOfNails(2, name="nails"))
    first, last = unit_fields(model, "nails", [0, 1, 2, 3])
    assert list(first <= last) == [True, False, True, False]


def test_global_context_is_the_whole_map():
    inp = keras.Input((16, 16, 1), name="image")
    x = keras.layers.Conv2D(1, 3, strides=2, padding="same", name="conv")(inp)
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name="gap")(x)
    model = keras.Model(inp, Resize(interpolation="bilinear", name="back")([pooled, x]))
    # 'same' with stride 2 pads one pixel after the 16: the 8 units cover pixels 0 .. 16
    np.testing.assert_array_equal(np.concatenate(unit_fields(model, "back", [3])), [0, 16])
    unknown = keras.Input((None, None, 1))
    model = keras.Model(unknown, keras.layers.GlobalMaxPooling2D(keepdims=True, name="g")(unknown))
    assert receptive_field(model, "g").whole_input


def test_fcn8s_crop_offsets_align_every_fused_map_with_the_picture():
    # reference offsets 5, 9, 31 (docs/design.md §9): the two maps summed at each fuse have the same
    # start, and the final score's unit i is centred on pixel i
    fields = receptive_fields(models.build("fcn8s", 21, (64, 64, 3), model_size="small"))
    assert fields["score_pool4c"].start == fields["upscore2"].start
    assert fields["score_pool3c"].start == fields["upscore_pool4"].start
    assert fields["score"].start == 0 and fields["score"].jump == 1
    assert fields["fc7"].size == 404 and fields["score"].size == 468


def test_composite_layers_deeplab_and_pspnet():
    fields = receptive_fields(models.build("deeplabv3", 2, (64, 64, 3), model_size="small"))
    assert math.isfinite(fields["aspp"].size) and fields["aspp"].size > 64  # the whole map
    pspnet = receptive_fields(models.build("pspnet", 2, (64, 64, 3), model_size="small"))
    assert pspnet["pyramid_pooling"].size > 64


def test_the_table_and_the_plot():
    model = models.build("unet", 2, (64, 64, 3), model_size="small", depth=2)
    table = field_table(model).splitlines()
    assert table[0].split() == ["layer", "type", "output", "field", "jump", "start"]
    assert table[-1].split()[:6] == ["score", "Conv2D", "64x64", "44", "1", "0"]
    figure = plot_receptive_fields(model)
    assert len(figure.axes[0].get_xticklabels()) > 10


def test_padding_and_an_fcn_style_crop_shift_the_start_back():
    from segcourse.layers import CropToReference

    inp = keras.Input((16, 16, 1))
    padded = keras.layers.ZeroPadding2D(5, name="pad")(inp)
    conv = keras.layers.Conv2D(1, 3, name="conv")(padded)
    model = keras.Model(inp, CropToReference(4, name="crop")([conv, inp]))
    fields = receptive_fields(model)
    assert fields["pad"].start == -5 and fields["conv"].start == -4
    assert fields["crop"].start == 0 and fields["crop"].size == 3  # aligned with the input


def test_sequential_models_and_refusals_of_nested_or_shared_layers():
    sequential = keras.Sequential([keras.Input((32, 32, 1)),
                                   keras.layers.Conv2D(1, 3, name="a"),
                                   keras.layers.MaxPooling2D(name="p"),
                                   keras.layers.Conv2D(1, 3, name="b")])
    assert receptive_field(sequential, "b").size == 3 + 1 + 2 * 2  # conv, pool, conv at jump 2
    inner = keras.Sequential([keras.Input((32, 32, 1)), keras.layers.Conv2D(1, 3)])
    inp = keras.Input((32, 32, 1))
    with pytest.raises(ValueError, match="nested model"):
        receptive_fields(keras.Model(inp, inner(inp)))
    shared = keras.layers.Conv2D(1, 3, padding="same", name="shared")
    with pytest.raises(ValueError, match="used 2 times"):
        receptive_fields(keras.Model(inp, shared(shared(inp))))


def test_area_resizing_reads_every_cell_it_overlaps():
    # TensorFlow has no gradient for area resizing, so this one is checked by hand:
    # 8 -> 12 (x1.5): output m covers [m / 1.5, (m + 1) / 1.5) of the input
    up = _one_layer(Resize(size=(12, 12), interpolation="area", name="up"))
    first, last = unit_fields(up, "up", [0, 1, 2, 3])
    np.testing.assert_array_equal(first, [0, 0, 1, 2])
    np.testing.assert_array_equal(last, [0, 1, 1, 2])
    down = _one_layer(Resize(size=(4, 4), interpolation="area", name="down"))
    first, last = unit_fields(down, "down", [0, 3])
    np.testing.assert_array_equal(first, [0, 6])
    np.testing.assert_array_equal(last, [1, 7])
