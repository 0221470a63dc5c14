"""What a TA and a student read: the class summary and the feedback page, built from records."""

from segcourse.grading.outcome import Feedback, Record, Row
from segcourse.grading.report import feedback_markdown, summary_markdown


def record(student: str, public_passed: bool, passed: bool,
           reason: str = "wrong values") -> Record:
    """One submission of a one-check lab (2 points): the check passed, or failed for
    ``reason``; its public check passed or not."""
    reason = "" if passed else reason
    points = 2 if passed else 0
    return Record(student, f"{student}.ipynb", "0" * 64, "lab", "namespaces", 1.0,
                  [Row(student, "lab", "check-ex1", points, 2, passed, reason, 0.5)],
                  [Feedback("check-ex1", points, 2, passed, reason, "ex1: ok", ["ex1"], "",
                            public_passed)], [], [])


def test_the_summary_counts_public_checks_passed_whose_hidden_check_failed():
    records = {"a": record("a", True, False), "b": record("b", True, False),
               "c": record("c", False, False), "d": record("d", True, True),
               "e": record("e", True, False, "timed out")}  # no values: not counted
    summary = summary_markdown(records, "lab", None)
    row = next(line for line in summary.splitlines() if line.startswith("| check-ex1"))
    assert row == "| check-ex1 | 2 | 1 / 5 | 20% | 2 | wrong values (3), timed out (1) |"


def test_feedback_says_whether_the_public_check_passed_before_the_hidden_one_failed():
    fitted = feedback_markdown(record("a", True, False))
    assert "Your code passed the public check below" in fitted
    assert "right there but not in general" in fitted
    honest = feedback_markdown(record("c", False, False))
    assert "passed the public check" not in honest
    assert "The public check below shows what is expected" in honest


def test_a_results_line_written_before_public_passed_existed_still_loads():
    line = record("a", True, False).to_json()
    del line["feedback"][0]["public_passed"]
    assert Record.from_json(line).feedback[0].public_passed is False
