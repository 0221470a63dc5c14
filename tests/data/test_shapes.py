"""The shapes dataset: seeded, fixed splits, labelled by shape and never by colour."""

import numpy as np
import pytest

from segcourse.data import shapes


def test_pictures_are_fixed_per_split_and_index():
    first, masks = shapes.load("train", 6, 48)
    again, again_masks = shapes.load("train", 3, 48)
    np.testing.assert_array_equal(first[:3], again)
    np.testing.assert_array_equal(masks[:3], again_masks)
    val, _ = shapes.load("val", 3, 48)
    assert not np.allclose(first[:3], val)
    other_seed, _ = shapes.load("train", 3, 48, seed=1)
    assert not np.allclose(first[:3], other_seed)


def test_arrays_have_the_documented_types_and_ranges():
    images, masks = shapes.load("test", 20, 64)
    assert images.shape == (20, 64, 64, 3) and images.dtype == np.float32
    assert masks.shape == (20, 64, 64) and masks.dtype == np.uint8
    assert images.min() >= 0 and images.max() <= 1
    assert set(np.unique(masks)) <= set(range(shapes.NUM_CLASSES))


def test_every_shape_appears_and_colour_tells_nothing_about_the_class():
    images, masks = shapes.load("train", 300, 48)
    mean_colours = np.array([images[masks == k].mean(axis=0)
                             for k in range(1, shapes.NUM_CLASSES)])
    assert (np.bincount(masks.ravel(), minlength=shapes.NUM_CLASSES) > 0).all()
    # Colours are drawn independently of the class: the per-class mean colours coincide up to
    # sampling noise (about 0.03 here; a colour tied to the class would differ by 0.3 or more).
    assert np.abs(mean_colours - mean_colours.mean(axis=0)).max() < 0.1


def test_objects_range_from_small_to_large():
    _, masks = shapes.load("train", 200, 64)
    covered = (masks > 0).mean(axis=(1, 2))
    assert covered.min() < 0.08 and covered.max() > 0.4


def test_occlusion_happens_but_never_hides_most_of_an_object():
    config = shapes.ShapesConfig(size=48)
    rows, cols = np.mgrid[:48, :48].astype(float)
    occluded = 0
    for index in range(300):
        rng = shapes.sample_rng("train", index)
        owner = np.full((48, 48), -1)
        areas = []
        for k in range(3):
            inside = shapes._place(rng, "square", rows, cols, config, owner, areas)
            if inside is None:
                continue
            occluded += int((owner[inside] >= 0).any())
            owner[inside] = k
            areas.append(int(inside.sum()))
            visible = np.bincount(owner[owner >= 0], minlength=len(areas))
            assert np.all(visible >= 0.7 * np.asarray(areas) - 1e-9)
    assert occluded > 10


def test_fresh_epochs_draw_new_pictures_the_same_way_every_run():
    def two_epochs():
        data = shapes.dataset("train", 8, 32, batch_size=4, fresh_each_epoch=True)
        return [np.concatenate([np.asarray(m) for _, m in data]) for _ in range(2)]

    first, second = two_epochs()
    assert first.shape == (8, 32, 32) and not np.array_equal(first, second)
    np.testing.assert_array_equal(first, shapes.load("train", 8, 32)[1])
    rerun = two_epochs()
    np.testing.assert_array_equal(rerun[1], second)


def test_bad_requests_are_refused():
    with pytest.raises(ValueError, match="splits train, val, test; got 'validation'"):
        shapes.load("validation", 3)
    with pytest.raises(ValueError, match="count must be at least 1"):
        shapes.load("train", 0)
