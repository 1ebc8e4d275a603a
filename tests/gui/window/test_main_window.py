"""The first window: opening images, what the canvas shows, errors that do not stop the program."""

import numpy as np
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QMessageBox


def _pixmap_array(window):
    image = window.canvas.image_item.image()
    image = image.convertToFormat(image.Format.Format_RGB888)
    w, h = image.width(), image.height()
    buf = np.frombuffer(image.constBits(), np.uint8, count=image.sizeInBytes()).reshape(h, image.bytesPerLine())
    return buf[:, : 3 * w].reshape(h, w, 3).copy()


def test_open_dim_16bit_image_is_visible_and_sized(window, dim16_tiff):
    docs = window.open_paths([dim16_tiff])
    assert len(docs) == 1 and window.current is docs[0]
    shown = _pixmap_array(window)
    assert shown.shape == (48, 64, 3)
    # Percentile normalisation stretches 100..400 over the display range.
    assert shown[20, 30].mean() > 200 and shown[2, 2].mean() < 50
    assert window.canvas.overlay.mask.shape == (48, 64)
    assert not window.canvas.overlay.mask.any()
    assert window.windowTitle().startswith("dim16.tif")


def test_bad_file_reports_name_and_reason_and_window_keeps_working(window, tmp_path, dim16_tiff, qtbot):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 10)
    assert window.open_paths([bad]) == []
    assert "broken.png" in window.last_error
    boxes = [w for w in window.findChildren(QMessageBox) if w.isVisible()]
    assert boxes and "broken.png" in boxes[0].text()
    boxes[0].close()
    # Still usable afterwards.
    assert window.open_paths([dim16_tiff])
    assert window.current.path == dim16_tiff


def test_status_bar_reports_pixel_position_value_and_label(window, dim16_tiff, qtbot):
    window.open_paths([dim16_tiff])
    qtbot.wait(50)  # let the view settle its geometry before mapping image coordinates to the screen
    view_point = window.canvas.mapFromScene(QPointF(25.5, 15.5))
    qtbot.mouseMove(window.canvas.viewport(), view_point)
    qtbot.waitUntil(lambda: "x 25" in window.status.position_label.text())
    text = window.status.position_label.text()
    assert "y 15" in text and "value 400" in text and "background" in text


def test_zoom_keys_and_fit(window, dim16_tiff):
    window.open_paths([dim16_tiff])
    fitted = window.canvas.zoom()
    window.actions.zoom_in.trigger()
    assert window.canvas.zoom() > fitted * 1.2
    window.actions.zoom_out.trigger()
    window.actions.zoom_out.trigger()
    assert window.canvas.zoom() < fitted
    window.actions.zoom_fit.trigger()
    assert abs(window.canvas.zoom() - fitted) < 1e-6
    window.actions.zoom_actual.trigger()
    assert abs(window.canvas.zoom() - 1.0) < 1e-6


def test_wheel_zoom_is_proportional(window, dim16_tiff, qtbot):
    from PySide6.QtGui import QWheelEvent

    window.open_paths([dim16_tiff])
    before = window.canvas.zoom()
    centre = QPointF(window.canvas.viewport().rect().center())
    event = QWheelEvent(centre, window.canvas.mapToGlobal(centre.toPoint()).toPointF(), QPoint(0, 0), QPoint(0, 120),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    window.canvas.wheelEvent(event)
    assert 1.15 < window.canvas.zoom() / before < 1.25


def test_drop_opens_files(window, dim16_tiff):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(dim16_tiff))])
    event = QDropEvent(
        QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    window.dropEvent(event)
    assert window.current is not None and window.current.path == dim16_tiff


def test_folder_opens_every_image_and_next_previous(window, tmp_path):
    import tifffile

    for i in range(3):
        tifffile.imwrite(tmp_path / f"img{i}.tif", np.full((8, 8), i * 10, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    docs = window.open_paths([tmp_path])
    assert [d.title for d in docs] == ["img0.tif", "img1.tif", "img2.tif"]
    assert window.actions.next_image.isEnabled()
    window.actions.next_image.trigger()
    assert window.current.title == "img1.tif"
    window.actions.previous_image.trigger()
    window.actions.previous_image.trigger()
    assert window.current.title == "img2.tif"


def test_menus_exist_and_items_needing_an_image_are_greyed_out_until_one_is_open(window, dim16_tiff):
    titles = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert titles == ["File", "Edit", "View", "Model", "Objects", "Review", "Help"]
    a = window.actions
    needs_image = [a.predict, a.export_mask, a.export_dataset, a.close_image, a.zoom_fit, a.toggle_mask,
                   window.objects.object_view, window.exporting.export_objects_action]
    assert not any(action.isEnabled() for action in needs_image)
    assert a.open.isEnabled() and not a.undo.isEnabled()
    window.open_paths([dim16_tiff])
    assert all(action.isEnabled() for action in needs_image)
    assert not a.next_image.isEnabled()  # only one image open


def test_channels_dialog_picks_channels_of_multichannel_tiff(window, tmp_path, monkeypatch):
    import tifffile

    from segstudio.gui.canvas import channels as channels_module

    stack = np.zeros((4, 16, 16), np.uint16)
    stack[3, :, :8] = 1000  # only channel 4 has structure
    path = tmp_path / "four_channels.tif"
    tifffile.imwrite(path, stack, photometric="minisblack", metadata={"axes": "CYX"})
    window.open_paths([path])
    assert window.actions.channels.isEnabled()

    def fake_exec(dialog):
        for i, check in enumerate(dialog.checks):
            check.setChecked(i == 3)
        return True

    monkeypatch.setattr(channels_module.ChannelsDialog, "exec", fake_exec)
    panel = window.editing.images_panel
    thumb_before = panel._thumbs[id(window.current)].toImage()
    window.actions.channels.trigger()
    shown = _pixmap_array(window)
    assert shown[8, 2].mean() > 200 and shown[8, 12].mean() < 30
    # The image list's thumbnail follows the channels now shown.
    assert panel._thumbs[id(window.current)].toImage() != thumb_before
