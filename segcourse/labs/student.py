"""Build the student version of a reference lab (docs/design.md §7).

Every span between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes
``raise NotImplementedError()`` at the marker's indentation; the hidden check counterparts
(role ``hidden``) are left out; every output and execution count is cleared (students produce
their own); the ``segcourse`` cell metadata stays, so the grader can match each cell of a
submission to the reference by its id.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

from segcourse.labs.notebook import BEGIN_SOLUTION, END_SOLUTION, cell_info

_SPAN = re.compile(
    rf"^(?P<indent>[ \t]*){re.escape(BEGIN_SOLUTION)}[^\n]*\n.*?^[ \t]*{re.escape(END_SOLUTION)}"
    r"[^\n]*$", re.MULTILINE | re.DOTALL)
STUB = "# YOUR CODE HERE\n{indent}raise NotImplementedError()"


def strip_solutions(source: str) -> str:
    """Replace each solution span of a cell's source with the stub."""
    if source.count(BEGIN_SOLUTION) != source.count(END_SOLUTION):
        raise ValueError(
            f"unbalanced solution markers: {source.count(BEGIN_SOLUTION)} × {BEGIN_SOLUTION} and "
            f"{source.count(END_SOLUTION)} × {END_SOLUTION} in:\n{source}")
    return _SPAN.sub(lambda m: m["indent"] + STUB.format(indent=m["indent"]), source)


def student_notebook(reference):
    """The student version of a reference notebook (an ``nbformat`` node); the input is kept."""
    nb = copy.deepcopy(reference)
    nb.cells = [cell for cell in nb.cells if cell_info(cell).get("role") != "hidden"]
    for cell in nb.cells:
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
