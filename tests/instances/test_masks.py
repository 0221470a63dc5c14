"""Mask targets and pasting: a rectangle cropped to a box and pasted back is itself, up to one
mask cell at its edges; what falls outside the image is clipped; shapes are checked."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segcourse.instances.masks import crop_mask_targets, instance_boxes, paste_masks


def rectangle(shape, top, left, bottom, right):
    mask = np.zeros(shape, dtype=bool)
    mask[max(0, top):max(0, bottom), max(0, left):max(0, right)] = True  # no wrapping around
    return mask


def test_a_rectangle_cropped_to_its_own_box_is_all_ones_and_pastes_back_exactly():
    mask = rectangle((64, 64), 10, 20, 30, 50)
    box = [20, 10, 50, 30]
    target = crop_mask_targets(mask, [box])
    assert target.shape == (1, 28, 28) and target.dtype == bool and target.all()
    np.testing.assert_array_equal(paste_masks(target.astype("float32"), [box], (64, 64))[0],
                                  mask)


def test_targets_by_hand():
    # a 4 x 4 box whose left half is object: a 2 x 2 target is [[1, 0], [1, 0]]
    mask = rectangle((8, 8), 2, 2, 6, 4)
    np.testing.assert_array_equal(crop_mask_targets(mask, [[2, 2, 6, 6]], size=2)[0],
                                  [[True, False], [True, False]])
    # each box its own mask; threshold=None gives the RoIAligned averages
    soft = crop_mask_targets(np.stack([mask, ~mask]), [[2, 2, 6, 6], [2, 2, 6, 6]], size=2,
                             threshold=None)
    np.testing.assert_allclose(soft[0] + soft[1], 1.0)


@settings(max_examples=30, deadline=None)
@given(data=st.data(), size=st.sampled_from([14, 28]))
def test_crop_then_paste_differs_only_within_one_mask_cell_of_the_edge(data, size):
    # Tolerance: a target cell is one or zero as a whole, so an edge can move by up to one mask
    # cell of the box, (box side) / size pixels (at least one pixel), and no further.
    height, width = 96, 96
    top = data.draw(st.integers(5, 40))
    left = data.draw(st.integers(5, 40))
    bottom = data.draw(st.integers(top + 3, 90))
    right = data.draw(st.integers(left + 3, 90))
    mask = rectangle((height, width), top, left, bottom, right)
    # the box: the rectangle's, loosened by up to 5 pixels on each side (a detector's box)
    x1 = left - data.draw(st.floats(0, 5))
    y1 = top - data.draw(st.floats(0, 5))
    x2 = right + data.draw(st.floats(0, 5))
    y2 = bottom + data.draw(st.floats(0, 5))
    box = [x1, y1, x2, y2]
    target = crop_mask_targets(mask, [box], size=size)
    pasted = paste_masks(target.astype("float32"), [box], (height, width))[0]
    band_y = max(1, int(np.ceil((y2 - y1) / size)))
    band_x = max(1, int(np.ceil((x2 - x1) / size)))
    outer = rectangle((height, width), top - band_y, left - band_x, bottom + band_y,
                      right + band_x)
    inner = rectangle((height, width), top + band_y, left + band_x, bottom - band_y,
                      right - band_x)
    assert not (pasted & ~outer).any()  # nothing beyond one cell outside
    assert (pasted | ~inner).all()      # nothing lost more than one cell inside


def test_paste_clips_what_falls_outside_the_image(rng):
    # Independent truth: paste into a canvas with a margin of 8 pixels all round, then cut the
    # image out of it. Boxes on quarter pixels, so that shifting by 8 is exact in floating point.
    probs = rng.random((3, 7, 7))
    boxes = np.array([[-6.0, -3.25, 10.5, 9.0],    # over the top-left corner
                      [20.25, 12.0, 29.75, 26.5],  # over the right and bottom edges
                      [-5.0, 2.0, -0.5, 9.0]])     # wholly outside: nothing
    pasted = paste_masks(probs, boxes, (24, 24), threshold=None)
    canvas = paste_masks(probs, boxes + 8, (40, 40), threshold=None)
    np.testing.assert_array_equal(pasted, canvas[:, 8:32, 8:32])
    assert canvas[:, :8].any() and not pasted[2].any()


def test_pixels_belong_to_a_box_when_their_centre_does():
    ones = np.ones((1, 4, 4))
    # x in [1.5, 4.5): centres 1.5, 2.5, 3.5 (columns 1..3); y in [0.6, 2.4): centre 1.5 only
    pasted = paste_masks(ones, [[1.5, 0.6, 4.5, 2.4]], (4, 6))[0]
    np.testing.assert_array_equal(pasted, rectangle((4, 6), 1, 1, 2, 4))


def test_paste_resizes_bilinearly_at_pixel_centres():
    # a 1 x 2 mask (0.2, 0.6) over a box 4 pixels wide: mask positions -0.25, 0.25, 0.75, 1.25,
    # clamped at the edges: 0.2, 0.3, 0.5, 0.6
    pasted = paste_masks(np.array([[[0.2, 0.6]]]), [[0, 0, 4, 1]], (1, 4), threshold=None)
    np.testing.assert_allclose(pasted[0, 0], [0.2, 0.3, 0.5, 0.6])


def test_bad_input_is_refused():
    mask = rectangle((8, 8), 2, 2, 6, 6)
    with pytest.raises(ValueError, match="binary"):
        crop_mask_targets(mask * 3, [[0, 0, 4, 4]])
    with pytest.raises(ValueError, match="2 masks for 1 boxes"):
        crop_mask_targets(np.stack([mask, mask]), [[0, 0, 4, 4]])
    with pytest.raises(ValueError, match="outside the image"):
        crop_mask_targets(mask, [[0, 0, 9, 4]])
    with pytest.raises(ValueError, match=r"\(N, m, m\)"):
        paste_masks(np.ones((4, 4)), [[0, 0, 4, 4]], (8, 8))
    with pytest.raises(ValueError, match="1 masks for 2 boxes"):
        paste_masks(np.ones((1, 4, 4)), [[0, 0, 4, 4], [1, 1, 2, 2]], (8, 8))
    with pytest.raises(ValueError, match="probabilities"):
        paste_masks(np.full((1, 4, 4), 3.0), [[0, 0, 4, 4]], (8, 8))
    with pytest.raises(ValueError, match="image_shape"):
        paste_masks(np.ones((1, 4, 4)), [[0, 0, 4, 4]], (8, 8, 3))
    with pytest.raises(ValueError, match="threshold"):
        paste_masks(np.ones((1, 4, 4)), [[0, 0, 4, 4]], (8, 8), threshold=1.0)
    assert crop_mask_targets(np.zeros((0, 8, 8)), np.zeros((0, 4))).shape == (0, 28, 28)


# instance_boxes: the tightest box around each instance of an id map -----------------------------

def boxes_by_brute_force(instance_map):
    found = []
    for k in sorted(set(instance_map.ravel().tolist()) - {0}):
        rows, cols = np.nonzero(instance_map == k)
        found.append((k, [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]))
    return found


def test_instance_boxes_by_hand():
    instance_map = np.zeros((5, 6), dtype=np.int32)
    instance_map[1:3, 2:5] = 3  # rows 1-2, columns 2-4
    instance_map[4, 0] = 7  # one pixel: a 1 x 1 box
    instance_map[0, 5] = instance_map[3, 3] = 9  # two pieces, one box around both
    ids, boxes = instance_boxes(instance_map)
    assert ids.tolist() == [3, 7, 9] and boxes.dtype == np.float64
    np.testing.assert_array_equal(boxes, [[2, 1, 5, 3], [0, 4, 1, 5], [3, 0, 6, 4]])
    # each box holds its instance and crops to a target that covers it
    target = crop_mask_targets(instance_map == 3, boxes[:1], size=4)
    assert target.all()


@settings(max_examples=60, deadline=None)
@given(shape=st.tuples(st.integers(1, 12), st.integers(1, 12)), ids=st.integers(0, 6),
       seed=st.integers(0, 2**16), dtype=st.sampled_from([np.uint8, np.int32, np.int64]))
def test_instance_boxes_agree_with_a_brute_force_loop(shape, ids, seed, dtype):
    instance_map = np.random.default_rng(seed).integers(0, ids + 1, shape).astype(dtype)
    found, boxes = instance_boxes(instance_map)
    expected = boxes_by_brute_force(instance_map)
    assert found.tolist() == [k for k, _ in expected]
    np.testing.assert_array_equal(boxes.reshape(-1, 4), [box for _, box in expected] or
                                  np.zeros((0, 4)))


def test_instance_boxes_agree_with_scipy_find_objects(rng):
    ndimage = pytest.importorskip("scipy.ndimage")
    instance_map = rng.integers(0, 40, (64, 48)) * (rng.random((64, 48)) < 0.05)
    ids, boxes = instance_boxes(instance_map)
    slices = ndimage.find_objects(instance_map)  # slices[k - 1]: instance k's, None if absent
    assert ids.tolist() == [k + 1 for k, s in enumerate(slices) if s is not None]
    expected = [[s[1].start, s[0].start, s[1].stop, s[0].stop] for s in slices if s is not None]
    np.testing.assert_array_equal(boxes, expected)


def test_instance_boxes_of_an_empty_map_and_bad_maps():
    ids, boxes = instance_boxes(np.zeros((4, 4), dtype=np.uint8))
    assert ids.shape == (0,) and boxes.shape == (0, 4)
    with pytest.raises(ValueError, match="whole numbers, an integer dtype.*float64"):
        instance_boxes(np.ones((4, 4)))
    with pytest.raises(ValueError, match=r"mask.astype\(int\)"):
        instance_boxes(np.ones((4, 4), dtype=bool))
    with pytest.raises(ValueError, match=r"one 2-D map.*\(2, 4, 4\)"):
        instance_boxes(np.ones((2, 4, 4), dtype=np.int32))
    with pytest.raises(ValueError, match="one 2-D map"):
        instance_boxes(np.arange(5))
    with pytest.raises(ValueError, match="negative ids such as -1"):
        instance_boxes(np.array([[0, -1], [2, 2]]))
