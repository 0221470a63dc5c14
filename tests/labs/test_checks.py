import numpy as np
import pytest

from segcourse.labs import (
    CheckFailed,
    check,
    check_at_least,
    check_close,
    check_equal,
    check_shape,
)


def test_passing_checks_print_one_stable_line(capsys):
    check("flag", True)
    check_equal("labels", np.array([1, 2]), np.array([1, 2]))
    check_shape("logits", np.zeros((2, 8, 8, 3)), (None, 8, 8, 3))
    check_close("mean", 0.1 + 0.2, 0.3)
    check_at_least("mIoU", 0.9312, 0.9)
    assert capsys.readouterr().out.splitlines() == [
        "flag: ok", "labels: ok", "logits (None, 8, 8, 3): ok", "mean: ok", "mIoU ≥ 0.9: ok"]


def test_a_list_answers_a_tuple_and_a_tuple_a_list(capsys):
    """Lab 08's counts were compared as tuples: a right answer returned as a list failed the
    visible check and passed the hidden one (which compares JSON)."""
    check_equal("counts", [1, 2, (3, 4)], (1, 2, [3, 4]))
    assert capsys.readouterr().out == "counts: ok\n"
    with pytest.raises(CheckFailed, match=r"expected \(1, 2, 3\), got \[1, 2, 4\]"):
        check_equal("counts", [1, 2, 4], (1, 2, 3))
    with pytest.raises(CheckFailed, match="expected 'ab'"):  # strings stay strings
        check_equal("name", ["a", "b"], "ab")


def test_failures_say_what_was_expected_and_what_was_found():
    with pytest.raises(CheckFailed, match=r"1 of 3 values differ; the first at index \(2,\): "
                                          r"expected 3, got 4\."):
        check_equal("labels", np.array([1, 2, 4]), np.array([1, 2, 3]))
    with pytest.raises(CheckFailed, match=r"expected shape \(3,\), got \(2,\)"):
        check_equal("labels", np.array([1, 2]), np.array([1, 2, 3]))
    with pytest.raises(CheckFailed, match=r"expected 21, got 20\. background counts"):
        check_equal("channels", 20, 21, hint="background counts")
    with pytest.raises(CheckFailed, match=r"expected shape \(2, 8, 8\), got \(2, 8, 8, 1\)"):
        check_shape("mask", np.zeros((2, 8, 8, 1)), (2, 8, 8))
    with pytest.raises(CheckFailed, match=r"1 of 2 values differ; the first at index \(1,\): "
                                          r"expected 2\.5, got 2 "):
        check_close("value", [1.0, 2.0], [1.0, 2.5])
    with pytest.raises(CheckFailed, match="expected 0.25, got nan"):
        check_close("IoU", [0.5, np.nan], [0.5, 0.25])
    check_close("absent classes agree", [0.5, np.nan], [0.5, np.nan])
    with pytest.raises(CheckFailed, match="0.85 is below 0.9"):
        check_at_least("mIoU", 0.85, 0.9)
    with pytest.raises(AssertionError, match="flag: not yet. try again"):
        check("flag", False, "try again")


def test_check_cases_names_the_first_failing_case_and_both_answers(capsys):
    from segcourse.labs.checks import check_cases

    def keras_length(n, kernel, stride, padding):  # a hand-made truth: Conv2DTranspose's rule
        return n * stride if padding == "same" else (n - 1) * stride + max(kernel, stride)

    cases = [(7, 3, 2, "valid"), (7, 3, 2, "same"), (5, 1, 3, "valid")]
    check_cases("lengths", cases, keras_length, keras_length)
    assert capsys.readouterr().out == "lengths: ok\n"

    def off_by_one(n, kernel, stride, padding):
        return keras_length(n, kernel, stride, padding) - (padding == "same")

    with pytest.raises(CheckFailed) as failed:
        check_cases("lengths", cases, off_by_one, keras_length, names=("n", "k", "s", "p"),
                    source="Keras", hint="Reread section 3.")
    assert str(failed.value) == ("lengths: case 2 of 3 (n=7, k=3, s=2, p='same') gives 13, "
                                 "Keras gives 14. Reread section 3.")
    assert capsys.readouterr().out == ""
    with pytest.raises(CheckFailed) as failed:
        check_cases("ramp", [3], lambda n: np.arange(n) + (np.arange(n) == 2), np.arange)
    assert str(failed.value) == ("ramp: case 1 of 1 (3) gives [0, 1, 3], expected [0, 1, 2]: "
                                 "1 of 3 values differ, the first at index (2,) (3 instead of 2).")
    with pytest.raises(CheckFailed, match=r"case 1 of 1 \(3\) gives shape \(4,\) "
                                          r"\(\[0, 1, 2, 3\]\), expected \[0, 1, 2\] "
                                          r"\(shape \(3,\)\)\.$"):
        check_cases("ramp", [3], lambda n: np.arange(n + 1), np.arange)
    with pytest.raises(CheckFailed, match=r"\(x=2\) gives None, expected 0\.25 "
                                          r"\(tolerance 1e-06 \+ 0·\|expected\|\)"):
        check_cases("float", [2], lambda x: None, lambda x: 1 / x ** 2, names=["x"], atol=1e-6)
    check_cases("within tolerance", [2], lambda x: 0.2500001, lambda x: 1 / x ** 2, atol=1e-6)
    # as check_equal compares: a list is not the tuple asked for, NumPy integers are numbers
    with pytest.raises(CheckFailed, match=r"gives \[7, 1\], expected \(7, 1\)\.$"):
        check_cases("field", [3], lambda n: [7, 1], lambda n: (7, 1))
    check_cases("numbers", [3], lambda n: np.int64(n), lambda n: n)


def test_check_close_says_when_the_answer_is_not_numbers_at_all():
    with pytest.raises(CheckFailed, match=r"^weights: expected numbers \(shape \(2,\)\), "
                                          r"got None\. Reread Exercise 3\.$"):
        check_close("weights", None, [1.0, 0.0], hint="Reread Exercise 3.")
    with pytest.raises(CheckFailed, match=r"expected numbers \(shape \(\)\), got 'abc'"):
        check_close("std", "abc", 1.63)
    check_close("absent class", None, np.nan)  # None reads as NaN, as before: it matches NaN


def test_a_graded_prediction_that_is_wrong_is_not_shown_its_answer(capsys):
    from segcourse.labs import check_prediction

    check_prediction("bins", [(0, 3), (2, 5), (4, 7)], [(0, 3), (2, 5), (4, 7)])
    check_prediction("loss at one half", 0.6931472, np.log(2))
    assert capsys.readouterr().out == "bins: ok\nloss at one half: ok\n"
    for wrong, expected in [([(0, 2), (2, 5), (5, 7)], [(0, 3), (2, 5), (4, 7)]),
                            (0.5, np.log(2)), (None, 1.0), (3.0, [3.0, 3.0]), (True, False)]:
        with pytest.raises(CheckFailed, match="does not show the answer") as failed:
            check_prediction("p", wrong, expected)
        assert "0.693" not in str(failed.value) and "(0, 3)" not in str(failed.value)
