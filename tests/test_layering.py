"""The dependency direction gui -> engine -> models -> core is part of the design: enforce it."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "segstudio"

FORBIDDEN = {
    "core": ("PySide6", "torch", "torchvision", "segstudio.models", "segstudio.engine", "segstudio.gui"),
    "models": ("PySide6", "segstudio.engine", "segstudio.gui"),
    "engine": ("PySide6", "segstudio.gui"),
}


def _imported_modules(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_point_one_way(layer):
    files = sorted((PACKAGE / layer).rglob("*.py"))
    assert files, f"segstudio/{layer} has no modules"
    offences = []
    for path in files:
        for lineno, module in _imported_modules(path):
            for banned in FORBIDDEN[layer]:
                if module == banned or module.startswith(banned + "."):
                    offences.append(f"{path.relative_to(PACKAGE.parent)}:{lineno} imports {module}")
    assert not offences, "layering violated:\n" + "\n".join(offences)


def test_checker_catches_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom PySide6.QtCore import QObject\nimport torch.nn as nn\n")
    found = [m for _, m in _imported_modules(bad)]
    assert "PySide6.QtCore" in found and "torch.nn" in found
