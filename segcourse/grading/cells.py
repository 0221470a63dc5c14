"""Reading a cell's code without running it: what it defines, what it reads.

The grader reads submitted code as text (it never imports or executes it in its own process), so
every parse is guarded: a cell that does not parse, or that is long or deep enough to exhaust the
parser (a student can write one), falls back to a word-level reading.
"""

from __future__ import annotations

import ast
import re
import symtable

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


def _scopes(source: str):
    """The cell's symbol table (``symtable``), or None when it does not compile."""
    if len(source) > MAX_SOURCE:
        return None
    try:
        return symtable.symtable(source, "<cell>", "exec")
    except Exception:  # syntax errors, and memory or recursion errors on odd input
        return None


def _nested(table):
    """Every scope inside ``table`` (functions, classes, comprehensions), at any depth."""
    pending = list(table.get_children())
    while pending:
        scope = pending.pop()
        pending.extend(scope.get_children())
        yield scope


def bound_names(source: str, imports: bool = True) -> set[str]:
    """Every name a cell binds in the notebook's namespace, as Python's own symbol table reads
    it: assignments anywhere at the top level (inside loops, branches, ``with``, ``try`` and
    ``match`` too), definitions, and names a function declares ``global`` or a comprehension
    binds with ``:=``; imported names unless ``imports=False``. A word-level guess at
    ``def``/``class`` when the cell does not compile."""
    table = _scopes(source)
    if table is None:
        return set(re.findall(r"^(?:def|class)\s+(\w+)", source, re.MULTILINE))
    names = {symbol.get_name() for symbol in table.get_symbols()
             if symbol.is_assigned() or (imports and symbol.is_imported())}
    return names | {symbol.get_name() for scope in _nested(table)
                    for symbol in scope.get_symbols()
                    if symbol.is_declared_global() and symbol.is_assigned()}


def global_reads(source: str) -> set[str]:
    """The names a cell reads from the notebook's namespace and does not bind itself: at its
    top level and inside its functions (a function's own locals are its own). Every name it
    mentions, word by word, when it does not compile."""
    table = _scopes(source)
    if table is None:
        return used_names(source)
    own = bound_names(source)
    reads = {symbol.get_name() for symbol in table.get_symbols() if symbol.is_referenced()}
    reads |= {symbol.get_name() for scope in _nested(table) for symbol in scope.get_symbols()
              if symbol.is_global() and symbol.is_referenced()}
    return reads - own


def used_names(source: str) -> set[str]:
    """Every name a cell mentions (a word-level guess when it does not parse)."""
    tree = parse_cell(source)
    if tree is None:
        return set(re.findall(r"[A-Za-z_]\w*", source))
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
