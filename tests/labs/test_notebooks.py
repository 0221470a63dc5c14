"""The reference labs follow the conventions, and nbval really compares their check cells."""

import json
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
