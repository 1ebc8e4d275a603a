"""Autosave and recovery: work reaches the user data folder soon after an edit, comes back when the image is
reopened or after a crash, and a failed save stays visible instead of being lost quietly."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PySide6.QtWidgets import QMessageBox

from segstudio.core import edits, paths
from segstudio.core.autosave import AutosaveStore
from segstudio.core.document import ImageStatus


def new_window(qtbot):
    from segstudio.gui.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(800, 600)
    win.show()
    qtbot.waitExposed(win)
    return win


def paint(window, doc, y, x, radius=3, value=1):
    window.editing.session.commit(doc, edits.paint_disk(doc.mask, y, x, radius, value, hand=doc.hand), "dot")


@pytest.fixture
def fast_window(window):
    # The debounce is the user's few seconds; tests wait for the condition, not for the clock.
    window.editing.autosave.delay_ms = 20
    return window


def test_edit_is_autosaved_after_the_debounce_and_clears_the_unsaved_marker(fast_window, dim16_tiff, qtbot,
                                                                             _isolated_user_data):
    window = fast_window
    (doc,) = window.open_paths([dim16_tiff])
    store = window.editing.autosave.store
    paint(window, doc, 20, 30)
    assert doc.unsaved and window.isWindowModified()
    qtbot.waitUntil(lambda: not doc.unsaved)
    assert not window.isWindowModified()
    # Written into the user data folder, and nothing next to the source image.
    folder = paths.autosave_dir()
    assert folder.is_relative_to(_isolated_user_data) and any(p.is_file() for p in folder.rglob("*"))
    assert sorted(p.name for p in dim16_tiff.parent.iterdir() if p.is_file()) == ["dim16.tif"]
    record = store.load(dim16_tiff)
    np.testing.assert_array_equal(record.mask, doc.mask)
    np.testing.assert_array_equal(record.hand, doc.hand)
    # Undoing away from the saved state is unsaved again; the next save catches up.
    window.actions.undo.trigger()
    assert window.isWindowModified()
    qtbot.waitUntil(lambda: not doc.unsaved)
    assert not store.load(dim16_tiff).mask.any()


def test_reopening_the_image_in_a_new_window_restores_mask_hand_and_classes(window, dim16_tiff, qtbot):
    (doc,) = window.open_paths([dim16_tiff])
    window.editing.classes.rename(1, "cell")
    membrane = window.editing.classes.add("membrane", (0, 200, 255))
    paint(window, doc, 20, 30, value=membrane.id)
    paint(window, doc, 5, 5, value=1)
    mask, hand = doc.mask.copy(), doc.hand.copy()
    window.close()  # quitting saves what the debounce has not saved yet
    assert not window.isVisible()

    again = new_window(qtbot)
    assert again.editing.autosave.recovery_box is None  # a clean quit leaves nothing to recover
    (restored,) = again.open_paths([dim16_tiff])
    np.testing.assert_array_equal(restored.mask, mask)
    np.testing.assert_array_equal(restored.hand, hand)
    assert [(c.name, c.color) for c in restored.classes][1:] == [("cell", doc.classes.get(1).color),
                                                                 ("membrane", (0, 200, 255))]
    assert restored.status == ImageStatus.EDITED
    assert not restored.unsaved and not again.isWindowModified()
    assert np.array_equal(again.canvas.overlay.mask, mask)
    qtbot.waitUntil(lambda: "dim16.tif" in again.statusBar().currentMessage()
                    and "restored your work" in again.statusBar().currentMessage().lower())


def test_switching_image_saves_the_one_left(window, dim16_tiff, tmp_path, qtbot):
    import tifffile

    other = tmp_path / "other.tif"
    tifffile.imwrite(other, np.zeros((16, 16), np.uint8))
    first, second = window.open_paths([dim16_tiff, other])
    window.editing.autosave.delay_ms = 60_000  # only the switch can trigger the save
    paint(window, first, 10, 10)
    window.actions.next_image.trigger()
    qtbot.waitUntil(lambda: not first.unsaved)
    assert window.editing.autosave.store.load(dim16_tiff).mask.any()


def test_failed_autosave_stays_unsaved_says_why_and_asks_before_quitting(fast_window, dim16_tiff, qtbot,
                                                                       monkeypatch):
    window = fast_window
    (doc,) = window.open_paths([dim16_tiff])
    autosave = window.editing.autosave

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(autosave.store, "save", full_disk)
    paint(window, doc, 20, 30)
    qtbot.waitUntil(lambda: doc.autosave_error is not None)
    assert "No space left" in doc.autosave_error
    assert doc.unsaved and window.isWindowModified()
    assert "No space left" in window.statusBar().currentMessage()
    assert "No space left" in window.last_error
    item = window.editing.images_panel.item_for(doc)
    assert "not saved" in item.text() and "No space left" in item.toolTip()
    for box in window.findChildren(QMessageBox):
        box.close()

    asked = []
    monkeypatch.setattr(autosave, "ask_quit_anyway", lambda failures: asked.append(failures) or False)
    assert not window.close()
    assert window.isVisible() and asked and asked[0][0][0] is doc

    monkeypatch.setattr(autosave, "ask_quit_anyway", lambda failures: True)
    assert window.close()


def test_failed_save_recovers_once_the_folder_is_writable_again(fast_window, dim16_tiff, qtbot, monkeypatch):
    window = fast_window
    (doc,) = window.open_paths([dim16_tiff])
    store = window.editing.autosave.store
    real_save = store.save
    monkeypatch.setattr(store, "save", lambda *a, **k: (_ for _ in ()).throw(PermissionError(13, "Permission denied")))
    paint(window, doc, 20, 30)
    qtbot.waitUntil(lambda: doc.autosave_error is not None)
    for box in window.findChildren(QMessageBox):
        box.close()
    monkeypatch.setattr(store, "save", real_save)
    paint(window, doc, 5, 5)
    qtbot.waitUntil(lambda: doc.autosave_error is None and not doc.unsaved)
    assert "not saved" not in window.editing.images_panel.item_for(doc).text()


def crash_after_autosave(image_path, data_dir):
    """A separate process autosaves work on the image and dies without ending its session."""
    script = textwrap.dedent(f"""
        import os
        import numpy as np
        from segstudio.core.labels import ClassTable
        from segstudio.core.autosave import AutosaveStore
        store = AutosaveStore()
        store.begin_session()
        mask = np.zeros((48, 64), np.uint8)
        mask[10:20, 10:40] = 1
        store.save({str(image_path)!r}, mask, ClassTable.default(), mask.astype(bool), extra={{"status": "edited"}})
        os._exit(0)
    """)
    env = {"SEGSTUDIO_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=str(_repo_root()), timeout=60)


def _repo_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[3]


def test_after_a_crash_the_next_start_offers_recovery(dim16_tiff, qtbot, _isolated_user_data):
    crash_after_autosave(dim16_tiff, _isolated_user_data)
    window = new_window(qtbot)
    box = window.editing.autosave.recovery_box
    assert box is not None and box.isVisible()
    assert "dim16.tif" in box.text()
    assert window.isEnabled()  # the question does not block the window
    box.buttonClicked.emit(window.editing.autosave.recover_button)
    box.close()
    assert window.current is not None and window.current.path == dim16_tiff
    assert (window.current.mask[10:20, 10:40] == 1).all() and window.current.hand[10:20, 10:40].all()
    # Recovered work now belongs to this session: after a clean quit nothing is offered again.
    qtbot.waitUntil(lambda: not window.editing.autosave._jobs)
    window.close()
    assert AutosaveStore().recoverable() == []


def test_discarding_recovery_removes_the_autosave(dim16_tiff, qtbot, _isolated_user_data):
    crash_after_autosave(dim16_tiff, _isolated_user_data)
    window = new_window(qtbot)
    autosave = window.editing.autosave
    autosave.recovery_box.buttonClicked.emit(autosave.discard_button)
    autosave.recovery_box.close()
    assert autosave.store.load(dim16_tiff) is None
    (doc,) = window.open_paths([dim16_tiff])
    assert not doc.mask.any()
