"""The bootstrap interval of the dataset mIoU (Efron & Tibshirani 1993) against scores() and a
plain-Python loop bootstrap on the same random draws."""


import numpy as np
import pytest

from segcourse.metrics import bootstrap_miou, confusion_matrix, picture_confusions, scores


def pictures(rng, count=20, num_classes=4, size=(6, 7)):
    truth = rng.integers(0, num_classes, (count, *size))
    truth[rng.random(truth.shape) < 0.1] = 255
    prediction = np.where(rng.random(truth.shape) < 0.7, truth % 255 % num_classes,
                          rng.integers(0, num_classes, truth.shape))
    return truth, prediction


def test_the_point_estimate_is_the_datasets_miou_never_the_mean_of_pictures(rng):
    truth, prediction = pictures(rng)
    found = bootstrap_miou(picture_confusions(truth, prediction, 4), num_resamples=200)
    assert found.miou == scores(confusion_matrix(truth, prediction, 4)).miou
    assert found.low <= found.miou <= found.high and found.low < found.high
    assert found.resampled.shape == (200,) and found.num_pictures == 20
    assert (found.num_resamples, found.confidence, found.seed) == (200, 0.95, 0)
    assert "95% interval" in str(found)


def test_identical_pictures_give_an_interval_of_zero_width(rng):
    truth, prediction = pictures(rng, count=1)
    confusions = np.repeat(picture_confusions(truth, prediction, 4), 30, axis=0)
    found = bootstrap_miou(confusions, num_resamples=300)
    assert found.low == found.high == pytest.approx(found.miou)
    np.testing.assert_allclose(found.resampled, found.miou)


def loop_bootstrap(confusions, num_resamples, confidence, seed):
    """The textbook algorithm, one resample at a time, by plain Python sums and a class loop."""
    count = len(confusions)
    drawn = np.random.default_rng(seed).integers(0, count, (num_resamples, count))
    values = []
    for row in drawn:
        total = [[0] * confusions.shape[1] for _ in range(confusions.shape[1])]
        for index in row:
            for t in range(confusions.shape[1]):
                for p in range(confusions.shape[1]):
                    total[t][p] += int(confusions[index, t, p])
        ious = []
        for k in range(len(total)):
            union = sum(total[k]) + sum(r[k] for r in total) - total[k][k]
            if union:
                ious.append(total[k][k] / union)
        values.append(sum(ious) / len(ious))
    values.sort()
    return values, np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])


def test_agrees_with_a_loop_bootstrap_on_the_same_draws(rng):
    truth, prediction = pictures(rng, count=9, num_classes=3)
    truth[2] = 255  # a picture without a scored pixel weighs nothing: left out of the draws
    prediction[4][truth[4] == 1] = 0  # class 1 missed in one picture
    confusions = picture_confusions(truth, prediction, 3)
    found = bootstrap_miou(confusions, num_resamples=150, confidence=0.9, seed=7)
    kept = confusions[confusions.sum(axis=(1, 2)) > 0]
    values, (low, high) = loop_bootstrap(kept, 150, 0.9, 7)
    np.testing.assert_allclose(np.sort(found.resampled), values, rtol=1e-12)
    assert (found.low, found.high) == (pytest.approx(low, rel=1e-12),
                                       pytest.approx(high, rel=1e-12))
    assert found.num_pictures == 8


def test_a_class_absent_from_a_resample_is_left_out_as_scores_does():
    # Picture 0 has only class 0, picture 1 only class 1 (both right): every resample's mIoU is 1
    # whether it holds one class or both; counting an absent class as 0 would give 0.5.
    confusions = np.array([[[5, 0], [0, 0]], [[0, 0], [0, 3]]])
    found = bootstrap_miou(confusions, num_resamples=100)
    np.testing.assert_array_equal(found.resampled, 1.0)


def test_the_default_draws_a_thousand_resamples(rng):
    found = bootstrap_miou(rng.integers(0, 500, (200, 6, 6)))
    assert found.resampled.shape == (1000,) and found.num_pictures == 200


def test_coverage_is_about_the_confidence():
    """Pictures drawn from one population: the 80% interval from one test set holds the mIoU
    of a very large set from the same population about 80% of the time."""
    rng = np.random.default_rng(3)

    def draw(count):
        tp = rng.poisson(40, (count, 2))
        wrong = rng.poisson(10, (count, 2))
        out = np.zeros((count, 2, 2), np.int64)
        out[:, 0, 0], out[:, 1, 1] = tp[:, 0], tp[:, 1]
        out[:, 0, 1], out[:, 1, 0] = wrong[:, 0], wrong[:, 1]
        return out

    truth_miou = scores(draw(200_000).sum(axis=0)).miou
    hits = []
    for seed in range(120):
        found = bootstrap_miou(draw(30), num_resamples=300, confidence=0.8, seed=seed)
        hits.append(found.low <= truth_miou <= found.high)
    assert 0.65 < np.mean(hits) < 0.92


@pytest.mark.parametrize("kwargs, message", [
    ({"num_resamples": 0}, "num_resamples is how many bootstrap resamples"),
    ({"confidence": 95}, r"strictly between 0 and 1 \(0.95 for a 95% interval\); got 95"),
    ({"confidence": 1.0}, "strictly between 0 and 1"),
    ({"seed": "a"}, "seed is a whole number .*got 'a'"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bootstrap_miou(np.ones((3, 2, 2), int), **kwargs)


def test_what_is_not_per_picture_counts_is_refused():
    with pytest.raises(ValueError, match=r"bootstrap_miou takes one square matrix per picture, "
                                         r"\(N, K, K\); got shape \(2, 2\)"):
        bootstrap_miou(np.eye(2, dtype=int))
    with pytest.raises(ValueError, match="no scored pixel in the 2 pictures"):
        bootstrap_miou(np.zeros((2, 3, 3), int))
    with pytest.raises(ValueError, match=r"fractional entries .* \(picture 0, row 0, column 0\)"):
        bootstrap_miou(np.full((2, 2, 2), 0.25))
