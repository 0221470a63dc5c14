"""Convolution arithmetic against the slides' hand-written examples and against Keras itself."""

import keras
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from segcourse.analysis.arithmetic import (
    check_output_shape,
    conv_matrix,
    conv_output_length,
    plot_conv_matrix,
    same_padding,
    symbolic_convolution,
    symbolic_transposed_convolution,
    transposed_output_length,
)
from tests.analysis.tf_support import dilated_transposed_supported


def _zero_output_padding_accepted() -> bool:
    """Keras 3.11 and later accept an output_padding of 0; earlier ones want every entry > 0."""
    try:
        keras.layers.Conv2DTranspose(1, 2, strides=2, output_padding=0)
    except ValueError:
        return False
    return True


ZERO_OUTPUT_PADDING = _zero_output_padding_accepted()

# --- the slides' 1-D examples -------------------------------------------------------------


def test_stride_1_padding_1_written_out():
    assert symbolic_convolution("xyz", "abcd", stride=1, padding=1) == [
        "ay + bz", "ax + by + cz", "bx + cy + dz", "cx + dy"]


def test_stride_2_padding_1_and_its_transpose():
    assert symbolic_convolution("xyz", "abcd", stride=2, padding=1) == ["ay + bz", "bx + cy + dz"]
    assert symbolic_transposed_convolution("xyz", "ab", stride=2, padding=1, length=4) == [
        "ax", "ay", "az + bx", "by", "bz", "0"]


def test_the_matrix_over_the_padded_input_is_the_slides_picture():
    x, y, z = 2.0, 3.0, 5.0
    matrix = conv_matrix([x, y, z], 4, stride=2, padding=1, include_padding=True)
    np.testing.assert_array_equal(matrix, [[x, y, z, 0, 0, 0], [0, 0, x, y, z, 0]])
    # dropping the padding columns leaves the matrix that acts on (a, b, c, d) itself
    np.testing.assert_array_equal(conv_matrix([x, y, z], 4, 2, 1), matrix[:, 1:5])


def test_a_transposed_convolution_spreads_each_input_over_the_kernel():
    # a transposed conv of stride s places a scaled copy of the kernel every s outputs
    matrix = conv_matrix([1.0, 2.0, 3.0, 4.0], 6, stride=2)
    np.testing.assert_array_equal(matrix.T @ np.array([1.0, 0.0]), [1, 2, 3, 4, 0, 0])
    np.testing.assert_array_equal(matrix.T @ np.array([0.0, 1.0]), [0, 0, 1, 2, 3, 4])


# --- output-size formulas -----------------------------------------------------------------


def test_textbook_sizes():
    assert conv_output_length(572, 3) == 570  # U-Net's first valid conv
    assert conv_output_length(224, 3, padding="same") == 224
    assert conv_output_length(224, 2, stride=2) == 112  # VGG pooling
    assert conv_output_length(224, 7, stride=2, padding=3) == 112  # ResNet stem
    assert conv_output_length(65, 3, padding="same", dilation=6) == 65
    assert conv_output_length(5, 7) == 0  # the kernel does not fit
    assert same_padding(10, 4, 2) == (1, 1) and same_padding(11, 4, 2) == (1, 2)
    assert transposed_output_length(7, 3, 2) == 15
    assert transposed_output_length(7, 3, 2, "same") == 14
    assert transposed_output_length(7, 1, 2) == 14  # (n - 1) s + max(k, s)
    assert transposed_output_length(7, 3, 2, "same", output_padding=1) == 14


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 20), k=st.integers(1, 5), s=st.integers(1, 4), d=st.integers(1, 3),
       padding=st.sampled_from(["valid", "same"]), kind=st.sampled_from(["conv", "pool"]))
def test_formulas_match_keras_convolutions_and_pooling(n, k, s, d, padding, kind):
    assume(s == 1 or d == 1)  # TensorFlow refuses strided dilated convolutions
    if kind == "conv":
        assume(padding == "same" or n >= d * (k - 1) + 1)
        layer = keras.layers.Conv2D(2, (k, 1), strides=(s, 1), dilation_rate=(d, 1),
                                    padding=padding)
    else:
        assume(padding == "same" or n >= k)
        layer = keras.layers.MaxPooling2D((k, 1), strides=(s, 1), padding=padding)
    check = check_output_shape(layer, (1, n, 3, 1))
    assert check.ok, str(check)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 12), k=st.integers(1, 5), s=st.integers(1, 4), d=st.integers(1, 2),
       padding=st.sampled_from(["valid", "same"]), output_padding=st.one_of(
           st.none(), st.integers(0, 3)))
def test_formulas_match_keras_transposed_convolutions(n, k, s, d, padding, output_padding):
    assume(s == 1 or d == 1)
    assume(d == 1 or dilated_transposed_supported())  # see tests/analysis/tf_support.py
    assume(output_padding is None or output_padding < s)  # Keras' own rule
    # Keras accepts an output_padding whose length the forward convolution does not map back to
    # n (e.g. 'same', k 2, s 1, output_padding 0); TensorFlow then fails at run time. Only
    # lengths that are consistent are a transposed convolution at all.
    length = transposed_output_length(n, k, s, padding, output_padding, d)
    assume(length >= 1 and conv_output_length(length, k, s, padding, d) == n)
    width_stride = 2 if d == 1 else 1
    # the width axis only fills the 2-D layer; its output_padding (when there is one) is the
    # largest its stride allows, so that it is > 0 where the stride lets it be
    paddings = None if output_padding is None else (output_padding, width_stride - 1)
    assume(paddings is None or min(paddings) > 0 or ZERO_OUTPUT_PADDING)
    layer = keras.layers.Conv2DTranspose(
        2, (k, 3), strides=(s, width_stride), dilation_rate=(d, 1), padding=padding,
        output_padding=paddings)
    check = check_output_shape(layer, (1, n, 4, 1))
    assert check.ok, str(check)


def test_keras_accepts_an_output_padding_tensorflow_cannot_compute():
    # (1 - 1) + 2 - 2 * 1 + 0 = 0 outputs for one input: no convolution maps 0 samples to 1
    assert transposed_output_length(1, 2, 1, "same", output_padding=0) == 0
    assert conv_output_length(0, 2, 1, "same") != 1


def test_depthwise_and_1d_layers():
    assert check_output_shape(keras.layers.DepthwiseConv2D(3, 2, depth_multiplier=3),
                              (2, 9, 9, 4)).actual == (2, 4, 4, 12)
    assert check_output_shape(keras.layers.Conv1DTranspose(5, 4, 2), (1, 6, 2)).ok


def test_other_layers_are_refused():
    with pytest.raises(ValueError, match="not a convolution or pooling layer"):
        check_output_shape(keras.layers.Dense(3), (1, 4, 4, 2))


# --- the matrix against Keras --------------------------------------------------------------


def _set_kernel(layer, kernel, example_input):
    layer(example_input)
    layer.kernel.assign(kernel.reshape(layer.kernel.shape))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(3, 12), k=st.integers(1, 4), s=st.integers(1, 3),
       padding=st.sampled_from(["valid", "same"]), seed=st.integers(0, 2**16))
def test_conv1d_and_its_transpose_are_x_and_x_transposed(n, k, s, padding, seed):
    assume(n >= k)
    rng = np.random.default_rng(seed)
    kernel = rng.normal(size=k).astype("float32")
    a = rng.normal(size=(1, n, 1)).astype("float32")
    conv = keras.layers.Conv1D(1, k, strides=s, padding=padding, use_bias=False)
    _set_kernel(conv, kernel, a)
    matrix = conv_matrix(kernel, n, s, padding)
    np.testing.assert_allclose(np.asarray(conv(a))[0, :, 0], matrix @ a[0, :, 0], atol=1e-5)

    # the transposed layer on the conv's output length gives back a length-n signal when n is
    # one of the lengths its formula produces; compare it on that length
    y = rng.normal(size=(1, matrix.shape[0], 1)).astype("float32")
    transposed = keras.layers.Conv1DTranspose(1, k, strides=s, padding=padding, use_bias=False)
    _set_kernel(transposed, kernel, y)
    out = np.asarray(transposed(y))[0, :, 0]
    back = conv_matrix(kernel, len(out), s, padding)
    assert back.shape[0] == matrix.shape[0]
    np.testing.assert_allclose(out, back.T @ y[0, :, 0], atol=1e-5)


@pytest.mark.parametrize(("k", "s", "padding"), [(3, 1, "same"), (3, 2, "same"), (4, 2, "same"),
                                                 (3, 2, "valid"), (2, 2, "valid")])
def test_conv2d_and_conv2d_transpose_are_x_and_x_transposed(k, s, padding, rng):
    kernel = rng.normal(size=(k, k)).astype("float32")
    a = rng.normal(size=(1, 6, 6, 1)).astype("float32")
    conv = keras.layers.Conv2D(1, k, strides=s, padding=padding, use_bias=False)
    _set_kernel(conv, kernel, a)
    matrix = conv_matrix(kernel, (6, 6), s, padding)
    out = np.asarray(conv(a))[0, :, :, 0]
    np.testing.assert_allclose(out.ravel(), matrix @ a.ravel(), atol=1e-5)

    transposed = keras.layers.Conv2DTranspose(1, k, strides=s, padding=padding, use_bias=False)
    _set_kernel(transposed, kernel, out[None, :, :, None])
    up = np.asarray(transposed(out[None, :, :, None]))[0, :, :, 0]
    back = conv_matrix(kernel, up.shape, s, padding)
    np.testing.assert_allclose(up.ravel(), back.T @ out.ravel(), atol=1e-5)


def test_a_dilated_kernel_skips_inputs():
    matrix = conv_matrix([1.0, 2.0], 5, dilation=3)
    np.testing.assert_array_equal(matrix, [[1, 0, 0, 2, 0], [0, 1, 0, 0, 2]])


def test_the_transpose_needs_as_many_inputs_as_the_convolution_has_outputs():
    with pytest.raises(ValueError, match="has 2 outputs"):
        symbolic_transposed_convolution("xyz", "abc", stride=2, padding=1, length=4)


def test_the_matrix_plot_labels_its_non_zero_entries():
    figure = plot_conv_matrix(conv_matrix([1.0, 2.0, 3.0], 4, 2, 1, include_padding=True))
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert sorted(texts) == ["1", "1", "2", "2", "3", "3"]
