"""Reliability bins and the expected calibration error (Guo et al. 2017, eq. 3) against a
hand-computed example, a perfectly calibrated case and a per-pixel loop."""

import numpy as np
import pytest

from segcourse.metrics import calibration_bins


def test_a_hand_computed_ece():
    # Four pixels, two classes, four bins: confidences 0.9, 0.9 (bin (0.75, 1]), 0.6 and 0.7
    # (bin (0.5, 0.75]); right: the first, the third. Bin 4: conf 0.9, acc 1/2, gap 0.4;
    # bin 3: conf 0.65, acc 1/2, gap 0.15. ECE = 2/4 · 0.4 + 2/4 · 0.15 = 0.275.
    probabilities = np.array([[0.9, 0.1], [0.1, 0.9], [0.6, 0.4], [0.3, 0.7]])
    truth = np.array([0, 0, 0, 0])
    bins = calibration_bins(probabilities, truth, num_bins=4)
    np.testing.assert_array_equal(bins.count, [0, 0, 2, 2])
    np.testing.assert_allclose(bins.confidence[2:], [0.65, 0.9])
    np.testing.assert_allclose(bins.accuracy[2:], [0.5, 0.5])
    assert np.isnan(bins.accuracy[:2]).all() and np.isnan(bins.confidence[:2]).all()
    assert bins.expected_calibration_error == pytest.approx(0.275)
    assert bins.maximum_calibration_error == pytest.approx(0.4)
    np.testing.assert_allclose(bins.edges, [0, 0.25, 0.5, 0.75, 1])


def test_a_confidence_on_a_bin_edge_belongs_to_the_bin_below():
    bins = calibration_bins(np.array([[0.5, 0.5], [0.8, 0.2]]), np.array([0, 0]), num_bins=2)
    np.testing.assert_array_equal(bins.count, [1, 1])  # (0, 0.5] and (0.5, 1]


def test_a_perfectly_calibrated_prediction_has_zero_ece():
    # In each bin, pixels of one confidence c, a fraction c of them right: ECE exactly 0.
    probabilities, truth = [], []
    for confidence, count in [(0.55, 20), (0.75, 40), (0.9, 100), (1.0, 10)]:
        right = round(confidence * count)
        probabilities += [[confidence, 1 - confidence]] * count
        truth += [0] * right + [1] * (count - right)
    bins = calibration_bins(np.array(probabilities), np.array(truth), num_bins=10)
    assert bins.expected_calibration_error == pytest.approx(0, abs=1e-12)


def test_sampled_from_its_own_probabilities_the_ece_is_small_and_overconfidence_is_not(rng):
    logits = rng.normal(size=(40_000, 4)) * 2
    probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    truth = (rng.random((40_000, 1)) > probabilities.cumsum(-1)).sum(-1)  # y ~ p
    assert calibration_bins(probabilities, truth).expected_calibration_error < 0.015
    sharpened = np.exp(3 * logits) / np.exp(3 * logits).sum(-1, keepdims=True)
    overconfident = calibration_bins(sharpened, truth)
    assert overconfident.expected_calibration_error > 0.1
    assert np.nansum(overconfident.gap * overconfident.count) < 0  # accuracy below confidence


def test_agrees_with_a_pixel_loop_and_leaves_ignored_pixels_out(rng):
    logits = rng.normal(size=(3, 5, 6, 3))
    probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    truth = rng.integers(0, 3, (3, 5, 6))
    truth[0, :2] = 255
    bins = calibration_bins(probabilities, truth, num_bins=5)
    sums, hits, counts = np.zeros(5), np.zeros(5), np.zeros(5)
    for p, t in zip(probabilities.reshape(-1, 3), truth.ravel(), strict=True):
        if t == 255:
            continue
        m = next(j for j in range(5) if p.max() <= (j + 1) / 5)  # (j/5, (j+1)/5]
        sums[m] += p.max()
        hits[m] += p.argmax() == t
        counts[m] += 1
    np.testing.assert_array_equal(bins.count, counts)
    assert counts.sum() == 3 * 5 * 6 - 12
    ece = sum(n / counts.sum() * abs(h / n - s / n)
              for s, h, n in zip(sums, hits, counts, strict=True) if n)
    assert bins.expected_calibration_error == pytest.approx(ece)


def test_logits_and_misfit_shapes_are_refused():
    with pytest.raises(ValueError, match=r"Logits\? Apply a softmax"):
        calibration_bins(np.array([[2.0, -1.0]]), np.array([0]))
    with pytest.raises(ValueError, match=r"sum to 1\.4"):
        calibration_bins(np.array([[0.7, 0.7]]), np.array([0]))
    with pytest.raises(ValueError, match=r"same leading shape; got probabilities of shape "
                                         r"\(2, 3\).*labels of shape \(3,\)"):
        calibration_bins(np.full((2, 3), 1 / 3), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="num_bins is how many"):
        calibration_bins(np.full((2, 3), 1 / 3), np.array([0, 1]), num_bins=0)
    with pytest.raises(ValueError, match=r"values \[3\] outside the 3 classes"):
        calibration_bins(np.full((2, 3), 1 / 3), np.array([0, 3]))
