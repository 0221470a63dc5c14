"""RoIPool and RoIAlign against hand examples, against TensorFlow's crop_and_resize (an
independent bilinear sampler) and against what bilinear interpolation must reproduce."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segcourse.instances.roi import (
    bilinear,
    check_boxes,
    quantization_error,
    quantized_box,
    roi_align,
    roi_pool,
    roi_pool_bins,
    sample_positions,
)

# --- RoIAlign by hand ----------------------------------------------------------------------


def test_roi_align_by_hand_at_bin_centres():
    # f[i, j] = 8 i + j. Box [1, 5) x [1, 5), 2 x 2 bins of 2 cells: one sample per bin at its
    # centre, feature points 2 and 4, array positions 1.5 and 3.5 (cell centres at + 0.5):
    # f(1.5, 1.5) = 13.5, f(1.5, 3.5) = 15.5, f(3.5, 1.5) = 29.5, f(3.5, 3.5) = 31.5.
    features = np.arange(64.0).reshape(8, 8)
    np.testing.assert_allclose(roi_align(features, [[1, 1, 5, 5]], 2, sampling_ratio=1),
                               [[[13.5, 15.5], [29.5, 31.5]]])


def test_roi_align_four_samples_average_a_checkerboard():
    # A 2 x 2 checkerboard; one bin over the whole map; sampling_ratio 2 puts the samples at
    # feature points 0.5 and 1.5 = array positions 0 and 1, the four cells exactly: mean 0.5.
    features = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert roi_align(features, [[0, 0, 2, 2]], 1, sampling_ratio=2)[0, 0, 0] == 0.5
    # one sample, at the centre (array position 0.5, 0.5): the mean of the four too
    assert roi_align(features, [[0, 0, 2, 2]], 1, sampling_ratio=1)[0, 0, 0] == 0.5
    # aligned=False samples array positions 0.5 and 1.5 (clamped to 1): half a cell off,
    # f(.5, .5) = f(.5, 1) = f(1, .5) = 0.5 and f(1, 1) = 1, mean 0.625
    assert roi_align(features, [[0, 0, 2, 2]], 1, sampling_ratio=2, aligned=False)[0, 0, 0] \
        == 0.625


def test_spatial_scale_maps_image_pixels_to_feature_cells():
    rng = np.random.default_rng(0)
    features = rng.random((8, 8, 3))
    at_stride_4 = roi_align(features, [[4, 8, 20, 28]], 3, spatial_scale=0.25)
    at_stride_1 = roi_align(features, [[1, 2, 5, 7]], 3)
    np.testing.assert_allclose(at_stride_4, at_stride_1)
    assert at_stride_4.shape == (1, 3, 3, 3)


def test_sample_positions_are_regular_within_each_bin():
    np.testing.assert_allclose(sample_positions(1.0, 5.0, 2, 2), [[1.5, 2.5], [3.5, 4.5]])


def test_bilinear_interpolates_between_cells_and_clamps_at_the_edge():
    features = np.array([[0.0, 10.0], [20.0, 30.0]])
    np.testing.assert_allclose(bilinear(features, np.array([0.5, 0.0, -0.5, 1.5]),
                                        np.array([0.5, 0.25, -0.5, 1.5])), [15.0, 2.5, 0, 30])


# --- RoIAlign against TensorFlow ------------------------------------------------------------


def crop_and_resize_reference(features, box, output_size, spatial_scale, sampling_ratio):
    """RoIAlign from ``tf.image.crop_and_resize``, which samples array positions
    ``y1n (H - 1) + i (y2n - y1n) (H - 1) / (n - 1)`` for i in 0..n-1 (n samples, normalized
    box ``[y1n, x1n, y2n, x2n]``). RoIAlign's samples along y, at array positions, run from
    ``Y1 + b / 2 - 1/2`` to ``Y2 - b / 2 - 1/2`` in steps of ``b``, where ``Y = y * scale`` and
    ``b`` is the sample spacing (bin height / sampling_ratio): so crop
    ``n = H_out * sampling_ratio`` samples with ``y1n = (Y1 + b/2 - 1/2) / (H - 1)`` and
    ``y2n = (Y2 - b/2 - 1/2) / (H - 1)`` (likewise x), then average each ratio x ratio block."""
    tf = pytest.importorskip("tensorflow")
    height, width = features.shape[:2]
    out_h, out_w = output_size
    x1, y1, x2, y2 = np.asarray(box, dtype=np.float64) * spatial_scale
    step_y = (y2 - y1) / (out_h * sampling_ratio)
    step_x = (x2 - x1) / (out_w * sampling_ratio)
    normalized = [(y1 + step_y / 2 - 0.5) / (height - 1), (x1 + step_x / 2 - 0.5) / (width - 1),
                  (y2 - step_y / 2 - 0.5) / (height - 1), (x2 - step_x / 2 - 0.5) / (width - 1)]
    crop = tf.image.crop_and_resize(
        features[None].astype(np.float64), np.array([normalized]), [0],
        [out_h * sampling_ratio, out_w * sampling_ratio]).numpy()[0]
    channels = features.shape[2]
    return crop.reshape(out_h, sampling_ratio, out_w, sampling_ratio, channels).mean(axis=(1, 3))


@settings(max_examples=25, deadline=None)
@given(data=st.data(), height=st.integers(3, 12), width=st.integers(3, 12),
       out_h=st.integers(1, 5), out_w=st.integers(1, 5), ratio=st.integers(1, 3),
       stride=st.sampled_from([1, 2, 4]))
def test_roi_align_equals_crop_and_resize(data, height, width, out_h, out_w, ratio, stride):
    # Boxes keep their samples at array positions >= 0 and <= size - 1 (feature coordinates in
    # [0.5, size - 0.5]), where the two samplers agree; outside, RoIAlign clamps to the edge
    # cell and crop_and_resize extrapolates with zeros.
    def interval(size):
        a = data.draw(st.floats(0.5, size - 1.0)) * stride
        b = data.draw(st.floats(a / stride + 0.25, size - 0.5)) * stride
        return a, b

    x1, x2 = interval(width)
    y1, y2 = interval(height)
    features = np.random.default_rng(height * width).random((height, width, 2))
    expected = crop_and_resize_reference(features, (x1, y1, x2, y2), (out_h, out_w),
                                         1 / stride, ratio)
    got = roi_align(features, [[x1, y1, x2, y2]], (out_h, out_w), 1 / stride, ratio)[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(a=st.floats(-3, 3), b=st.floats(-3, 3), c=st.floats(-3, 3),
       box=st.tuples(st.floats(0.5, 4), st.floats(0.5, 4), st.floats(5, 9.5),
                     st.floats(5, 9.5)),
       ratio=st.integers(1, 4))
def test_roi_align_of_a_linear_ramp_is_exact(a, b, c, box, ratio):
    # Bilinear interpolation reproduces a linear function, and a bin's samples are symmetric
    # about its centre: each bin equals the ramp at the bin's centre (minus the half cell).
    rows, cols = np.mgrid[0:10, 0:10]
    features = a * rows + b * cols + c
    x1, y1, x2, y2 = box
    got = roi_align(features, [box], (3, 4), sampling_ratio=ratio)[0]
    centre_y = y1 + (np.arange(3) + 0.5) * (y2 - y1) / 3 - 0.5
    centre_x = x1 + (np.arange(4) + 0.5) * (x2 - x1) / 4 - 0.5
    np.testing.assert_allclose(got, a * centre_y[:, None] + b * centre_x[None, :] + c,
                               atol=1e-9)


# --- RoIPool ---------------------------------------------------------------------------------


def test_roi_pool_on_an_aligned_box_is_the_hand_max():
    rng = np.random.default_rng(1)
    features = rng.random((8, 8, 2))
    # box of cells 2..5 x 0..5 (x1=0, x2=6, y1=2, y2=6): 2 x 3 bins of 2 x 2 cells
    pooled = roi_pool(features, [[0, 2, 6, 6]], (2, 3))[0]
    for i in range(2):
        for j in range(3):
            window = features[2 + 2 * i:4 + 2 * i, 2 * j:2 * j + 2]
            np.testing.assert_array_equal(pooled[i, j], window.max(axis=(0, 1)))


def test_roi_pool_snaps_box_and_bins():
    # x1 = 37 at stride 16 is cell 2.3125, snapped to 2; x2 = 200 is 12.5, rounded up to 13
    np.testing.assert_array_equal(quantized_box([37, 10, 200, 90], 1 / 16), [2, 1, 13, 6])
    np.testing.assert_allclose(quantization_error([37, 10, 200, 90], 1 / 16), [-5, 6, 8, 6])
    # 5 rows into 2 bins: floor(0) .. ceil(2.5) = 0..3 and floor(2.5) .. ceil(5) = 2..5
    rows, cols = roi_pool_bins([0, 0, 3, 5], 2)
    assert rows == [(0, 3), (2, 5)] and cols == [(0, 2), (1, 3)]
    # a box of one row into 2 bins: both bins pool that row
    rows, _ = roi_pool_bins([0, 4, 2, 5], 2)
    assert rows == [(4, 5), (4, 5)]


def test_quantization_error_is_at_most_half_a_cell(rng):
    xs, ys = np.sort(rng.uniform(0, 512, (2, 200, 2)), axis=2)
    boxes = np.stack([xs[:, 0], ys[:, 0], xs[:, 1] + 32, ys[:, 1] + 32], axis=1)  # none widened
    for stride in (4, 8, 16, 32):
        error = quantization_error(boxes, 1 / stride)
        assert np.abs(error).max() <= stride / 2
        assert np.abs(error).max() > stride / 2 * 0.9  # the bound is reached, near enough


def test_roi_pool_box_on_the_far_edge_pools_the_last_cell():
    features = np.arange(16.0).reshape(4, 4)
    # x in [3.8, 4): snapped to cell 4, which does not exist: moved back onto cell 3
    np.testing.assert_array_equal(roi_pool(features, [[3.8, 0, 4, 4]], (2, 1))[0],
                                  [[7.0], [15.0]])


def test_roi_pool_is_blind_to_sub_cell_shifts_and_roi_align_is_not():
    # The paper's point (He et al. 2017, §3): shift a box by 5 pixels at stride 16 (0.3125 of a
    # cell). RoIPool snaps both boxes to the same cells; RoIAlign of a ramp moves with the box.
    features = np.tile(np.arange(16.0), (16, 1))  # the ramp f = column
    box = np.array([[32.0, 32.0, 160.0, 160.0]])
    shifted = box + np.array([5.0, 0.0, 5.0, 0.0])
    np.testing.assert_array_equal(roi_pool(features, shifted, 4, 1 / 16),
                                  roi_pool(features, box, 4, 1 / 16))
    np.testing.assert_allclose(roi_align(features, shifted, 4, 1 / 16)
                               - roi_align(features, box, 4, 1 / 16), 5 / 16)


# --- what is refused -------------------------------------------------------------------------


@pytest.mark.parametrize("pool", [roi_align, roi_pool])
@pytest.mark.parametrize(("box", "message"), [
    ([5, 1, 2, 4], "x2 > x1"),            # x2 < x1: (y1, x1, y2, x2) order or a typo
    ([1, 1, 1, 4], "x2 > x1"),            # empty
    ([-1, 0, 3, 3], "outside the image"),
    ([0, 0, 9, 3], "outside the image"),  # x2 past the 8-pixel-wide image
    ([0, np.nan, 3, 3], "finite"),
])
def test_bad_boxes_are_refused(pool, box, message):
    with pytest.raises(ValueError, match=message):
        pool(np.zeros((4, 4)), [box], 2, spatial_scale=0.5)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        check_boxes([[0, 0, 1]])
    with pytest.raises(ValueError, match="shaped \\(height, width\\)"):
        roi_align(np.zeros((1, 4, 4, 1)), [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="spatial_scale"):
        roi_align(np.zeros((4, 4)), [[0, 0, 1, 1]], spatial_scale=0)
    with pytest.raises(ValueError, match="sampling_ratio"):
        roi_align(np.zeros((4, 4)), [[0, 0, 1, 1]], sampling_ratio=0)
    for size in ((2, 0), 2.5, (2, 2, 2)):
        with pytest.raises(ValueError, match="output_size"):
            roi_pool(np.zeros((4, 4)), [[0, 0, 1, 1]], output_size=size)
