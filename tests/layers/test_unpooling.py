"""Max pooling with indices and max unpooling against tf.nn.max_pool_with_argmax and numpy."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from segcourse.layers import MaxPoolingWithArgmax2D, MaxUnpooling2D, flat_indices


def numpy_unpool(x, pool=2):
    """Keep each window's first maximum where it stands, zero the rest (a loop, on purpose)."""
    out = np.zeros_like(x)
    b, h, w, c = x.shape
    for n, i, j, k in np.ndindex(b, h // pool, w // pool, c):
        window = x[n, i * pool:(i + 1) * pool, j * pool:(j + 1) * pool, k]
        dy, dx = np.unravel_index(np.argmax(window), window.shape)
        out[n, i * pool + dy, j * pool + dx, k] = window[dy, dx]
    return out


def test_pooling_matches_tensorflow_values_and_indices(rng):
    x = rng.standard_normal((2, 6, 8, 3)).astype("float32")
    pooled, indices = MaxPoolingWithArgmax2D(2)(x)
    tf_pooled, tf_indices = tf.nn.max_pool_with_argmax(x, 2, 2, "VALID")
    np.testing.assert_array_equal(pooled, tf_pooled)
    np.testing.assert_array_equal(flat_indices(indices, x.shape, 2), tf_indices)


def test_unpooling_the_slide_example():
    x = np.array([[1, 2, 6, 3], [3, 5, 2, 1], [1, 2, 2, 1], [7, 3, 4, 8]], "float32")
    pooled, indices = MaxPoolingWithArgmax2D(2)(x[None, :, :, None])
    np.testing.assert_array_equal(pooled[0, :, :, 0], [[5, 6], [7, 8]])
    out = MaxUnpooling2D(2)([pooled, indices])[0, :, :, 0]
    np.testing.assert_array_equal(
        out, [[0, 0, 6, 0], [0, 5, 0, 0], [0, 0, 0, 0], [7, 0, 0, 8]])


@given(h=st.integers(1, 4), w=st.integers(1, 4), c=st.integers(1, 3), pool=st.integers(2, 3))
@settings(max_examples=25, deadline=None)
def test_unpool_of_pool_keeps_the_maxima_in_place(h, w, c, pool):
    x = np.random.default_rng(h * 16 + w).standard_normal((2, h * pool, w * pool, c))
    x = x.astype("float32")
    pooled, indices = MaxPoolingWithArgmax2D(pool)(x)
    np.testing.assert_array_equal(MaxUnpooling2D(pool)([pooled, indices]), numpy_unpool(x, pool))


def test_ties_go_to_the_first_position_in_row_major_order():
    x = np.array([[5, 5, 0, 0], [5, 1, 0, 3], [2, 9, 4, 4], [9, 9, 4, 4]], "float32")
    _, indices = MaxPoolingWithArgmax2D(2)(x[None, :, :, None])
    np.testing.assert_array_equal(indices[0, :, :, 0], [[0, 3], [1, 0]])


def test_gradients_reach_the_chosen_positions(rng):
    x = tf.constant(rng.standard_normal((1, 4, 4, 2)).astype("float32"))
    weights = tf.constant(rng.standard_normal((1, 4, 4, 2)).astype("float32"))
    pool, unpool = MaxPoolingWithArgmax2D(2), MaxUnpooling2D(2)
    with tf.GradientTape() as tape:
        tape.watch(x)
        pooled, indices = pool(x)
        loss = tf.reduce_sum(unpool([pooled, indices]) * weights)
    grad = tape.gradient(loss, x).numpy()
    mask = numpy_unpool(x.numpy()) != 0
    np.testing.assert_allclose(grad, np.where(mask, weights, 0))


@pytest.mark.parametrize("padding, size", [("same", 5), ("valid", 5), ("same", 6)])
def test_odd_sizes_come_back_to_the_reference_size(padding, size, rng):
    x = rng.standard_normal((1, size, size + 2, 2)).astype("float32")
    pooled, indices = MaxPoolingWithArgmax2D(2, padding=padding)(x)
    rounding = np.ceil if padding == "same" else np.floor
    assert tuple(pooled.shape) == (1, rounding(size / 2), rounding((size + 2) / 2), 2)
    out = MaxUnpooling2D(2)([pooled, indices, x]).numpy()
    assert out.shape == x.shape
    # Every pooled maximum stands at its original position.
    assert np.isin(pooled.numpy(), out).all() and np.all((out == 0) | (out == x))


def test_works_under_xla_where_tensorflows_argmax_pooling_does_not(rng):
    inp = keras.Input((None, None, 2))
    pooled, indices = MaxPoolingWithArgmax2D(2)(inp)
    hidden = keras.layers.Conv2D(2, 3, padding="same")(pooled)
    out = MaxUnpooling2D(2)([hidden, indices, inp])
    model = keras.Model(inp, out)
    model.compile("sgd", "mse", jit_compile=True)
    x = rng.standard_normal((4, 8, 8, 2)).astype("float32")
    model.fit(x, x, epochs=1, verbose=0)
    assert model.predict(x, verbose=0).shape == x.shape

    xla_argmax = tf.function(lambda t: tf.nn.max_pool_with_argmax(t, 2, 2, "VALID"),
                             jit_compile=True)
    with pytest.raises(Exception, match="MaxPoolWithArgmax"):
        xla_argmax(tf.constant(x))


def test_bad_inputs_say_what_is_wrong():
    with pytest.raises(ValueError, match="unknown padding"):
        MaxPoolingWithArgmax2D(2, padding="full")
    with pytest.raises(ValueError, match=r"\[values, indices\]"):
        MaxUnpooling2D(2)(np.zeros((1, 2, 2, 1), "float32"))
    with pytest.raises(ValueError, match="same shape"):
        MaxUnpooling2D(2)([np.zeros((1, 2, 2, 1), "float32"), np.zeros((1, 2, 3, 1), "int32")])


def test_float_indices_are_refused_not_truncated(rng):
    x = rng.standard_normal((1, 4, 4, 1)).astype("float32")
    pooled, indices = MaxPoolingWithArgmax2D(2)(x)
    with pytest.raises(ValueError, match="indices must be integers.*got dtype float32"):
        MaxUnpooling2D(2)([pooled, tf.cast(indices, "float32")])
    inp = keras.Input((4, 4, 1))
    values, indices = MaxPoolingWithArgmax2D(2)(inp)
    with pytest.raises(ValueError, match="indices must be integers.*got dtype float32"):
        MaxUnpooling2D(2)([values, keras.ops.cast(indices, "float32")])
    with pytest.raises(ValueError, match="indices must be integers.*got dtype float64"):
        flat_indices(np.zeros((1, 2, 2, 1)), (1, 4, 4, 1), 2)


def test_indices_of_another_pool_size_are_refused(rng):
    # Symbolic: straight from a pooling layer with another window, when the model is built.
    inp = keras.Input((None, None, 2))
    values, indices = MaxPoolingWithArgmax2D(3, name="pool3")(inp)
    with pytest.raises(ValueError, match=r"come from 'pool3', a pooling with pool_size=\(3, 3\)"):
        MaxUnpooling2D(2)([values, indices])
    # ... or against the reference's size, when the sizes are known.
    inp = keras.Input((12, 12, 2))
    values, indices = MaxPoolingWithArgmax2D(3)(inp)
    indices = keras.layers.Identity()(indices)  # the provenance is lost, the sizes still tell
    with pytest.raises(ValueError, match="height 12 pools with a window of 2 to 6, but the "
                                         "pooled height is 4"):
        MaxUnpooling2D(2)([values, indices, inp])
    assert MaxUnpooling2D(3)([values, indices, inp]).shape == (None, 12, 12, 2)
    # Eager: the index values themselves (a 3x3 window's positions run to 8).
    x = np.zeros((1, 3, 3, 1), "float32")
    x[0, 2, 2, 0] = 1.0  # the maximum at position 8 of the window
    pooled, indices = MaxPoolingWithArgmax2D(3)(x)
    with pytest.raises(ValueError, match=r"inside a 2x2 window, 0..3; got \[8\] in 1 place,"):
        MaxUnpooling2D(2)([pooled, indices])
    with pytest.raises(ValueError, match=r"got \[-1\]"):
        MaxUnpooling2D(2)([pooled, -tf.ones_like(indices)])


def test_flat_indices_refuse_what_does_not_fit(rng):
    x = rng.standard_normal((2, 6, 6, 3)).astype("float32")
    _, indices = MaxPoolingWithArgmax2D(3)(x)
    indices = np.asarray(indices)
    with pytest.raises(ValueError, match=r"inside a 2x2 window, 0..3; got \[.*\]"):
        flat_indices(np.full_like(indices, 5), x.shape, 2)
    with pytest.raises(ValueError, match="input_shape's height 6 pools with a window of 2 to 3"):
        flat_indices(indices % 4, x.shape, 2)  # in range, but a 2x2 pooling gives 3x3 windows
    with pytest.raises(ValueError, match="have 3 channels but input_shape"):
        flat_indices(indices, (2, 6, 6, 4), 3)
    with pytest.raises(ValueError, match=r"both be \(batch, height, width, channels\)"):
        flat_indices(indices[0], x.shape, 3)
    tf_indices = tf.nn.max_pool_with_argmax(x, 3, 3, "VALID")[1]
    np.testing.assert_array_equal(flat_indices(indices, x.shape, 3), tf_indices)
