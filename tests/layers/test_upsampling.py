"""Upsampling layers against the slides' examples, tf.image.resize and the FCN formulas."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from segcourse.layers import (
    INTERPOLATIONS,
    BedOfNails,
    BilinearKernel,
    Resize,
    ResizeConv,
    bilinear_kernel,
    bilinear_kernel_1d,
    interpolate_by_zero_insertion,
    resize_images,
)

SLIDE_INPUT = np.array([[1, 2], [3, 4]], "float32")[None, :, :, None]


def ramp(n):
    """(1, 1, n, 1): the values 1, 2, ..., n along the width."""
    return np.arange(1, n + 1, dtype="float32")[None, None, :, None]


def test_bed_of_nails_reproduces_the_slide():
    out = BedOfNails(2)(SLIDE_INPUT)[0, :, :, 0]
    np.testing.assert_array_equal(out, [[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]])


def test_nearest_resize_reproduces_the_slide():
    out = Resize(scale=2, interpolation="nearest")(SLIDE_INPUT)[0, :, :, 0]
    np.testing.assert_array_equal(out, [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])


def test_the_slides_kernel_is_the_size_3_bilinear_kernel():
    np.testing.assert_allclose(bilinear_kernel(3), [[.25, .5, .25], [.5, 1, .5], [.25, .5, .25]])
    np.testing.assert_allclose(bilinear_kernel_1d(4), [.25, .75, .75, .25])


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_resize_equals_tf_image_resize_in_every_mode(interpolation, rng):
    x = rng.random((2, 5, 7, 3), dtype="float32")
    expected = tf.image.resize(x, (10, 14), method=interpolation).numpy()
    np.testing.assert_allclose(Resize(2, interpolation=interpolation)(x), expected, atol=1e-5)
    np.testing.assert_allclose(Resize(size=(10, 14), interpolation=interpolation)(x), expected,
                               atol=1e-5)


def test_resize_to_a_reference_and_unknown_sizes(rng):
    inp = keras.Input((None, None, 3))
    ref = keras.Input((None, None, 1))
    model = keras.Model([inp, ref], Resize(interpolation="bilinear")([inp, ref]))
    x = rng.random((1, 4, 6, 3), dtype="float32")
    out = model([x, np.zeros((1, 9, 11, 1), "float32")])
    np.testing.assert_allclose(out, tf.image.resize(x, (9, 11)), atol=1e-6)
    assert model.output_shape == (None, None, None, 3)

    scaled = keras.Model(inp, Resize(3, interpolation="bicubic")(inp))
    traced = tf.function(scaled, input_signature=[tf.TensorSpec((None, None, None, 3))])
    assert traced(x).shape == (1, 12, 18, 3)


@given(factor=st.integers(2, 4), h=st.integers(1, 6), w=st.integers(1, 6))
@settings(max_examples=25, deadline=None)
def test_nearest_is_zero_insertion_then_a_box_filter(factor, h, w):
    x = np.random.default_rng(h * 7 + w).random((1, h, w, 2), dtype="float32")
    expected = resize_images(x, (h * factor, w * factor), "nearest")
    np.testing.assert_allclose(interpolate_by_zero_insertion(x, factor, "nearest"), expected)


def test_tent_kernel_keeps_samples_and_puts_midpoints_between():
    out = interpolate_by_zero_insertion(ramp(5), (1, 2), "align_corners")[0, 0, :, 0]
    np.testing.assert_allclose(out[:9], [1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5])
    assert out[9] == 2.5  # the border: half of the last sample, the other half is padding


@given(factor=st.integers(2, 4), n=st.integers(2, 7))
@settings(max_examples=20, deadline=None)
def test_tent_kernel_equals_align_corners_interpolation(factor, n):
    x = np.random.default_rng(n).random((1, n, n, 2), dtype="float32")
    size = factor * (n - 1) + 1
    expected = tf.compat.v1.image.resize(x, (size, size), align_corners=True).numpy()
    out = interpolate_by_zero_insertion(x, factor, "align_corners").numpy()
    np.testing.assert_allclose(out[:, :size, :size], expected, atol=1e-5)


def test_half_pixel_kernel_on_a_ramp():
    out = interpolate_by_zero_insertion(ramp(5), (1, 2), "bilinear")[0, 0, :, 0].numpy()
    resized = Resize((1, 2), interpolation="bilinear")(ramp(5))[0, 0, :, 0].numpy()
    np.testing.assert_allclose(resized, [1, 1.25, 1.75, 2.25, 2.75, 3.25, 3.75, 4.25, 4.75, 5])
    np.testing.assert_allclose(out[1:-1], resized[1:-1])
    # Border: the filter meets zeros where the resize repeats the edge value.
    np.testing.assert_allclose([out[0], out[-1]], [0.75 * 1, 0.75 * 5])


@given(factor=st.integers(2, 5), n=st.integers(2, 6))
@settings(max_examples=25, deadline=None)
def test_half_pixel_kernel_equals_bilinear_resize_in_the_interior(factor, n):
    x = np.random.default_rng(n).random((1, n, n, 2), dtype="float32") + 1
    expected = resize_images(x, (n * factor, n * factor), "bilinear").numpy()
    out = interpolate_by_zero_insertion(x, factor, "bilinear").numpy()
    b = factor // 2
    inner = slice(b, n * factor - b)
    np.testing.assert_allclose(out[:, inner, inner], expected[:, inner, inner], atol=1e-5)
    assert np.all(out[:, :b] < expected[:, :b])  # darker border rows: zero padding


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_bilinear_initialized_transposed_conv_equals_resize_in_the_interior(factor, rng):
    x = rng.random((1, 6, 5, 2), dtype="float32") + 1
    up = keras.layers.Conv2DTranspose(2, 2 * factor, strides=factor, padding="same",
                                      use_bias=False, kernel_initializer=BilinearKernel())
    out = up(x).numpy()
    expected = tf.image.resize(x, (6 * factor, 5 * factor)).numpy()
    b = factor // 2
    np.testing.assert_allclose(out[:, b:-b, b:-b], expected[:, b:-b, b:-b], atol=1e-5)
    assert not np.allclose(out[:, :b], expected[:, :b])


def test_bilinear_kernel_keeps_channels_apart():
    kernel = BilinearKernel()((4, 4, 3, 3)).numpy()
    np.testing.assert_allclose(kernel[:, :, 1, 1], bilinear_kernel(4))
    assert kernel[:, :, 0, 1].sum() == 0 and kernel[:, :, 2, 0].sum() == 0
    with pytest.raises(ValueError, match="as many filters as input channels"):
        BilinearKernel()((4, 4, 3, 5))


def test_resize_conv_is_nearest_resize_then_convolution(rng):
    x = rng.random((2, 4, 5, 3), dtype="float32")
    layer = ResizeConv(6, factor=2, kernel_size=3)
    out = layer(x)
    conv = keras.layers.Conv2D(6, 3, padding="same")
    conv.build((None, 8, 10, 3))
    conv.set_weights(layer.conv.get_weights())
    expected = conv(tf.image.resize(x, (8, 10), method="nearest"))
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_resize_conv_has_no_checkerboard_where_transposed_conv_does():
    """A constant input through all-ones filters: the transposed conv's k3 s2 overlap is uneven."""
    x = np.ones((1, 6, 6, 1), "float32")
    resize_conv = ResizeConv(1, kernel_size=3, kernel_initializer="ones", use_bias=False)
    transposed = keras.layers.Conv2DTranspose(1, 3, strides=2, padding="same", use_bias=False,
                                              kernel_initializer="ones")
    interior = (slice(None), slice(2, -2), slice(2, -2))
    assert np.ptp(resize_conv(x).numpy()[interior]) == 0
    assert set(np.unique(transposed(x).numpy()[interior])) == {1.0, 2.0, 4.0}


def test_bad_inputs_say_what_is_wrong():
    with pytest.raises(ValueError, match="not both"):
        Resize(scale=2, size=(4, 4))
    with pytest.raises(ValueError, match="unknown interpolation 'cubic'"):
        Resize(2, interpolation="cubic")
    with pytest.raises(ValueError, match="positive integer"):
        BedOfNails(0)
    with pytest.raises(ValueError, match="rank 4"):
        Resize(2)(np.zeros((4, 4, 1), "float32"))
    with pytest.raises(ValueError, match=r"\[x, reference\]"):
        Resize()(np.zeros((1, 4, 4, 1), "float32"))
