"""Feature packages in gui/ do not import each other: they meet in the window, through controller methods
and signals, so one feature can change its widgets without breaking another."""
import ast
from pathlib import Path

import pytest

GUI = Path(__file__).resolve().parents[2] / "segstudio" / "gui"
FEATURES = ("prediction", "inspector", "editing", "exporting", "training", "models", "objects")
# The window composes the features; a feature importing it would import every other feature.
COMPOSERS = ("segstudio.gui.main_window",)


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


@pytest.mark.parametrize("feature", [f for f in FEATURES if (GUI / f).is_dir()])
def test_a_feature_imports_no_other_feature(feature):
    banned = [f"segstudio.gui.{other}" for other in FEATURES if other != feature] + list(COMPOSERS)
    offences = [
        f"{path.relative_to(GUI.parent.parent)}:{lineno} imports {module}"
        for path in sorted((GUI / feature).rglob("*.py"))
        for lineno, module in _imports(path)
        if any(module == b or module.startswith(b + ".") for b in banned)
    ]
    assert not offences, "features reach into each other:\n" + "\n".join(offences)
