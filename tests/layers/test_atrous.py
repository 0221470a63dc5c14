"""Atrous block, ASPP and the context module against formulas and the papers' tables."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from segcourse.layers import ASPP, AtrousConvBlock, ContextModule, IdentityKernel
from segcourse.layers.atrous import taps_on_the_map


def gradient_support(model, size):
    """Width of the input region that reaches the centre output (1 channel summed)."""
    x = tf.Variable(np.ones((1, size, size, model.input_shape[-1]), "float32"))
    with tf.GradientTape() as tape:
        y = model(x)
        centre = tf.reduce_sum(y[0, size // 2, size // 2])
    rows = np.nonzero(np.abs(tape.gradient(centre, x).numpy()).sum(axis=(0, 2, 3)))[0]
    return rows.max() - rows.min() + 1


@pytest.mark.parametrize("rate", [1, 2, 3, 6])
def test_atrous_block_receptive_field_is_rate_times_two_plus_one(rate):
    inp = keras.Input((None, None, 1))
    block = AtrousConvBlock(1, 3, dilation_rate=rate, batch_norm=False, activation=None)
    model = keras.Model(inp, block(inp))
    block.conv.kernel.assign(np.ones((3, 3, 1, 1), "float32"))
    assert gradient_support(model, 41) == 2 * rate + 1


def test_atrous_block_is_dilated_conv_then_batch_norm(rng):
    x = rng.random((2, 9, 9, 3), dtype="float32")
    block = AtrousConvBlock(4, 3, dilation_rate=2)
    out = block(x, training=False)
    expected = tf.nn.relu(block.norm(tf.nn.conv2d(x, block.conv.kernel, 1, "SAME", dilations=2),
                                     training=False))
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert block.conv.bias is None  # batch norm's offset replaces the bias


def test_aspp_has_the_papers_branches_and_parameter_count():
    cin, f = 32, 16
    aspp = ASPP(filters=f, rates=(6, 12, 18))
    out = aspp(np.zeros((2, 11, 13, cin), "float32"))
    assert out.shape == (2, 11, 13, f)
    names = [b.name for b in aspp.branches]
    assert names == ["aspp_1x1", "aspp_rate6", "aspp_rate12", "aspp_rate18"]
    assert [b.conv.dilation_rate for b in aspp.branches[1:]] == [(6, 6), (12, 12), (18, 18)]
    convs = cin * f * (1 + 9 * 3 + 1) + 5 * f * f  # 1x1, three 3x3, image pooling, fusion
    batch_norms = 6 * 2 * f  # gamma and beta per block
    trainable = sum(int(np.prod(w.shape)) for w in aspp.trainable_weights)
    assert trainable == convs + batch_norms


def test_aspp_image_pooling_branch_sees_the_whole_image(rng):
    x = rng.random((1, 8, 8, 4), dtype="float32")
    aspp = ASPP(filters=4, rates=(2,))
    aspp(x)
    for branch in aspp.branches:  # silence the local branches: only image pooling remains
        branch.conv.kernel.assign(np.zeros(branch.conv.kernel.shape))
    y = aspp(x, training=False).numpy()
    x2 = x.copy()
    x2[0, 0, 0] += 5.0  # a far-away pixel changes the global average, so every output
    y2 = aspp(x2, training=False).numpy()
    assert np.ptp(y, axis=(1, 2)).max() < 1e-6  # spatially constant
    assert not np.allclose(y[0, 7, 7], y2[0, 7, 7])


def test_context_module_starts_as_the_identity(rng):
    x = rng.random((1, 20, 20, 6), dtype="float32")  # non-negative, as after a ReLU
    module = ContextModule()
    np.testing.assert_allclose(module(x), x, atol=1e-6)
    assert [c.dilation_rate[0] for c in module.convs[:-1]] == [1, 1, 2, 4, 8, 16, 1]
    assert module.convs[-1].kernel_size == (1, 1)


def test_context_module_receptive_fields_follow_table_1():
    inp = keras.Input((None, None, 1))
    module = ContextModule(identity_init=False)
    keras.Model(inp, module(inp))
    for conv in module.convs:
        conv.kernel.assign(np.ones(conv.kernel.shape, "float32"))  # every path counts
        conv.bias.assign(np.zeros(conv.bias.shape, "float32"))
    fields = []
    for depth in range(1, 8):
        partial = keras.Sequential([inp, *module.convs[:depth]])
        fields.append(gradient_support(partial, 151))
    assert fields == [3, 5, 9, 17, 33, 65, 67]


def test_identity_kernel_rejects_shapes_it_cannot_fill():
    with pytest.raises(ValueError, match="odd"):
        IdentityKernel()((2, 2, 3, 3))
    with pytest.raises(ValueError, match="as many output as"):
        IdentityKernel()((3, 3, 3, 4))


@pytest.mark.parametrize("kernel_size, rate, length, expected", [
    (3, 18, 4, slice(1, 2)),   # ASPP's rate 18 on a 4×4 map: the centre alone
    (3, 4, 4, slice(1, 2)),    # a tap 4 pixels away from every pixel of a 4-pixel map
    (3, 3, 4, slice(0, 3)),    # 3 pixels away: the corner pixels still reach each other
    (5, 2, 4, slice(1, 4)),    # offsets 0, ±2 land, ±4 never do
    (3, 18, None, slice(0, 3)),  # unknown size: keep every tap
])
def test_taps_on_the_map_by_hand(kernel_size, rate, length, expected):
    assert taps_on_the_map(kernel_size, rate, length) == expected


@settings(max_examples=25, deadline=None)
@given(height=st.integers(1, 10), width=st.integers(1, 10), rate=st.integers(1, 14),
       kernel_size=st.sampled_from([1, 3, 5]), bias=st.booleans())
def test_the_block_equals_the_full_dilated_convolution_and_its_gradient(height, width, rate,
                                                                        kernel_size, bias):
    """Whatever taps it skips, the block's output and kernel gradient are those of
    tf.nn.conv2d with every tap (the padding they read is zero)."""
    rng = np.random.default_rng(height * 1000 + width * 10 + rate)
    x = tf.constant(rng.normal(size=(2, height, width, 3)), "float32")
    block = AtrousConvBlock(4, kernel_size, dilation_rate=rate, batch_norm=not bias,
                            activation=None)
    block.build(x.shape)
    block.conv.kernel.assign(rng.normal(size=block.conv.kernel.shape))
    with tf.GradientTape(persistent=True) as tape:
        ours = block(x, training=False)
        full = tf.nn.conv2d(x, block.conv.kernel, 1, "SAME", dilations=rate)
        full = block.norm(full, training=False) if block.norm else full + block.conv.bias
        ours_loss, full_loss = tf.reduce_sum(ours ** 2), tf.reduce_sum(full ** 2)
    np.testing.assert_allclose(ours, full, rtol=1e-5, atol=1e-4)
    ours_grad = tape.gradient(ours_loss, block.conv.kernel)
    full_grad = tape.gradient(full_loss, block.conv.kernel)
    np.testing.assert_allclose(ours_grad, full_grad, rtol=1e-4, atol=1e-3)


def test_aspp_on_a_small_map_convolves_with_the_centre_taps_alone():
    """Rates 6, 12, 18 on a 4×4 map: the traced graph holds no dilated convolution."""
    aspp = ASPP(filters=4, rates=(6, 12, 18))
    aspp.build((2, 4, 4, 8))
    graph = tf.function(lambda x: aspp(x, training=False)).get_concrete_function(
        tf.TensorSpec((2, 4, 4, 8))).graph
    ops_used = {op.type for op in graph.get_operations()}
    assert "SpaceToBatchND" not in ops_used
    dilated = [op for op in graph.get_operations() if op.type == "Conv2D"
               and max(op.get_attr("dilations")) > 1]
    assert dilated == []
