"""A slide window's Export menu: labels painted in the window come out as an OME-Zarr label pyramid and as
QuPath GeoJSON in slide pixels, written on a thread with the save dialog's file name."""
import json

import cv2
import numpy as np
import shiboken6
from PySide6.QtCore import QPoint
from PySide6.QtWidgets import QApplication

from segstudio.core.objects.formats.slide_labels import read_omezarr
from tests.gui.slides.test_slide_predict import small_slide  # noqa: F401 (fixture)
from tests.gui.slides.test_slide_window import _drag, open_slide


def _open(window, path, qtbot, monkeypatch):
    return open_slide(window, path, qtbot, monkeypatch)


def test_export_menu_writes_what_was_painted_as_ome_zarr_and_geojson(window, small_slide, qtbot,  # noqa: F811
                                                                      monkeypatch, tmp_path):
    slide_window = _open(window, small_slide, qtbot, monkeypatch)
    canvas = slide_window.canvas
    slide_window.tools["brush"].trigger()
    _drag(canvas, [QPoint(400, 300), QPoint(420, 300)])
    _drag(canvas, [QPoint(700, 500), QPoint(710, 510)])
    doc = slide_window.doc
    doc.wait_painted()
    painted = doc.store.read(0, 0, *doc.slide.shape)
    assert painted.any()

    target = tmp_path / "out.ome.zarr"
    monkeypatch.setattr("PySide6.QtWidgets.QFileDialog.getSaveFileName", lambda *a, **k: (str(target), ""))
    exporter = slide_window.export
    exporter.actions["omezarr"].trigger()  # Export > Labels as OME-Zarr
    qtbot.waitUntil(lambda: exporter.thread is None, timeout=30000)
    assert "Labels written to out.ome.zarr" in slide_window.statusBar().currentMessage()
    name = "tissue"  # from tissue.ome.tif
    assert np.array_equal(read_omezarr(target, name), painted)

    target = tmp_path / "objects"  # the suffix is added
    exporter.actions["geojson"].trigger()  # Export > Objects as GeoJSON
    qtbot.waitUntil(lambda: exporter.thread is None, timeout=30000)
    features = json.loads((tmp_path / "objects.geojson").read_text())["features"]
    patches = cv2.connectedComponents((painted > 0).view(np.uint8), connectivity=8)[0] - 1
    assert len(features) == patches >= 1
    assert f"{patches} objects written" in slide_window.statusBar().currentMessage()
    ys, xs = np.nonzero(painted)
    all_x = [x for f in features for ring in f["geometry"]["coordinates"] for x, _ in ring]
    assert min(all_x) <= xs.min() + 1 and max(all_x) >= xs.max()  # level-0 slide coordinates
    for opened in list(window.opening.slide_windows):
        if shiboken6.isValid(opened):
            opened.close()
    QApplication.processEvents()
