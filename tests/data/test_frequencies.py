"""Class frequencies and median-frequency weights (Eigen & Fergus 2015, §4.3): a hand example,
a plain loop, the median class at 1, any order or batching of the images, the ignore label."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segcourse.data.frequencies import class_frequencies, median_frequency_weights

# Three pictures, three classes. A: 5 of class 0, 1 of class 1. B: 1 of class 0, 3 of class 2,
# 2 ignored. C: 3 of class 0, 2 of class 1, 1 ignored.
HAND = [np.array([[0, 0, 0], [0, 0, 1]]),
        np.array([[0, 2, 2], [2, 255, 255]]),
        np.array([[1, 1, 0], [255, 0, 0]])]


def test_hand_example():
    counted = class_frequencies(HAND, 3)
    np.testing.assert_array_equal(counted.pixels, [9, 3, 3])
    np.testing.assert_array_equal(counted.images, [3, 2, 1])
    # Labelled pixels of the images holding the class: 0 in A, B, C (6 + 4 + 5); 1 in A, C
    # (6 + 5); 2 in B (4). Ignored pixels are no pixels: B counts 4, not 6.
    np.testing.assert_array_equal(counted.image_pixels, [15, 11, 4])
    assert counted.num_images == 3
    np.testing.assert_allclose(counted.frequency, [9 / 15, 3 / 11, 3 / 4])
    # median(0.6, 0.2727, 0.75) = 0.6: weights 0.6 / f.
    np.testing.assert_allclose(median_frequency_weights(HAND, 3), [1.0, 2.2, 0.8])
    np.testing.assert_allclose(median_frequency_weights(counted), [1.0, 2.2, 0.8])


def loop_reference(masks, num_classes, ignore=255):
    """Eigen & Fergus' sentence as a loop over images and classes."""
    pixels, images, image_pixels = [0] * num_classes, [0] * num_classes, [0] * num_classes
    for mask in masks:
        labelled = [int(v) for v in np.ravel(mask) if v != ignore]
        for c in range(num_classes):
            here = labelled.count(c)
            if here:
                pixels[c] += here
                images[c] += 1
                image_pixels[c] += len(labelled)
    return pixels, images, image_pixels


@given(seed=st.integers(0, 10_000), num_classes=st.integers(1, 6))
@settings(max_examples=25, deadline=None)
def test_counts_agree_with_a_plain_loop_however_the_masks_are_given(seed, num_classes):
    rng = np.random.default_rng(seed)
    masks = rng.integers(0, num_classes, (int(rng.integers(1, 9)), 5, 4)).astype(np.uint8)
    # Some classes left out of some pictures, some pixels ignored.
    masks[rng.random(masks.shape) < 0.2] = 255
    masks[: len(masks) // 2][masks[: len(masks) // 2] == 0] = 255
    expected = loop_reference(masks, num_classes)
    order = rng.permutation(len(masks))
    cut = int(rng.integers(1, len(masks) + 1))
    images = np.zeros((*masks.shape, 3), np.float32)
    for given_as in (masks,                                        # one array
                     list(masks[order]),                           # masks, any order
                     [masks[order][:cut], masks[order][cut:]],     # batches
                     [(im, m[..., None]) for im, m in zip(images, masks, strict=True)],  # pairs
                     [(images[:cut], masks[:cut]), (images[cut:], masks[cut:])],
                     # (image, mask, weight), as cells.dataset(weights=True) yields
                     [(im, m, np.full(m.shape, 7.0, np.float32))
                      for im, m in zip(images, masks, strict=True)],
                     [(images[:cut], masks[:cut], np.ones(masks[:cut].shape, np.float32)),
                      (images[cut:], masks[cut:], np.ones(masks[cut:].shape, np.float32))]):
        counted = class_frequencies(given_as, num_classes)
        assert (counted.pixels.tolist(), counted.images.tolist(),
                counted.image_pixels.tolist()) == expected
        assert counted.num_images == len(masks)


def test_image_mask_weight_triples_count_the_mask_and_ignore_the_weight():
    """What segcourse.data.cells.dataset(weights=True) yields: the weight map's values (here
    far from any label) count for nothing."""
    triples = [(np.zeros((*m.shape, 3), np.float32), m, np.full(m.shape, 9.5, np.float32))
               for m in HAND]
    counted, expected = class_frequencies(triples, 3), class_frequencies(HAND, 3)
    for field in ("pixels", "images", "image_pixels"):
        np.testing.assert_array_equal(getattr(counted, field), getattr(expected, field))
    assert counted.num_images == 3
    np.testing.assert_allclose(median_frequency_weights(triples, 3), [1.0, 2.2, 0.8])
    with pytest.raises(ValueError, match=r"element 0 is a tuple of 4 items.*"
                                         r"\(image, mask, weight\) triples"):
        class_frequencies([(*triples[0], None)], 3)


def test_a_tf_data_dataset_of_pairs_batched_or_not():
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(1)
    masks = rng.integers(0, 4, (7, 6, 6)).astype(np.int32)
    images = rng.random((7, 6, 6, 3)).astype(np.float32)
    data = tf.data.Dataset.from_tensor_slices((images, masks))
    expected = class_frequencies(masks, 4)
    weighted = tf.data.Dataset.from_tensor_slices((images, masks, np.ones(masks.shape,
                                                                          np.float32)))
    for given_as in (data, data.batch(3), weighted, weighted.batch(3)):
        counted = class_frequencies(given_as, 4)
        np.testing.assert_array_equal(counted.image_pixels, expected.image_pixels)
        np.testing.assert_array_equal(counted.pixels, expected.pixels)
        assert counted.num_images == 7


@pytest.mark.parametrize("num_classes", [3, 5, 7])
def test_the_median_class_gets_weight_one_and_rarer_classes_more(num_classes):
    rng = np.random.default_rng(num_classes)
    # Class c covers a share of each picture that grows with c: all frequencies differ.
    masks = np.stack([rng.choice(num_classes, (16, 16), p=np.arange(1, num_classes + 1)
                                 / (num_classes * (num_classes + 1) / 2)) for _ in range(20)])
    counted = class_frequencies(masks, num_classes)
    weights = median_frequency_weights(counted)
    middle = np.argsort(counted.frequency)[num_classes // 2]
    assert weights[middle] == 1.0
    np.testing.assert_array_equal(np.argsort(weights), np.argsort(-counted.frequency))


def test_with_an_even_number_of_classes_the_two_middle_weights_straddle_one():
    """median = (f_a + f_b) / 2, so 1 / w_a + 1 / w_b = 2 and neither is 1."""
    weights = median_frequency_weights([np.array([[0] * 4 + [1] * 3 + [2] * 2 + [3]])], 4)
    np.testing.assert_allclose(weights, [2.5 / 4, 2.5 / 3, 2.5 / 2, 2.5])
    assert 1 / weights[1] + 1 / weights[2] == pytest.approx(2)


def test_ignored_pixels_change_nothing_but_an_all_ignored_picture_is_still_counted():
    with_more_ignored = [np.where(np.arange(6).reshape(2, 3) == 5, 255, m) if i == 2 else m
                         for i, m in enumerate(HAND)]
    # C's pixel (1, 2) was class 0: one pixel fewer for class 0 and for C's total.
    counted = class_frequencies(with_more_ignored, 3)
    np.testing.assert_array_equal(counted.pixels, [8, 3, 3])
    np.testing.assert_array_equal(counted.image_pixels, [14, 10, 4])
    blank = class_frequencies([*HAND, np.full((2, 3), 255)], 3)
    assert blank.num_images == 4
    np.testing.assert_array_equal(blank.image_pixels, [15, 11, 4])
    # Another ignore label: 255 is then a label out of range, 0 is ignored.
    with pytest.raises(ValueError, match=r"values \[255\] outside the 3 classes"):
        class_frequencies(HAND, 3, ignore_index=0)
    np.testing.assert_array_equal(class_frequencies([np.array([[0, 1, 1]])], 2, ignore_index=0)
                                  .pixels, [0, 2])


def test_a_class_in_no_image_is_refused_with_its_number():
    masks = np.array([[[0, 1], [1, 3]], [[0, 0], [3, 255]]])
    counted = class_frequencies(masks, 5)
    assert np.isnan(counted.frequency[[2, 4]]).all() and counted.images[2] == 0
    with pytest.raises(ValueError, match=r"classes \[2, 4\] appear in none of the 2 images.*"
                                         r"training split"):
        median_frequency_weights(counted)


def test_bad_inputs_are_refused_saying_what_came():
    with pytest.raises(ValueError, match=r"masks hold values \[6\] outside the 3 classes"):
        class_frequencies(np.array([[0, 6], [1, 2]]), 3)
    with pytest.raises(ValueError, match="fractional values such as 0.5"):
        class_frequencies([np.array([[0, 0.5]])], 3)
    with pytest.raises(ValueError, match="held no masks"):
        class_frequencies([], 3)
    with pytest.raises(ValueError, match=r"element 0 is a dict with keys \['image', 'mask'\]"):
        class_frequencies([{"image": np.zeros((2, 2, 3)), "mask": np.zeros((2, 2), int)}], 3)
    with pytest.raises(ValueError, match=r"image of rank 4 with a mask of shape \(2, 2\)"):
        class_frequencies([(np.zeros((1, 2, 2, 3)), np.zeros((2, 2), int))], 3)
    with pytest.raises(ValueError, match=r"shape \(1, 1, 2, 2, 2\)"):
        class_frequencies(np.zeros((1, 1, 2, 2, 2), int), 3)
    with pytest.raises(ValueError, match="num_classes must be a positive integer; got 0"):
        class_frequencies(HAND, 0)
    with pytest.raises(ValueError, match="give num_classes"):
        median_frequency_weights(HAND)
    with pytest.raises(ValueError, match="num_classes=4, but the frequencies given count 3"):
        median_frequency_weights(class_frequencies(HAND, 3), 4)
