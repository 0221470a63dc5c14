"""The boundary F-score (Csurka et al. 2013) against a hand-counted example, a brute-force
second computation (the distance from every boundary pixel to every boundary pixel of the other
map) and a VOC-like void band around an object."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segcourse.metrics import boundary_f_score


def square(top, left, size=4, shape=(9, 9)):
    mask = np.zeros(shape, int)
    mask[top:top + size, left:left + size] = 1
    return mask


@pytest.mark.parametrize("tolerance, matched", [(0, 2), (1, 11), (2, 12)])
def test_a_square_shifted_one_pixel_down_and_right(tolerance, matched):
    """Truth: the 4×4 square at rows/columns 2..5, its outline 12 pixels; prediction: the same
    square at 3..6. By hand: the outlines share (3, 5) and (5, 3); at distance 1 every predicted
    outline pixel but the far corner (6, 6) has a true one (its nearest, (5, 5), is √2 away), and
    symmetrically every true one but (2, 2); at distance 2 all of them."""
    found = boundary_f_score(square(2, 2), square(3, 3), 2, tolerance=tolerance)
    assert found.true_boundary[1] == found.predicted_boundary[1] == 12
    assert found.matched_predicted[1] == found.matched_true[1] == matched
    assert found.precision[1] == pytest.approx(matched / 12)
    assert found.recall[1] == pytest.approx(matched / 12)
    assert found.f_score[1] == pytest.approx(matched / 12)  # P = R, so F = P
    # The background's boundary is the ring around each square (4-neighbours): 16 pixels.
    assert found.true_boundary[0] == found.predicted_boundary[0] == 16


def test_precision_and_recall_differ_when_the_prediction_is_smaller():
    """A 2×2 prediction inside the 4×4 true square: its 4 pixels are all outline and lie 1 away
    from the true outline; of the true outline's 12, those within 1 of the 2×2 are the 8 edge
    pixels next to it (corners are √2 away)."""
    truth, prediction = square(2, 2), square(3, 3, size=2)
    found = boundary_f_score(truth, prediction, 2, tolerance=1)
    assert (found.precision[1], found.recall[1]) == (1.0, pytest.approx(8 / 12))
    assert found.f_score[1] == pytest.approx(2 * (8 / 12) / (1 + 8 / 12))


def test_a_perfect_prediction_scores_one_and_an_absent_class_is_nan(rng):
    truth = rng.integers(0, 3, (2, 10, 12))
    found = boundary_f_score(truth, truth, 4, tolerance=0)
    np.testing.assert_array_equal(found.f_score[:3], 1.0)
    assert np.isnan(found.f_score[3]) and found.mean_f_score == 1.0
    logits = np.eye(4)[truth] * 5  # scores are reduced by argmax, as confusion_matrix does
    assert boundary_f_score(truth, logits, 4).mean_f_score == 1.0


def test_a_class_missed_entirely_scores_zero():
    found = boundary_f_score(square(2, 2), np.zeros((9, 9), int), 2)
    assert found.recall[1] == 0 and np.isnan(found.precision[1]) and found.f_score[1] == 0
    assert found.mean_f_score == 0.0  # the background has no predicted boundary either


def test_ignored_pixels_are_out_of_the_count():
    truth, prediction = square(2, 2), square(2, 3)  # shifted right: columns 3..6
    truth[:, 6:] = 255  # the predicted outline's right side (column 6) lies on ignore pixels
    found = boundary_f_score(truth, prediction, 2, tolerance=0)
    # Predicted outline: 12 pixels, 4 of them (column 6) on ignore pixels, unscored; true
    # outline: 12 pixels.
    assert found.predicted_boundary[1] == 8 and found.true_boundary[1] == 12
    assert found.predicted_on_ignore[1] == 4
    # Shared with the true outline: rows 2 and 5, columns 3..5.
    assert found.matched_predicted[1] == 6 and found.matched_true[1] == 6
    without = truth.copy()
    without[:, 6:] = 0  # the same pixels labelled background instead: counted again
    found = boundary_f_score(without, prediction, 2, tolerance=0)
    assert found.predicted_boundary[1] == 12 and found.matched_predicted[1] == 6
    with pytest.raises(ValueError, match=r"values \[255\] outside the 2 classes \(0..1\)"):
        boundary_f_score(truth, prediction, 2, ignore_index=None)  # then 255 is no label


def brute_force(truth, prediction, num_classes, tolerance, ignore=255):
    """Boundary pixels by looking at the four neighbours, matches by every pairwise distance.
    True boundary pixels are off ignore pixels; predicted ones anywhere, and those on ignore
    pixels match true ones (recall) but are left out of precision's count."""
    keep = truth != ignore

    def edges(labels, k, where):
        points = set()
        height, width = labels.shape
        for y in range(height):
            for x in range(width):
                if labels[y, x] != k or not where[y, x]:
                    continue
                neighbours = [(y + dy, x + dx) for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1))]
                if any(0 <= v < height and 0 <= u < width and labels[v, u] != k
                       for v, u in neighbours):
                    points.add((y, x))
        return np.array(sorted(points), float).reshape(-1, 2)

    anywhere = np.ones(truth.shape, bool)
    counts = np.zeros((5, num_classes), int)
    for k in range(num_classes):
        t = edges(truth, k, keep)
        p_all, p_scored = edges(prediction, k, anywhere), edges(prediction, k, keep)

        def near(points, others):
            if not (len(points) and len(others)):
                return 0
            distance = np.sqrt(((points[:, None] - others[None]) ** 2).sum(-1))
            return int((distance <= tolerance).any(1).sum())

        counts[:, k] = [len(t), len(p_scored), near(t, p_all), near(p_scored, t),
                        len(p_all) - len(p_scored)]
    return counts


@given(seed=st.integers(0, 10_000), num_classes=st.integers(2, 4), tolerance=st.integers(0, 3))
@settings(max_examples=25, deadline=None)
def test_agrees_with_brute_force_distances(seed, num_classes, tolerance):
    rng = np.random.default_rng(seed)
    # Blocky maps (a random map upsampled) so that there are regions, not only noise.
    truth = np.kron(rng.integers(0, num_classes, (4, 5)), np.ones((3, 3), int))
    prediction = np.roll(truth, rng.integers(-2, 3, 2), axis=(0, 1))
    prediction[rng.random(prediction.shape) < 0.05] = 0
    truth[rng.random(truth.shape) < 0.05] = 255
    found = boundary_f_score(truth, prediction, num_classes, tolerance=tolerance)
    expected = brute_force(truth, prediction, num_classes, tolerance)
    np.testing.assert_array_equal([found.true_boundary, found.predicted_boundary,
                                   found.matched_true, found.matched_predicted,
                                   found.predicted_on_ignore], expected)
    # A perfect prediction (the truth, with anything where it is ignored) has precision 1
    # wherever precision is defined: each of its scored boundary pixels is a true one.
    perfect = np.where(truth == 255, prediction, truth)
    precision = boundary_f_score(truth, perfect, num_classes, tolerance=0).precision
    assert np.all(np.isnan(precision) | (precision == 1))


def test_summed_over_pictures_as_one_dataset():
    truth = np.stack([square(2, 2), square(1, 1)])
    prediction = np.stack([square(3, 3), square(1, 1)])
    found = boundary_f_score(truth, prediction, 2, tolerance=0)
    assert found.matched_predicted[1] == 2 + 12 and found.predicted_boundary[1] == 24


@pytest.mark.parametrize("tolerance", [-1, 1.5, True])
def test_bad_tolerance_and_shapes_are_refused(tolerance):
    with pytest.raises(ValueError, match="tolerance is a distance in whole pixels"):
        boundary_f_score(square(2, 2), square(2, 2), 2, tolerance=tolerance)
    with pytest.raises(ValueError, match=r"label maps \(H, W\) or \(N, H, W\); got y_true of "
                                         r"shape \(9,\)"):
        boundary_f_score(np.zeros(9, int), np.zeros(9, int), 2)


def voc_object(band=True):
    """A 16×16 object (rows and columns 8..23) in a 32×32 picture and, as in VOC, a 5-pixel
    void band straddling its outline: the 2 outermost pixels of the object and the 3 pixels
    of background beyond them within that Euclidean distance (rounded at the corners)."""
    from scipy import ndimage

    obj = np.zeros((32, 32), int)
    obj[8:24, 8:24] = 1
    truth = obj.copy()
    if band:
        inside, outside = ndimage.distance_transform_edt(obj), ndimage.distance_transform_edt(
            1 - obj)
        truth[((obj == 1) & (inside <= 2)) | ((obj == 0) & (outside <= 3))] = 255
    return truth, obj


def test_a_perfect_prediction_on_a_voc_void_band_scores_one():
    """The true object's outline lies in the middle of the void band, so every boundary pixel
    of the perfect prediction (the object's own outline, 60 pixels, and the background's ring
    around it, 64) is on ignore pixels: once dropped, F was 0 at every tolerance."""
    truth, prediction = voc_object()
    assert np.flatnonzero(truth[:, 16] == 255).tolist() == [5, 6, 7, 8, 9, 22, 23, 24, 25, 26]
    found = boundary_f_score(truth, prediction, 2, tolerance=3)
    # Recall: the predicted outline in the band is within 3 of every true boundary pixel (the
    # band's wider side is 3 pixels); F is then the recall, the one score defined.
    np.testing.assert_array_equal(found.recall, [1.0, 1.0])
    np.testing.assert_array_equal(found.f_score, [1.0, 1.0])
    assert found.mean_f_score == 1.0
    # Precision: no predicted boundary pixel is scored, so it is undefined; not 0.
    assert np.isnan(found.precision).all()
    np.testing.assert_array_equal(found.predicted_boundary, [0, 0])
    np.testing.assert_array_equal(found.predicted_on_ignore, [64, 60])
    # True boundary pixels line the band: the object's 12×12 remainder (44), and the
    # background's pixels next to the band's outer edge (80), all matched.
    np.testing.assert_array_equal(found.true_boundary, [80, 44])
    np.testing.assert_array_equal(found.matched_true, [80, 44])
    # Within 2, the object's side of the band (2 pixels) is reached, the background's (3) not.
    found = boundary_f_score(truth, prediction, 2, tolerance=2)
    np.testing.assert_array_equal(found.recall, [0.0, 1.0])
    np.testing.assert_array_equal(found.f_score, [0.0, 1.0])


def test_a_perfect_prediction_with_and_without_a_void_band_scores_one():
    """Beside a picture without the band, precision is defined, by that picture alone: 1."""
    truths, predictions = zip(voc_object(), voc_object(band=False), strict=True)
    found = boundary_f_score(np.stack(truths), np.stack(predictions), 2, tolerance=3)
    np.testing.assert_array_equal(found.predicted_boundary, [64, 60])  # the plain picture's
    np.testing.assert_array_equal(found.precision, [1.0, 1.0])
    np.testing.assert_array_equal(found.recall, [1.0, 1.0])
    np.testing.assert_array_equal(found.f_score, [1.0, 1.0])


def test_a_prediction_only_on_ignore_pixels_with_no_true_boundary_is_absent():
    truth = np.full((8, 8), 255)
    truth[:, :2] = 0  # class 0 at the left, no class 1 anywhere scored
    prediction = np.zeros((8, 8), int)
    prediction[3:6, 4:7] = 1  # a class-1 blob wholly on ignore pixels: unscored
    found = boundary_f_score(truth, prediction, 2, tolerance=1)
    assert not found.present[1] and np.isnan(found.f_score[1])
    assert found.predicted_on_ignore[1] == 8 and found.predicted_boundary[1] == 0
