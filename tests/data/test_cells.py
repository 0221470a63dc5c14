"""The ``cells`` dataset: seeded, binary masks, and membranes between every two cells."""

import numpy as np
import pytest

from segcourse.data import cells
from segcourse.data.weight_map import border_weight

SMALL = cells.CellsConfig(size=48, cells=(6, 12))


@pytest.fixture(scope="module")
def pictures():
    return cells.load("train", 12, config=SMALL)


def test_pictures_are_fixed_per_split_and_index(pictures):
    again = cells.load("train", 3, config=SMALL)
    for first, second in zip(pictures, again, strict=True):
        np.testing.assert_array_equal(first[:3], second)
    assert not np.allclose(cells.load("val", 3, config=SMALL)[0], pictures[0][:3])
    assert not np.allclose(cells.load("train", 3, seed=1, config=SMALL)[0], pictures[0][:3])


def test_arrays_have_the_documented_types_and_ranges(pictures):
    images, masks, instances = pictures
    assert images.shape == (12, 48, 48, 1) and images.dtype == np.float32
    assert masks.shape == instances.shape == (12, 48, 48)
    assert masks.dtype == np.uint8 and instances.dtype == np.int32
    assert images.min() >= 0 and images.max() <= 1
    assert set(np.unique(masks)) <= {0, 1}
    np.testing.assert_array_equal(masks, instances > 0)
    for picture in instances:  # ids 1..N, each in use
        ids = np.unique(picture[picture > 0])
        np.testing.assert_array_equal(ids, np.arange(1, ids.size + 1))
    assert cells.load("test", 1)[0].shape == (1, 128, 128, 1)  # the default size


def neighbour_pairs(picture):
    """Every pair of 8-adjacent pixels, as two arrays of values."""
    height, width = picture.shape
    pairs = []
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a = picture[max(0, -dy):height - max(0, dy), max(0, -dx):width - max(0, dx)]
        b = picture[max(0, dy):, max(0, dx):width + min(0, dx)][:a.shape[0], :a.shape[1]]
        pairs.append((a.ravel(), b.ravel()))
    return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])


def test_neighbour_pairs_by_hand():
    a, b = neighbour_pairs(np.array([[1, 2], [3, 4]]))
    assert sorted(zip(a.tolist(), b.tolist(), strict=True)) == [(1, 2), (1, 3), (1, 4), (2, 3),
                                                                (2, 4), (3, 4)]


def no_two_cells_touch(picture):
    a, b = neighbour_pairs(picture)
    return not np.any((a > 0) & (b > 0) & (a != b))


def test_no_two_cells_touch_without_a_membrane_yet_cells_crowd(pictures):
    """The guarantee: pixels of different cells are never 8-adjacent. And the reason for the
    weight map: cells lie a membrane apart (1 or 3 pixels), so the border term is large there."""
    _, masks, instances = pictures
    for picture in instances:
        assert no_two_cells_touch(picture) and picture.max() >= 3
    assert (masks == 0).mean() < 0.4  # mostly cells, as in EM
    heavy = [border_weight(picture).max() for picture in instances]
    assert min(heavy) >= 10 * np.exp(-(4**2) / 50) - 1e-9  # d1 + d2 ≤ 4 somewhere


def test_the_guarantee_holds_in_extreme_configurations():
    crowded = cells.CellsConfig(size=40, cells=(25, 40), membrane=(0.0, 0.0), warp=8.0,
                                empty=0.5)
    for index in range(8):
        _, _, instances = cells.render(cells.sample_rng("test", index), crowded)
        assert no_two_cells_touch(instances)
    assert not no_two_cells_touch(np.array([[1, 0], [0, 2]]))  # diagonal contact is touching


def test_membranes_are_darker_than_cells(pictures):
    images, masks, _ = pictures
    assert images[..., 0][masks == 0].mean() < images[..., 0][masks == 1].mean() - 0.2


def test_bad_requests_are_refused():
    with pytest.raises(ValueError, match="splits train, val, test; got 'validation'"):
        cells.load("validation", 3)
    with pytest.raises(ValueError, match="count must be at least 1"):
        cells.load("train", 0)
    with pytest.raises(ValueError, match="size must be an int of at least 16; got 8"):
        cells.CellsConfig(size=8)
    with pytest.raises(ValueError, match=r"cells must be \(low, high\) ints .* got \(5, 2\)"):
        cells.CellsConfig(cells=(5, 2))
    with pytest.raises(ValueError, match="empty is a probability below 1; got 1.0"):
        cells.CellsConfig(empty=1.0)
    with pytest.raises(ValueError, match="index is an int of at least 0"):
        cells.sample_rng("train", -1)


def test_the_tf_dataset_carries_the_weight_map():
    pytest.importorskip("tensorflow")
    data = cells.dataset("val", 4, batch_size=2, config=SMALL, weights=True)
    batches = list(data)
    image, mask, weight = batches[0]
    assert image.shape == (2, 48, 48, 1) and mask.dtype.name == "int32"
    assert weight.shape == (2, 48, 48) and float(np.min(weight)) > 0
    np.testing.assert_array_equal(np.concatenate([np.asarray(b[1]) for b in batches]),
                                  cells.load("val", 4, config=SMALL)[1])
