"""The object view, the object tools, the Objects dock and Import Objects, driven as a user drives them."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QApplication

LEFT = Qt.MouseButton.LeftButton


@pytest.fixture
def doc(window, tmp_path):
    """A 120 x 100 image whose mask holds two touching nuclei and one apart."""
    image = np.zeros((100, 120), np.uint8)
    path = tmp_path / "cells.png"
    cv2.imwrite(str(path), image)
    (doc,) = window.open_paths([path])
    mask = np.zeros((100, 120), np.uint8)
    cv2.circle(mask, (30, 50), 14, 1, -1)
    cv2.circle(mask, (55, 50), 14, 1, -1)
    cv2.circle(mask, (100, 15), 8, 1, -1)
    doc.replace_mask(mask)
    window.canvas.fit_to_window()
    QApplication.processEvents()
    return doc


def view_point(window, x, y):
    return window.canvas.mapFromScene(QPointF(x + 0.5, y + 0.5))


def drag(qtbot, window, start, end):
    viewport = window.canvas.viewport()
    qtbot.mousePress(viewport, LEFT, pos=view_point(window, *start))
    qtbot.mouseMove(viewport, view_point(window, (start[0] + end[0]) / 2, (start[1] + end[1]) / 2))
    qtbot.mouseMove(viewport, view_point(window, *end))
    qtbot.mouseRelease(viewport, LEFT, pos=view_point(window, *end))


def object_view_on(window):
    window.objects.object_view.trigger()
    window.objects.wait()


def test_object_view_shows_the_touching_pair_in_two_colours_and_v_switches_back(window, doc, qtbot):
    object_view_on(window)
    assert window.objects.overlay.isVisible() and not window.canvas.overlay.isVisible()
    shown = window.objects.overlay.shown_indices()
    assert shown[50, 30] != shown[50, 55] and shown[50, 30] and shown[50, 55]
    assert len(window.objects.table.rows) == 3
    qtbot.keyClick(window.canvas, Qt.Key.Key_V)  # the shortcut back to the classes
    assert not window.objects.object_view.isChecked() and window.canvas.overlay.isVisible()


def test_delete_one_object_tool_removes_only_the_clicked_one_and_undo_brings_it_back(window, doc, qtbot):
    object_view_on(window)
    window.objects.tool_actions["delete"].trigger()
    qtbot.mouseClick(window.canvas.viewport(), LEFT, pos=view_point(window, 30, 50))
    assert doc.mask[50, 30] == 0 and doc.mask[50, 55] == 1
    qtbot.waitUntil(lambda: len(window.objects.table.rows) == 2)  # the table follows the edit
    window.actions.undo.trigger()
    assert doc.mask[50, 30] == 1
    qtbot.waitUntil(lambda: len(window.objects.table.rows) == 3)


def test_merge_by_drag_then_split_with_a_cut_line(window, doc, qtbot):
    object_view_on(window)
    ids = doc.model.objects
    window.objects.tool_actions["merge"].trigger()
    drag(qtbot, window, (30, 50), (55, 50))
    assert ids[50, 30] == ids[50, 55]
    window.objects.tool_actions["split"].trigger()
    drag(qtbot, window, (42, 25), (42, 75))  # straight down through the neck
    assert ids[50, 30] != ids[50, 55]
    assert doc.undo_stack.count() == 2
    window.actions.undo.trigger()
    assert ids[50, 30] == ids[50, 55]


def test_new_object_takes_the_next_number(window, doc, qtbot):
    object_view_on(window)
    before = int(doc.model.objects.max())
    window.objects.tool_actions["new"].trigger()
    drag(qtbot, window, (20, 85), (40, 85))
    assert doc.model.objects[85, 30] == before + 1 and doc.mask[85, 30] == window.editing.session.active_class


def test_clicking_a_row_centres_its_object_and_csv_export_writes_every_row(window, doc, qtbot, tmp_path):
    object_view_on(window)
    window.canvas.set_zoom(8.0)
    table = window.objects.panel.table
    model = window.objects.panel.proxy
    row = next(r for r in range(model.rowCount())
               if window.objects.panel.model.rows[model.mapToSource(model.index(r, 0)).row()]["centroid_x"] > 90)
    rect = table.visualRect(model.index(row, 0))
    qtbot.mouseClick(table.viewport(), LEFT, pos=rect.center())
    centre = window.canvas.mapToScene(window.canvas.viewport().rect().center())
    assert abs(centre.x() - 100.5) < 2 and abs(centre.y() - 15.5) < 2
    assert window.objects.highlight.isVisible()
    out = window.objects.export_csv(tmp_path / "objects.csv")
    assert len(out.read_text().splitlines()) == 4


def test_pixel_size_typed_in_the_dock_gives_areas_in_square_micrometres(window, doc, qtbot):
    object_view_on(window)
    box = window.objects.panel.pixel_size
    box.selectAll()
    qtbot.keyClicks(box, "0.5")
    qtbot.keyClick(box, Qt.Key.Key_Return)
    window.objects.wait()
    row = window.objects.table.rows[0]
    assert row["area_um2"] == pytest.approx(row["area_px"] * 0.25)
    assert "per mm²" in window.objects.panel.summary.text()


def test_import_qupath_geojson_adds_its_class_and_objects_as_one_undo_step(window, doc, tmp_path, monkeypatch):
    square = [[60, 70], [80, 70], [80, 90], [60, 90], [60, 70]]
    path = tmp_path / "from_qupath.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [square]},
         "properties": {"classification": {"name": "Tumor", "color": [255, 0, 0]}}}]}))
    from segstudio.gui.objects import controller

    monkeypatch.setattr(controller.QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    window.objects.import_action.trigger()
    window.objects.importer.wait()  # read in the background
    tumor = next(c.id for c in doc.classes if c.name == "Tumor")
    assert np.all(doc.mask[70:90, 60:80] == tumor) and doc.hand[75, 65]
    window.actions.undo.trigger()
    assert np.all(doc.mask[70:90, 60:80] == 0)


def _answer_open_dialog(monkeypatch, path):
    from segstudio.gui.objects import controller

    monkeypatch.setattr(controller.QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))


def test_import_runs_in_the_background_and_cancel_leaves_the_image_as_it_was(window, doc, tmp_path, monkeypatch,
                                                                             qtbot):
    import threading

    from segstudio.core.objects.formats import geojson

    features = [{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
        [[x, y], [x + 3, y], [x + 3, y + 3], [x, y + 3], [x, y]]]}} for x in range(0, 120, 5) for y in range(0, 100, 5)]
    path = tmp_path / "whole_slide.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    _answer_open_dialog(monkeypatch, path)
    release = threading.Event()
    real_rings = geojson._rings

    def slow_rings(*args):  # the reading holds at its first feature until the test has clicked Cancel
        release.wait(30)
        return real_rings(*args)

    monkeypatch.setattr(geojson, "_rings", slow_rings)
    mask = doc.mask.copy()
    window.objects.import_action.trigger()
    progress = window.objects.importer.progress
    assert progress.isVisible() and "whole_slide.geojson" in progress.title.text()  # the window is not frozen
    qtbot.mouseClick(progress.cancel_button, LEFT)
    release.set()
    window.objects.importer.wait()
    assert not progress.isVisible()
    np.testing.assert_array_equal(doc.mask, mask)
    assert doc.undo_stack.count() == 0
    assert "cancelled" in window.statusBar().currentMessage()


def test_importing_a_file_that_is_not_geojson_names_the_file_and_the_reason(window, doc, tmp_path, monkeypatch):
    path = tmp_path / "annotations.geojson"
    path.write_text(json.dumps({"type": "Topology", "objects": {}}))
    _answer_open_dialog(monkeypatch, path)
    window.objects.import_action.trigger()
    window.objects.importer.wait()
    assert "annotations.geojson" in window.last_error
    assert "not GeoJSON" in window.last_error and "Topology" in window.last_error
    assert doc.undo_stack.count() == 0


def test_closing_the_window_during_an_import_stops_it(window, doc, tmp_path, monkeypatch):
    import time

    from segstudio.core.objects.formats import geojson

    square = [[10, 10], [20, 10], [20, 20], [10, 20], [10, 10]]
    path = tmp_path / "slow.geojson"
    path.write_text(json.dumps([{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [square]}}] * 400))
    _answer_open_dialog(monkeypatch, path)
    real_rings = geojson._rings
    monkeypatch.setattr(geojson, "_rings", lambda *args: time.sleep(0.02) or real_rings(*args))  # 8 s in all
    window.objects.import_action.trigger()
    thread = window.objects.importer.thread
    started = time.monotonic()
    window.close()
    assert thread.isFinished() and time.monotonic() - started < 5  # stopped, not read to the end
    assert not doc.mask[15, 15] and doc.undo_stack.count() == 0
