"""The startup probe the startup benchmark relies on: it reports the first show and paint, then quits."""
import importlib.machinery
import json
import sys
import types

from PySide6.QtWidgets import QLabel, QMainWindow

from segstudio.gui.startup_probe import ENV_VAR, install_startup_probe, torch_state


def _window(qtbot):
    win = QMainWindow()
    win.setCentralWidget(QLabel("probe"))
    qtbot.addWidget(win)
    return win


def test_without_the_variable_nothing_is_written_and_the_app_keeps_running(qtbot, tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    quits = []
    win = _window(qtbot)
    assert install_startup_probe(win, quit_app=lambda: quits.append(1)) is False
    win.show()
    qtbot.waitExposed(win)
    qtbot.wait(50)
    assert quits == [] and list(tmp_path.iterdir()) == []


def test_first_show_and_paint_are_recorded_then_the_app_quits(qtbot, tmp_path, monkeypatch):
    target = tmp_path / "probe" / "startup.json"
    monkeypatch.setenv(ENV_VAR, str(target))
    quits = []
    win = _window(qtbot)
    assert install_startup_probe(win, quit_app=lambda: quits.append(1)) is True
    win.show()
    qtbot.waitUntil(lambda: bool(quits), timeout=10_000)
    record = json.loads(target.read_text())
    assert record["painted_at"] is not None
    assert record["shown_at"] <= record["painted_at"]
    assert record["torch_at_show"] in ("absent", "importing", "imported")
    assert not target.with_name(target.name + ".partial").exists()
    # Later paints (resizes, a second show) must not write again or quit twice.
    win.hide()
    win.show()
    win.resize(300, 200)
    qtbot.wait(50)
    assert quits == [1]


def test_torch_state_tells_a_running_import_from_a_finished_one(monkeypatch):
    fake = types.ModuleType("torch")
    fake.__spec__ = importlib.machinery.ModuleSpec("torch", None)
    monkeypatch.setitem(sys.modules, "torch", fake)
    fake.__spec__._initializing = True
    assert torch_state() == "importing"
    fake.__spec__._initializing = False
    assert torch_state() == "imported"
    monkeypatch.delitem(sys.modules, "torch")
    assert torch_state() == "absent"
