"""The grading notebook: the reference's cells with a submission's exercise cells put in.

Built from the *reference* (docs/design.md §8), in its order: its setup and context cells, the
submission's matched exercise cells in place of the solutions, the reference's public check
cells (run for the student's feedback only), each graded one preceded by its hidden counterpart
(:mod:`segcourse.labs.hidden`), whose submitted values are the grade. The same plan
with the reference's own solutions gives the expected values. Cells whose metadata says
``"skip_when_grading": true`` (costly illustrations no graded check needs) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from segcourse.grading.cells import (
    bound_names,
    defined_names,
    global_reads,
    used_names,
)
from segcourse.labs.notebook import cell_info, lab_name


@dataclass
class Step:
    """One cell the grader runs: its role, the reference cell it stands for, its source."""
    kind: str  # setup, context, solution, check, hidden
    cell_id: str | None
    source: str
    before: str = ""  # grader code run in the same cell, before and after ``source``
    after: str = ""
    isolated: bool = False  # the kernel's namespace is put back as it was after the cell


@dataclass
class GradedCheck:
    """A check that gives points: its public cell, its hidden cell, the exercises it grades."""

    check_id: str
    points: int
    public_step: int
    hidden_step: int
    solutions: list[str] = field(default_factory=list)  # the exercise cells it grades
    depends_on: list[str] = field(default_factory=list)  # and those their code calls


@dataclass
class Plan:
    """The cells to run for one submission, in order, and the checks they score."""
    steps: list[Step]
    checks: list[GradedCheck]
    solution_steps: dict[str, int]
    lab: str | None = None

    def sources(self) -> list[dict]:
        """The steps' sources as the executor takes them."""
        return [{"source": step.before + (_in_a_copy(step.source) if step.isolated
                                          else step.source) + step.after,
                 "isolated": step.isolated} for step in self.steps]


def _in_a_copy(source: str) -> str:
    """``source`` run in a copy of the kernel's namespace: what it imports or binds (lab 12's
    hidden cells import ``cells``) never replaces, while it runs, a student's helper of that
    name that the student's code calls through its own namespace."""
    return f"exec(compile({source!r}, 'hidden check', 'exec'), dict(globals()))\n"


def build(reference, solutions: dict[str, str | None] | None = None) -> Plan:
    """The grading plan of ``reference`` with ``solutions`` (id -> source; ``None``: missing)
    in place of its own; without ``solutions``, the reference's own (the expected run). Each
    graded check's hidden cell runs just before its public check cell, in a namespace it
    leaves as it found it (:attr:`Step.isolated`): it sees what the exercise and the cells
    above it made, never what the public check or a later cell computes (an exercise that
    handed the hidden cells an object reading such a value at call time got points for no
    work when they ran after every other cell)."""
    code = [(cell, cell_info(cell)) for cell in reference.cells if cell.cell_type == "code"]
    hidden = {}
    for cell, info in code:
        if info.get("role") == "hidden" and not info.get("skip_when_grading"):
            hidden.setdefault(info.get("check"), cell.source)
    steps: list[Step] = []
    checks: list[GradedCheck] = []
    solution_steps: dict[str, int] = {}
    pending: list[str] = []
    for cell, info in code:
        role = info.get("role", "context")
        if info.get("skip_when_grading"):
            if role == "check":  # an ungraded check owns the exercise cells before it
                pending = []
            continue
        if role == "hidden":
            continue
        source = cell.source
        if role == "solution":
            if solutions is not None:
                source = solutions.get(info["id"]) or ""
            solution_steps[info["id"]] = len(steps)
            pending.append(info["id"])
        if role == "check" and info.get("points", 0) > 0:
            hidden_step = -1
            if info["id"] in hidden:
                hidden_step = len(steps)
                steps.append(Step("hidden", info["id"], hidden[info["id"]], isolated=True))
            checks.append(GradedCheck(info["id"], int(info["points"]), len(steps), hidden_step,
                                      list(pending)))
        steps.append(Step(role, info.get("id"), source))
        if role == "check":  # graded or not, the exercise cells before it are its own
            pending = []
    _dependencies(checks, steps)
    _keep_exercise_names(reference, checks, steps)
    missing = [check.check_id for check in checks if check.hidden_step < 0]
    if missing:
        raise ValueError(f"the reference has no hidden counterpart for {', '.join(missing)}: "
                         "every check that gives points needs one (run `segcourse lab check`).")
    return Plan(steps, checks, solution_steps, lab_name(reference))


def _dependencies(checks: list[GradedCheck], steps: list[Step]) -> None:
    """The exercise cells whose definitions a check's hidden cell uses, directly or through
    other exercise cells (a later exercise built on an earlier one inherits its errors)."""
    solutions = {s.cell_id: s.source for s in steps if s.kind == "solution"}
    defines = {identifier: defined_names(source) for identifier, source in solutions.items()}
    for check in checks:
        if check.hidden_step < 0:
            continue
        hidden_uses = used_names(steps[check.hidden_step].source)
        # its own exercise cells that the hidden check reads: an ungraded prediction before the
        # exercise (lab 03's guesses) is not part of what it grades
        used = [i for i in check.solutions if defines[i] & hidden_uses]
        check.solutions = used or check.solutions
        needed = set(check.solutions)
        frontier = hidden_uses.union(*(used_names(solutions[i]) for i in needed))
        while frontier:
            found = {i for i, names in defines.items() if names & frontier} - needed
            needed |= found
            frontier = set().union(*(used_names(solutions[i]) for i in found)) if found else set()
        order = list(solutions)
        check.depends_on = sorted(needed, key=order.index)


KEPT = "_segcourse_kept"  # {exercise id: {name: value}} in the grading kernel


def _keep_exercise_names(reference, checks: list[GradedCheck], steps: list[Step]) -> None:
    """A student's helper named like a variable that a later *check* cell binds (lab 00:
    helpers ``semantic``, ``frequencies``) is that variable when a later hidden check calls the
    exercise's code (when the hidden checks ran after every other cell, the public check passed
    and its own hidden one failed). Each exercise cell
    keeps the names it binds that a later check cell binds again and no later context cell
    does; each hidden cell first restores those of the exercises it depends on. Never restored:
    a name any hidden cell reads that the reference's exercise does not define (the lab's
    data), and what a context cell binds (the lab's code may read it). The values are compared
    with the reference run's, so restoring can only give back the student's own work."""
    own = {cell_info(c)["id"]: defined_names(c.source) for c in reference.cells
           if c.cell_type == "code" and cell_info(c).get("role") == "solution"}
    hidden_reads = set().union(*(global_reads(s.source) for s in steps if s.kind == "hidden"))
    kept: dict[str, list[str]] = {}
    for position, step in enumerate(steps):
        if step.kind != "solution" or not step.source:
            continue
        later = steps[position + 1:]
        by_checks = set().union(*(bound_names(s.source) for s in later if s.kind == "check"))
        by_context = set().union(*(bound_names(s.source) for s in later
                                   if s.kind in ("context", "setup")))
        lab_data = hidden_reads - own.get(step.cell_id, set())
        names = sorted((bound_names(step.source) & by_checks) - by_context - lab_data)
        if names:
            kept[step.cell_id] = names
            step.after = (f"\n{KEPT} = globals().get({KEPT!r}) or {{}}; "
                          f"{KEPT}[{step.cell_id!r}] = {{_n: globals()[_n] for _n in "
                          f"{names!r} if _n in globals()}}\n")
    for check in checks:
        restore = {i: kept[i] for i in check.depends_on if i in kept}
        if check.hidden_step >= 0 and restore:
            steps[check.hidden_step].before = (
                f"globals().update({{_n: _v for _i, _names in {restore!r}.items() for _n, _v "
                f"in (globals().get({KEPT!r}) or {{}}).get(_i, {{}}).items() if _n in _names}})\n")


def rebound_names(reference) -> list[str]:
    """What a hidden check could read wrongly: a name an exercise cell defines, that a hidden
    check reads, and that a later cell the grader runs binds again. A hidden check runs where
    its public check stands (§8.2), so a later exercise's check that reads the name would meet
    the later value (lab 04's ``unet_skip_bytes``, a function, was once rebound to a number two
    cells on, when the hidden checks ran after every other cell). Names and
    reads as Python's symbol table sees them (:func:`segcourse.grading.cells.bound_names`,
    :func:`~segcourse.grading.cells.global_reads`); importing again a name the exercise
    imported too is no rebinding."""
    plan = build(reference)
    read_by_hidden = set().union(*(global_reads(plan.steps[c.hidden_step].source)
                                   for c in plan.checks))
    defined_by: dict[str, str] = {}
    imported_by_exercise: set[str] = set()
    problems = []
    for index, cell in enumerate(reference.cells):
        info = cell_info(cell)
        if (cell.cell_type != "code" or info.get("skip_when_grading")
                or info.get("role") == "hidden"):
            continue
        bound = bound_names(cell.source)
        imported = bound - bound_names(cell.source, imports=False)
        names = bound & read_by_hidden
        if info.get("role") == "solution":
            defined_by.update(dict.fromkeys(names, info["id"]))
            imported_by_exercise = (imported_by_exercise - names) | (imported & names)
            continue
        names -= imported & imported_by_exercise
        for name in sorted(names & set(defined_by)):
            problems.append(f"cell {index} ({info.get('id', 'context')}) binds {name!r} again, "
                            f"which exercise {defined_by[name]} defines and a hidden check "
                            "reads (a later check would read the new value): rename one of them")
    return problems


def hidden_cell_problems(reference) -> list[str]:
    """What would break a hidden cell where the grader runs it, which Jupyter and nbval never
    show: just before its public check, compiled as plain Python (no ``%magic``, ``!shell`` or
    top-level ``await``), reading only names that the cells the grader runs before it bind
    (never its own check's, as a hidden cell after its check in the notebook could)."""
    import builtins

    problems = []
    bound = set(dir(builtins))
    for step in build(reference).steps:
        if step.kind != "hidden":
            bound |= bound_names(step.source)
            continue
        try:
            compile(step.source, "hidden check", "exec")
        except SyntaxError as error:
            problems.append(f"hidden cell of {step.cell_id}: not plain Python ({error.msg}, line "
                            f"{error.lineno}); the grader runs it with exec, without IPython")
            continue
        missing = sorted(global_reads(step.source) - bound)
        if missing:
            problems.append(f"hidden cell of {step.cell_id} reads {', '.join(missing)}, which no "
                            "cell the grader runs before its check binds (the grader runs it "
                            "just before its public check)")
    return problems
