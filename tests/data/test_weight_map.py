"""The U-Net weight map (eq. 2) and the exact distance transform under it, against brute force,
SciPy and hand-computed pictures."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from segcourse.data.distance import distance_to, squared_distance_to
from segcourse.data.weight_map import (
    border_weight,
    class_balance,
    nearest_two_distances,
    weight_map,
)


def brute_force_squared(features):
    """Every pixel against every feature pixel: the definition, O(pixels²)."""
    rows, cols = np.nonzero(features)
    grid_r, grid_c = np.indices(features.shape)
    if rows.size == 0:
        return np.full(features.shape, np.inf)
    return ((grid_r[..., None] - rows) ** 2 + (grid_c[..., None] - cols) ** 2).min(axis=-1)


@settings(max_examples=60, deadline=None)
@given(arrays(bool, st.tuples(st.integers(1, 12), st.integers(1, 12)),
              elements=st.booleans()))
def test_the_distance_transform_is_exact(features):
    np.testing.assert_array_equal(squared_distance_to(features), brute_force_squared(features))


def test_the_distance_transform_agrees_with_scipy(rng):
    ndimage = pytest.importorskip("scipy.ndimage")
    for density in (0.001, 0.02, 0.3):
        features = rng.random((97, 130)) < density
        features[50, 60] = True
        np.testing.assert_allclose(distance_to(features),
                                   ndimage.distance_transform_edt(~features), atol=1e-12)


def test_a_stack_is_transformed_picture_by_picture(rng):
    stack = rng.random((3, 2, 9, 7)) < 0.08
    stack[0, 0] = False  # one picture without features: inf
    expected = [brute_force_squared(picture) for picture in stack.reshape(-1, 9, 7)]
    np.testing.assert_array_equal(squared_distance_to(stack), np.reshape(expected, stack.shape))


def test_a_hand_example_of_distances():
    features = np.zeros((3, 4), bool)
    features[0, 0] = True
    np.testing.assert_array_equal(squared_distance_to(features),
                                  [[0, 1, 4, 9], [1, 2, 5, 10], [4, 5, 8, 13]])
    assert np.isinf(distance_to(np.zeros((2, 3), bool))).all()


def two_cells(gap):
    """Two 6-pixel-wide cells side by side on rows 0..9, ``gap`` background columns between."""
    instances = np.zeros((10, 12 + gap + 20), np.int32)
    instances[:, :6] = 1
    instances[:, 6 + gap:12 + gap] = 2
    return instances


@pytest.mark.parametrize("gap, d1, d2", [(1, 1, 1), (2, 1, 2)])
def test_the_border_weight_between_two_cells_by_hand(gap, d1, d2):
    instances = two_cells(gap)
    weights = weight_map(instances)
    cells, pixels = (instances > 0).sum(), instances.size
    w_background = pixels / (2 * (pixels - cells))
    w_cell = pixels / (2 * cells)
    expected = w_background + 10 * np.exp(-((d1 + d2) ** 2) / (2 * 5.0**2))
    np.testing.assert_allclose(weights[:, 6:6 + gap], expected, rtol=1e-6)
    np.testing.assert_allclose(weights[instances > 0], w_cell, rtol=1e-6)  # no term inside
    near, second = nearest_two_distances(instances)
    assert near[0, 6] == d1 and second[0, 6] == d2
    assert near[0, 3] == 0 and second[0, 3] == 3 + gap  # inside cell 1: to cell 2's edge


def test_d1_and_d2_on_a_cells_picture_against_scipy():
    ndimage = pytest.importorskip("scipy.ndimage")
    from segcourse.data import cells

    config = cells.CellsConfig(size=64, cells=(8, 8))
    _, _, instances = cells.render(cells.sample_rng("val", 3), config)
    ids = np.unique(instances[instances > 0])
    each = np.sort([ndimage.distance_transform_edt(instances != i) for i in ids], axis=0)
    near, second = nearest_two_distances(instances)
    np.testing.assert_allclose(near, each[0], atol=1e-12)
    np.testing.assert_allclose(second, each[1], atol=1e-12)
    # within its reach the windowed computation is exact, beyond it a distance may read inf
    near_r, second_r = nearest_two_distances(instances, reach=6)
    close = each[1] <= 6
    np.testing.assert_allclose(second_r[close], each[1][close], atol=1e-12)
    assert np.all(second_r >= each[1] - 1e-12) and np.isinf(second_r).any()
    np.testing.assert_allclose(near_r[each[0] <= 6], each[0][each[0] <= 6], atol=1e-12)


def test_the_reach_leaves_out_only_what_float32_cannot_see():
    """Two cells 60 pixels apart: between them d1 + d2 = 61 > 7.5σ, the term is dropped there;
    near each cell the other is out of reach too. The result equals the full formula to
    within 1e-11."""
    instances = np.zeros((8, 80), np.int32)
    instances[:, :4] = 1
    instances[:, 64:68] = 2
    near, second = nearest_two_distances(instances)
    full = np.where(instances == 0, 10 * np.exp(-((near + second) ** 2) / 50), 0.0)
    np.testing.assert_allclose(border_weight(instances), full, rtol=0, atol=1e-11)


def test_far_from_the_cells_the_border_term_vanishes():
    instances = two_cells(1)
    term = border_weight(instances)
    # The right-most column is 20 pixels from cell 2 and 27 from cell 1: 10·exp(−47²/50)
    assert term[0, -1] == pytest.approx(10 * np.exp(-(47**2) / 50)) and term[0, -1] < 1e-18
    assert np.all(np.diff(term[0, 13:]) < 0)  # falls with the distance


def test_one_cell_has_no_border_term_and_the_balance_averages_one():
    instances = np.zeros((16, 16), np.int32)
    instances[4:9, 5:12] = 7
    assert not border_weight(instances).any()
    weights = weight_map(instances)
    assert weights.dtype == np.float32 and weights.mean() == pytest.approx(1.0)
    assert weights.sum(where=instances > 0) == pytest.approx(weights.sum(where=instances == 0))
    np.testing.assert_array_equal(weight_map(np.zeros((4, 4), np.int32)), 1)  # all background
    np.testing.assert_array_equal(
        weight_map(instances, class_weights=(0.5, 2.0)), np.where(instances > 0, 2.0, 0.5))


def test_the_term_grows_as_cells_come_closer():
    """The closer two cells, the heavier the background between them (the point of eq. 2)."""
    middles = [border_weight(two_cells(gap))[0, 6 + gap // 2] for gap in (1, 2, 4, 8)]
    assert middles == sorted(middles, reverse=True) and middles[0] > 9


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="2-D integer instance-id map"):
        weight_map(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="found -1"):
        weight_map(np.full((4, 4), -1))
    with pytest.raises(ValueError, match="sigma a positive one"):
        border_weight(two_cells(1), sigma=0)
    with pytest.raises(ValueError, match="got w0=10, sigma='5'"):
        weight_map(two_cells(1), w0=10, sigma="5")
    with pytest.raises(ValueError, match="two non-negative numbers"):
        weight_map(two_cells(1), class_weights=(1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match="binary mask"):
        class_balance(np.full((3, 3), 2))
    with pytest.raises(ValueError, match=r"boolean picture \(H, W\)"):
        distance_to(np.zeros((3, 3)))
