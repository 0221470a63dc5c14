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
