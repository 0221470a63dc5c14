"""Flag exercise cells that call the library the exercise re-implements (a flag, not a penalty).

Many exercises rebuild something segcourse provides, and their checks compare with it: an
exercise cell that imports that very function passes. For each graded check, the names its
public and hidden cells import from ``segcourse`` (less those the reference solution imports
itself) are the ones an answer should not use; a submitted exercise cell that imports one, or
the module it lives in, or that imports or executes code dynamically, is flagged for the
instructor. Static analysis: it reads the cell, it runs nothing.
"""

from __future__ import annotations

import ast

DYNAMIC = {"__import__", "exec", "eval", "compile", "import_module", "get_ipython"}


def segcourse_imports(source: str) -> set[str]:
    """Dotted names a cell imports from segcourse (``segcourse.metrics.confusion_matrix``,
    and ``segcourse.metrics`` for a module import)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):
        return set()
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("segcourse"):
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("segcourse"))
    return found


def _dynamic(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in DYNAMIC:
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and node.attr in DYNAMIC | {"modules"}:
            names.add(node.attr if node.attr != "modules" else "sys.modules")
    return names


def shortcut_flags(submitted: str, reference_solution: str, check_sources: list[str]) -> list[str]:
    """Why ``submitted`` (an exercise cell) looks like it calls what its check compares with."""
    allowed = segcourse_imports(reference_solution)
    compared = set().union(*map(segcourse_imports, check_sources)) - allowed
    modules = {name.rsplit(".", 1)[0] for name in compared} | {"segcourse"}
    flags = []
    for name in sorted(segcourse_imports(submitted) - allowed):
        if name in compared or name in modules:
            flags.append(f"uses {name}, which its check compares with")
    for name in sorted(_dynamic(submitted) - _dynamic(reference_solution)):
        flags.append(f"dynamic code ({name})")
    return flags
