"""File > Export Objects: the save dialog's file type picks the format; the file holds the image's objects."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from segstudio.core.objects.formats import read_objects


@pytest.fixture
def doc(window, tmp_path):
    path = tmp_path / "cells.png"
    cv2.imwrite(str(path), np.zeros((60, 80), np.uint8))
    (doc,) = window.open_paths([path])
    mask = np.zeros((60, 80), np.uint8)
    cv2.circle(mask, (20, 30), 10, 1, -1)
    cv2.circle(mask, (36, 30), 10, 1, -1)
    doc.replace_mask(mask)
    return doc


@pytest.mark.parametrize("choice, written", [(0, "cells.geojson"), (1, "cells_rois.zip"), (3, "cells_objects.tif")])
def test_the_chosen_file_type_decides_the_format(window, doc, tmp_path, monkeypatch, qtbot, choice, written):
    from segstudio.gui.exporting import objects

    def answer(parent, title, suggestion, filters, selected):
        return str(tmp_path / "out" / "cells"), filters.split(";;")[choice]

    (tmp_path / "out").mkdir()
    monkeypatch.setattr(objects.QFileDialog, "getSaveFileName", answer)
    action = next(a for a in window.menus["file"].actions() if a.text() == "Export &Objects...")
    action.trigger()
    qtbot.waitUntil(lambda: window.exporting.objects_thread is None)
    layer = read_objects(tmp_path / "out" / written, shape=doc.mask.shape)
    assert layer.ids.max() == 2  # the touching pair, split
    assert "2 objects written" in window.statusBar().currentMessage()


def test_objects_edited_in_the_window_are_the_ones_exported(window, doc, tmp_path, qtbot):
    window.objects.object_view.trigger()
    window.objects.wait()
    ids = doc.model.objects
    ids[ids > 0] = 1  # as if merged by hand
    window.exporting.export_objects("geojson", tmp_path / "merged.geojson")
    qtbot.waitUntil(lambda: window.exporting.objects_thread is None)
    assert len(json.loads((tmp_path / "merged.geojson").read_text())["features"]) == 1
