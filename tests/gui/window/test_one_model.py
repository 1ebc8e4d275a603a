"""The window loads the selected model once: Predict and the Network Inspector share it, and a hidden
inspector loads nothing."""
import pytest
from PySide6.QtCore import Qt

pytestmark = pytest.mark.usefixtures("single_torch_thread")
WAIT_MS = 60_000


def test_predict_and_the_inspector_share_one_loaded_model(window, qtbot, counted_library, dim16_tiff):
    window.prediction.reload_models()
    assert window.prediction.select_model(counted_library["ids"][0])
    (doc,) = window.open_paths([dim16_tiff])
    qtbot.wait(200)
    assert counted_library["loaded"] == []  # the inspector is hidden: nothing is loaded for it

    with qtbot.waitSignal(window.model_host.finished, timeout=WAIT_MS):
        qtbot.mouseClick(window.prediction.panel.predict_button, Qt.MouseButton.LeftButton)
    assert doc.prediction is not None

    window.inspector.show_action.trigger()  # Model > Look Inside the Network
    qtbot.waitUntil(lambda: window.inspector.description is not None, timeout=WAIT_MS)
    qtbot.mouseClick(window.inspector.panel.compute_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.inspector.inspection is not None, timeout=WAIT_MS)

    (model,) = counted_library["loaded"]
    assert window.model_host.worker.loads == 1 and set(counted_library["ran"]) == {id(model)}
