"""The one direction of dependency (docs/design.md §3), read from the source: every import
statement of every module, those inside functions too (a lazy import that points the wrong way
is still an arrow the wrong way), and what importing a data module actually loads."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import segcourse

PACKAGE = Path(segcourse.__file__).parent

# docs/design.md §3, top to bottom: a module may import modules at its own level or above it.
# A module's level is its first name below segcourse (segcourse.data.folders: "data").
LEVELS = ("labels", "outputs", "graph", "layers", "models", "data", "metrics", "losses", "crf",
          "instances",
          "tiling", "multiscale", "analysis", "viz", "speed", "pace", "layer_times",
          "runs", "checkpoints", "scoring", "train",
          "side_by_side", "predict", "labs", "grading", "time_to_accuracy", "bench", "cli",
          "__main__")

# Arrows against the order that are allowed, each with its reason.
EXCEPTIONS = {
    ("runs", "train"): "runs.read_config checks a run's config.json against the fields of "
                       "train.TrainConfig (imported inside the function, and for type hints "
                       "only); the training configuration is train's to define",
}

ML_FRAMEWORKS = {"keras", "tensorflow", "tensorflow_datasets", "jax", "torch"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # what it imports: a module (a submodule for `from package import submodule`)
    line: int
    at_import_time: bool  # False inside a function or under `if TYPE_CHECKING:`

    def __str__(self):
        when = "" if self.at_import_time else " (lazily)"
        return f"{self.module}:{self.line} imports {self.target}{when}"


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(name: str) -> list[Import]:
    path = MODULES[name]
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []

    def visit(node, at_import_time):
        if isinstance(node, ast.Import):
            found.extend(Import(name, alias.name, node.lineno, at_import_time)
                         for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from ..data import y
                parent = package[:len(package) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.append(Import(name, submodule if submodule in MODULES else base,
                                    node.lineno, at_import_time))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            at_import_time = False
        if isinstance(node, ast.If) and _type_checking(node.test):
            for child in node.body:
                visit(child, False)
            for child in node.orelse:
                visit(child, at_import_time)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, at_import_time)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), True)
    return found


IMPORTS = [found for name in MODULES for found in imports_of(name)]


def level(name: str) -> str | None:
    """The level of a segcourse module; None for the top-level package (see below)."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None


def ours(target: str) -> bool:
    return target == "segcourse" or target.startswith("segcourse.")


def test_every_module_has_a_place_in_the_order():
    placed = {level(name) for name in MODULES} - {None}
    assert placed <= set(LEVELS), (
        f"{sorted(placed - set(LEVELS))}: add to LEVELS here and to docs/design.md §3")
    assert set(LEVELS) <= placed, f"{sorted(set(LEVELS) - placed)}: no such module any more"


def test_imports_point_up_the_order():
    """The top-level package is exempt both ways: importing it loads nothing (its
    ``__version__``), and its one function, ``load_model``, imports what loading needs."""
    wrong, used = [], set()
    for found in IMPORTS:
        source, target = level(found.module), level(found.target)
        if not ours(found.target) or source is None or target is None:
            continue
        if LEVELS.index(target) > LEVELS.index(source):
            if (source, target) in EXCEPTIONS:
                used.add((source, target))
            else:
                wrong.append(f"{found}, which is listed below {source}")
    assert not wrong, "\n".join(dict.fromkeys(wrong))
    assert used == set(EXCEPTIONS), f"exceptions no longer needed: {set(EXCEPTIONS) - used}"


def test_the_top_level_package_imports_nothing_when_imported():
    found = [str(f) for f in IMPORTS if f.module == "segcourse" and f.at_import_time]
    assert not found, found


def test_labels_is_a_leaf_of_numpy_and_the_standard_library():
    allowed = set(sys.stdlib_module_names) | {"__future__", "numpy"}
    found = [str(f) for f in IMPORTS
             if f.module == "segcourse.labels" and f.target.split(".")[0] not in allowed]
    assert not found, found


def test_labs_import_no_ml_code_at_import_time():
    found = [str(f) for f in IMPORTS
             if level(f.module) == "labs" and f.at_import_time
             and (f.target.split(".")[0] in ML_FRAMEWORKS
                  or (ours(f.target) and level(f.target) not in (None, "labs")))]
    assert not found, found


def test_the_grader_uses_only_the_notebook_and_student_modules_of_labs():
    """grading/zygote.py runs on the kernel side only (``python -m``) and may import anything;
    no grader module imports it. labs.environment: the thread-pool sizes of its jobs."""
    allowed = {"segcourse.labs.notebook", "segcourse.labs.student", "segcourse.labs.environment"}
    found = [str(f) for f in IMPORTS
             if level(f.module) == "grading" and f.module != "segcourse.grading.zygote"
             and ours(f.target) and level(f.target) != "grading" and f.target not in allowed]
    found += [str(f) for f in IMPORTS
              if f.target == "segcourse.grading.zygote" and f.module != f.target]
    assert not found, found


LIGHT = ["segcourse", "segcourse.labels", "segcourse.speed", "segcourse.bench", "segcourse.cli",
         *(name for name in MODULES if level(name) == "data")]


@pytest.mark.parametrize("name", LIGHT)
def test_importing_loads_no_keras_or_tensorflow(name):
    probe = (f"import sys\nimport {name}\n"
             f"print(sorted(m for m in {sorted(ML_FRAMEWORKS)} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]", f"import {name} loads {result.stdout.strip()}"
