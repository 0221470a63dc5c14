"""Per-layer summaries: the VGG16 walk-through (docs/design.md §9) and MACs checked against the
convolution matrix."""

import keras
import numpy as np
import pytest

from segcourse import models
from segcourse.analysis.arithmetic import conv_matrix
from segcourse.analysis.summary import plot_summary, summarize
from segcourse.layers import ASPP

# VGG16 configuration D: (block, convs, channels) at 224, 112, 56, 28, 14
VGG_BLOCKS = [(1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512)]


@pytest.fixture(scope="module")
def vgg():
    return summarize(keras.applications.VGG16(weights=None))


def test_vgg16_parameters_layer_by_layer(vgg):
    channels, size = 3, 224
    for block, convs, width in VGG_BLOCKS:
        for i in range(1, convs + 1):
            row = vgg.row(f"block{block}_conv{i}")
            assert row.params == (9 * channels + 1) * width  # 3x3 kernels plus a bias
            assert row.output_shape == (size, size, width)
            channels = width
        size //= 2
    assert vgg.row("block1_conv1").params == 1_792 and vgg.row("block5_conv3").params == 2_359_808
    assert vgg.row("fc1").params == (7 * 7 * 512 + 1) * 4096 == 102_764_544
    assert vgg.params == 138_357_544


def test_vgg16_activations_exactly_and_the_slides_rounding(vgg):
    expected, size = 224 * 224 * 3, 224  # the input picture
    for _, convs, width in VGG_BLOCKS:
        expected += convs * size * size * width + (size // 2) ** 2 * width  # convs, then pool
        size //= 2
    expected += 4096 + 4096 + 1000
    assert vgg.activations == expected == 15_237_608
    assert vgg.activation_bytes == 60_950_432  # 61 MB at float32 ...
    assert vgg.activations < 24_000_000  # ... where the lecture's rounded "24M x 4 bytes ~ 96MB"
    # overstates by half; the memory sits early: block 1 alone holds 7.2M of the 15.2M
    early = sum(vgg.row(n).activations for n in ("block1_conv1", "block1_conv2", "block1_pool"))
    assert early == 7_225_344


def test_vgg16_multiply_accumulates(vgg):
    assert vgg.row("block1_conv1").macs == 224 * 224 * 64 * 3 * 9
    assert vgg.row("fc1").macs == 25_088 * 4096
    assert vgg.macs == 15_470_264_320  # the familiar "15.5 G" of VGG16
    assert "15.47 G multiply-accumulates" in str(vgg)


@pytest.mark.parametrize("transposed", [False, True])
def test_macs_are_the_nonzeros_of_the_convolution_matrix_times_the_channels(transposed, rng):
    cin, cout, k, s, n = 3, 5, 3, 2, 9
    layer_type = keras.layers.Conv2DTranspose if transposed else keras.layers.Conv2D
    inputs = keras.Input((n, n, cin))
    model = keras.Model(inputs, layer_type(cout, k, s, name="conv")(inputs))
    out = model.outputs[0].shape[1]
    # X maps the larger map to the smaller one; its non-zeros are the tap multiplications
    matrix = conv_matrix(rng.random((k, k)) + 1, out if transposed else n, s)
    assert summarize(model).row("conv").macs == np.count_nonzero(matrix) * cin * cout


def test_composite_layers_are_counted_and_unknown_ones_say_so():
    inputs = keras.Input((8, 8, 4))
    aspp = keras.Model(inputs, ASPP(16, rates=(2, 3), name="aspp")(inputs))
    per_pixel = 4 * 16 + 2 * 9 * 4 * 16 + 4 * 16 * 16  # 1x1, two 3x3 branches, fuse of 4x16
    assert summarize(aspp).row("aspp").macs == 64 * per_pixel + 4 * 16  # + pooled 1x1 branch

    class Opaque(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1],))

        def call(self, x):
            return x * self.w

    assert summarize(keras.Model(inputs, Opaque(name="opaque")(inputs))).row("opaque").macs is None


def test_a_model_from_the_zoo_and_the_plot():
    summary = summarize(models.build("unet", 3, (64, 64, 3), model_size="small"))
    assert summary.params == models.build("unet", 3, (64, 64, 3), model_size="small").count_params()
    assert summary.table().splitlines()[-1].startswith("total")
    figure = plot_summary(summary)
    assert len(figure.axes) == 2
    # parameters on a log axis: a layer without any (pooling, concatenation) gets no bar, it
    # used to get one of height 1, drawn as if it had a parameter; a "0" marks its place
    rows = [r for r in summary.rows if r.kind != "InputLayer"]
    bottom = figure.axes[1]
    assert sorted(bar.get_height() for bar in bottom.patches) == sorted(
        r.params for r in rows if r.params)
    zeros = [text for text in bottom.texts if text.get_text() == "0"]
    assert len(zeros) == sum(1 for r in rows if not r.params) > 0


def test_unknown_sizes_are_refused():
    inputs = keras.Input((None, None, 3))
    with pytest.raises(ValueError, match="fixed input size"):
        summarize(keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs)))
