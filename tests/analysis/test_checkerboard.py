"""Checkerboard artifacts: overlap counts (docs/design.md §9), the phase score, the upsamplers."""

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segcourse.analysis.checkerboard import (
    checkerboard_score,
    compare_upsamplers,
    flat_field_response,
    format_scores,
    gradient_checkerboard,
    interior,
    is_uneven,
    mean_power_spectrum,
    overlap_counts,
    overlap_counts_1d,
    plot_overlap,
    score_map_checkerboard,
)


def test_k3_s2_paints_the_slides_pattern():
    np.testing.assert_array_equal(overlap_counts_1d(3, 2, 4), [1, 1, 2, 1, 2, 1, 2, 1, 1])
    np.testing.assert_array_equal(interior(overlap_counts(3, 2, 6), 3)[:2, :4],
                                  [[4, 2, 4, 2], [2, 1, 2, 1]])


@settings(max_examples=40, deadline=None)
@given(k=st.integers(1, 9), s=st.integers(1, 5))
def test_interior_overlap_is_floor_or_ceil_of_k_over_s_and_uneven_iff_s_does_not_divide_k(k, s):
    counts = overlap_counts_1d(k, s, length=3 * k + 4)[k - 1:-(k - 1) or None]
    assert set(counts) <= {k // s, -(-k // s)}
    assert (len(set(counts)) > 1) == is_uneven(k, s) == (k % s != 0)


@pytest.mark.parametrize(("k", "s"), [(3, 2), (4, 2), (5, 3)])
def test_the_counts_are_what_keras_conv2d_transpose_adds_up(k, s):
    layer = keras.layers.Conv2DTranspose(1, k, s, kernel_initializer="ones", use_bias=False)
    painted = np.asarray(layer(np.ones((1, 5, 5, 1), "float32")))[0, :, :, 0]
    np.testing.assert_array_equal(painted, overlap_counts(k, s, 5))


def test_the_score_is_zero_for_flat_one_for_a_pure_checkerboard_and_small_for_a_ramp():
    assert checkerboard_score(np.full((8, 8), 3.0)) == 0
    board = np.where(np.add.outer(np.arange(8), np.arange(8)) % 2, 1.0, -1.0)
    assert checkerboard_score(board) == pytest.approx(1.0)
    ramp = np.tile(np.arange(64.0), (64, 1))
    assert checkerboard_score(ramp) < 0.02
    with pytest.raises(ValueError, match="too small"):
        checkerboard_score(np.ones((4, 4)), margin=2)


def test_strided_convolutions_have_checkerboard_gradients_unless_s_divides_k():
    def conv(k, s):
        return keras.layers.Conv2D(2, k, s, padding="same", kernel_initializer="ones")

    # k3 s2: the interior gradient is the 4 2 / 2 1 pattern; phase means 4, 2, 2, 1
    expected = np.std([4, 2, 2, 1]) / np.sqrt(np.mean(np.square([4, 2, 2, 1])))
    assert gradient_checkerboard(conv(3, 2)) == pytest.approx(expected)
    assert gradient_checkerboard(conv(5, 2)) > 0.1
    for k, s in [(4, 2), (2, 2), (3, 1)]:
        assert gradient_checkerboard(conv(k, s)) == pytest.approx(0, abs=1e-7)


def test_flat_field_response_of_a_random_transposed_convolution_is_a_checkerboard():
    keras.utils.set_random_seed(1)
    layer = keras.layers.Conv2DTranspose(3, 4, 2, padding="same")
    assert checkerboard_score(flat_field_response(layer), 2, margin=4) > 0.3


def test_upsamplers_at_initialization_and_after_training():
    rows = {r.name: r for r in compare_upsamplers(steps=200, verbose=0)}
    for clean in ("nearest + conv", "bilinear + conv"):
        assert rows[clean].at_init < 1e-6 and rows[clean].trained < 1e-6
    assert rows["transposed bilinear init"].at_init < 1e-6
    for name in ("transposed k3 s2", "transposed k4 s2"):
        assert rows[name].at_init > 0.3  # each phase sums its own random weights
        assert rows[name].trained < rows[name].at_init  # training irons most of it out ...
        assert rows[name].trained > 1e-4  # ... but not all, unlike resize-conv
    assert all(r.final_loss < 0.05 for r in rows.values())  # every one learned the task
    assert format_scores(list(rows.values())).splitlines()[0].split()[0] == "upsampler"


def test_the_overlap_plot():
    figure = plot_overlap(3, 2, 4)
    assert "uneven" in figure.axes[0].get_title()


def test_mean_power_spectrum_puts_a_checkerboard_in_the_corner_and_matches_a_direct_dft():
    board = np.where(np.add.outer(np.arange(6), np.arange(8)) % 2, 1.0, -1.0)
    power = mean_power_spectrum(board + 5.0)  # the map's mean is taken out first
    expected = np.zeros((6, 8))
    expected[0, 0] = (6 * 8) ** 2  # all 48 values add up in phase at (-0.5, -0.5) cycles/pixel
    np.testing.assert_allclose(power, expected, atol=1e-9)
    rng = np.random.default_rng(0)
    maps = rng.standard_normal((3, 5, 6))
    centred = maps - maps.mean(axis=(1, 2), keepdims=True)
    # the DFT written out as sums, the frequencies in fftshift's order (-H//2 .. (H-1)//2)
    ky, kx = np.arange(5) - 5 // 2, np.arange(6) - 6 // 2
    rows = np.exp(-2j * np.pi * np.outer(ky, np.arange(5)) / 5)
    cols = np.exp(-2j * np.pi * np.outer(np.arange(6), kx) / 6)
    direct = np.mean([np.abs(rows @ m @ cols) ** 2 for m in centred], axis=0)
    np.testing.assert_allclose(mean_power_spectrum(maps), direct, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(mean_power_spectrum(maps),
                               np.fft.fftshift((np.abs(np.fft.fft2(centred)) ** 2).mean(0)))
    # Parseval: the total power is H·W times the sum of squares, averaged over the maps
    assert mean_power_spectrum(maps).sum() == pytest.approx(30 * (centred ** 2).sum() / 3)
    with pytest.raises(ValueError, match="N, H, W"):
        mean_power_spectrum(np.ones((1, 2, 3, 4)))


def test_score_maps_are_scored_less_their_own_mean():
    """A ±1 checkerboard scores 1 whatever constant it rides on; checkerboard_score alone
    would divide by an RMS the offset inflates (sqrt(1 + 9) for an offset of 3)."""
    board = np.where(np.add.outer(np.arange(12), np.arange(12)) % 2, 1.0, -1.0)
    maps = np.stack([board, board + 3.0, np.full((12, 12), -5.0)])
    assert checkerboard_score(board + 3.0) == pytest.approx(1 / np.sqrt(10))
    assert score_map_checkerboard(maps) == pytest.approx((1 + 1 + 0) / 3)
    with pytest.raises(ValueError, match=r"logits\[..., 1\] - logits\[..., 0\]"):
        score_map_checkerboard(np.zeros((2, 12, 12, 2)))
