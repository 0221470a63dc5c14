"""The lab notebook conventions (DESIGN §7), in one place, and a validator for them.

- The first cell is the Colab-aware setup cell, exactly :func:`setup_source`.
- Cells that matter carry ``metadata["segcourse"] = {"id", "role", "points"}``; roles are
  ``setup``, ``solution`` (code between the solution markers) and ``check`` (tagged
  ``nbval-check-output``, with a stored output that is the expected answer).
"""

from __future__ import annotations

from segcourse.labs.catalog import REPOSITORY

CHECK_TAG = "nbval-check-output"
ROLES = ("setup", "solution", "check")
BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"


def setup_source() -> str:
    """The first cell of every lab: install on Colab, nothing when installed; then check."""
    return f"""\
# Setup: on Colab this installs segcourse; on a machine where it is installed it does nothing.
import importlib.util, subprocess, sys
if importlib.util.find_spec("segcourse") is None:
    if "google.colab" not in sys.modules:
        raise ModuleNotFoundError(
            "segcourse is not installed in this kernel's environment: in the repository run "
            "pip install -e '.[dev]', then restart the kernel.")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "segcourse[data] @ git+https://github.com/{REPOSITORY}"], check=True)

from segcourse.labs import setup
PROFILE = setup()"""


def cell_info(cell) -> dict:
    """The cell's ``segcourse`` metadata (empty when it has none)."""
    return dict(cell.get("metadata", {}).get("segcourse", {}))


def _source(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def reference_problems(nb) -> list[str]:
    """Everything in a reference notebook that breaks the conventions; empty when it is sound."""
    problems = []
    cells = nb.get("cells", [])
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
        if not info:
            continue
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
                                "text); run `segcourse lab run` on the notebook")
        if info.get("role") == "solution":
            source = _source(cell)
            if BEGIN_SOLUTION not in source or END_SOLUTION not in source:
                problems.append(f"{where}: a solution cell needs the {BEGIN_SOLUTION} / "
                                f"{END_SOLUTION} markers")
    return problems
