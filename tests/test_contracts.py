"""The import contracts in pyproject.toml ([tool.importlinter]) hold: layers, Qt only in the gui, no torch in
core, synth beside the product, gui features independent. Checked with import-linter (`lint-imports`)."""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
CONTRACTS = {contract["id"]: contract for contract in CONFIG["contracts"]}

def lint_imports(root: Path, *contract_ids: str) -> subprocess.CompletedProcess:
    """Run lint-imports on the pyproject.toml in `root`, importing the packages found there first."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(root), os.environ.get("PYTHONPATH"))))}
    selection = [arg for contract_id in contract_ids for arg in ("--contract", contract_id)]
    command = "from importlinter.cli import lint_imports_command; lint_imports_command()"
    return subprocess.run([sys.executable, "-c", command, "--no-cache", "--no-logo", *selection],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_import_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in result.stdout


# --- the same contracts catch planted violations --------------------------------------------------------
PLANTED = {
    "__init__.py": "",
    "core/__init__.py": "",
    "core/images.py": "import numpy\n",
    "core/raster.py": "import torch\n",                                 # core-without-torch
    "core/labels.py": "from planted.synth import nuclei\n",            # product-without-synth
    "models/__init__.py": "",
    "models/unet.py": "import torch\nfrom planted.core import images\n",
    "engine/__init__.py": "",
    "engine/predict.py": "from planted.models import unet\nfrom planted.gui import window\n",  # layers, Qt
    "synth/__init__.py": "",
    "synth/nuclei.py": "from planted.core import images\n",
    "synth/layout.py": "from planted.models import unet\n",           # synth-on-core-only
    "cli/__init__.py": "def main():\n    from planted.gui.app import run_app\n    return run_app()\n",
    "cli/predict.py": "from planted.engine import predict\nfrom planted.gui.editing import tools\n",  # layers
    "gui/__init__.py": "",
    "gui/app.py": "from PySide6.QtWidgets import QApplication\nfrom planted.gui import window\n",
    "gui/window.py": "from PySide6.QtWidgets import QMainWindow\n",
    "gui/main_window.py": "",
    "gui/model_host.py": "from planted.engine import predict\n",
    "gui/documents/__init__.py": "from planted.core import images\n",
    "gui/editing/__init__.py": "",
    "gui/editing/tools.py": "from planted.gui.documents import images\nfrom planted.gui import model_host\n",
    "gui/prediction/__init__.py": "from planted.gui.documents import images\n",
    "gui/prediction/panel.py": "from planted.gui.inspector import grid\n",  # gui-features-independent
    "gui/inspector/__init__.py": "",
    "gui/inspector/grid.py": "from planted.gui import model_host\nfrom planted.gui.canvas import overlay\n",
    "gui/training/__init__.py": "",
    "gui/exporting/__init__.py": "",
    "gui/slides/__init__.py": "",
    "gui/models/__init__.py": "",
    "gui/objects/__init__.py": "",
    "gui/review/__init__.py": "",
    "gui/canvas/__init__.py": "",
    "gui/canvas/overlay.py": "",
    "gui/canvas/view.py": "from planted.gui.editing import tools\n",  # gui-canvas-below-features
}


@pytest.fixture(scope="module")
def planted_report(tmp_path_factory) -> str:
    """lint-imports with this project's contracts, renamed to a tiny package `planted` with known faults."""
    root = tmp_path_factory.mktemp("planted")
    for relative, text in PLANTED.items():
        path = root / "planted" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    section = (ROOT / "pyproject.toml").read_text(encoding="utf-8").split("[tool.importlinter]", 1)[1]
    (root / "pyproject.toml").write_text("[tool.importlinter]" + section.replace("segstudio", "planted"),
                                         encoding="utf-8")
    result = lint_imports(root)
    assert result.returncode == 1, result.stdout + result.stderr
    return result.stdout


def _broken_section(report: str, contract_id: str) -> str:
    """The part of the report under one broken contract's heading."""
    def heading(contract):
        return f"{contract['name']}\n{'-' * len(contract['name'])}\n"

    text = report.split(heading(CONTRACTS[contract_id]), 1)[1]
    ends = [text.index(heading(other)) for other in CONTRACTS.values() if heading(other) in text]
    return text[:min(ends, default=len(text))]


@pytest.mark.parametrize("contract_id, planted_import", [
    ("layers", "planted.engine.predict -> planted.gui.window"),
    ("layers", "planted.cli.predict -> planted.gui.editing.tools"),
    ("qt-only-in-gui", "planted.engine.predict -> planted.gui.window"),
    ("core-without-torch", "planted.core.raster -> torch"),
    ("synth-on-core-only", "planted.synth.layout -> planted.models.unet"),
    ("product-without-synth", "planted.core.labels -> planted.synth.nuclei"),
    ("gui-features-independent", "planted.gui.prediction.panel -> planted.gui.inspector.grid"),
    ("gui-canvas-below-features", "planted.gui.canvas.view -> planted.gui.editing.tools"),
])
def test_each_contract_reports_a_planted_violation(planted_report, contract_id, planted_import):
    assert f"{CONTRACTS[contract_id]['name']} BROKEN" in planted_report
    assert planted_import in _broken_section(planted_report, contract_id), planted_report


def test_allowed_imports_are_not_reported(planted_report):
    assert f"Contracts: 0 kept, {len(CONTRACTS)} broken." in planted_report  # every contract caught its fault
    for allowed in ("planted.cli -> planted.gui.app",                      # the window launch
                    "planted.gui.editing.tools -> planted.gui.documents",  # features share the documents
                    "-> planted.gui.model_host",                           # ... and the model host
                    "planted.gui.inspector.grid -> planted.gui.canvas",    # ... and the canvas
                    "planted.synth.nuclei -> planted.core.images",         # synth builds on core
                    "planted.models.unet -> planted.core.images"):         # layers point down
        assert allowed not in planted_report, planted_report
