"""Reading submissions in any shape and finding their exercise cells."""

import copy
import json
from pathlib import Path

import nbformat
import pytest

from segcourse.grading.cells import defined_names
from segcourse.grading.shortcuts import shortcut_flags
from segcourse.grading.submission import Unreadable, load, read_notebook
from segcourse.labs.notebook import cell_info
from segcourse.labs.student import student_notebook

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = nbformat.read(ROOT / "notebooks" / "06_metrics_losses.ipynb", as_version=4)


def write(tmp_path, name, notebook):
    path = tmp_path / f"{name}.ipynb"
    if isinstance(notebook, bytes):
        path.write_bytes(notebook)
    else:
        nbformat.write(notebook, path)
    return path


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "empty file"), (b"{not json", "unreadable notebook (not JSON)"),
    (b'"a string"', "not a notebook"), (b'{"metadata": {}}', "not a notebook"),
    (b'{"cells": 3, "nbformat": 4, "nbformat_minor": 5, "metadata": {}}',
     "unreadable notebook (malformed)"),
    (b'{"cells": [{"cell_type": "code", "source": 5}], "nbformat": 4, "nbformat_minor": 5, '
     b'"metadata": {}}', "unreadable notebook (malformed)"),
])
def test_unreadable_files_get_their_reason(tmp_path, content, reason):
    path = write(tmp_path, "x", content)
    with pytest.raises(Unreadable, match=reason.replace("(", r"\(").replace(")", r"\)")):
        read_notebook(path)
    assert load(path, REFERENCE).problem == reason


def test_an_nbformat_3_notebook_is_converted(tmp_path):
    old = nbformat.convert(copy.deepcopy(REFERENCE), 3)
    path = write(tmp_path, "old", nbformat.writes(old, version=3).encode())
    submission = load(path, REFERENCE)
    assert submission.problem is None and submission.notebook.nbformat == 4
    assert {m.method for m in submission.matches.values()} == {"id"}
    assert not any(m.stub for m in submission.matches.values())


def test_matching_falls_back_from_ids_to_positions_to_names(tmp_path):
    student = student_notebook(REFERENCE)
    assert {m.method for m in load(write(tmp_path, "a", student), REFERENCE).matches.values()} \
        == {"id"}
    assert all(m.stub for m in load(write(tmp_path, "a", student), REFERENCE).matches.values())
    renamed = copy.deepcopy(student)
    for cell in renamed.cells:
        if cell_info(cell).get("role") == "solution":
            cell.metadata["segcourse"]["id"] += "-mine"
    assert {m.method for m in load(write(tmp_path, "b", renamed), REFERENCE).matches.values()} \
        == {"position"}
    stripped = copy.deepcopy(student)
    for cell in stripped.cells:
        cell.metadata = {}
    stripped.cells = stripped.cells[::-1]
    matches = load(write(tmp_path, "c", stripped), REFERENCE).matches
    assert {m.method for m in matches.values()} == {"names"}
    assert "def per_picture_miou" in matches["ex3"].source
    gone = copy.deepcopy(stripped)
    gone.cells = [c for c in gone.cells if "def soft_iou_loss" not in c.source]
    assert load(write(tmp_path, "d", gone), REFERENCE).matches["ex4"].method == "missing"


def test_a_duplicated_cell_counts_as_its_last_copy(tmp_path):
    student = student_notebook(REFERENCE)
    cell = next(c for c in student.cells if cell_info(c).get("id") == "ex4")
    copy_of = copy.deepcopy(cell)
    copy_of.source = cell.source.replace("raise NotImplementedError()", "return 0.5")
    student.cells.append(copy_of)
    match = load(write(tmp_path, "dup", student), REFERENCE).matches["ex4"]
    assert "return 0.5" in match.source and not match.stub


def test_a_split_cell_runs_whole_and_a_stub_copied_below_an_answer_is_left_out(tmp_path):
    # JupyterLab's split keeps the metadata in both halves: the first half was lost (0 points)
    reference_cell = next(c for c in REFERENCE.cells if cell_info(c).get("id") == "ex4")
    lines = [line for line in reference_cell.source.splitlines() if "### " not in line]
    head, tail = "\n".join(lines[:3]), "\n".join(lines[3:])  # split inside the function
    student = student_notebook(REFERENCE)
    index, cell = next((i, c) for i, c in enumerate(student.cells)
                       if cell_info(c).get("id") == "ex4")
    first, second = copy.deepcopy(cell), copy.deepcopy(cell)
    first.source, second.source = head, tail
    student.cells[index:index + 1] = [first, second]
    student.cells.append(copy.deepcopy(cell))  # an untouched copy of the stub, at the end
    match = load(write(tmp_path, "split", student), REFERENCE).matches["ex4"]
    assert match.source == head + "\n\n" + tail and not match.stub
    namespace = {}
    exec(compile(match.source, "ex4", "exec"), namespace)  # the halves make one definition
    assert "soft_iou_loss" in namespace


def test_an_old_attempt_above_the_answer_is_not_run(tmp_path):
    # a copy of the cell kept above the answer: unfinished, or whole but wrong
    student = student_notebook(REFERENCE)
    reference_cell = next(c for c in REFERENCE.cells if cell_info(c).get("id") == "ex4")
    answer = "\n".join(line for line in reference_cell.source.splitlines() if "### " not in line)
    index, cell = next((i, c) for i, c in enumerate(student.cells)
                       if cell_info(c).get("id") == "ex4")
    for old, expected in (("inter = (", answer),  # unfinished: left out
                          ("def soft_iou_loss(labels, probabilities):\n    return 0.5",
                           None)):  # whole but wrong: runs first, the answer's def wins
        attempt, final = copy.deepcopy(cell), copy.deepcopy(cell)
        attempt.source, final.source = old, answer
        notebook = copy.deepcopy(student)
        notebook.cells[index:index + 1] = [attempt, final]
        source = load(write(tmp_path, "old", notebook), REFERENCE).matches["ex4"].source
        assert source == (expected or old + "\n\n" + answer)
        namespace = {"np": __import__("numpy")}
        exec(compile(source, "ex4", "exec"), namespace)
        labels, probabilities = [[0, 1]], [[[1.0, 0.0], [0.0, 1.0]]]
        assert namespace["soft_iou_loss"](__import__("numpy").array(labels),
                                          __import__("numpy").array(probabilities)) == 0


def test_a_notebook_of_another_lab_is_refused(tmp_path):
    other = nbformat.read(ROOT / "notebooks" / "student" / "02_upsampling.ipynb", as_version=4)
    assert load(write(tmp_path, "other", other), REFERENCE).problem == "wrong lab"
    older = copy.deepcopy(other)
    older.metadata["segcourse"]["lab"] = 2  # as student versions before this change said
    assert load(write(tmp_path, "older", older), REFERENCE).problem == "wrong lab"
    anonymous = copy.deepcopy(other)
    anonymous.metadata = {}
    assert load(write(tmp_path, "anon", anonymous), REFERENCE).problem == "wrong lab"


def test_defined_names_reads_functions_classes_and_assignments():
    assert defined_names("import numpy as np\ndef f():\n    x = 1\nclass C: pass\ny, z = 1, 2\n"
                         "w: int = 3") == {"f", "C", "y", "z", "w"}
    assert defined_names("x = (\n") == set()  # unparsable: only def/class lines are read
    assert defined_names("def ok():\n  pass\ndef broken(:") == {"ok", "broken"}


def test_library_shortcuts_are_flagged_and_the_references_own_imports_are_not():
    check = ["from segcourse.metrics import confusion_matrix\ncheck_equal(...)"]
    assert shortcut_flags("from segcourse.metrics import confusion_matrix as cm\n"
                          "def confusion(t, p, n):\n    return cm(t, p, n)", "", check) == [
        "uses segcourse.metrics.confusion_matrix, which its check compares with"]
    assert shortcut_flags("import segcourse.metrics", "", check) == [
        "uses segcourse.metrics, which its check compares with"]
    assert shortcut_flags("from segcourse.layers import resize_images",
                          "from segcourse.layers import resize_images",
                          ["from segcourse.layers import resize_images"]) == []
    assert shortcut_flags("m = __import__('segcourse.metrics')", "", check) == [
        "reaches into the interpreter (__import__)"]
    assert shortcut_flags("def f(x):\n    return x + 1", "", check) == []


def test_the_json_of_a_submission_is_read_as_data_only(tmp_path):
    data = json.loads((ROOT / "notebooks" / "student" / "06_metrics_losses.ipynb").read_text())
    data["cells"][0]["source"] = ["import os\n", "os.system('touch /tmp/never')"]
    path = tmp_path / "s.ipynb"
    path.write_text(json.dumps(data))
    assert load(path, REFERENCE).problem is None  # reading never runs anything
    assert not Path("/tmp/never").exists()


def test_names_a_check_cell_imported_are_flagged_when_an_exercise_uses_them():
    namespace = {"confusion_matrix": "segcourse.metrics.confusion_matrix", "np": "numpy"}
    check = ["from segcourse.metrics import confusion_matrix"]
    assert shortcut_flags("def confusion(t, p, n):\n    return confusion_matrix(t, p, n)", "",
                          check, namespace) == [
        "uses confusion_matrix (segcourse.metrics.confusion_matrix, imported by another cell), "
        "which its check compares with"]
    own = "def confusion_matrix(t, p, n):\n    return 0\ndef confusion(t, p, n):\n" \
          "    return confusion_matrix(t, p, n)"
    assert shortcut_flags(own, "", check, namespace) == []


def test_reaching_into_the_interpreter_is_flagged():
    assert shortcut_flags("f = setup.__globals__['hidden']", "", []) == [
        "reaches into the interpreter (__globals__)"]
    assert shortcut_flags("import sys\nm = sys.modules['segcourse.metrics']", "", []) == [
        "reaches into the interpreter (sys.modules)"]
    # under an alias, which reads as a plain name later (a helper's attack ran exec this way)
    assert shortcut_flags("from builtins import exec as run\nrun('x = 1')", "", []) == [
        "reaches into the interpreter (exec)"]
    assert shortcut_flags("from IPython import get_ipython as shell", "", []) == [
        "reaches into the interpreter (IPython)", "reaches into the interpreter (get_ipython)"]
    # replacing what a module holds (the grader's event writer once called json.dumps)
    assert shortcut_flags("import json\njson.dumps = str", "", []) == [
        "reaches into the interpreter (json.dumps =)"]
    for harmless in ("from math import floor as f", "from IPython.display import display",
                     "from builtins import print", "import numpy as np\nx = np.ones(2)\n"
                     "class A:\n    pass\na = A()\na.size = 3"):
        assert shortcut_flags(harmless, "", []) == [], harmless
    assert shortcut_flags("x = " + "-" * 200000 + "1", "", []) == [
        "the cell could not be analysed (it does not parse, or is very long)"]
