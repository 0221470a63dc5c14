"""DeconvNet (Noh, Hong & Han, ICCV 2015) against its configuration table, written out here.

Every expected number is computed from TABLE below (the paper's layer list: kernel, channels in
and out, output side for a 224 × 224 proposal) or by hand, never taken from the model.
"""

import keras
import numpy as np
import pytest

from segcourse import models
from segcourse.analysis import receptive_field, summarize
from segcourse.layers import MaxPoolingWithArgmax2D, MaxUnpooling2D
from tests.models.helpers import non_trainable_count, trainable_count

# The paper's network configuration: (layer, kernel, C_in, C_out, output side at 224 × 224).
# The paper's deconv5-1 is block5_deconv1 here, its deconv-fc6 fc6_deconv.
TABLE = [
    ("block1_conv1", 3, 3, 64, 224), ("block1_conv2", 3, 64, 64, 224),
    ("block2_conv1", 3, 64, 128, 112), ("block2_conv2", 3, 128, 128, 112),
    ("block3_conv1", 3, 128, 256, 56), ("block3_conv2", 3, 256, 256, 56),
    ("block3_conv3", 3, 256, 256, 56),
    ("block4_conv1", 3, 256, 512, 28), ("block4_conv2", 3, 512, 512, 28),
    ("block4_conv3", 3, 512, 512, 28),
    ("block5_conv1", 3, 512, 512, 14), ("block5_conv2", 3, 512, 512, 14),
    ("block5_conv3", 3, 512, 512, 14),
    ("fc6", 7, 512, 4096, 1), ("fc7", 1, 4096, 4096, 1),
    ("fc6_deconv", 7, 4096, 512, 7),
    ("block5_deconv1", 3, 512, 512, 14), ("block5_deconv2", 3, 512, 512, 14),
    ("block5_deconv3", 3, 512, 512, 14),
    ("block4_deconv1", 3, 512, 512, 28), ("block4_deconv2", 3, 512, 512, 28),
    ("block4_deconv3", 3, 512, 256, 28),
    ("block3_deconv1", 3, 256, 256, 56), ("block3_deconv2", 3, 256, 256, 56),
    ("block3_deconv3", 3, 256, 128, 56),
    ("block2_deconv1", 3, 128, 128, 112), ("block2_deconv2", 3, 128, 64, 112),
    ("block1_deconv1", 3, 64, 64, 224), ("block1_deconv2", 3, 64, 64, 224),
]
SCORE = ("score", 1, 64, 21, 224)  # 1×1 to the 21 VOC classes, with a bias, no batch norm
UNPOOLED = {5: 14, 4: 28, 3: 56, 2: 112, 1: 224}  # unpool5 ... unpool1: output side


def formula_counts(width=1.0, fc_kernel=7, classes=21):
    """(reference count, trainable, batch-norm statistics) from TABLE.

    reference: k² C_in C_out + C_out (bias) per layer, no batch norm: the Caffe net's
    convolutions, what the paper's "252M" counts. trainable: k² C_in C_out + 2 C_out (batch
    norm's γ, β; no bias, which batch norm's shift makes redundant) per layer, and the score's
    weights and bias. statistics: 2 C_out (moving mean and variance) per layer."""
    def c(channels):
        return channels if channels == 3 else max(1, round(channels * width))
    reference = trainable = statistics = 0
    for name, k, c_in, c_out, _ in TABLE:
        k = fc_kernel if name in ("fc6", "fc6_deconv") else k
        weights = k * k * c(c_in) * c(c_out)
        reference += weights + c(c_out)
        trainable += weights + 2 * c(c_out)
        statistics += 2 * c(c_out)
    score = c(SCORE[2]) * classes + classes
    return reference + score, trainable + score, statistics


@pytest.fixture(scope="module")
def paper():
    return models.build("deconvnet", 21, (224, 224, 3))


@pytest.fixture(scope="module")
def small():
    return models.build("deconvnet", 21, (64, 64, 3), model_size="small")


def test_the_paper_size_has_the_parameters_of_its_table_about_252_million(paper):
    reference, trainable, statistics = formula_counts()
    assert (reference, trainable, statistics) == (251_772_245, 251_788_949, 33_408)
    assert round(reference / 1e6) == 252  # the paper's "252M": weights and biases, no BN
    assert trainable_count(paper) == trainable
    assert non_trainable_count(paper) == statistics
    # fc6 and fc6_deconv, 7 × 7 × 512 × 4096 weights each, hold four fifths of it.
    assert sum(int(np.prod(paper.get_layer(name).kernel.shape))
               for name in ("fc6", "fc6_deconv")) == 2 * 7 * 7 * 512 * 4096


def test_the_small_size_is_the_same_table_at_an_eighth_of_the_width(small, paper):
    _, trainable, statistics = formula_counts(width=1 / 8, fc_kernel=1)
    assert (trainable, statistics) == (792_485, 4_176)
    assert trainable_count(small) == trainable and non_trainable_count(small) == statistics
    assert [layer.name for layer in small.layers] == [layer.name for layer in paper.layers]


def test_the_layers_are_the_table_in_order_each_with_batch_norm_and_relu(paper):
    weighted = [layer for layer in paper.layers
                if isinstance(layer, keras.layers.Conv2D | keras.layers.Conv2DTranspose)]
    assert [layer.name for layer in weighted] == [row[0] for row in TABLE] + ["score"]
    names = [layer.name for layer in paper.layers]
    for (name, k, _, c_out, side), layer in zip(TABLE, weighted[:-1], strict=True):
        transposed = "deconv" in name
        assert isinstance(layer, keras.layers.Conv2DTranspose) == transposed, name
        assert layer.kernel_size == (k, k) and layer.strides == (1, 1), name
        if k != 1:  # fc6 and fc6_deconv valid (7 × 7 <-> 1 × 1), 3×3 padded by 1
            assert layer.padding == {7: "valid", 3: "same"}[k], name
        assert not layer.use_bias, name
        assert layer.output.shape == (None, side, side, c_out), name
        at = names.index(name)
        assert names[at + 1:at + 3] == [f"{name}_bn", f"{name}_relu"], name
        assert isinstance(paper.layers[at + 1], keras.layers.BatchNormalization), name
    score = paper.get_layer("score")
    assert score.kernel_size == (1, 1) and score.use_bias
    assert paper.output.shape == (None, 224, 224, 21)
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in paper.layers)
    for block, side in UNPOOLED.items():
        assert paper.get_layer(f"block{block}_unpool").output.shape[1:3] == (side, side)


def test_each_unpooling_uses_the_indices_of_its_own_pooling(small):
    for block in range(1, 6):
        pool = small.get_layer(f"block{block}_pool")
        unpool = small.get_layer(f"block{block}_unpool")
        assert isinstance(pool, MaxPoolingWithArgmax2D) and isinstance(unpool, MaxUnpooling2D)
        assert unpool.input[1] is pool.output[1]


def first_max_mask(x):
    """NumPy: True at the first (row-major) maximum of every 2×2 window of (B, H, W, C)."""
    b, h, w, c = x.shape
    windows = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4)
    first = windows.reshape(b, h // 2, w // 2, c, 4).argmax(-1)  # argmax: first of ties
    mask = np.zeros((b, h // 2, w // 2, c, 4), bool)
    np.put_along_axis(mask, first[..., None], True, axis=-1)
    return mask.reshape(b, h // 2, w // 2, c, 2, 2).transpose(0, 1, 4, 2, 5, 3).reshape(x.shape)


def test_unpooling_puts_each_maximum_back_where_the_pooling_found_it(small, rng):
    image = rng.normal(0, 50, (2, 64, 64, 3)).astype("float32")
    taps = keras.Model(small.input, [small.get_layer("block1_conv2_relu").output])
    features = np.asarray(taps(image, training=False))
    pooled, indices = small.get_layer("block1_pool")(features)
    restored = np.asarray(small.get_layer("block1_unpool")([pooled, indices]))
    mask = first_max_mask(features)
    np.testing.assert_array_equal(restored, np.where(mask, features, 0))


def test_in_the_model_each_unpooled_map_is_zero_off_its_poolings_maxima(small, rng):
    image = rng.normal(0, 50, (2, 64, 64, 3)).astype("float32")
    convs = {5: 3, 4: 3, 3: 3, 2: 2, 1: 2}  # the last convolution of each block
    taps = keras.Model(small.input, {
        **{f"in{b}": small.get_layer(f"block{b}_conv{n}_relu").output for b, n in convs.items()},
        **{f"out{b}": small.get_layer(f"block{b}_unpool").output for b in convs}})
    values = {k: np.asarray(v) for k, v in taps(image, training=False).items()}
    for block in convs:
        off = ~first_max_mask(values[f"in{block}"])
        assert not values[f"out{block}"][off].any(), block
        assert values[f"out{block}"].any(), block  # a check that can fail


@pytest.mark.parametrize("size", [(224, 224), (256, 288)])
def test_the_output_has_the_input_size_from_224_up(size, rng):
    # The small size with the paper's 7×7 fc6: the sizes the paper size takes, cheaply.
    model = models.build("deconvnet", 5, (None, None, 3), model_size="small", fc_kernel=7)
    x = rng.random((1, *size, 3)).astype("float32")
    assert model(x).shape == (1, *size, 5)
    assert models.build("deconvnet", 5, (*size, 3), model_size="small",
                        fc_kernel=7).get_layer("fc6").output.shape[1:3] == (
        size[0] // 32 - 6, size[1] // 32 - 6)  # 7 × 7 pool5 -> 1 × 1; larger: a window


@pytest.mark.parametrize("config, message", [
    ({"input_shape": (192, 224, 3)}, "input height 192 is too small: fc6 is a valid 7×7 "
     "convolution on pool5 .* at least 32 × 7 = 224 .* Resize the images to 224, or give "
     "fc_kernel=6"),
    ({"input_shape": (224, 250, 3)}, "deconvnet: input width 250 is not a multiple of its "
     "total stride 32; the nearest valid sizes are 224 or 256"),
    ({"input_shape": (64, 48, 3), "model_size": "small"}, "input width 48 is not a multiple"),
    ({"input_shape": (16, 64, 3), "model_size": "small"}, "input height 16 is too small: fc6 "
     "is a valid 1×1 .* Resize the images to 32\\.$"),
    ({"input_shape": (64, 64, 3), "fc_kernel": 3}, "input height 64 is too small: fc6 is a "
     "valid 3×3 .* at least 32 × 3 = 96 .* give fc_kernel=2"),
    ({"fc_kernel": 0}, "fc_kernel is fc6's kernel size.* at least 1; got 0"),
    ({"fc_kernel": 2.5}, "option fc_kernel takes a whole number; got 2.5"),
])
def test_wrong_sizes_are_refused_before_anything_is_built(config, message):
    with pytest.raises(ValueError, match=message):
        models.check("deconvnet", 21, **config)


def test_fields_and_macs_are_the_hand_computed_ones(paper):
    # pool5 sees 212 pixels (VGG16, docs/design.md §9); a 7×7 kernel at a jump of 32 adds 6·32.
    cheap = models.build("deconvnet", 3, (224, 224, 3), model_size="small", fc_kernel=7)
    assert receptive_field(cheap, "block5_pool").size == 212
    assert receptive_field(cheap, "fc6").size == 212 + 6 * 32
    assert receptive_field(cheap, "fc6_deconv").size == 212 + 12 * 32
    # MACs: output pixels × k² C_in C_out for a convolution; input pixels for a transposed one
    # (each input paints the kernel): fc6_deconv paints its 1 × 1 input, the rest keep the size.
    macs = sum((1 if name == "fc6_deconv" else side * side) * k * k * c_in * c_out
               for name, k, c_in, c_out, side in [*TABLE, SCORE])
    assert macs == 32_745_979_904
    assert summarize(paper).macs == macs
