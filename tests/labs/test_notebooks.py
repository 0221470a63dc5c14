"""The reference labs follow the conventions, and nbval really compares their check cells."""

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from segcourse.labs.catalog import LABS
from segcourse.labs.notebook import CHECK_TAG, cell_info, reference_problems

ROOT = Path(__file__).resolve().parents[2]
AVAILABLE = [lab for lab in LABS if lab.available]


def test_the_catalog_and_the_notebooks_folder_agree():
    on_disk = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert on_disk == sorted(lab.notebook for lab in AVAILABLE)


@pytest.mark.parametrize("lab", AVAILABLE, ids=lambda lab: lab.slug)
def test_reference_notebook_follows_the_conventions(lab):
    nb = nbformat.read(ROOT / lab.notebook, as_version=4)
    nbformat.validate(nb)
    assert reference_problems(nb) == []
    checks = [c for c in nb.cells if cell_info(c).get("role") == "check"]
    assert checks and sum(cell_info(c).get("points", 0) for c in checks) > 0


@pytest.mark.parametrize("lab", AVAILABLE, ids=lambda lab: lab.slug)
def test_each_graded_check_is_named_after_the_exercise_it_checks(lab):
    """The grader's feedback names a check by its id ("check-ex3: wrong values"): the id must
    send the student to the exercise the text numbers 3, whose heading says what it is worth."""
    nb = nbformat.read(ROOT / lab.notebook, as_version=4)
    exercise, stated = None, {}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for number, points in re.findall(r"(?:\*\*|### )Exercise (\d+) \((\d+) points?\)",
                                             cell.source):
                exercise, stated[number] = number, int(points)
        info = cell_info(cell)
        if info.get("role") == "check" and info.get("points", 0):
            assert info["id"] == f"check-ex{exercise}", (info["id"], f"Exercise {exercise}")
            # and the heading states the points the check gives
            assert stated[exercise] == info["points"], (info["id"], stated[exercise])


@pytest.mark.parametrize("lab", AVAILABLE, ids=lambda lab: lab.slug)
def test_a_graded_prediction_is_checked_without_showing_its_answer(lab):
    """check_equal and check_close print the expected value on a miss; for a prediction the
    hidden check grades, that would hand over the answer (labs 05, 12, 13)."""
    from segcourse.grading import plan

    nb = nbformat.read(ROOT / lab.notebook, as_version=4)
    sources = {cell_info(c).get("id"): c.source for c in nb.cells if cell_info(c)}
    for check in plan.build(nb).checks:
        if any("predict" in solution for solution in check.solutions):
            assert "check_prediction(" in sources[check.check_id], check.check_id


# TensorFlow's start-up lines: C++ log lines (I1201 10:00:00...), absl's, oneDNN's, CUDA's;
# and its Python logger's warnings (lab 10 once stored a tf.function retracing warning)
TENSORFLOW_LOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d|absl::InitializeLog|oneDNN custom "
                            r"operations|This TensorFlow binary is optimized|Unable to register "
                            r"cu(DNN|FFT|BLAS)|^WARNING:(tensorflow|absl):", re.MULTILINE)


@pytest.mark.parametrize("lab", AVAILABLE, ids=lambda lab: lab.slug)
def test_no_stored_output_holds_tensorflows_start_up_log(lab):
    """A student compares their run with the reference's outputs; TensorFlow's log lines there
    are noise (and differ by machine)."""
    nb = nbformat.read(ROOT / lab.notebook, as_version=4)
    logged = [cell.get("id") for cell in nb.cells for out in cell.get("outputs", [])
              if out.get("output_type") == "stream"
              and TENSORFLOW_LOG.search("".join(out.get("text", "")))]
    assert not logged, f"{lab.notebook}: cells {logged} store TensorFlow's log"


def test_the_validator_finds_broken_conventions():
    nb = nbformat.read(ROOT / AVAILABLE[0].notebook, as_version=4)
    nb.cells[0].source = "import segcourse"
    check_cell = next(c for c in nb.cells if cell_info(c).get("role") == "check")
    check_cell.outputs = []
    solution = next(c for c in nb.cells if cell_info(c).get("role") == "solution")
    solution.source = solution.source.replace("### END SOLUTION", "")
    nb.cells[-1].metadata["skip_when_grading"] = True  # beside metadata.segcourse, not in it
    problems = "\n".join(reference_problems(nb))
    assert "first cell must be the setup cell" in problems
    assert "needs its stored output" in problems
    assert "needs the ### BEGIN SOLUTION / ### END SOLUTION markers" in problems
    assert "'skip_when_grading' is in the cell's metadata, where nothing reads it" in problems


def run_nbval(path):
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--nbval-lax", "--nbval-current-env", "--rootdir", str(path.parent),
                           "-c", "/dev/null", str(path)],
                          capture_output=True, text=True, cwd=path.parent)


@pytest.mark.slow
def test_nbval_fails_a_notebook_whose_answer_is_wrong(tmp_path):
    """Guard against a pipeline that passes everything: a wrong solution must fail its check."""
    nb = json.loads((ROOT / AVAILABLE[0].notebook).read_text())
    solution = next(c for c in nb["cells"] if cell_info(c).get("role") == "solution")
    solution["source"] = "".join(solution["source"]).replace("lookup[instances]",
                                                           "lookup[instances] * 0")
    broken = tmp_path / "broken.ipynb"
    broken.write_text(json.dumps(nb))
    result = run_nbval(broken)
    assert result.returncode != 0
    assert "semantic label map" in result.stdout


@pytest.mark.slow
def test_nbval_fails_when_a_check_output_changes(tmp_path):
    nb = json.loads((ROOT / AVAILABLE[0].notebook).read_text())
    tagged = next(c for c in nb["cells"] if CHECK_TAG in c["metadata"].get("tags", []))
    tagged["outputs"][0]["text"] = ["Keras 4: ok\n"]
    altered = tmp_path / "altered.ipynb"
    altered.write_text(json.dumps(nb))
    result = run_nbval(altered)
    assert result.returncode != 0
    assert "Keras 4: ok" in result.stdout
