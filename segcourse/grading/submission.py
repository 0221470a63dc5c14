"""Read a submitted notebook whatever its shape, and find its exercise cells.

A submission may be any file. It is read as JSON, converted from nbformat 3 when it is old, and
refused with a short reason (``empty file``, ``unreadable notebook``, ``not a notebook``,
``wrong lab``) when it cannot be graded. Its exercise cells are matched to the reference's
solution cells, in this order (the method is recorded for each cell):

1. ``id``: the ``metadata.segcourse.id`` of the reference cell. Several cells with one id (a
   copied cell keeps the metadata; JupyterLab's split copies it to both halves) run joined, in
   notebook order, untouched copies of the stub left out; where the joined text does not
   parse, the last copy that parses and defines what the reference cell defines;
2. ``position``: the k-th cell whose role is ``solution`` (ids renamed, roles kept), when the
   submission has as many of them as the reference;
3. ``names``: the last code cell that defines every name the reference cell defines
   (functions, classes, assigned variables; metadata stripped, cells moved);
4. ``code position``: the code cell at the same index, when the submission has exactly as many
   code cells as the student version.

Only the matched exercise cells of a submission run; its own check cells, markers, tags,
points, kernelspec and outputs are ignored.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from segcourse.grading.cells import defined_names, parse_cell
from segcourse.labs.notebook import cell_info, lab_name
from segcourse.labs.student import strip_solutions

MAX_BYTES = 64 << 20


class Unreadable(ValueError):
    """The submission cannot be graded; the message is the reason for the grades."""


@dataclass
class Match:
    """The submitted source found for one reference solution cell, and how it was found."""
    source: str | None
    method: str  # id, position, names, code position, missing
    stub: bool = False


@dataclass
class Submission:
    """One student's notebook as read: its identity, its problem if unreadable, its matches."""
    student: str
    path: Path
    sha256: str
    notebook: object | None = None
    problem: str | None = None
    matches: dict[str, Match] = field(default_factory=dict)
    detail: str | None = None  # for the feedback: what exactly the problem is


def student_id(path: Path) -> str:
    """The student's identifier: the submission's file name without extension."""
    return Path(path).stem


def regular_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a submission without following or trusting it, if so:
    a link (it could point at the reference), a device or pipe, a file too large."""
    try:
        info = os.lstat(path)
    except OSError:
        return "unreadable file"
    if stat.S_ISLNK(info.st_mode):
        return "not a regular file (a link)"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_size > MAX_BYTES:
        return f"file too large ({info.st_size >> 20} MB)"
    return None


def file_digest(path: Path) -> str:
    """The SHA-256 of a regular file (read in pieces); for anything else, its kind and size."""
    problem = regular_file_problem(path)
    if problem:
        try:
            info = os.lstat(path)
            return f"{problem}:{info.st_size}:{info.st_mtime_ns}"
        except OSError:
            return problem
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return "unreadable file"
    return digest.hexdigest()


def read_notebook(path: Path):
    """The notebook at ``path`` as nbformat 4, or :class:`Unreadable` with the reason."""
    from segcourse.labs.notebook import NotANotebook
    from segcourse.labs.notebook import read_notebook as read

    path = Path(path)
    problem = regular_file_problem(path)
    if problem:
        raise Unreadable(problem)
    try:
        return read(path)
    except NotANotebook as error:
        raise Unreadable(error.reason) from None


def _normal(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def is_stub(source: str, reference_source: str) -> bool:
    """The cell is the student version's stub, untouched (whitespace aside)."""
    return _normal(source) == _normal(strip_solutions(reference_source))


def _one_cell(sources: list[str], reference_source: str) -> str:
    """The cells that carry one exercise's id as one source. Untouched copies of the stub are
    left out unless nothing else is there; the rest run joined, in notebook order, as Run All
    runs them (the halves of a split cell make one again; of two whole copies, the later
    definitions win). Where the joined text does not parse (an unfinished attempt kept above
    the answer), the last copy that parses and defines what the reference cell defines."""
    answered = [source for source in sources if not is_stub(source, reference_source)]
    if len(answered) <= 1:
        return (answered or sources[-1:])[0]
    joined = "\n\n".join(answered)
    if parse_cell(joined) is not None:
        return joined
    needed = defined_names(reference_source)
    whole = [source for source in answered
             if parse_cell(source) is not None and needed <= defined_names(source)]
    return (whole or answered)[-1]


def solution_cells(notebook) -> list:
    """The cells tagged as solutions, in order."""
    return [c for c in notebook.cells if cell_info(c).get("role") == "solution"]


def match_solutions(reference, notebook) -> dict[str, Match]:
    """For each reference solution cell id, the submitted source that stands for it."""
    ours = solution_cells(reference)
    code = [c for c in notebook.get("cells", []) if c.get("cell_type") == "code"]
    by_id: dict[str, list[str]] = {}
    for cell in code:
        identifier = cell_info(cell).get("id")
        if isinstance(identifier, str):
            by_id.setdefault(identifier, []).append(cell.get("source", ""))
    theirs = [c for c in code if cell_info(c).get("role") == "solution"]
    reference_code = [c for c in reference.cells
                      if c.cell_type == "code" and cell_info(c).get("role") != "hidden"]
    matches = {}
    names_in: dict[int, set[str]] = {}  # each submitted cell parsed once, and only if needed

    def names_of(position: int) -> set[str]:
        if position not in names_in:
            names_in[position] = defined_names(code[position].get("source", ""))
        return names_in[position]

    for index, cell in enumerate(ours):
        identifier = cell_info(cell)["id"]
        names = defined_names(cell.source)
        if identifier in by_id:
            match = Match(_one_cell(by_id[identifier], cell.source), "id")
        elif len(theirs) == len(ours):
            match = Match(theirs[index].get("source", ""), "position")
        elif names and (found := [i for i in range(len(code)) if names <= names_of(i)]):
            match = Match(code[found[-1]].get("source", ""), "names")
        elif len(code) == len(reference_code):
            match = Match(code[reference_code.index(cell)].get("source", ""), "code position")
        else:
            match = Match(None, "missing")
        if match.source is not None:
            match.stub = is_stub(match.source, cell.source)
        matches[identifier] = match
    return matches


def _lab_number(name) -> int | None:
    """6 for ``"06_metrics_losses"`` (or an older notebook's plain ``6``)."""
    if isinstance(name, int) and not isinstance(name, bool):
        return name
    found = re.match(r"(\d+)_", name) if isinstance(name, str) else None
    return int(found.group(1)) if found else None


def _heading_lab(notebook) -> int | None:
    for cell in notebook.get("cells", [])[:5]:
        if cell.get("cell_type") == "markdown":
            found = re.search(r"^#\s*Lab\s+(\d+)", cell.get("source", ""), re.MULTILINE)
            if found:
                return int(found.group(1))
    return None


def load(path: Path, reference, student: str | None = None) -> Submission:
    """Read and match one submission against the reference notebook."""
    path = Path(path)
    submission = Submission(student or student_id(path), path, file_digest(path))
    try:
        notebook = read_notebook(path)
    except (Unreadable, OSError) as problem:
        submission.problem = str(problem) if isinstance(problem, Unreadable) else "unreadable file"
        return submission
    submission.notebook = notebook
    theirs, ours = _lab_number(lab_name(notebook)), _lab_number(lab_name(reference))
    theirs = _heading_lab(notebook) if theirs is None else theirs
    ours = _heading_lab(reference) if ours is None else ours
    if theirs is not None and ours is not None and theirs != ours:
        submission.problem = "wrong lab"
        submission.detail = f"this notebook is lab {theirs:02d}, the reference is lab {ours:02d}"
        return submission
    submission.matches = match_solutions(reference, notebook)
    return submission
