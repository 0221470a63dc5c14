"""Build the student version of a reference lab (docs/design.md §7).

Every span between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes
``raise NotImplementedError()`` at the marker's indentation (or the line that a
``### BEGIN SOLUTION; student version: guess = None`` names: an ungraded prediction must not
stop a student's Run All); every discussion of an answer in a markdown cell (between
``<!-- BEGIN ANSWER -->`` and ``<!-- END ANSWER -->``) becomes a line saying that the reference
version holds it (a student who scrolls one cell down would otherwise read the answer they are
asked to find); the hidden check counterparts (role ``hidden``) are left out; every output
and execution count is cleared (students produce their own); the ``segcourse`` cell metadata
stays, so the grader can match each cell of a submission to the reference by its id.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

from segcourse.labs.notebook import (
    BEGIN_ANSWER,
    BEGIN_SOLUTION,
    END_ANSWER,
    END_SOLUTION,
    cell_info,
)

_SPAN = re.compile(
    rf"^(?P<indent>[ \t]*){re.escape(BEGIN_SOLUTION)}(?P<rest>[^\n]*)\n.*?"
    rf"^[ \t]*{re.escape(END_SOLUTION)}[^\n]*$", re.MULTILINE | re.DOTALL)
STUB = "# YOUR CODE HERE\n{indent}{code}"
RAISE = "raise NotImplementedError()"
# `### BEGIN SOLUTION; student version: guess = None` gives that line instead of the raise: for
# an ungraded prediction, so that a student's Run All does not stop at it
STUDENT_VERSION = "; student version:"
_ANSWER = re.compile(rf"{re.escape(BEGIN_ANSWER)}.*?{re.escape(END_ANSWER)}", re.DOTALL)
ANSWER_WITHHELD = ("*What you found: the discussion of this exercise's answer is in the "
                   "reference version of the lab, which your instructor hands out after the "
                   "deadline.*")


def strip_solutions(source: str) -> str:
    """Replace each solution span of a cell's source with the stub."""
    if source.count(BEGIN_SOLUTION) != source.count(END_SOLUTION):
        raise ValueError(
            f"unbalanced solution markers: {source.count(BEGIN_SOLUTION)} × {BEGIN_SOLUTION} and "
            f"{source.count(END_SOLUTION)} × {END_SOLUTION} in:\n{source}")

    def stub(m):
        rest = m["rest"].strip()
        if not rest:
            return m["indent"] + STUB.format(indent=m["indent"], code=RAISE)
        code = rest.removeprefix(STUDENT_VERSION.strip()).strip()
        if not rest.startswith(STUDENT_VERSION.strip()) or not code:
            raise ValueError(f"{BEGIN_SOLUTION}{m['rest']}: after the marker only "
                             f"'{STUDENT_VERSION} <the student's line>' may follow (for an "
                             f"ungraded prediction, e.g. '{STUDENT_VERSION} guess = None').")
        return m["indent"] + STUB.format(indent=m["indent"], code=code)

    stripped = _SPAN.sub(stub, source)
    if BEGIN_SOLUTION in stripped or END_SOLUTION in stripped:
        raise ValueError(f"misplaced solution markers (an {END_SOLUTION} before its "
                         f"{BEGIN_SOLUTION}, or one inside another) in:\n{source}")
    return stripped


def withhold_answers(source: str) -> str:
    """Replace each answer discussion of a markdown cell's source with :data:`ANSWER_WITHHELD`."""
    if source.count(BEGIN_ANSWER) != source.count(END_ANSWER):
        raise ValueError(
            f"unbalanced answer markers: {source.count(BEGIN_ANSWER)} × {BEGIN_ANSWER} and "
            f"{source.count(END_ANSWER)} × {END_ANSWER} in:\n{source}")
    withheld = _ANSWER.sub(ANSWER_WITHHELD, source)
    if BEGIN_ANSWER in withheld or END_ANSWER in withheld:
        raise ValueError(f"misplaced answer markers (an {END_ANSWER} before its {BEGIN_ANSWER}, "
                         f"or one inside another) in:\n{source}")
    return withheld


def student_notebook(reference):
    """The student version of a reference notebook (an ``nbformat`` node); the input is kept."""
    nb = copy.deepcopy(reference)
    nb.cells = [cell for cell in nb.cells if cell_info(cell).get("role") != "hidden"]
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = withhold_answers(cell.source)
        if cell.cell_type != "code":
            continue
        cell.source = strip_solutions(cell.source)
        cell.outputs = []
        cell.execution_count = None
        cell.metadata.pop("execution", None)  # the reference run's timestamps
    nb.metadata.setdefault("segcourse", {})["version"] = "student"
    return nb


def build_student_versions(references, out_dir) -> list[Path]:
    """Write the student version of each reference notebook into ``out_dir``; return the paths."""
    import nbformat

    from segcourse.labs.notebook import read_notebook

    out_dir = Path(out_dir)
    references = [Path(reference) for reference in references]
    notebooks = [read_notebook(reference) for reference in references]  # all, before writing
    for reference in references:
        target = out_dir / reference.name
        if target.exists() and target.resolve() == reference.resolve():
            raise ValueError(f"the student version of {reference} would replace the reference "
                             f"itself ({target}), solutions and all; choose an --out folder "
                             "other than the references' own.")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for reference, notebook in zip(references, notebooks, strict=True):
        target = out_dir / reference.name
        nbformat.write(student_notebook(notebook), target)
        written.append(target)
    return written
