"""The grading plan: the reference's cells, the submission's exercises, each hidden cell just
before its public check."""

from pathlib import Path

import nbformat
import pytest

from segcourse.grading import plan as plans
from segcourse.labs.notebook import cell_info, reference_problems

ROOT = Path(__file__).resolve().parents[2]


def reference(name="06_metrics_losses"):
    return nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)


def test_each_hidden_cell_runs_just_before_its_check_and_each_check_knows_its_cells():
    nb = reference()
    plan = plans.build(nb)
    hidden = [i for i, step in enumerate(plan.steps) if step.kind == "hidden"]
    assert hidden == [check.public_step - 1 for check in plan.checks]
    assert all(plan.steps[i].isolated for i in hidden)
    assert not any(step.isolated for step in plan.steps if step.kind != "hidden")
    assert [c.check_id for c in plan.checks] == ["check-ex1", "check-ex2", "check-ex3",
                                                 "check-ex4"]
    assert [c.points for c in plan.checks] == [2, 2, 1, 2]
    by_id = {c.check_id: c for c in plan.checks}
    assert by_id["check-ex3"].solutions == ["ex3"]
    # exercise 3 counts with segcourse.metrics, so a wrong exercise 1 or 2 costs it nothing
    assert by_id["check-ex3"].depends_on == ["ex3"]
    assert by_id["check-ex4"].depends_on == ["ex4"]
    for check in plan.checks:
        assert plan.steps[check.hidden_step].cell_id == check.check_id
        assert plan.steps[check.public_step].cell_id == check.check_id


def test_a_submissions_exercises_replace_the_solutions_and_nothing_else():
    nb = reference()
    mine = plans.build(nb, {"ex1": "def confusion(*a):\n    return 0", "ex2": None})
    theirs = plans.build(nb)
    assert mine.steps[mine.solution_steps["ex1"]].source == "def confusion(*a):\n    return 0"
    assert mine.steps[mine.solution_steps["ex2"]].source == ""
    changed = [i for i, (a, b) in enumerate(zip(mine.steps, theirs.steps, strict=True))
               if a.source != b.source]
    assert changed == [mine.solution_steps[s] for s in ("ex1", "ex2", "ex3", "ex4")]


def test_costly_illustrations_are_left_out_of_grading_runs():
    nb = reference("03_receptive_fields")
    skipped = [c.source for c in nb.cells if cell_info(c).get("skip_when_grading")]
    assert skipped
    assert not {s.source for s in plans.build(nb).steps} & set(skipped)


def test_a_graded_check_without_a_hidden_counterpart_is_refused():
    nb = reference()
    nb.cells = [c for c in nb.cells if cell_info(c).get("id") != "hidden-ex2"]
    with pytest.raises(ValueError, match="no hidden counterpart for check-ex2"):
        plans.build(nb)
    assert any("exactly one hidden counterpart" in p for p in reference_problems(nb))


def test_an_ungraded_exercise_is_not_counted_against_the_next_graded_check():
    # lab 07's "predict first" guess has its own ungraded check; exercise 4 is ex4 alone
    plan = plans.build(reference("07_train_diagnose"))
    by_id = {c.check_id: c for c in plan.checks}
    assert by_id["check-ex4"].solutions == ["ex4"]
    assert "guess" not in by_id["check-ex4"].depends_on


def test_an_ungraded_prediction_before_an_exercise_is_not_part_of_its_check():
    # lab 03's guesses sit before exercises 3 and 4; the hidden checks never read them, so a
    # guess left at None must not be blamed when the exercise fails
    by_id = {c.check_id: c for c in plans.build(reference("03_receptive_fields")).checks}
    assert by_id["check-ex3"].solutions == by_id["check-ex3"].depends_on == ["ex3"]
    assert by_id["check-ex4"].solutions == by_id["check-ex4"].depends_on == ["ex4"]
    # a graded prediction (lab 05's bins) stays part of its check
    by_id = {c.check_id: c for c in plans.build(reference("05_context")).checks}
    assert by_id["check-ex3"].solutions == ["ex3-predict", "ex3"]


def skips_context_cell(nb):
    """Lab 04's context cell after exercise 4 (it measures all skips' bytes)."""
    return next(i for i, c in enumerate(nb.cells) if "all_skips_bytes = " in c.source)


def test_a_later_cell_that_binds_an_exercises_name_again_is_named():
    # a later check's hidden cell reads the later binding: lab 04's exercise 4 defines a function
    # that a context cell two cells on once rebound to a number, so the grader called an int
    nb = reference("04_encoder_decoder")
    assert plans.rebound_names(nb) == []
    context = skips_context_cell(nb)
    nb.cells[context].source = nb.cells[context].source.replace("all_skips_bytes",
                                                                "unet_skip_bytes")
    problems = plans.rebound_names(nb)
    assert len(problems) == 1
    assert f"cell {context} (context) binds 'unet_skip_bytes' again" in problems[0]
    assert "exercise ex4 defines" in problems[0]
    # a cell the grader leaves out binds nothing it runs
    nb.cells[context].metadata["segcourse"] = {"skip_when_grading": True}
    assert plans.rebound_names(nb) == []


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb")))
def test_no_reference_lab_binds_an_exercises_name_again(name):
    assert plans.rebound_names(reference(name)) == []


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb")))
def test_every_hidden_cell_runs_where_the_grader_puts_it(name):
    assert plans.hidden_cell_problems(reference(name)) == []


def test_a_hidden_cell_that_needs_its_check_or_ipython_is_named():
    nb = made_lab(
        ("context", None, 0, "data = [1, 2]"),
        ("solution", "ex1", 0, "def answer():\n    return 1"),
        ("check", "check-ex1", 1, "expected = 1\nprint(answer() == expected)"),
        ("hidden", "check-ex1", 0, "print(answer(), data, expected)"),
        ("solution", "ex2", 0, "def other():\n    return 2"),
        ("check", "check-ex2", 1, "print(other())"),
        ("hidden", "check-ex2", 0, "%time other()"))
    assert plans.hidden_cell_problems(nb) == [
        "hidden cell of check-ex1 reads expected, which no cell the grader runs before its check "
        "binds (the grader runs it just before its public check)",
        "hidden cell of check-ex2: not plain Python (invalid syntax, line 1); the grader runs it "
        "with exec, without IPython"]


def test_bound_names_reads_what_python_binds_in_the_notebooks_namespace():
    from segcourse.grading.cells import bound_names, global_reads

    source = ("for i in range(3):\n    x = i\nwith open('f') as handle:\n    pass\n"
              "import numpy as np\ndef f():\n    global g\n    g = 1\n    local = 1\n"
              "[z for z in range(2)]\n[(walrus := n) for n in range(2)]\n"
              "try:\n    pass\nexcept ValueError as error:\n    pass\nif True:\n    (w := 2)\n"
              "match x:\n    case [first, *rest]:\n        pass\n    case int() as kind:\n"
              "        pass\n")
    assert bound_names(source) == {"i", "x", "handle", "np", "f", "g", "walrus", "error", "w",
                                   "first", "rest", "kind"}
    assert bound_names(source) - bound_names(source, imports=False) == {"np"}
    # what a hidden check reads from the notebook: not its own function's locals
    hidden = ("def _hidden():\n    size = 3\n    rng = draw()\n    return skip_bytes(size, rng)\n"
              "_hidden()\n")
    assert global_reads(hidden) == {"draw", "skip_bytes"}


def test_a_binding_inside_a_loop_is_seen():
    nb = reference("04_encoder_decoder")
    context = skips_context_cell(nb)
    nb.cells[context].source += "\nfor unet_skip_bytes in range(2):\n    pass\n"
    [problem] = plans.rebound_names(nb)
    assert "binds 'unet_skip_bytes' again" in problem


def test_importing_again_what_the_exercise_imported_is_no_rebinding_and_another_import_is():
    nb = reference("04_encoder_decoder")
    by_id = {cell_info(c).get("id"): c for c in nb.cells}
    by_id["ex4"].source = "import math\n" + by_id["ex4"].source
    by_id["hidden-ex4"].source += "\nprint(math.pi)\n"  # the hidden check reads it
    context = skips_context_cell(nb)
    original = nb.cells[context].source
    nb.cells[context].source = "import math\n" + original
    assert plans.rebound_names(nb) == []
    nb.cells[context].source = "from segcourse import models as unet_skip_bytes\n" + original
    [problem] = plans.rebound_names(nb)
    assert "binds 'unet_skip_bytes' again" in problem


def made_lab(*cells):
    """A reference notebook of ``(role, id, points, source)`` code cells."""
    nb = nbformat.v4.new_notebook()
    for role, identifier, points, source in cells:
        cell = nbformat.v4.new_code_cell(source)
        info = {"role": role}
        if identifier:
            info["id" if role != "hidden" else "check"] = identifier
        if points:
            info["points"] = points
        cell.metadata["segcourse"] = info
        nb.cells.append(cell)
    return nb


def run_in_one_namespace(plan):
    """The plan's cells in one namespace, as the grading kernel runs them (an isolated step's
    bindings undone after it); ``(namespace, names of the errors raised)``."""
    namespace, raised = {}, []
    for source in plan.sources():
        before = dict(namespace) if source["isolated"] else None
        try:
            exec(compile(source["source"], "cell", "exec"), namespace)
        except Exception as error:
            raised.append(type(error).__name__)
        finally:
            if before is not None:
                namespace.clear()
                namespace.update(before)
    return namespace, raised


def test_each_hidden_check_runs_before_its_public_check_and_leaves_no_names():
    nb = made_lab(
        ("context", None, 0, "seen = []"),
        ("solution", "ex1", 0, "answer = 6 * 7"),
        ("check", "check-ex1", 1, "expected = 42\nprint(answer == expected)"),
        ("hidden", "check-ex1", 0, "value = int(answer)\nseen.append(value)"),
        ("context", None, 0, "later = expected"))
    plan = plans.build(nb)
    assert [step.kind for step in plan.steps] == ["context", "solution", "hidden", "check",
                                                  "context"]
    [check] = plan.checks
    assert (check.hidden_step, check.public_step) == (2, 3)
    namespace, raised = run_in_one_namespace(plan)
    assert namespace["seen"] == [42] and raised == [] and "value" not in namespace
    # late binding: an answer that reads, when the hidden check uses it, what the public
    # check computed got the points when the hidden checks ran after every other cell
    late = ("class Late:\n    def __int__(self):\n        return globals()['expected']\n\n"
            "answer = Late()")
    namespace, raised = run_in_one_namespace(plans.build(nb, {"ex1": late}))
    assert namespace["seen"] == [] and raised == ["KeyError"]


def test_what_a_hidden_cell_imports_never_replaces_a_students_helper_of_that_name():
    # lab 12's hidden cells import `cells`, lab 10's `crf`: a student's helper of that name
    # was replaced by the import while the hidden cell called the student's code
    nb = made_lab(
        ("context", None, 0, "seen = []"),
        ("solution", "ex1", 0, "def answer():\n    return 1"),
        ("check", "check-ex1", 1, "print(answer())"),
        ("hidden", "check-ex1", 0, "from math import floor as helper\nseen.append(answer())"))
    student = {"ex1": "def helper():\n    return 10\n\ndef answer():\n    return helper()"}
    namespace, raised = run_in_one_namespace(plans.build(nb, student))
    assert namespace["seen"] == [10] and raised == []


def test_a_hidden_check_sees_the_exercises_helpers_as_its_cell_left_them():
    # a student's helper named like a variable a later check cell binds: the public check
    # passed, a later exercise's hidden check called an int (lab 00: helpers `semantic`,
    # `frequencies`)
    nb = made_lab(
        ("context", None, 0, "seen = []\ndata = [1, 2]"),
        ("solution", "ex1", 0, "def answer():\n    return 1"),
        ("check", "check-ex1", 1, "helper = 5\ndata = [1, 2, 3]"),
        ("hidden", "check-ex1", 0, "seen.append(answer())"),
        ("solution", "ex2", 0, "def twice():\n    return 2 * answer()"),
        ("check", "check-ex2", 1, "print(twice())"),
        ("hidden", "check-ex2", 0, "seen.append((twice(), data))"))
    helper = "def helper():\n    return 10\n\ndata = 'mine'\n\ndef answer():\n    return helper()"
    student = {"ex1": helper, "ex2": "def twice():\n    return 2 * answer()"}
    namespace, raised = run_in_one_namespace(plans.build(nb, student))
    # the helper is the student's again; the lab's data the hidden cell reads stays the lab's
    assert namespace["seen"] == [10, (20, [1, 2, 3])] and raised == ["TypeError"]  # public ex2
    assert namespace["helper"] == 5  # the restore is undone after the hidden cell
    assert run_in_one_namespace(plans.build(nb))[0]["seen"] == [1, (2, [1, 2, 3])]
    # what a later context cell binds is the lab's: never restored (the lab's code may read it)
    nb.cells.insert(3, nbformat.v4.new_code_cell("helper = 7"))
    nb.cells[3].metadata["segcourse"] = {"role": "context"}
    namespace, raised = run_in_one_namespace(plans.build(nb, student))
    assert namespace["seen"] == [10] and raised == ["TypeError", "TypeError"]
    del nb.cells[3]
    # an exercise that raised keeps nothing, and nothing is restored: the hidden cell meets
    # the later binding, as in the student's own notebook
    broken = "def helper():\n    return 10\n\ndef answer():\n    return helper()\n\n1 / 0"
    namespace, raised = run_in_one_namespace(plans.build(nb, {**student, "ex1": broken}))
    assert raised == ["ZeroDivisionError", "TypeError", "TypeError"]
    assert "_segcourse_kept" not in namespace and namespace["seen"] == [10]
