"""Student versions: solutions out, ids in, up to date with the reference, worth 0 points."""

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import pytest

from segcourse.labs.catalog import LABS
from segcourse.labs.notebook import BEGIN_SOLUTION, cell_info
from segcourse.labs.student import strip_solutions, student_notebook

ROOT = Path(__file__).resolve().parents[2]
AVAILABLE = [lab for lab in LABS if lab.available]


def test_each_solution_span_becomes_a_stub_at_its_indentation():
    source = ("def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n\n"
              "### BEGIN SOLUTION\ny = 2\n### END SOLUTION\nprint(y)")
    assert strip_solutions(source) == (
        "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\n"
        "# YOUR CODE HERE\nraise NotImplementedError()\nprint(y)")


def test_unbalanced_markers_are_refused():
    with pytest.raises(ValueError, match="unbalanced solution markers"):
        strip_solutions("### BEGIN SOLUTION\nx = 1\n")


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


@pytest.mark.parametrize("lab", AVAILABLE, ids=lambda lab: lab.slug)
def test_an_untouched_student_version_passes_no_check_that_gives_points(lab, tmp_path):
    student = nbformat.read(ROOT / lab.student_notebook, as_version=4)
    reference = nbformat.read(ROOT / lab.notebook, as_version=4)
    shown = [c for c in reference.cells if cell_info(c).get("role") != "hidden"]
    for mine, theirs in zip(student.cells, shown, strict=True):
        if mine.cell_type == "code":  # the expected outputs, as the grader will use them
            mine.outputs, mine.execution_count = theirs.outputs, theirs.execution_count
    # the costly illustrations the grader leaves out (lab 03's trained field: 45 s) go here too
    student.cells = [c for c in student.cells if not cell_info(c).get("skip_when_grading")]
    path = tmp_path / "student.ipynb"
    nbformat.write(student, path)
    report = tmp_path / "report.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c",
                    "/dev/null", "--rootdir", str(tmp_path), "--nbval-lax",
                    "--nbval-current-env", f"--junitxml={report}", str(path)],
                   capture_output=True, cwd=tmp_path)
    failed = {case.get("name") for case in ET.parse(report).iter("testcase")
              if case.find("failure") is not None or case.find("error") is not None}
    code_cells = [c for c in student.cells if c.cell_type == "code"]  # nbval counts these
    graded = {f"Cell {i}" for i, c in enumerate(code_cells)
              if cell_info(c).get("role") == "check" and cell_info(c).get("points", 0) > 0}
    assert graded and graded <= failed
    assert "Cell 0" not in failed  # the setup cell itself runs: the failures are the student's
