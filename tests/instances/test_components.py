"""Connected components against hand examples and scipy.ndimage.label; semantic maps to
instances, and where that breaks: two touching objects of one class are one instance."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from segcourse.instances.components import connected_components, semantic_to_instances
from segcourse.labels import IGNORE_INDEX

DIAGONAL = np.array([[1, 1, 0, 0],
                     [1, 1, 0, 0],
                     [0, 0, 1, 1],
                     [0, 0, 1, 1]], dtype=bool)


def test_diagonal_squares_are_two_regions_with_4_and_one_with_8():
    ids, count = connected_components(DIAGONAL, connectivity=4)
    assert count == 2
    np.testing.assert_array_equal(ids, [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 2, 2], [0, 0, 2, 2]])
    ids, count = connected_components(DIAGONAL, connectivity=8)
    assert count == 1
    np.testing.assert_array_equal(ids, DIAGONAL.astype(np.int32))


def test_anti_diagonal_touch_counts_for_8_too():
    mask = np.fliplr(DIAGONAL)
    assert connected_components(mask, 4)[1] == 2
    assert connected_components(mask, 8)[1] == 1


def test_ids_follow_raster_order_of_the_first_pixel():
    # a U whose arms start on row 0: one region; a dot at (0, 4) comes after the U's (0, 0)
    mask = np.array([[1, 0, 1, 0, 1],
                     [1, 0, 1, 0, 0],
                     [1, 1, 1, 0, 0]], dtype=np.uint8)
    ids, count = connected_components(mask)
    assert count == 2
    np.testing.assert_array_equal(ids, [[1, 0, 1, 0, 2], [1, 0, 1, 0, 0], [1, 1, 1, 0, 0]])


def test_a_long_spiral_is_one_region():
    # a serpentine path through the whole map: the worst case for label propagation
    mask = np.zeros((63, 63), dtype=bool)
    mask[::2] = True
    mask[1::4, -1] = True
    mask[3::4, 0] = True
    ids, count = connected_components(mask)
    assert count == 1 and (ids[mask] == 1).all() and (ids[~mask] == 0).all()


def test_empty_and_full_masks():
    assert connected_components(np.zeros((5, 7), dtype=bool))[1] == 0
    ids, count = connected_components(np.ones((5, 7), dtype=bool), 8)
    assert count == 1 and (ids == 1).all()


@settings(max_examples=40, deadline=None)
@given(mask=arrays(bool, st.tuples(st.integers(1, 24), st.integers(1, 24))),
       connectivity=st.sampled_from([4, 8]))
def test_agrees_with_scipy_ndimage_label(mask, connectivity):
    ndimage = pytest.importorskip("scipy.ndimage")
    structure = None if connectivity == 4 else np.ones((3, 3))
    expected, expected_count = ndimage.label(mask, structure)
    ids, count = connected_components(mask, connectivity)
    assert count == expected_count
    np.testing.assert_array_equal(ids, expected)  # same numbering: raster order of first pixel


def test_agrees_with_scipy_on_a_large_random_map(rng):
    ndimage = pytest.importorskip("scipy.ndimage")
    mask = rng.random((256, 256)) < 0.55  # near the percolation threshold: long, tangled regions
    for connectivity, structure in ((4, None), (8, np.ones((3, 3)))):
        expected, expected_count = ndimage.label(mask, structure)
        ids, count = connected_components(mask, connectivity)
        assert count == expected_count
        np.testing.assert_array_equal(ids, expected)


# --- semantic maps ---------------------------------------------------------------------------


def test_two_touching_objects_of_one_class_are_one_instance():
    # Two cars (class 1) side by side: connected components cannot tell them apart. A pedestrian
    # (class 2) touching a car stays its own instance: classes never merge.
    labels = np.zeros((6, 10), dtype=np.uint8)
    labels[1:4, 1:4] = 1   # car A
    labels[2:5, 4:7] = 1   # car B, touching A along an edge
    labels[1:5, 7:9] = 2   # pedestrian touching car B
    instances = semantic_to_instances(labels, num_classes=3)
    assert instances.count == 2
    np.testing.assert_array_equal(instances.instance_classes, [1, 2])
    assert instances.mask(1).sum() == 9 + 9  # both cars in one instance
    np.testing.assert_array_equal(instances.mask(2), labels == 2)
    np.testing.assert_array_equal(instances.classes, labels)


def test_each_region_of_each_class_is_an_instance_background_and_ignore_are_none():
    labels = np.array([[1, 1, 0, 2, 2],
                       [0, 0, 0, 0, 2],
                       [1, 0, IGNORE_INDEX, 0, 0],
                       [1, 0, IGNORE_INDEX, 3, 3]])
    instances = semantic_to_instances(labels, num_classes=4)
    np.testing.assert_array_equal(instances.ids, [[1, 1, 0, 2, 2],
                                                  [0, 0, 0, 0, 2],
                                                  [3, 0, 0, 0, 0],
                                                  [3, 0, 0, 4, 4]])
    np.testing.assert_array_equal(instances.instance_classes, [1, 2, 1, 3])
    # "stuff" classes left out along with the background
    stuffless = semantic_to_instances(labels, num_classes=4, background=(0, 2))
    np.testing.assert_array_equal(stuffless.instance_classes, [1, 1, 3])


@settings(max_examples=25, deadline=None)
@given(labels=arrays(np.uint8, st.tuples(st.integers(1, 16), st.integers(1, 16)),
                     elements=st.sampled_from([0, 1, 2, IGNORE_INDEX])),
       connectivity=st.sampled_from([4, 8]))
def test_instances_are_the_components_of_each_class_apart(labels, connectivity):
    # independent of how the ids are numbered: per class, the partition into regions is that of
    # connected_components on the class's own mask
    instances = semantic_to_instances(labels, num_classes=3, connectivity=connectivity)
    assert ((instances.ids == 0) == np.isin(labels, (0, IGNORE_INDEX))).all()
    for k in (1, 2):
        ids, count = connected_components(labels == k, connectivity)
        ours = instances.ids[labels == k]
        pairs = set(zip(ids[labels == k].tolist(), ours.tolist(), strict=True))
        assert len(pairs) == count == len(set(ours.tolist()))  # a bijection of regions
        assert (instances.instance_classes[ours - 1] == k).all()


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="binary"):
        connected_components(np.array([[0, 2], [1, 0]]))
    with pytest.raises(ValueError, match="connectivity"):
        connected_components(DIAGONAL, connectivity=6)
    with pytest.raises(ValueError, match="2-D"):
        connected_components(DIAGONAL[None])
    with pytest.raises(ValueError, match="outside the 3 classes"):
        semantic_to_instances(np.array([[0, 5]]), num_classes=3)
    with pytest.raises(ValueError, match="fractional"):
        semantic_to_instances(np.array([[0, 0.5]]))
    with pytest.raises(ValueError, match="negative"):
        semantic_to_instances(np.array([[0, -1]]))
    with pytest.raises(ValueError, match=r"1\.\.2"):
        semantic_to_instances(np.array([[1, 0, 2]])).mask(3)
