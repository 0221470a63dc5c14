"""Student versions: solutions out, ids in, up to date with the reference. That an untouched one
is worth 0 points, and that its stubs, run, fail every graded public check, is proved by grading
it: tests/test_bench.py (segcourse bench --lab-grades)."""

from pathlib import Path

import nbformat
import pytest

from segcourse.labs.catalog import LABS
from segcourse.labs.notebook import BEGIN_ANSWER, BEGIN_SOLUTION, cell_info, reference_problems
from segcourse.labs.student import (
    ANSWER_WITHHELD,
    strip_solutions,
    student_notebook,
    withhold_answers,
)

ROOT = Path(__file__).resolve().parents[2]
AVAILABLE = [lab for lab in LABS if lab.available]


def test_each_solution_span_becomes_a_stub_at_its_indentation():
    source = ("def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n\n"
              "### BEGIN SOLUTION\ny = 2\n### END SOLUTION\nprint(y)")
    assert strip_solutions(source) == (
        "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\n"
        "# YOUR CODE HERE\nraise NotImplementedError()\nprint(y)")


def test_an_ungraded_prediction_gets_the_line_its_marker_names_instead_of_a_raise():
    source = ("# the field, in pixels\n"
              "### BEGIN SOLUTION; student version: field_guess = None\n"
              "field_guess = 2 ** 11 - 1\n### END SOLUTION")
    assert strip_solutions(source) == "# the field, in pixels\n# YOUR CODE HERE\nfield_guess = None"


def test_no_ungraded_prediction_stops_a_students_run_all():
    """A prediction cell (role solution, 0 points, its check ungraded) gives the student a line
    that runs, not a raise."""
    for lab in AVAILABLE:
        for cell in student_notebook(nbformat.read(ROOT / lab.notebook, as_version=4)).cells:
            info = cell_info(cell)
            if info.get("role") == "solution" and "guess" in info.get("id", ""):
                assert "NotImplementedError" not in cell.source, (lab.notebook, info["id"])


def test_unbalanced_markers_are_refused():
    with pytest.raises(ValueError, match="unbalanced solution markers"):
        strip_solutions("### BEGIN SOLUTION\nx = 1\n")


def test_an_answer_discussion_is_withheld_and_the_text_around_it_kept():
    source = ("The check passed.\n\n<!-- BEGIN ANSWER -->\n**What you found.** It is 7.\n"
              "<!-- END ANSWER -->\n\n## 4. The next section")
    assert withhold_answers(source) == (f"The check passed.\n\n{ANSWER_WITHHELD}\n\n"
                                        "## 4. The next section")
    with pytest.raises(ValueError, match="unbalanced answer markers"):
        withhold_answers("<!-- BEGIN ANSWER -->\nIt is 7.")
    cell = nbformat.v4.new_markdown_cell("<!-- BEGIN ANSWER -->\nIt is 7.")
    notebook = nbformat.v4.new_notebook(cells=[cell])
    assert any("unbalanced answer markers" in problem for problem in reference_problems(notebook))
    with pytest.raises(ValueError, match="misplaced answer markers"):
        withhold_answers("<!-- END ANSWER -->\nIt is 7.\n<!-- BEGIN ANSWER -->")


def test_a_malformed_student_version_line_or_misplaced_markers_are_refused():
    for rest in ("; student version:", "; Student version: guess = None", " a note"):
        with pytest.raises(ValueError, match="only '; student version: <the student's line>'"):
            strip_solutions(f"### BEGIN SOLUTION{rest}\nguess = 3\n### END SOLUTION")
    with pytest.raises(ValueError, match="misplaced solution markers"):
        strip_solutions("### END SOLUTION\nx = 1\n### BEGIN SOLUTION")
    cell = nbformat.v4.new_code_cell("### BEGIN SOLUTION; student version:\nx = 1\n"
                                     "### END SOLUTION")
    assert any("may follow" in problem for problem in reference_problems(
        nbformat.v4.new_notebook(cells=[cell])))


def test_every_what_you_found_discussion_is_withheld_from_the_student_versions():
    """A "What you found" cell right below a check gives the answer to a student who scrolls."""
    for lab in AVAILABLE:
        reference = nbformat.read(ROOT / lab.notebook, as_version=4)
        for cell in reference.cells:
            if cell.cell_type == "markdown" and "What you found" in cell.source:
                assert BEGIN_ANSWER in cell.source, (lab.notebook, cell.get("id"))
        student = student_notebook(reference)
        assert not any("What you found" in c.source and ANSWER_WITHHELD not in c.source
                       for c in student.cells), lab.notebook


@pytest.mark.parametrize("lab", AVAILABLE, ids=lambda lab: lab.slug)
def test_student_version_is_built_from_the_reference_and_up_to_date(lab):
    reference = nbformat.read(ROOT / lab.notebook, as_version=4)
    student = student_notebook(reference)
    assert all(BEGIN_SOLUTION not in c.source for c in student.cells)
    assert [cell_info(c) for c in student.cells] == [
        cell_info(c) for c in reference.cells if cell_info(c).get("role") != "hidden"]
    assert not any(cell_info(c).get("role") == "hidden" for c in student.cells)
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")
    committed = nbformat.read(ROOT / lab.student_notebook, as_version=4)
    assert committed == student, f"run: segcourse lab student {lab.notebook}"
