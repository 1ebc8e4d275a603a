"""Predict with a model whose metadata declares a boundary output, then View > Object View: touching objects are
split where the network saw their border, not where the distance transform would guess."""
from __future__ import annotations

import cv2
from PySide6.QtCore import Qt

from tests.engine.predict import boundary_net


def test_object_view_after_predict_splits_along_the_models_boundary(make_window, tmp_path, monkeypatch, qtbot):
    resources = tmp_path / "resources"
    boundary_net.save(resources / "models" / "borders.safetensors", monkeypatch)
    monkeypatch.setenv("SEGSTUDIO_RESOURCES", str(resources))
    image = tmp_path / "pair.png"
    cv2.imwrite(str(image), boundary_net.two_touching_squares())
    window = make_window()
    window.prediction.reload_models()
    assert window.prediction.select_model("borders/v1")
    (doc,) = window.open_paths([image])
    with qtbot.waitSignal(window.model_host.finished, timeout=60_000):
        qtbot.mouseClick(window.prediction.panel.predict_button, Qt.MouseButton.LeftButton)
    assert doc.mask[30, 40] == 1 and doc.prediction.boundary is not None
    # One patch on the mask, two objects along the border: Predict counts what Object View will show.
    assert window.prediction.panel.result_label.text().startswith("Predicted 2 ")
    window.objects.object_view.trigger()
    window.objects.wait()
    ids = doc.model.objects
    assert ids.max() == 2 and ids[30, 25] != ids[30, 55]
    assert len(window.objects.table.rows) == 2
