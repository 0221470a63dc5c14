"""PSP pyramid pooling against numpy adaptive pooling and tf.image.resize."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from segcourse.layers import IdentityKernel, PyramidPooling
from segcourse.layers.pyramid import adaptive_average_pool


def numpy_adaptive_average(x, bins):
    """PSPNet's / PyTorch's adaptive bins: [floor(i*H/b), ceil((i+1)*H/b))."""
    _, h, w, _ = x.shape
    rows = [(i * h // bins, -(-(i + 1) * h // bins)) for i in range(bins)]
    cols = [(j * w // bins, -(-(j + 1) * w // bins)) for j in range(bins)]
    return np.stack([np.stack([x[:, r0:r1, c0:c1].mean(axis=(1, 2)) for c0, c1 in cols], 1)
                     for r0, r1 in rows], 1)


@pytest.mark.parametrize("size", [(12, 12), (7, 10)])
def test_each_branch_is_pooled_then_upsampled(size, rng):
    x = rng.random((2, *size, 4), dtype="float32")
    layer = PyramidPooling(bins=(1, 2, 3, 6), filters=4, batch_norm=False)
    layer.build(x.shape)
    for conv in layer.convs:  # identity 1x1 convolutions expose the pooled maps
        conv.conv.kernel.assign(IdentityKernel()((1, 1, 4, 4)))
        conv.conv.bias.assign(np.zeros(4, "float32"))
    out = layer(x).numpy()
    assert out.shape == (2, *size, 4 + 4 * 4)
    np.testing.assert_allclose(out[..., :4], x)
    for k, bins in enumerate((1, 2, 3, 6)):
        expected = tf.image.resize(numpy_adaptive_average(x, bins), size).numpy()
        np.testing.assert_allclose(out[..., 4 * (k + 1):4 * (k + 2)], expected, atol=1e-5)


def test_default_filters_are_a_quarter_of_the_channels_and_sizes_may_be_unknown(rng):
    inp = keras.Input((None, None, 16))
    model = keras.Model(inp, PyramidPooling()(inp))
    assert model.output_shape == (None, None, None, 32)
    assert model(rng.random((1, 13, 9, 16), dtype="float32")).shape == (1, 13, 9, 32)


@pytest.mark.parametrize("size, bins", [((8, 8), 1), ((8, 8), 6), ((7, 10), 3), ((5, 13), 6)])
def test_adaptive_pooling_matches_numpy_also_in_a_compiled_graph(size, bins, rng):
    x = rng.random((2, *size, 3)).astype("float32")
    expected = numpy_adaptive_average(x, bins)
    np.testing.assert_allclose(adaptive_average_pool(x, bins), expected, rtol=1e-5)
    graph = tf.function(lambda t: adaptive_average_pool(t, bins), jit_compile=True,
                        input_signature=[tf.TensorSpec((None, None, None, 3))])
    np.testing.assert_allclose(graph(x), expected, rtol=1e-5)
