"""Every public function, class and method of the package says what it is for (issue: "no
public function without a docstring"). A method that overrides one of a base class (Keras'
``call``, ``build``, ``get_config``, a callback's ``on_epoch_end``) keeps the base's contract,
which the base documents (Keras in its guides, where its own methods carry no docstring), and
needs none of its own."""

from __future__ import annotations

import ast
import importlib

from tests.test_dependencies import MODULES


def _overrides_a_base(module, class_name: str, method: str) -> bool:
    cls = getattr(importlib.import_module(module), class_name)
    return any(method in vars(base) for base in cls.__mro__[1:] if base is not object)


def undocumented(module: str) -> list[str]:
    tree = ast.parse(MODULES[module].read_text())
    missing = [] if ast.get_docstring(tree) else [f"{module} (the module)"]
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef | ast.ClassDef) or node.name.startswith("_"):
            continue
        if not ast.get_docstring(node):
            missing.append(f"{module}.{node.name} (line {node.lineno})")
        if isinstance(node, ast.ClassDef):
            for method in node.body:
                if (isinstance(method, ast.FunctionDef) and not method.name.startswith("_")
                        and not ast.get_docstring(method)
                        and not _overrides_a_base(module, node.name, method.name)):
                    missing.append(f"{module}.{node.name}.{method.name} (line {method.lineno})")
    return missing


def test_every_public_function_class_and_method_has_a_docstring():
    missing = [name for module in MODULES for name in undocumented(module)]
    assert not missing, "no docstring:\n  " + "\n  ".join(missing)
