"""Reading a cell's code without running it: what it defines, what it reads.

The grader reads submitted code as text (it never imports or executes it in its own process), so
every parse is guarded: a cell that does not parse, or that is long or deep enough to exhaust the
parser (a student can write one), falls back to a word-level reading.
"""

from __future__ import annotations

import ast
import re

MAX_SOURCE = 100_000  # characters: a longer cell is read word by word


def parse_cell(source: str) -> ast.Module | None:
    """The cell's syntax tree, or None when it does not parse (or is too long or deep)."""
    if len(source) > MAX_SOURCE:
        return None
    try:
        return ast.parse(source)
    except Exception:  # syntax errors, and memory or recursion errors on odd input
        return None


def defined_names(source: str) -> set[str]:
    """Top-level names a cell defines (functions, classes, assignments; imports excluded)."""
    tree = parse_cell(source)
    if tree is None:
        return set(re.findall(r"^(?:def|class)\s+(\w+)", source, re.MULTILINE))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


def bound_names(source: str, imports: bool = True) -> set[str]:
    """Every name a cell binds in the notebook's namespace: what :func:`defined_names` finds,
    and also names bound inside top-level loops, branches, ``with`` and ``try`` blocks, loop
    and ``with`` targets, imports and exception names (not inside functions or classes, whose
    names are local; a word-level guess at ``def``/``class`` when the cell does not parse).
    ``imports=False`` leaves imported names out."""
    tree = parse_cell(source)
    if tree is None:
        return set(re.findall(r"^(?:def|class)\s+(\w+)", source, re.MULTILINE))
    names, pending = set(), list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            continue
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp,
                             ast.GeneratorExp)):
            continue  # their names are their own
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)) and imports:
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names
                         if alias.name != "*")
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        pending.extend(ast.iter_child_nodes(node))
    return names


def used_names(source: str) -> set[str]:
    """Every name a cell mentions (a word-level guess when it does not parse)."""
    tree = parse_cell(source)
    if tree is None:
        return set(re.findall(r"[A-Za-z_]\w*", source))
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
