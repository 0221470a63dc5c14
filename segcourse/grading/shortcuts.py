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

from segcourse.grading.cells import MAX_SOURCE, parse_cell

DYNAMIC = {"__import__", "exec", "eval", "compile", "import_module", "get_ipython", "globals",
           "locals", "vars", "runpy", "inspect", "run_path", "run_module", "importlib"}
#: Attributes that reach into the interpreter's own state (other cells' modules and frames).
REACHING = {"modules", "__globals__", "__closure__", "__code__", "__subclasses__",
            "__builtins__", "get_objects", "f_globals", "f_locals", "f_back", "stack",
            "currentframe", "_getframe", "_sink", "user_ns", "get_registered_object",
            "get_custom_objects"}
#: Modules whose import alone gives such reach (under any alias), with their submodules, and
#: ``IPython`` itself (``IPython.display`` is harmless).
REACHING_MODULES = {"runpy", "inspect", "importlib", "ctypes", "gc", "ipykernel", "IPython.core"}


def _reaching_module(name: str) -> bool:
    return name == "IPython" or any(name == module or name.startswith(module + ".")
                                    for module in REACHING_MODULES)


def segcourse_imports(source: str) -> set[str]:
    """Dotted names a cell imports from segcourse (``segcourse.metrics.confusion_matrix``,
    and ``segcourse.metrics`` for a module import)."""
    return set(imported_names(source).values())


def imported_names(source: str) -> dict[str, str]:
    """The names a cell binds by importing from segcourse: local name -> dotted name."""
    tree = parse_cell(source)
    found = {}
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("segcourse"):
            found.update({alias.asname or alias.name: f"{node.module}.{alias.name}"
                          for alias in node.names})
        elif isinstance(node, ast.Import):
            found.update({(a.asname or a.name.split(".")[0]): a.name for a in node.names
                          if a.name.startswith("segcourse")})
    return found


def _read_names(tree) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
            and isinstance(n.ctx, ast.Load)}


def _dynamic(source: str) -> set[str]:
    tree = parse_cell(source)
    names = set()
    modules_imported = {(a.asname or a.name.split(".")[0]) for node in
                        (ast.walk(tree) if tree is not None else ())
                        if isinstance(node, ast.Import) for a in node.names}
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, ast.Name) and node.id in DYNAMIC | {"__builtins__"}:
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""]
            names.update(m for m in modules if _reaching_module(m))
            if isinstance(node, ast.ImportFrom):  # from builtins import exec as run
                names.update(a.name for a in node.names if a.name in DYNAMIC | REACHING)
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(f"{t.value.id}.{t.attr} =" for t in targets
                         if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name)
                         and t.value.id in modules_imported)
        elif isinstance(node, ast.Attribute) and node.attr in DYNAMIC | REACHING:
            names.add(node.attr if node.attr != "modules" else "sys.modules")
    return names


def shortcut_flags(submitted: str, reference_solution: str, check_sources: list[str],
                   namespace: dict[str, str] | None = None) -> list[str]:
    """Why ``submitted`` (an exercise cell) looks like it calls what its check compares with.
    ``namespace``: names the notebook's other cells import from segcourse (a public check's
    import is in scope for every later exercise cell), local name -> dotted name."""
    if len(submitted) > MAX_SOURCE or parse_cell(submitted) is None:
        return ["the cell could not be analysed (it does not parse, or is very long)"]
    allowed = segcourse_imports(reference_solution)
    compared = set().union(*map(segcourse_imports, check_sources)) - allowed
    modules = {name.rsplit(".", 1)[0] for name in compared} | {"segcourse"}
    flags = []
    for name in sorted(segcourse_imports(submitted) - allowed):
        if name in compared or name in modules:
            flags.append(f"uses {name}, which its check compares with")
    tree, reference_tree = parse_cell(submitted), parse_cell(reference_solution)
    own = set(imported_names(submitted)) | _bound_names(tree)
    reference_reads = _read_names(reference_tree) if reference_tree is not None else set()
    for local, dotted in sorted((namespace or {}).items()):
        if (local in _read_names(tree) and local not in own and local not in reference_reads
                and (dotted in compared or dotted.rsplit(".", 1)[0] in modules)):
            flags.append(f"uses {local} ({dotted}, imported by another cell), which its check "
                         "compares with")
    for name in sorted(_dynamic(submitted) - _dynamic(reference_solution)):
        flags.append(f"reaches into the interpreter ({name})")
    return flags


def _bound_names(tree) -> set[str]:
    """Names a cell binds itself (assignments, definitions, arguments)."""
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return bound
