"""File > Export Reviewed Regions to Dataset in a slide's window: the cells a person painted become patches
of the dataset, with their labels, hand map and the slide's pixel size; an unreviewed slide exports nothing."""
import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from segstudio.core.dataset import load_entry, load_manifest
from segstudio.core.slide_dataset import PATCH
from segstudio.synth.slides import write_pyramid_ome
from tests.gui.slides.test_slide_window import _close_all, _drag, open_slide


@pytest.fixture(scope="module")
def small_slide(tmp_path_factory):
    return write_pyramid_ome(tmp_path_factory.mktemp("slide") / "biopsy.ome.tif", 2500, 3000, levels=2,
                             compression="zlib", mpp=0.5)


@pytest.fixture
def slide_window(window, small_slide, qtbot, monkeypatch):
    yield open_slide(window, small_slide, qtbot, monkeypatch)
    _close_all(window)


def _export_action(slide_window):
    bar = slide_window.menuBar()
    (file_menu,) = [a.menu() for a in bar.actions() if a.menu() and a.text().replace("&", "") == "File"]
    (action,) = [a for a in file_menu.actions() if a.text().startswith("Export Reviewed Regions")]
    return action


def test_painted_cells_are_exported_as_patches_with_labels_hand_map_and_pixel_size(slide_window, qtbot, tmp_path,
                                                                                  monkeypatch):
    canvas, doc = slide_window.canvas, slide_window.doc
    slide_window.tools["brush"].trigger()
    slide_window.radius.setValue(4)
    qtbot.keyClick(canvas, Qt.Key.Key_4)  # full resolution
    canvas.centerOn(PATCH, 1200)  # the stroke crosses from one cell into the next, wherever the docks are
    start, end = canvas.mapFromScene(QPointF(PATCH - 50, 1200)), canvas.mapFromScene(QPointF(PATCH + 50, 1200))
    _drag(canvas, [start, end])
    doc.wait_painted()
    a, b = canvas.mapToScene(start), canvas.mapToScene(end)
    expected_cells = {(int(a.y()) // PATCH * PATCH, x // PATCH * PATCH) for x in (int(a.x()), int(b.x()))}
    assert len(expected_cells) == 2

    target = tmp_path / "dataset"
    monkeypatch.setattr("PySide6.QtWidgets.QFileDialog.getExistingDirectory", lambda *a, **k: str(target))
    with qtbot.waitSignal(slide_window.dataset_export.finished, timeout=30000) as done:
        _export_action(slide_window).trigger()
    written, size, cancelled = done.args[0]
    assert not cancelled and size == len(written) == len(expected_cells)
    assert "Exported" in slide_window.statusBar().currentMessage()

    entries = load_manifest(target)["entries"]
    assert {(e["region"]["y"], e["region"]["x"]) for e in entries} == expected_cells
    for entry in entries:
        assert entry["pixel_size_um"] == pytest.approx(0.5) and entry["region"]["slide"].endswith("biopsy.ome.tif")
        y, x, h, w = (entry["region"][k] for k in ("y", "x", "height", "width"))
        assert (entry["height"], entry["width"]) == (h, w) and max(h, w) <= PATCH
        pixels, mask, hand = load_entry(target, entry)
        assert np.array_equal(mask, doc.store.read(y, x, h, w))
        assert np.array_equal(hand, doc.hand.read(y, x, h, w) != 0) and hand.any()
        assert np.array_equal(pixels, doc.slide.read_region(0, x, y, w, h))
    assert (slide_window.doc.slide.height * slide_window.doc.slide.width) > sum(e["height"] * e["width"]
                                                                               for e in entries)


def test_a_slide_nobody_painted_exports_nothing_and_says_why(slide_window, tmp_path, monkeypatch):
    told = []
    monkeypatch.setattr("segstudio.gui.slides.dataset_export.QMessageBox.information",
                        lambda parent, title, text: told.append(text))
    asked = []
    monkeypatch.setattr("PySide6.QtWidgets.QFileDialog.getExistingDirectory", lambda *a, **k: asked.append(1) or "")
    _export_action(slide_window).trigger()
    assert told and "painted or corrected by hand" in told[0]
    assert asked == [] and slide_window.dataset_export.thread is None


def test_cancel_stops_after_the_patch_being_written_and_keeps_those_done(slide_window, qtbot, tmp_path, monkeypatch):
    import threading

    import segstudio.core.slide_dataset as slide_dataset

    doc = slide_window.doc
    for y, x in ((100, 100), (100, 1500), (1500, 100)):  # three cells corrected
        doc.model.put(y, x, np.ones((20, 20), np.uint8))
        doc.hand.put(y, x, np.ones((20, 20), np.uint8))
    first_read, go_on = threading.Event(), threading.Event()
    real = slide_dataset.slide_items

    def slow_items(*args, **kwargs):
        for n, item in enumerate(real(*args, **kwargs)):
            if n == 1:  # the first patch is written; the user clicks Cancel while the second is read
                first_read.set()
                go_on.wait(10)
            yield item

    monkeypatch.setattr(slide_dataset, "slide_items", slow_items)
    target = tmp_path / "dataset"
    monkeypatch.setattr("PySide6.QtWidgets.QFileDialog.getExistingDirectory", lambda *a, **k: str(target))
    _export_action(slide_window).trigger()
    progress = slide_window.dataset_export.progress
    assert progress.isVisible() and not _export_action(slide_window).isEnabled()
    qtbot.waitUntil(first_read.is_set, timeout=10000)
    with qtbot.waitSignal(slide_window.dataset_export.finished, timeout=30000) as done:
        qtbot.mouseClick(progress.cancel_button, Qt.MouseButton.LeftButton)
        go_on.set()
    written, _size, cancelled = done.args[0]
    assert cancelled and len(written) == 2  # the patch in hand when Cancel came is finished, no more
    assert len(load_manifest(target)["entries"]) == 2
    assert slide_window.statusBar().currentMessage().startswith("Export cancelled")
    assert not progress.isVisible() and _export_action(slide_window).isEnabled()
