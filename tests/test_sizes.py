"""Sizes a reader can hold in their head: modules up to 600 lines, functions up to 80 (about a screen), the
main window under 300; and no `except ImportError` fallback around an import of segstudio's own code."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "segstudio"
MODULES = sorted(path.relative_to(ROOT).as_posix() for path in PACKAGE.rglob("*.py"))

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
MAX_MAIN_WINDOW_LINES = 299



def _tree(module: str) -> ast.Module:
    return ast.parse((ROOT / module).read_text(encoding="utf-8"), filename=module)


def long_functions(tree: ast.AST, limit: int = MAX_FUNCTION_LINES, prefix: str = "") -> dict[str, int]:
    """{qualified name: lines} of the functions and methods (nested ones too) longer than `limit`."""
    found = {}
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = prefix + node.name
            lines = node.end_lineno - node.lineno + 1
            if not isinstance(node, ast.ClassDef) and lines > limit:
                found[name] = lines
            found.update(long_functions(node, limit, name + "."))
        else:
            found.update(long_functions(node, limit, prefix))
    return found


def own_import_fallbacks(tree: ast.AST) -> list[str]:
    """`try: <import of segstudio code> except ImportError:` blocks, as 'line N: module' strings."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Try):
            continue
        caught = set()
        for handler in node.handlers:
            types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
            caught.update(t.id for t in types if isinstance(t, ast.Name))
        if not caught & {"ImportError", "ModuleNotFoundError"}:
            continue
        for statement in node.body:
            for sub in ast.walk(statement):
                if isinstance(sub, ast.ImportFrom):
                    base = "." * sub.level + (sub.module or "")
                    names = [base] if sub.module else [base + alias.name for alias in sub.names]
                elif isinstance(sub, ast.Import):
                    names = [alias.name for alias in sub.names]
                else:
                    continue
                found += [f"line {node.lineno}: {name}" for name in names
                          if name.startswith(".") or name == "segstudio" or name.startswith("segstudio.")]
    return found


@pytest.mark.parametrize("module", MODULES)
def test_module_is_at_most_600_lines(module):
    lines = len((ROOT / module).read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{module} has {lines} lines"


@pytest.mark.parametrize("module", MODULES)
def test_functions_are_at_most_80_lines(module):
    long = long_functions(_tree(module))
    assert not long, f"{module}: functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_main_window_is_under_300_lines():
    lines = len((PACKAGE / "gui" / "main_window.py").read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MAIN_WINDOW_LINES, f"gui/main_window.py has {lines} lines"


@pytest.mark.parametrize("module", MODULES)
def test_no_import_fallback_for_own_modules(module):
    fallbacks = own_import_fallbacks(_tree(module))
    assert not fallbacks, f"{module} falls back when its own code cannot be imported: {fallbacks}"


def test_the_checks_find_what_they_look_for():
    tree = ast.parse(
        "def short():\n    pass\n"
        "class Panel:\n    def build(self):\n" + "        x = 1\n" * 80 +
        "try:\n    from segstudio.core import images\nexcept ImportError:\n    images = None\n"
        "try:\n    from . import labels\nexcept (ModuleNotFoundError, OSError):\n    labels = None\n"
        "try:\n    import tiffslide\nexcept ImportError:\n    tiffslide = None\n"
    )
    assert long_functions(tree) == {"Panel.build": 81}
    assert own_import_fallbacks(tree) == ["line 85: segstudio.core", "line 89: .labels"]
