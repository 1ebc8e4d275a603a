"""Object edits (split, merge, delete one, new object) are work the user made: they come back after a crash, after
a clean quit and from a saved project, instead of the objects being found afresh from the mask."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import Qt

from tests.gui.objects.test_objects_window import drag, object_view_on

LEFT = Qt.MouseButton.LeftButton
REPO_ROOT = Path(__file__).resolve().parents[3]


def two_touching_and_one_apart() -> np.ndarray:
    mask = np.zeros((100, 120), np.uint8)
    cv2.circle(mask, (30, 50), 14, 1, -1)
    cv2.circle(mask, (55, 50), 14, 1, -1)
    cv2.circle(mask, (100, 15), 8, 1, -1)
    return mask


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "cells.png"
    cv2.imwrite(str(path), np.zeros((100, 120), np.uint8))
    return path


def open_cells(window, path):
    from PySide6.QtWidgets import QApplication

    (doc,) = window.open_paths([path])
    doc.replace_mask(two_touching_and_one_apart())
    window.canvas.fit_to_window()
    QApplication.processEvents()
    return doc


# A window in its own process: the user merges the touching pair and cuts the lone nucleus in two with the
# object tools, the autosave writes it, and the process dies without a clean quit.
CRASHING_SESSION = textwrap.dedent("""
    import os, sys
    import numpy as np
    from PySide6.QtCore import QCoreApplication, QPointF, Qt
    from PySide6.QtTest import QTest
    from segstudio.gui.app import create_application
    from segstudio.gui.main_window import MainWindow
    from tests.gui.objects.test_objects_kept import open_cells

    create_application()
    window = MainWindow()
    window.resize(800, 600)
    window.show()
    QTest.qWaitForWindowExposed(window)
    window.editing.autosave.delay_ms = 20
    doc = open_cells(window, sys.argv[1])
    window.objects.object_view.trigger()
    window.objects.wait()
    viewport = window.canvas.viewport()

    def at(x, y):
        return window.canvas.mapFromScene(QPointF(x + 0.5, y + 0.5))

    def drag(start, end):
        QTest.mousePress(viewport, Qt.MouseButton.LeftButton, pos=at(*start))
        QTest.mouseMove(viewport, at((start[0] + end[0]) / 2, (start[1] + end[1]) / 2))
        QTest.mouseMove(viewport, at(*end))
        QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=at(*end))

    window.objects.tool_actions["merge"].trigger()
    drag((30, 50), (55, 50))
    window.objects.tool_actions["split"].trigger()
    drag((100, 2), (100, 28))  # down through the lone nucleus
    for _ in range(500):
        QCoreApplication.processEvents()
        QTest.qWait(20)
        if not doc.unsaved and not window.editing.autosave._jobs:
            break
    np.save(sys.argv[2], doc.model.objects)
    os._exit(0)
""")


def crash_after_object_edits(image, data_dir, shown_ids):
    env = dict(os.environ, SEGSTUDIO_DATA_DIR=str(data_dir), PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1",
               QT_QPA_PLATFORM="offscreen")
    subprocess.run([sys.executable, "-c", CRASHING_SESSION, str(image), str(shown_ids)], check=True, env=env,
                   cwd=str(REPO_ROOT), timeout=180)
    return np.load(shown_ids)


def test_object_edits_come_back_after_a_crash(make_window, image, tmp_path, qtbot, _isolated_user_data):
    before = crash_after_object_edits(image, _isolated_user_data, tmp_path / "ids.npy")
    assert before[50, 30] == before[50, 55] and before[15, 95] != before[15, 105]  # merged, and split

    window = make_window()
    autosave = window.editing.autosave
    assert autosave.recovery_box is not None and "cells.png" in autosave.recovery_box.text()
    qtbot.mouseClick(autosave.recover_button, LEFT)
    doc = window.current
    assert doc is not None and doc.path == image
    np.testing.assert_array_equal(doc.model.objects, before)
    window.objects.object_view.trigger()
    window.objects.wait()
    np.testing.assert_array_equal(doc.model.objects, before)  # shown as they were, not found afresh
    assert len(window.objects.table.rows) == 3  # the pair as one, the lone nucleus as two
    assert window.objects.overlay.shown_indices()[50, 30] == window.objects.overlay.shown_indices()[50, 55]


def test_object_edits_come_back_after_a_clean_quit_and_find_again_replaces_them(make_window, image, qtbot):
    window = make_window()
    doc = open_cells(window, image)
    object_view_on(window)
    window.objects.tool_actions["merge"].trigger()
    drag(qtbot, window, (30, 50), (55, 50))
    merged = doc.model.objects.copy()
    assert merged[50, 30] == merged[50, 55]
    window.close()  # quitting saves what the debounce has not saved yet

    again = make_window()
    (restored,) = again.open_paths([image])
    np.testing.assert_array_equal(restored.model.objects, merged)
    again.objects.wait()
    assert len(again.objects.table.rows) == 2
    # Find Objects Again is the way back to a fresh split, and that too is what the autosave then holds.
    again.objects.find_again.trigger()
    again.objects.wait()
    assert restored.model.objects[50, 30] != restored.model.objects[50, 55]
    qtbot.waitUntil(lambda: not again.editing.autosave._jobs)
    again.editing.autosave.flush()
    np.testing.assert_array_equal(again.editing.autosave.store.load(image).objects, restored.model.objects)


def test_a_saved_project_opens_with_its_objects_as_edited(make_window, image, qtbot, tmp_path, monkeypatch):
    window = make_window()
    from segstudio.gui import session as session_module

    doc = open_cells(window, image)
    object_view_on(window)
    window.objects.tool_actions["split"].trigger()
    drag(qtbot, window, (100, 2), (100, 28))
    edited = doc.model.objects.copy()
    assert edited[15, 95] != edited[15, 105]
    folder = tmp_path / "project"
    monkeypatch.setattr(session_module.QFileDialog, "getExistingDirectory", lambda *args, **kwargs: str(folder))
    window.actions.save_project.trigger()
    assert (folder / "objects" / "cells.tif").exists()
    window.close()
    window.editing.autosave.store.discard(image)  # only the project holds the work now

    again = make_window()
    again.actions.open_project.trigger()
    assert again.last_error is None
    np.testing.assert_array_equal(again.current.model.objects, edited)
    again.objects.wait()
    assert len(again.objects.table.rows) == 4


def test_a_projects_objects_that_no_longer_fit_its_mask_are_named_and_found_afresh(make_window, image, tmp_path,
                                                                                   monkeypatch):
    import tifffile

    from segstudio.gui import session as session_module

    window = make_window()
    open_cells(window, image)
    object_view_on(window)
    folder = tmp_path / "project"
    monkeypatch.setattr(session_module.QFileDialog, "getExistingDirectory", lambda *args, **kwargs: str(folder))
    window.actions.save_project.trigger()
    window.close()
    window.editing.autosave.store.discard(image)
    tifffile.imwrite(folder / "objects" / "cells.tif", np.zeros((100, 120), np.uint16))  # changed elsewhere

    again = make_window()
    again.actions.open_project.trigger()
    assert "cells.png" in again.last_error and "objects/cells.tif" in again.last_error
    assert "found afresh" in again.last_error
    assert again.current.model.objects is None  # not the file's: Object View finds them from the mask
