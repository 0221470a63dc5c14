"""Panoptic quality (Kirillov et al. 2019) against hand-computed cases, a brute-force second
implementation (every pair of segments, as sets of pixels) and PQ = SQ · RQ."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segcourse.metrics import panoptic_quality


def test_a_perfect_prediction_scores_one_per_class():
    classes = np.zeros((4, 6), int)
    classes[1:3, 1:3] = 1
    instances = (classes == 1).astype(int) * 7
    found = panoptic_quality((classes, instances), (classes, instances), 3)
    np.testing.assert_array_equal(found.pq[:2], 1.0)
    assert np.isnan(found.pq[2])  # class 2 is nowhere: left out of the means
    assert found.mean() == {"pq": 1.0, "sq": 1.0, "rq": 1.0, "classes": 2}


def hand_case():
    """Class 1 (things): a match at IoU 3/5 = 0.6, a missed segment (FN), a spurious one (FP);
    class 0 (stuff): the rest."""
    true_classes, pred_classes = np.zeros((4, 10), int), np.zeros((4, 10), int)
    true_ids, pred_ids = np.zeros((4, 10), int), np.zeros((4, 10), int)
    true_classes[0, 0:4], true_ids[0, 0:4] = 1, 1  # matched: 3 shared of 5 in the union
    pred_classes[0, 1:5], pred_ids[0, 1:5] = 1, 1
    true_classes[2, 0:4], true_ids[2, 0:4] = 1, 2  # FN: predicted as background
    pred_classes[3, 6:10], pred_ids[3, 6:10] = 1, 5  # FP: true background
    return (true_classes, true_ids), (pred_classes, pred_ids)


def test_one_match_at_iou_0_6_one_false_positive_one_false_negative():
    truth, prediction = hand_case()
    found = panoptic_quality(truth, prediction, 2, things=[1])
    assert (found.tp[1], found.fp[1], found.fn[1]) == (1, 1, 1)
    assert found.pq[1] == pytest.approx(0.6 * 1 / (1 + 0.5 + 0.5))
    assert (found.sq[1], found.rq[1]) == (pytest.approx(0.6), pytest.approx(0.5))
    # Background: 40 − 8 true pixels, 40 − 8 predicted, 40 − 13 shared: IoU 27/37, a match.
    assert found.pq[0] == pytest.approx(27 / 37) and found.rq[0] == 1
    assert found.mean()["pq"] == pytest.approx((0.3 + 27 / 37) / 2)
    assert found.mean("things")["pq"] == pytest.approx(0.3)
    assert found.mean("stuff") == {"pq": pytest.approx(27 / 37), "sq": pytest.approx(27 / 37),
                                   "rq": 1.0, "classes": 1}


def test_stuff_instance_ids_are_not_read_when_the_things_are_given():
    truth, (pred_classes, pred_ids) = hand_case()
    pred_ids = np.where(pred_classes == 0, np.arange(40).reshape(4, 10), pred_ids)
    with_things = panoptic_quality(truth, (pred_classes, pred_ids), 2, things=[1])
    assert with_things.pq[0] == pytest.approx(27 / 37)
    without = panoptic_quality(truth, (pred_classes, pred_ids), 2)  # 32 one-pixel segments
    assert (without.tp[0], without.fp[0], without.fn[0]) == (0, 32, 1)


def test_void_pixels_leave_the_predicted_segments_and_a_mostly_void_one_is_no_false_positive():
    true_classes = np.zeros((4, 10), int)
    true_classes[1] = 255  # a void row
    true_classes[3, 7:10] = 255
    true_ids = np.zeros_like(true_classes)
    true_classes[0, 0:4], true_ids[0, 0:4] = 1, 1
    pred_classes, pred_ids = np.zeros_like(true_classes), np.zeros_like(true_classes)
    # Matched at IoU 1: its 4 void pixels (row 1) are removed before the IoU (else 4/8).
    pred_classes[0:2, 0:4], pred_ids[0:2, 0:4] = 1, 1
    pred_classes[3, 6:10], pred_ids[3, 6:10] = 1, 2  # 3 of 4 pixels void: dropped
    pred_classes[2, 6:10], pred_ids[2, 6:10] = 1, 3  # not void at all: a false positive
    found = panoptic_quality((true_classes, true_ids), (pred_classes, pred_ids), 2, things=[1])
    assert (found.tp[1], found.fp[1], found.fn[1]) == (1, 1, 0)
    assert found.iou_sum[1] == 1.0
    pred_classes[3, 6:8] = 0  # now 2 pixels, 1 of them void: half is not more than half
    pred_classes[3, 8:10] = 255  # (and the other two abstain: no segment at all)
    found = panoptic_quality((true_classes, true_ids), (pred_classes, pred_ids), 2, things=[1])
    assert found.fp[1] == 1  # row 2's segment only: [3, 6:8] are background now
    pred_classes[3, 6], pred_classes[3, 7] = 1, 1  # [3, 6] true background, [3, 7] void
    found = panoptic_quality((true_classes, true_ids), (pred_classes, pred_ids), 2, things=[1])
    assert found.fp[1] == 2  # exactly half void: still a false positive


def brute_force(truth, prediction, num_classes, ignore=255):
    """Segments as sets of pixels, the IoU of every same-class pair, matches above 0.5."""
    (true_classes, true_ids), (pred_classes, pred_ids) = truth, prediction
    void = {(y, x) for y, x in zip(*np.nonzero(true_classes == ignore), strict=True)}

    def segments(classes, ids):
        found = {}
        for y, x in np.ndindex(classes.shape):
            if classes[y, x] != ignore:
                found.setdefault((int(classes[y, x]), int(ids[y, x])), set()).add((y, x))
        return found

    true_segments = {k: v - void for k, v in segments(true_classes, true_ids).items()}
    true_segments = {k: v for k, v in true_segments.items() if v}
    pred_segments = segments(pred_classes, pred_ids)
    tp, fp, fn, iou_sum = (np.zeros(num_classes) for _ in range(4))
    matched_true, matched_pred = set(), set()
    for (tc, ti), t in true_segments.items():
        for (pc, pi), p in pred_segments.items():
            iou = len(t & p) / len(t | (p - void))
            if tc == pc and iou > 0.5:
                tp[tc] += 1
                iou_sum[tc] += iou
                matched_true.add((tc, ti))
                matched_pred.add((pc, pi))
    for key in true_segments.keys() - matched_true:
        fn[key[0]] += 1
    for key, p in pred_segments.items():
        if key not in matched_pred and len(p & void) <= len(p) / 2:
            fp[key[0]] += 1
    return tp, fp, fn, iou_sum


@given(seed=st.integers(0, 10_000), num_classes=st.integers(1, 3))
@settings(max_examples=30, deadline=None)
def test_agrees_with_brute_force_and_pq_is_sq_times_rq(seed, num_classes):
    rng = np.random.default_rng(seed)
    shape = (6, 8)
    true_classes = np.kron(rng.integers(0, num_classes, (3, 4)), np.ones((2, 2), int))
    true_ids = np.kron(rng.integers(0, 3, (3, 4)), np.ones((2, 2), int))
    true_classes[rng.random(shape) < 0.15] = 255
    pred_classes, pred_ids = true_classes.copy(), true_ids.copy()
    flip = rng.random(shape) < 0.25
    pred_classes[flip] = rng.integers(0, num_classes, flip.sum())
    pred_ids[rng.random(shape) < 0.2] = 3
    pred_classes[rng.random(shape) < 0.05] = 255  # the prediction abstains
    truth, prediction = (true_classes, true_ids), (pred_classes, pred_ids)
    found = panoptic_quality(truth, prediction, num_classes)
    tp, fp, fn, iou_sum = brute_force(truth, prediction, num_classes)
    np.testing.assert_array_equal([found.tp, found.fp, found.fn], [tp, fp, fn])
    np.testing.assert_allclose(found.iou_sum, iou_sum)
    present = found.present
    np.testing.assert_allclose(found.pq[present], (found.sq * found.rq)[present])
    assert np.isnan(found.pq[~present]).all()
    # Two pictures at once: the counts add up.
    both = panoptic_quality(*((np.stack([a, a]), np.stack([b, b])) for a, b in (truth, prediction)),
                            num_classes)
    np.testing.assert_array_equal([both.tp, both.fp, both.fn], [2 * tp, 2 * fp, 2 * fn])


def test_bad_input_is_refused():
    classes, ids = np.zeros((3, 3), int), np.zeros((3, 3), int)
    with pytest.raises(ValueError, match=r"true_segments is a pair \(class map, instance-id map"):
        panoptic_quality(classes, (classes, ids), 2)
    with pytest.raises(ValueError, match=r"pred_segments: the class map holds values \[4\]"):
        panoptic_quality((classes, ids), (classes + 4, ids), 2)
    with pytest.raises(ValueError, match=r"one shape, \(H, W\) or \(N, H, W\); got shapes "
                                         r"\(3, 3\) and \(3, 2\)"):
        panoptic_quality((classes, ids[:, :2]), (classes, ids), 2)
    with pytest.raises(ValueError, match=r"instance-id map holds whole numbers; got dtype "
                                         "float64"):
        panoptic_quality((classes, ids * 0.5), (classes, ids), 2)
    with pytest.raises(ValueError, match=r"whole numbers in 0..1; got 2"):
        panoptic_quality((classes, ids), (classes, ids), 2, things=[2])
    with pytest.raises(ValueError, match="'things' / 'stuff' when panoptic_quality was given "
                                         "things=...; got 'things' without things"):
        panoptic_quality((classes, ids), (classes, ids), 2).mean("things")
    with pytest.raises(ValueError, match=r"give both for the same pictures"):
        panoptic_quality((classes, ids), (classes[:2], ids[:2]), 2)
