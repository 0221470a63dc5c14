"""The lab notebook conventions (docs/design.md §7), in one place, and a validator for them.

- The first cell is the Colab-aware setup cell, exactly :func:`setup_source`.
- Cells that matter carry ``metadata["segcourse"] = {"id", "role", "points"}``; roles are
  ``setup``, ``solution`` (code between the solution markers), ``check`` (tagged
  ``nbval-check-output``, with a stored output that is the expected answer) and ``hidden``
  (a point-bearing check's graded counterpart, ``"check": <its id>``; see
  :mod:`segcourse.labs.hidden`), which the student version leaves out.
- The notebook's own metadata names its lab: ``metadata["segcourse"]["lab"] = "06_metrics_losses"``
  (the file's stem), so the grader can tell a notebook of another lab.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from segcourse.labs.catalog import INSTALL

CHECK_TAG = "nbval-check-output"
ROLES = ("setup", "solution", "check", "hidden")
# The keys of metadata.segcourse: misplaced at the top of a cell's metadata, nothing reads them
# (a costly cell the grader would run, a check nobody grades), so `lab check` refuses them there.
SEGCOURSE_KEYS = frozenset({"id", "role", "points", "check", "skip_when_grading"})
BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
# A markdown cell's discussion of an exercise's answer ("What you found ..."): invisible markers
# (HTML comments), and the student version holds a line saying where the discussion is instead.
BEGIN_ANSWER = "<!-- BEGIN ANSWER -->"
END_ANSWER = "<!-- END ANSWER -->"


def setup_source() -> str:
    """The first cell of every lab: on Colab, install :data:`~segcourse.labs.catalog.INSTALL`
    with Colab's own TensorFlow and Keras held at their versions (pip refuses rather than
    replaces them), and a failed install says what to do instead of showing pip's traceback;
    where segcourse is installed, nothing is installed. Then ``PROFILE = setup()``."""
    return f"""\
# Setup: on Colab this installs segcourse; where segcourse is installed it installs nothing.
import importlib.metadata, importlib.util, subprocess, sys
SEGCOURSE = {json.dumps(INSTALL)}
if importlib.util.find_spec("segcourse") is None:
    if "google.colab" not in sys.modules:
        raise ModuleNotFoundError(
            "segcourse is not installed in this kernel's environment: in the repository run "
            "pip install -e '.[dev]', then restart the kernel.")
    held = []  # Colab's TensorFlow and Keras stay as they are
    for name in ("tensorflow", "keras"):
        try:
            held.append(f"{{name}}=={{importlib.metadata.version(name)}}")
        except importlib.metadata.PackageNotFoundError:
            pass
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", SEGCOURSE, *held],
                         capture_output=True, text=True)
    if pip.returncode != 0:
        raise RuntimeError(
            "Installing segcourse failed; pip said:\\n" + pip.stderr.strip()[-1500:] + "\\n"
            "Check that this runtime is connected to the internet, then run this cell again. If "
            "pip names a conflict with " + " or ".join(held or ["TensorFlow"]) + ", the lab "
            "needs a newer Colab runtime (Runtime > Disconnect and delete runtime). Still "
            "failing? Send this message to your instructor.") from None

from segcourse.labs import setup
PROFILE = setup()"""


class NotANotebook(ValueError):
    """A file that cannot be read as a notebook. ``reason`` is the short cause ("empty file",
    "not a notebook", ...); the message is a sentence naming the file and what to do."""

    def __init__(self, path, reason: str, detail: str = ""):
        self.reason = reason
        super().__init__(f"{path} cannot be read as a notebook: {reason}{detail}. Open it in "
                         "JupyterLab to see what it holds, or take the file again from the labs.")


def read_notebook(path):
    """The notebook at ``path`` as nbformat 4 (older versions converted; each cell's source one
    string, its metadata a dict), or :class:`NotANotebook` saying why not."""
    import nbformat

    path = Path(path)
    content = path.read_bytes()
    if not content:
        raise NotANotebook(path, "empty file")
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):
        raise NotANotebook(path, "unreadable notebook (not JSON)") from None
    if not isinstance(data, dict) or not ("cells" in data or "worksheets" in data):
        kind = {dict: "an object without cells", list: "a list"}.get(type(data), "a single value")
        raise NotANotebook(path, "not a notebook", f" (its JSON is {kind}, a notebook is an "
                                                   "object with a list of cells)")
    try:
        with warnings.catch_warnings():  # nbformat warns about (and mends) missing cell ids
            warnings.simplefilter("ignore")
            notebook = nbformat.reads(json.dumps(data), as_version=4)
    except Exception as error:
        raise NotANotebook(path, "unreadable notebook (malformed)", f" ({error})") from error
    cells = notebook.get("cells", [])
    if not isinstance(cells, list):
        raise NotANotebook(path, "unreadable notebook (malformed)", " (its cells are no list)")
    for cell in cells:
        if not isinstance(cell, dict) or not isinstance(cell.get("source", ""), (str, list)):
            raise NotANotebook(path, "unreadable notebook (malformed)", " (a cell without text)")
        if isinstance(cell.get("source"), list):
            cell["source"] = "".join(map(str, cell["source"]))
        if not isinstance(cell.get("metadata", {}), dict):
            cell["metadata"] = {}
    return notebook


def cell_info(cell) -> dict:
    """The cell's ``segcourse`` metadata (empty when it has none)."""
    return dict(cell.get("metadata", {}).get("segcourse", {}))


def _source(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def lab_name(nb) -> str | None:
    """The lab a notebook belongs to (``metadata.segcourse.lab``), if it says."""
    return nb.get("metadata", {}).get("segcourse", {}).get("lab")


def reference_problems(nb, stem: str | None = None) -> list[str]:
    """Everything in a reference notebook that breaks the conventions; empty when it is sound.
    ``stem``: the file's name without ``.ipynb``, which the notebook's lab name must equal."""
    problems = []
    cells = nb.get("cells", [])
    if not lab_name(nb) or (stem is not None and lab_name(nb) != stem):
        problems.append(f"the notebook metadata must name its lab: metadata.segcourse.lab = "
                        f"{stem or 'the file stem'!r} (found {lab_name(nb)!r})")
    first = cells[0] if cells else {}
    if _source(first) != setup_source() or cell_info(first).get("role") != "setup":
        problems.append("the first cell must be the setup cell (segcourse.labs.notebook."
                        "setup_source()) with role 'setup'")
    seen = set()
    for index, cell in enumerate(cells):
        info, tags = cell_info(cell), cell.get("metadata", {}).get("tags", [])
        where = f"cell {index} ({info.get('id', 'no id')})"
        if CHECK_TAG in tags and info.get("role") != "check":
            problems.append(f"{where}: tagged {CHECK_TAG} but its role is not 'check'")
        for key in sorted(set(cell.get("metadata", {})) & SEGCOURSE_KEYS):
            problems.append(f"{where}: {key!r} is in the cell's metadata, where nothing reads "
                            f"it; put it in metadata.segcourse")
        problem = _marker_problem(cell)
        if problem:
            problems.append(f"{where}: {problem}")
        if not set(info) - {"skip_when_grading"}:
            continue  # a plain cell (the grader may leave it out: see segcourse.grading.plan)
        if cell.get("cell_type") != "code":
            problems.append(f"{where}: segcourse metadata belongs on code cells")
        if info.get("id") in seen or not info.get("id"):
            problems.append(f"{where}: every segcourse id must be present and unique")
        seen.add(info.get("id"))
        if info.get("role") not in ROLES:
            problems.append(f"{where}: role {info.get('role')!r} is not one of {ROLES}")
        if not isinstance(info.get("points", 0), int) or info.get("points", 0) < 0:
            problems.append(f"{where}: points must be a whole number ≥ 0")
        outputs = cell.get("outputs", [])
        if any(out.get("output_type") == "error" for out in outputs):
            problems.append(f"{where}: its stored output is an error; re-run the notebook")
        if info.get("role") == "check":
            if CHECK_TAG not in tags:
                problems.append(f"{where}: a check cell must be tagged {CHECK_TAG}")
            if not any(out.get("output_type") == "stream" for out in outputs):
                problems.append(f"{where}: a check cell needs its stored output (the expected "
                                "text); run `segcourse lab run --profile cpu` on the notebook")
        if info.get("role") == "hidden":
            if CHECK_TAG in tags or info.get("points", 0):
                problems.append(f"{where}: a hidden cell carries no points and no {CHECK_TAG} "
                                "tag (its check does)")
            if "submit(" not in _source(cell):
                problems.append(f"{where}: a hidden cell must submit its values "
                                "(segcourse.labs.hidden.submit)")
            if not outputs:
                problems.append(f"{where}: a hidden cell needs its stored output (proof that it "
                                "runs on the reference); run `segcourse lab run --profile cpu` "
                                "on the notebook")
        if info.get("role") == "solution":
            source = _source(cell)
            if BEGIN_SOLUTION not in source or END_SOLUTION not in source:
                problems.append(f"{where}: a solution cell needs the {BEGIN_SOLUTION} / "
                                f"{END_SOLUTION} markers")
    problems += _hidden_counterpart_problems(cells)
    return problems


def _marker_problem(cell) -> str | None:
    """What the student version's builder would refuse in this cell's solution or answer
    markers (unbalanced, misplaced, a malformed ``; student version:``), or ``None``."""
    from segcourse.labs.student import strip_solutions, withhold_answers

    build = withhold_answers if cell.get("cell_type") == "markdown" else strip_solutions
    try:
        build(_source(cell))
    except ValueError as error:
        return str(error).splitlines()[0]
    return None


def _hidden_counterpart_problems(cells) -> list[str]:
    """Every check that gives points has exactly one hidden counterpart, after it."""
    problems = []
    position = {cell_info(c).get("id"): i for i, c in enumerate(cells) if cell_info(c)}
    counterparts: dict[str, list[int]] = {}
    for index, cell in enumerate(cells):
        info = cell_info(cell)
        if info.get("role") == "hidden":
            counterparts.setdefault(info.get("check"), []).append(index)
    for index, cell in enumerate(cells):
        info = cell_info(cell)
        if info.get("role") != "check" or not info.get("points", 0):
            continue
        found = counterparts.pop(info.get("id"), [])
        if len(found) != 1:
            problems.append(f"cell {index} ({info.get('id')}): a check that gives points needs "
                            f"exactly one hidden counterpart (role 'hidden', check "
                            f"{info.get('id')!r}); found {len(found)}")
        elif found[0] < index:
            problems.append(f"cell {found[0]}: the hidden counterpart of {info.get('id')} must "
                            "come after its check")
    for check_id, indices in counterparts.items():
        target = position.get(check_id)
        problems.append(f"cell {indices[0]}: hidden cell for {check_id!r}, which is not a check "
                        f"that gives points" + ("" if target is not None else " (no such id)"))
    return problems
