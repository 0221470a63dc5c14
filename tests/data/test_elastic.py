"""Elastic deformation (U-Net §3.1): identity, shifts, labels kept, image and mask together."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segcourse.data.elastic import (
    bicubic_upsample,
    elastic_deform,
    random_displacement,
    warp_image,
    warp_labels,
)


def test_zero_displacement_is_the_identity(rng):
    image = rng.random((13, 17, 3)).astype(np.float32)
    mask = rng.integers(0, 4, (13, 17)).astype(np.uint8)
    warped, same_mask = elastic_deform(image, mask, rng=rng, sigma=0.0)
    np.testing.assert_array_equal(warped, image)
    np.testing.assert_array_equal(same_mask, mask)
    assert warped.dtype == np.float32 and same_mask.dtype == np.uint8


@pytest.mark.parametrize("mode", ["reflect", "constant"])
def test_a_constant_displacement_is_a_shift(mode, rng):
    image = rng.random((12, 15))
    mask = rng.integers(0, 3, (12, 15)).astype(np.int32)
    field = np.broadcast_to(np.array([2.0, -3.0]), (12, 15, 2))  # take from 2 below, 3 left
    warped, shifted = warp_image(image, field, mode), warp_labels(mask, field)
    np.testing.assert_array_equal(warped[:-2, 3:], image[2:, :-3])
    np.testing.assert_array_equal(shifted[:-2, 3:], mask[2:, :-3])
    assert (shifted[-2:] == 255).all() and (shifted[:, :3] == 255).all()
    if mode == "constant":
        assert (warped[-2:] == 0).all() and (warped[:, :3] == 0).all()
    else:  # mirrored through the edge pixel: row 12 is row 10, column −1 is column 1
        np.testing.assert_array_equal(warped[-2:, 3:], image[[10, 9], :-3])
        np.testing.assert_array_equal(warped[:-2, 2], image[2:, 1])


def test_a_half_pixel_shift_averages_the_image_and_never_the_mask():
    image = np.array([[0.0, 1.0, 4.0, 9.0]])
    mask = np.array([[0, 1, 2, 3]], np.uint8)
    field = np.broadcast_to(np.array([0.0, 0.25]), (1, 4, 2))
    np.testing.assert_allclose(warp_image(image, field)[0, :3], [0.25, 1.75, 5.25])
    np.testing.assert_array_equal(warp_labels(mask, field), mask)  # nearest: 0.25 rounds back


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31), sigma=st.floats(0.0, 20.0))
def test_masks_keep_their_labels_and_the_same_rng_gives_the_same_result(seed, sigma):
    labels = np.random.default_rng(seed).choice([0, 1, 5], (24, 20)).astype(np.uint8)
    image = labels.astype(np.float32)
    first = elastic_deform(image, labels, rng=np.random.default_rng(seed), sigma=sigma)
    again = elastic_deform(image, labels, rng=np.random.default_rng(seed), sigma=sigma)
    assert set(np.unique(first[1])) <= {0, 1, 5, 255}
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)


def test_each_mask_gets_its_own_fill(rng):
    mask = np.ones((10, 10), np.uint8)
    instances = np.full((10, 10), 300, np.int32)
    _, warped_mask, warped_ids = elastic_deform(np.zeros((10, 10)), mask, instances, rng=rng,
                                                sigma=30.0, mask_fill=(255, 0))
    outside = warped_mask == 255
    assert outside.any() and (warped_ids[outside] == 0).all()
    assert (warped_ids[~outside] == 300).all()


def test_several_masks_need_one_fill_each(rng):
    """The default fill (255, the ignore label) suits a class mask, not an instance-id map:
    there 255 reads as a cell id, and the weight map draws borders around it. With several
    masks a single fill, the default included, is refused; one mask keeps the default."""
    image = np.zeros((10, 10))
    mask = np.ones((10, 10), np.uint8)
    instances = np.ones((10, 10), np.int32)
    for fill in ({}, {"mask_fill": 255}, {"mask_fill": 0}, {"mask_fill": np.int64(255)}):
        with pytest.raises(ValueError, match=r"single fill, but 2 masks.*"
                                             r"e\.g\. mask_fill=\(255, 0\) for a class mask "
                                             r"plus an instance-id map"):
            elastic_deform(image, mask, instances, rng=rng, sigma=30.0, **fill)
    with pytest.raises(ValueError, match=r"2 fills \(255, 0\) for 3 masks"):
        elastic_deform(image, mask, instances, mask, rng=rng, mask_fill=[255, 0])
    # One mask: the default, or the same fill as a 1-tuple or list, alike.
    alone = [elastic_deform(image, mask, rng=np.random.default_rng(1), sigma=30.0, **fill)[1]
             for fill in ({}, {"mask_fill": (255,)}, {"mask_fill": [255]})]
    assert (alone[0] == 255).any() and set(np.unique(alone[0])) == {1, 255}
    for other in alone[1:]:
        np.testing.assert_array_equal(other, alone[0])
    # A list of fills works like the tuple, and the instance map gets background where the
    # class mask gets the ignore label.
    _, warped_mask, warped_ids = elastic_deform(image, mask, instances,
                                                rng=np.random.default_rng(1), sigma=30.0,
                                                mask_fill=[255, 0])
    np.testing.assert_array_equal(warped_mask, alone[0])
    np.testing.assert_array_equal(warped_ids, np.where(warped_mask == 255, 0, 1))


def test_image_and_mask_move_together():
    size = 64
    rows, cols = np.indices((size, size))
    disc = (rows - 30) ** 2 + (cols - 36) ** 2 <= 8**2
    image, mask = disc.astype(np.float32), disc.astype(np.uint8)
    moved = 0.0
    for seed in range(5):
        rng = np.random.default_rng(seed)
        warped, warped_mask = elastic_deform(image, mask, rng=rng, sigma=4.0)
        centre_mask = np.argwhere(warped_mask == 1).mean(axis=0)
        centre_image = (np.indices((size, size)) * warped).sum(axis=(1, 2)) / warped.sum()
        np.testing.assert_allclose(centre_image, centre_mask, atol=0.35)
        moved = max(moved, np.abs(centre_mask - (30, 36)).max())
    assert moved > 1  # the disc did move


def test_the_field_is_smooth_gaussian_and_passes_through_its_nodes(rng):
    grid = rng.normal(size=(3, 3, 2))
    field = bicubic_upsample(grid, (21, 41))
    np.testing.assert_allclose(field[::10, ::20], grid)  # nodes on corners, edges and centre
    np.testing.assert_allclose(bicubic_upsample(np.full((3, 3), 7.0), (5, 6)), 7.0)
    fields = np.stack([random_displacement((9, 9), np.random.default_rng(s)) for s in range(400)])
    assert fields[:, 0, 0].std() == pytest.approx(10, rel=0.15)  # a node: σ = 10 pixels
    # neighbouring pixels move alike: a step of one pixel changes the field far less than
    # the step between two nodes (4 pixels here)
    step = np.abs(np.diff(fields, axis=1)).mean()
    assert step < 0.5 * np.abs(fields[:, 4] - fields[:, 0]).mean()


def test_bad_inputs_are_refused(rng):
    image = np.zeros((8, 8))
    with pytest.raises(ValueError, match=r"every mask must be \(H, W\) = \(8, 8\)"):
        elastic_deform(image, np.zeros((8, 9), np.uint8), rng=rng)
    with pytest.raises(ValueError, match="never interpolated"):
        elastic_deform(image, np.zeros((8, 8), np.float32), rng=rng)
    with pytest.raises(ValueError, match="fill must be an integer that int8 holds"):
        elastic_deform(image, np.zeros((8, 8), np.int8), rng=rng)
    with pytest.raises(ValueError, match=r"one fill per mask: 2 fills \(255, 0\) for 1 masks"):
        elastic_deform(image, np.zeros((8, 8), np.uint8), rng=rng, mask_fill=(255, 0))
    with pytest.raises(ValueError, match=r"tuple/list of one int per mask.*got 255\.0"):
        elastic_deform(image, np.zeros((8, 8), np.uint8), rng=rng, mask_fill=255.0)
    with pytest.raises(ValueError, match="fill must be an integer that uint8 holds.*got -1"):
        elastic_deform(image, np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8), rng=rng,
                       mask_fill=(255, -1))
    with pytest.raises(ValueError, match="grid is the number of nodes"):
        elastic_deform(image, rng=rng, grid=1)
    with pytest.raises(ValueError, match="rng must be a numpy.random.Generator"):
        elastic_deform(image, rng=0)
    with pytest.raises(ValueError, match="image mode must be one of"):
        elastic_deform(image, rng=rng, image_mode="wrap")
    with pytest.raises(ValueError, match=r"must be \(H, W, 2\)"):
        warp_image(image, np.zeros((8, 8)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_non_uniform_warp_samples_where_scipy_samples(seed):
    """A second implementation: scipy.ndimage.map_coordinates at the same source coordinates,
    bilinear (order 1) for the image, nearest (order 0) for the labels. Its 'mirror' mode is the
    mirror through the edge pixel, its 'grid-constant' the zeros (or the fill) outside."""
    from scipy.ndimage import map_coordinates

    rng = np.random.default_rng(seed)
    height, width = (int(n) for n in rng.integers(9, 40, size=2))
    image = rng.random((height, width, 2))
    labels = rng.integers(0, 5, (height, width)).astype(np.int32)
    field = random_displacement((height, width), rng, sigma=6.0)  # some sources off the picture
    rows, cols = np.indices((height, width), dtype=np.float64)
    source = [rows + field[..., 0], cols + field[..., 1]]
    outside = ((source[0] < -0.5) | (source[0] > height - 0.5) | (source[1] < -0.5)
               | (source[1] > width - 0.5))
    assert 0 < outside.mean() < 0.5  # the test reaches both branches
    for mode, scipy_mode in (("reflect", "mirror"), ("constant", "grid-constant")):
        expected = np.stack([map_coordinates(image[..., k], source, order=1, mode=scipy_mode,
                                             cval=0.0) for k in range(2)], axis=-1)
        np.testing.assert_allclose(warp_image(image, field, mode), expected, atol=1e-12)
    np.testing.assert_array_equal(
        warp_labels(labels, field), map_coordinates(labels, source, order=0,
                                                    mode="grid-constant", cval=255))
