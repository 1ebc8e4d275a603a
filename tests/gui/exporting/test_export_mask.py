"""File > Export Mask: an index PNG where the user chooses, never over the image itself."""
import numpy as np
from PySide6.QtWidgets import QFileDialog


def export_mask_to(window, monkeypatch, answer):
    """What the user does: File > Export Mask, then type `answer` in the save dialog."""
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(answer), "Index mask PNG (*.png)"))
    window.actions.export_mask.trigger()


def test_export_mask_writes_an_index_png_and_refuses_to_overwrite_the_image(window, dim16_tiff, tmp_path,
                                                                             monkeypatch):
    from segstudio.core.storage import load_mask_png

    (doc,) = window.open_paths([dim16_tiff])
    assert window.actions.export_mask.isEnabled()
    doc.mask[5:9, 5:9] = 1
    export_mask_to(window, monkeypatch, tmp_path / "out" / "labels")
    written = tmp_path / "out" / "labels.png"
    assert not written.exists() and "folder" in window.last_error  # the folder does not exist: said, not crashed
    (tmp_path / "out").mkdir()
    window.last_error = None
    export_mask_to(window, monkeypatch, tmp_path / "out" / "labels")
    assert written.exists() and window.last_error is None
    assert str(written) in window.statusBar().currentMessage()
    np.testing.assert_array_equal(load_mask_png(written), doc.mask)

    import cv2

    png = tmp_path / "slide.png"
    cv2.imwrite(str(png), np.full((8, 8), 50, np.uint8))
    window.open_paths([png])
    export_mask_to(window, monkeypatch, png)
    assert "image itself" in window.last_error
    assert cv2.imread(str(png), cv2.IMREAD_UNCHANGED).max() == 50  # the source image is untouched


def test_ctrl_e_saves_the_painted_mask_where_the_user_chose(window, dim16_tiff, tmp_path, monkeypatch, qtbot):
    """The shortcut, not only the menu: Ctrl+E asks where to save and writes what was painted."""
    from PySide6.QtCore import Qt

    from segstudio.core.storage import load_mask_png

    (doc,) = window.open_paths([dim16_tiff])
    doc.mask[5:9, 5:9] = 1
    asked = []

    def answer(*args, **kwargs):
        asked.append(args)
        return str(tmp_path / "by_shortcut.png"), "Index mask PNG (*.png)"

    monkeypatch.setattr(QFileDialog, "getSaveFileName", answer)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    qtbot.keyClick(window, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    assert len(asked) == 1
    written = load_mask_png(tmp_path / "by_shortcut.png")
    assert int(written[6, 6]) == 1 and int(written.sum()) == 16
    assert window.last_error is None
