"""The window on a GPU: Predict with the bundled model on CUDA from the panel's button, and the inspector's
maps computed there, driven by clicks as a user would."""
from __future__ import annotations

import numpy as np
import tifffile
from PySide6.QtCore import Qt

from segstudio.synth.nuclei import generate_nuclei_image, iou


def test_predict_and_inspect_on_cuda_from_the_window(make_window, qtbot, tmp_path):
    image, truth, _ = generate_nuclei_image(21, height=512, width=512)
    path = tmp_path / "field.tif"
    tifffile.imwrite(path, image)
    win = make_window((1366, 768))
    panel = win.prediction.panel
    panel.device_combo.setCurrentIndex(panel.device_combo.findData("cuda"))
    assert win.prediction.select_model("nuclei-unet")
    # On a GPU the chosen model is placed and run once before the first Predict.
    qtbot.waitUntil(lambda: win.model_host.worker._warm is not None
                    and win.model_host.worker._warm._predictor is not None
                    and not win.model_host.busy("warm_up"), timeout=60_000)
    (doc,) = win.open_paths([path])
    with qtbot.waitSignal(win.model_host.finished, timeout=120_000):
        qtbot.mouseClick(panel.predict_button, Qt.MouseButton.LeftButton)
    assert "CUDA" in win.status.device_label.text()
    assert iou(doc.mask > 0, truth > 0) > 0.7
    win.actions.undo.trigger()  # the prediction is one undo step, as on the CPU
    assert not np.asarray(doc.mask).any()

    win.inspector.show_dock()
    qtbot.waitUntil(lambda: win.inspector.description is not None, timeout=60_000)
    qtbot.mouseClick(win.inspector.panel.compute_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: win.inspector.inspection is not None, timeout=60_000)
    assert "CUDA" in win.inspector.inspection.device
    assert len(win.inspector.inspection.taps) >= 4
