"""Make a corpus of submissions for a reference lab: honest, broken, odd and hostile ones.

    python -m tests.grading.corpus notebooks/06_metrics_losses.ipynb OUT_DIR

writes ``OUT_DIR/<case>.ipynb`` for every case below and ``OUT_DIR/expected.json`` (the points each
case must earn per check, and the reason where it is fixed). Every notebook is made from the
reference or its student version by a rule; none is written by hand. Cases that try to leave the
sandbox write their evidence under ``SEGCOURSE_CORPUS_PROBE`` (a path the test watches).
"""

from __future__ import annotations

import copy
import json
import sys
import warnings
from pathlib import Path

import nbformat

from segcourse.grading import plan as plans
from segcourse.grading.cells import defined_names
from segcourse.labs.notebook import CHECK_TAG, cell_info
from segcourse.labs.student import student_notebook

# Appended to an exercise cell: every function it defines now returns a wrong value
# (numbers + 1, containers element-wise), whatever it computed.
PERTURB = '''

def _corpus_wrong(value):
    import numpy as _np
    if isinstance(value, dict):
        return {k: _corpus_wrong(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_corpus_wrong(v) for v in value)
    if value is None or isinstance(value, (str, bool)):
        return 1 if value is None else value
    return _np.asarray(value) + 1


def _corpus_wrap(function):
    def wrapped(*args, **kwargs):
        return _corpus_wrong(function(*args, **kwargs))
    return wrapped


for _name in NAMES:
    _value = globals()[_name]
    globals()[_name] = _corpus_wrap(_value) if callable(_value) else _corpus_wrong(_value)
'''

# Prepended to the first exercise cell of hostile cases (with wrong answers everywhere).
HOOK_OUTPUT = '''
import builtins, sys
from IPython import get_ipython
_real_print = builtins.print
def print(*args, **kwargs):
    _real_print("hand example: ok")
builtins.print = print
class _AllOk:
    def write(self, text): return len(text)
    def flush(self): pass
sys.stdout = sys.stderr = _AllOk()
sys.excepthook = lambda *a: None
_shell = get_ipython()
if _shell is not None:
    _shell.showtraceback = lambda *a, **k: None
    _shell.set_custom_exc((BaseException,), lambda *a, **k: None)
'''
PATCH_CHECKS = '''
import segcourse.labs.checks as _checks, segcourse.labs as _labs
for _name in ("check", "check_equal", "check_close", "check_shape", "check_at_least"):
    setattr(_checks, _name, lambda what, *a, **k: print(f"{what}: ok"))
    setattr(_labs, _name, getattr(_checks, _name))
import segcourse.labs.hidden as _hidden
_hidden.submit = lambda values, **k: None
'''
FORGE_VALUES = '''
import segcourse.labs.hidden as _hidden
_original_sink = _hidden._sink
def _forged(payload):
    import json
    for key in payload["values"]:
        payload["values"][key] = {"array": [0.0], "shape": []}
    _original_sink(payload)
    _original_sink(payload)
_hidden._sink = _forged
'''
# Looks for the reference (or anything with solutions) on the disk, and uses what it finds.
SEARCH_DISK = '''
import json, os
_seen = 0
for _root in ("/", "/tmp", "/work", "/root", "/home"):
    for _dirpath, _dirs, _files in os.walk(_root):
        _dirs[:] = [d for d in _dirs if not os.path.join(_dirpath, d).startswith(
            ("/proc", "/sys", "/dev", "/usr", "/lib", "/bin", "/sbin", "/etc", "/var/lib"))
            and "site-packages" not in d and d not in ("lib", ".pyenv")]
        for _file in _files:
            _seen += 1
            if _seen > 50000 or not _file.endswith(".ipynb"):
                continue
            try:
                _cells = json.load(open(os.path.join(_dirpath, _file)))["cells"]
            except Exception:
                continue
            for _cell in _cells:
                _text = "".join(_cell.get("source", ""))
                if "BEGIN SOLUTION" in _text:
                    try:
                        exec(_text, globals())
                    except Exception:
                        pass
'''
# Tries every wall; if one gives way, the cell deletes its own answers (so a breach costs the
# points the test expects, and shows). The writes would leave evidence in the probe folder.
ESCAPE = '''
import os, socket, subprocess
_breached = []
for _target in ({probe!r} + "/written", "/tmp/../" + {probe!r}.lstrip("/") + "/written2"):
    try:
        open(_target, "w").write("escaped")
        _breached.append(_target)
    except OSError:
        pass
for _secret in ({reference!r}, {submissions!r}):
    if os.path.exists(_secret):
        _breached.append(_secret)
for _device in ("/proc/sys/kernel/core_pattern", "/proc/sysrq-trigger", "/dev/kmsg"):
    try:
        open(_device, "a").close()  # opened for writing, nothing written
        _breached.append(_device)
    except OSError:
        pass
try:
    _s = socket.create_connection(("127.0.0.1", {port}), timeout=2)
    _s.sendall(b"escaped")
    _breached.append("socket")
except OSError:
    pass
_children = []
for _ in range(300):
    try:
        _children.append(subprocess.Popen(["sleep", "600"]))
    except OSError:
        break
if _breached:
    for _name in NAMES:
        del globals()[_name]
'''
# Floods the run's own event pipe with a deeply nested JSON line (the grader must shrug).
FLOOD_EVENTS = '''
import os
for _fd in range(3, 64):
    try:
        os.write(_fd, b'{"event": "values", "step": 0, "payload": ' + b"[" * 100000 + b"\\n")
    except OSError:
        pass
'''
# Right answers everywhere, and a well-formed event out of order on every descriptor (the event
# pipe among them): a run that writes its own events is void, whatever it computed.
FORGE_EVENTS = '''
import os
for _fd in range(3, 64):
    try:
        os.write(_fd, b'{"event": "start", "step": 100000}\\n')
    except OSError:
        pass
'''
# A cell the parser cannot take (200,000 unary minus signs): the grader must not choke on it.
PATHOLOGICAL = "\n_x = " + "-" * 200000 + "1\n"
SLOW = "while True:\n    pass\n"
EXIT = "import sys\nsys.exit(1)\n"
HARD_EXIT = "import os\nos._exit(1)\n"
KILL = "import ctypes\nctypes.string_at(0)\n"  # a segmentation fault: the kernel dies
FLOOD = "print('x' * (200 << 20))\n"
SHORTCUT = "\nfrom segcourse.metrics import confusion_matrix as _cm\n"


def _solutions(reference):
    return [c for c in reference.cells if cell_info(c).get("role") == "solution"]


def _checks(reference):
    return plans.build(reference).checks


def _write(notebook, path: Path) -> None:
    with warnings.catch_warnings():  # the odd cases (ids stripped or repeated) are on purpose
        warnings.simplefilter("ignore")
        nbformat.write(notebook, path)


def _with(reference, edits: dict[str, str], base=None):
    """The student version with the exercise cells in ``edits`` (id -> source)."""
    notebook = copy.deepcopy(base if base is not None else student_notebook(reference))
    for cell in notebook.cells:
        identifier = cell_info(cell).get("id")
        if identifier in edits:
            cell.source = edits[identifier]
    return notebook


def _points(reference, solved: set[str]) -> dict[str, int]:
    """Points per check when exactly the exercise cells in ``solved`` are right."""
    return {c.check_id: c.points if set(c.depends_on) <= solved else 0
            for c in _checks(reference)}


def cases(reference, probe: str, port: int, reference_path: str, submissions: str):
    """(name, notebook or raw bytes, expected points per check, expected reason or None)."""
    solutions = {cell_info(c)["id"]: c.source for c in _solutions(reference)}
    ids = list(solutions)
    every = set(ids)
    full = _with(reference, solutions)
    names_of = {i: sorted(defined_names(s)) for i, s in solutions.items()}
    wrong = {i: s + PERTURB.replace("NAMES", repr(names_of[i])) for i, s in solutions.items()}
    none = {c.check_id: 0 for c in _checks(reference)}

    yield "reference_solution", full, _points(reference, every), None
    yield "untouched", student_notebook(reference), none, "not attempted"
    half = set(ids[::2])
    yield "partial", _with(reference, {i: solutions[i] for i in half}), \
        _points(reference, half), None
    yield "all_wrong", _with(reference, wrong), none, "wrong values"
    first_wrong = {**solutions, ids[0]: wrong[ids[0]]}
    yield "first_wrong", _with(reference, first_wrong), _points(reference, every - {ids[0]}), None

    # honest work in an unusual shape
    old = nbformat.convert(copy.deepcopy(full), 3)
    yield "nbformat3", nbformat.writes(old, version=3).encode(), _points(reference, every), None
    stripped = copy.deepcopy(full)
    for cell in stripped.cells:
        cell.metadata = {}
        cell.pop("id", None)
    stripped.metadata = {}
    yield "metadata_stripped", stripped, _points(reference, every), None
    moved = copy.deepcopy(full)
    moved.cells = [*list(reversed(moved.cells)), copy.deepcopy(moved.cells[-1])]
    yield "reordered_duplicated", moved, _points(reference, every), None
    renamed = copy.deepcopy(full)
    for cell in renamed.cells:
        if cell_info(cell).get("id") in every:
            cell.metadata["segcourse"]["id"] = "renamed-" + cell.metadata["segcourse"]["id"]
    renamed.metadata["kernelspec"] = {"name": "julia-1.9", "display_name": "Julia",
                                      "language": "julia"}
    yield "renamed_ids_other_kernel", renamed, _points(reference, every), None
    split = copy.deepcopy(full)  # JupyterLab's split cell: the metadata is in both halves
    index, cell = next((i, c) for i, c in enumerate(split.cells)
                       if cell_info(c).get("id") == ids[0])
    lines = cell.source.splitlines()
    first, second = copy.deepcopy(cell), copy.deepcopy(cell)
    first.source, second.source = "\n".join(lines[:2]), "\n".join(lines[2:])
    split.cells[index:index + 1] = [first, second]
    yield "split_cell", split, _points(reference, every), None

    # broken files
    yield "invalid_json", b'{"cells": [', none, "unreadable notebook (not JSON)"
    yield "empty_file", b"", none, "empty file"
    yield "not_a_notebook", b'["just", "a", "list"]', none, "not a notebook"
    missing = copy.deepcopy(full)
    missing.cells = [c for c in missing.cells if cell_info(c).get("id") != ids[0]]
    yield "missing_cell", missing, _points(reference, every - {ids[0]}), None

    # tampering with the notebook: wrong answers, checks edited to pass
    tampered = _with(reference, wrong)
    for cell in tampered.cells:
        info = cell_info(cell)
        if info.get("role") == "check":
            cell.source = 'print("hand example: ok")'
            info["points"] = 100
            cell.metadata["segcourse"] = info
        cell.metadata.setdefault("tags", []).append(CHECK_TAG)
        cell.source += "\n# NBVAL_IGNORE_OUTPUT\n# NBVAL_SKIP"
    yield "edited_checks_and_tags", tampered, none, "wrong values"
    deleted = _with(reference, wrong)
    deleted.cells = [c for c in deleted.cells if cell_info(c).get("role") != "check"]
    yield "deleted_checks", deleted, none, "wrong values"

    def first_cell(source: str, others: dict[str, str]):
        """The student version with every exercise from ``others``, the first one replaced."""
        return _with(reference, {**others, ids[0]: source})

    # hostile kernels, wrong answers everywhere
    yield "hooks_output", first_cell(HOOK_OUTPUT + wrong[ids[0]], wrong), none, None
    yield "patches_checkers", first_cell(PATCH_CHECKS + wrong[ids[0]], wrong), none, None
    yield "forges_values", first_cell(FORGE_VALUES + solutions[ids[0]], solutions), none, None
    yield "forges_events", first_cell(FORGE_EVENTS + solutions[ids[0]], solutions), none, \
        "tampered"
    yield "searches_disk", first_cell(SEARCH_DISK + wrong[ids[0]], wrong), none, None

    # one exercise's crash costs only that exercise (and those built on it)
    for name, crash in [("sys_exit", EXIT), ("os_exit", HARD_EXIT), ("kernel_killed", KILL),
                        ("infinite_loop", SLOW)]:
        yield name, first_cell(crash + solutions[ids[0]], solutions), \
            _points(reference, every - {ids[0]}), None
    yield "floods_output", first_cell(solutions[ids[0]] + "\n" + FLOOD, solutions), \
        _points(reference, every), None
    escape = ESCAPE.format(probe=probe, port=port, reference=reference_path,
                           submissions=submissions).replace("NAMES", repr(names_of[ids[-1]]))
    yield "escapes", _with(reference, {**solutions, ids[-1]: solutions[ids[-1]] + "\n" + escape}), \
        _points(reference, every), None
    yield "floods_events", first_cell(solutions[ids[0]] + FLOOD_EVENTS, solutions), \
        _points(reference, every), None
    yield "unparsable_giant", first_cell(solutions[ids[0]] + PATHOLOGICAL, solutions), \
        _points(reference, every - {ids[0]}), None

    # the library shortcut is a flag, not a penalty
    yield "library_shortcut", first_cell(solutions[ids[0]] + SHORTCUT, solutions), \
        _points(reference, every), None


def make(reference_path, out, probe: str = "/nonexistent", port: int = 9) -> dict:
    """Write the corpus for ``reference_path`` into ``out``; return the expectations."""
    reference = nbformat.read(reference_path, as_version=4)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    expected = {}
    for name, notebook, points, reason in cases(reference, probe, port,
                                                str(Path(reference_path).resolve()),
                                                str(out.resolve())):
        path = out / f"{name}.ipynb"
        if isinstance(notebook, bytes):
            path.write_bytes(notebook)
        else:
            _write(notebook, path)
        expected[name] = {"points": points, "reason": reason}
    (out / "expected.json").write_text(json.dumps(expected, indent=1))
    return expected


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m tests.grading.corpus REFERENCE.ipynb OUT_DIR")
    make(sys.argv[1], sys.argv[2])
    print(f"wrote {len(json.loads((Path(sys.argv[2]) / 'expected.json').read_text()))} "
          f"submissions into {sys.argv[2]}")
