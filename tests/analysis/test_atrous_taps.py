"""Valid taps of atrous filters (Chen et al. 2017, §3.3, Fig. 4) against cases worked by hand
and against Keras' own dilated convolution."""

import keras
import numpy as np
import pytest

from segcourse.analysis import valid_tap_counts, valid_tap_fraction, valid_taps_1d


def test_one_axis_by_hand():
    # 8 positions, rate 1: the end positions lose one neighbour each
    np.testing.assert_array_equal(valid_taps_1d(8, 1), [2, 3, 3, 3, 3, 3, 3, 2])
    # rate 6: only positions 0, 1 reach +6 and only 6, 7 reach -6
    np.testing.assert_array_equal(valid_taps_1d(8, 6), [2, 2, 1, 1, 1, 1, 2, 2])
    # rate 8 or more on 8 positions: the centre tap alone
    np.testing.assert_array_equal(valid_taps_1d(8, 8), np.ones(8))
    # a 5-tap filter at rate 1 on 5 positions: 3, 4, 5, 4, 3
    np.testing.assert_array_equal(valid_taps_1d(5, 1, kernel_size=5), [3, 4, 5, 4, 3])


@pytest.mark.parametrize("size, rate, kernel_size, expected", [
    (8, 1, 3, (22 / 8) ** 2 / 9),    # 0.840: 9 taps inside, 6 on the edges, 4 at the corners
    (8, 6, 3, (12 / 8) ** 2 / 9),    # 0.25
    (8, 12, 3, 1 / 9),               # DeepLabV3's rate 12 at output stride 16 on 128 x 128
    (8, 18, 3, 1 / 9),
    (16, 12, 3, (24 / 16) ** 2 / 9),  # output stride 8 doubles rate and map: 0.25 again
    (3, 1, 3, (7 / 3) ** 2 / 9),
    (1, 1, 3, 1 / 9),
    (65, 1, 3, (193 / 65) ** 2 / 9),  # the paper's 65 x 65 map
    (5, 1, 5, (19 / 5) ** 2 / 25),
    (7, 4, 1, 1.0),                   # a 1 x 1 filter is always on the map
])
def test_fraction_by_hand(size, rate, kernel_size, expected):
    assert valid_tap_fraction(size, rate, kernel_size) == pytest.approx(expected, abs=1e-12)


def test_counts_by_hand_and_degeneration():
    counts = valid_tap_counts(8, 6)
    assert counts[0, 0] == 4 and counts[0, 3] == 2 and counts[3, 3] == 1
    assert counts.max() == 4 and (counts == 1).sum() == 16  # the central 4 x 4 block
    assert (valid_tap_counts(8, 12) == 1).all()  # a 1 x 1 convolution at every position
    assert (valid_tap_counts(65, 1)[1:-1, 1:-1] == 9).all()


def test_fraction_falls_with_the_rate_and_depends_only_on_rate_over_size():
    fractions = [valid_tap_fraction(33, r) for r in range(1, 40)]
    assert (np.diff(fractions) <= 0).all()
    assert fractions[-1] == pytest.approx(1 / 9)
    for rate in (1, 3, 6, 9):
        assert valid_tap_fraction(16, 2 * rate) == pytest.approx(valid_tap_fraction(8, rate))


@pytest.mark.parametrize("size, rate", [(8, 1), (8, 6), (8, 12), (13, 5)])
def test_keras_counts_the_same_taps(size, rate):
    # an all-ones dilated 3 x 3 filter over a map of ones, zero padded: each output is the
    # number of taps that landed on the map
    layer = keras.layers.Conv2D(1, 3, padding="same", dilation_rate=rate, use_bias=False,
                                kernel_initializer="ones")
    counted = np.asarray(layer(np.ones((1, size, size, 1), np.float32)))[0, :, :, 0]
    np.testing.assert_array_equal(counted, valid_tap_counts(size, rate))


def test_a_large_rate_is_a_1x1_convolution(rng):
    x = rng.standard_normal((2, 8, 8, 4)).astype(np.float32)
    atrous = keras.layers.Conv2D(5, 3, padding="same", dilation_rate=12)
    y = np.asarray(atrous(x))
    kernel, bias = (np.asarray(w) for w in atrous.weights)
    centre_only = np.einsum("nhwc,cd->nhwd", x, kernel[1, 1]) + bias
    np.testing.assert_allclose(y, centre_only, atol=1e-5)


@pytest.mark.parametrize("bad", [
    {"size": 0, "rate": 1}, {"size": 8, "rate": 0}, {"size": 8, "rate": 1.5},
    {"size": 8, "rate": 1, "kernel_size": 2}, {"size": True, "rate": 1},
])
def test_refuses_what_is_not_a_map_a_rate_or_an_odd_filter(bad):
    with pytest.raises(ValueError):
        valid_tap_fraction(**bad)
