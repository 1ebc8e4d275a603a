"""A user data folder that cannot be made or written does not stop the window: the user is told once, in
plain words, that work is not autosaved, and can still open, paint and export."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox


def test_the_window_starts_and_works_when_the_data_folder_cannot_be_made(make_window, qtbot, tmp_path,
                                                                          monkeypatch, dim16_tiff):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SEGSTUDIO_DATA_DIR", str(blocker / "segstudio"))
    window = make_window()
    boxes = [b for b in window.findChildren(QMessageBox) if b.objectName() == "dataFolderProblem"]
    assert len(boxes) == 1 and boxes[0].isVisible()
    assert "a-file" in boxes[0].text() and "not autosaved" in boxes[0].text()
    assert "not autosaved" in window.statusBar().currentMessage()
    boxes[0].close()

    window.editing.autosave.delay_ms = 20
    (doc,) = window.open_paths([dim16_tiff])
    QApplication.processEvents()
    point = window.canvas.mapFromScene(QPointF(20.5, 20.5))
    qtbot.mouseClick(window.canvas.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert doc.mask[20, 20] and doc.unsaved  # painting works; the work stays marked unsaved
    qtbot.wait(100)
    assert doc.unsaved
    # Told once: no new dialog per failed save.
    assert len([b for b in window.findChildren(QMessageBox) if b.isVisible()]) <= 1
    assert np.count_nonzero(doc.mask)

    # Closing asks first, since the work exists nowhere else; the answer here is to quit anyway.
    asked = []

    def answer():
        box = QApplication.activeModalWidget()
        asked.append(box.objectName())
        next(b for b in box.buttons() if b.text() == "Quit Anyway").click()

    QTimer.singleShot(0, answer)
    window.close()
    assert asked == ["saveFailedDialog"] and not window.isVisible()


def test_a_file_name_with_escape_sequences_is_shown_without_them(window, tmp_path):
    import tifffile

    hostile = tmp_path / "slide\x1b[2J\x1b]0;owned\x07.tif"
    tifffile.imwrite(hostile, np.zeros((16, 16), np.uint8))
    (doc,) = window.open_paths([hostile])
    shown = [window.windowTitle(), window.statusBar().currentMessage(),
             window.editing.images_panel.item_for(doc).text()]
    assert all("slide" in text and "\x1b" not in text and "\x07" not in text for text in shown)
    assert doc.path == hostile  # the file itself is still the one opened, under its own name
