"""Hidden-check values: encoded in the kernel (segcourse.labs.hidden), compared by the grader
(segcourse.grading.values) with the reference's tolerance, never the submission's."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from segcourse.grading.values import payload_matches
from segcourse.labs import hidden


def payload(values, atol=1e-6, rtol=1e-5):
    """What submit() hands over, after the JSON trip to the grader."""
    captured = []
    previous, hidden._sink = hidden._sink, captured.append
    try:
        hidden.submit(values, atol=atol, rtol=rtol)
    finally:
        hidden._sink = previous
    return json.loads(json.dumps(captured[0], allow_nan=True))


def test_equal_values_match_and_a_changed_value_does_not():
    expected = payload({"cm": np.array([[3, 1], [0, 2]]), "miou": 0.5, "name": "disc"})
    assert payload_matches(expected, payload({"cm": [[3, 1], [0, 2]], "miou": 0.5 + 1e-9,
                                              "name": "disc"}))
    assert not payload_matches(expected, payload({"cm": [[3, 1], [1, 2]], "miou": 0.5,
                                                  "name": "disc"}))
    assert not payload_matches(expected, payload({"cm": [[3, 1], [0, 2]], "miou": 0.5,
                                                  "name": "ring"}))


def test_shape_names_and_types_must_agree():
    expected = payload({"sizes": (7, 1), "maybe": None})
    assert payload_matches(expected, payload({"sizes": [7, 1], "maybe": None}))  # tuple ~ list
    assert not payload_matches(expected, payload({"sizes": [[7, 1]], "maybe": None}))
    assert not payload_matches(expected, payload({"sizes": (7, 1), "maybe": 0}))
    assert not payload_matches(expected, payload({"sizes": (7, 1)}))
    assert not payload_matches(expected, payload({"sizes": (7, 1), "maybe": None, "x": 1}))


def test_nan_matches_nan_only():
    expected = payload({"iou": np.array([0.5, np.nan])})
    assert payload_matches(expected, payload({"iou": [0.5, float("nan")]}))
    assert not payload_matches(expected, payload({"iou": [0.5, 0.0]}))


def test_the_reference_tolerance_counts_not_the_submissions():
    expected = payload({"loss": 0.25}, atol=1e-6, rtol=0)
    sloppy = payload({"loss": 0.3}, atol=1.0, rtol=1.0)
    assert not payload_matches(expected, sloppy)
    assert payload_matches(payload({"loss": 0.25}, atol=0.1, rtol=0), payload({"loss": 0.3}))


@pytest.mark.parametrize("forged", [
    None, "ok", [], {"values": "ok"}, {"values": {"cm": {"array": ["1"], "shape": [1]}}},
    {"values": {"cm": {"array": [True], "shape": [1]}}},
    {"values": {"cm": {"array": [1.0], "shape": "1"}}},
    {"values": {"cm": {"repr": "array([1.])"}}},
])
def test_malformed_submissions_never_match(forged):
    assert not payload_matches(payload({"cm": np.array([1.0])}), forged)


def test_deep_nesting_is_refused_not_a_crash():
    deep = {"list": []}
    for _ in range(100):
        deep = {"list": [deep]}
    assert not payload_matches(payload({"x": [[1]]}), {"values": {"x": deep}})


def test_objects_numpy_cannot_read_match_nothing():
    reference = payload({"thing": object()})
    assert not payload_matches(reference, reference)


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=5),
                  elements=st.floats(-1e3, 1e3)))
def test_any_array_matches_itself_and_not_a_shifted_copy(array):
    assert payload_matches(payload({"a": array}), payload({"a": array.copy()}))
    assert not payload_matches(payload({"a": array}), payload({"a": array + 1e-3 + 1e-2 *
                                                               np.abs(array)}))


def test_hidden_inputs_follow_the_run_seed_and_the_salt(monkeypatch):
    monkeypatch.setenv(hidden.SEED_VARIABLE, "7")
    first = hidden.hidden_rng("check-ex1").random(4)
    assert np.array_equal(first, hidden.hidden_rng("check-ex1").random(4))
    assert not np.array_equal(first, hidden.hidden_rng("check-ex2").random(4))
    monkeypatch.setenv(hidden.SEED_VARIABLE, "8")
    assert not np.array_equal(first, hidden.hidden_rng("check-ex1").random(4))
    monkeypatch.delenv(hidden.SEED_VARIABLE)
    assert hidden.grading_seed() == hidden.DEFAULT_SEED


def test_outside_a_grading_run_submit_prints_a_summary(capsys):
    hidden.submit({"cm": np.zeros((4, 4)), "name": "x"})
    assert capsys.readouterr().out == "hidden check: 2 value(s) (cm shape (4, 4), name str)\n"
    with pytest.raises(TypeError, match="non-empty dict"):
        hidden.submit([1, 2])
