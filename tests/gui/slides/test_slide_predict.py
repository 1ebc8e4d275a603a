"""Predict in a slide window: the view, a drawn rectangle or all tissue fill in the overlay through the
model host, glass stays empty, hand-painted pixels stay, and Cancel keeps what was finished."""
import time
from types import SimpleNamespace

import pytest
import torch
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication

from segstudio.synth.slides import TissuePatch, write_pyramid_ome
from tests.gui.slides.test_slide_window import _close_all, _drag, _paint, open_slide

H, W = 2048, 3072


class ClassTwo(torch.nn.Module):
    """Calls every pixel class 2; optionally slow, so Cancel can land mid-run."""

    def __init__(self, delay: float = 0.0):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1)
        self.delay = delay
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.copy_(torch.tensor([0.0, 0.0, 5.0]))

    def forward(self, x):
        time.sleep(self.delay)
        return self.conv(x)


META = SimpleNamespace(in_channels=3, normalisation={"kind": "none"}, classes=[])


@pytest.fixture(scope="module")
def small_slide(tmp_path_factory):
    return write_pyramid_ome(tmp_path_factory.mktemp("slide") / "tissue.ome.tif", H, W, levels=3,
                             patches=[TissuePatch(1000, 1000, 500, 600)])


@pytest.fixture
def slide_window(window, small_slide, qtbot, monkeypatch):
    yield open_slide(window, small_slide, qtbot, monkeypatch)
    _close_all(window)


def _wait_done(qtbot, prediction):
    qtbot.waitUntil(lambda: prediction.job is None, timeout=60000)
    QApplication.processEvents()


def test_predict_view_fills_the_tissue_keeps_the_hand_strokes_and_leaves_the_glass(window, slide_window, qtbot):
    window.model_host.select((ClassTwo(), META), "cpu")
    doc, canvas = slide_window.doc, slide_window.canvas
    slide_window.tools["brush"].trigger()
    _paint(slide_window)
    start, end = QPoint(300, 330), QPoint(340, 330)
    _drag(canvas, [start, end])
    a = canvas.mapToScene(QPoint(320, 330))
    doc.wait_painted()  # at overview zoom the stroke's full-resolution pixels are painted in the background
    assert doc.store.read(int(a.y()), int(a.x()), 1, 1)[0, 0] == 1
    updates = []
    doc.labels_changed.connect(lambda *box: updates.append(box))

    qtbot.keyClick(canvas, Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier)  # Predict > Predict View
    assert slide_window.prediction.cancel_button.isVisible()
    _wait_done(qtbot, slide_window.prediction)

    labels = doc.store.read(0, 0, H, W)
    assert (labels[800:1200, 700:1300] == 2).sum() > 0.9 * 400 * 600  # the tissue
    assert doc.store.read(int(a.y()), int(a.x()), 1, 1)[0, 0] == 1  # the hand stroke stays
    assert not labels[:200, -400:].any()  # the glass
    assert len(updates) > 1, "the overlay fills in as rows finish, not at the end"
    assert "Predicted" in slide_window.prediction.label.text()
    assert not slide_window.prediction.cancel_button.isVisible()


def test_predict_rectangle_predicts_inside_the_drawn_rectangle_only(window, slide_window, qtbot):
    window.model_host.select((ClassTwo(), META), "cpu")
    canvas, doc = slide_window.canvas, slide_window.doc
    qtbot.keyClick(canvas, Qt.Key.Key_R)
    top_left, bottom_right = QPoint(200, 200), QPoint(320, 300)
    _drag(canvas, [top_left, QPoint(250, 250), bottom_right])
    _wait_done(qtbot, slide_window.prediction)
    p, q = canvas.mapToScene(top_left), canvas.mapToScene(bottom_right)
    labels = doc.store.read(0, 0, H, W)
    inside = labels[int(p.y()) + 2:int(q.y()) - 2, int(p.x()) + 2:int(q.x()) - 2]
    assert inside.size and (inside == 2).mean() > 0.5
    assert not labels[int(q.y()) + 20:].any() and not labels[:, int(q.x()) + 20:].any()


def test_cancel_in_the_status_bar_stops_the_run_and_predict_is_offered_again(window, slide_window, qtbot):
    window.model_host.select((ClassTwo(delay=0.3), META), "cpu")
    prediction = slide_window.prediction
    prediction.actions["tissue"].trigger()
    qtbot.waitUntil(lambda: prediction.bar.value() >= 3, timeout=60000)
    assert "left" in prediction.label.text()
    qtbot.mouseClick(prediction.cancel_button, Qt.MouseButton.LeftButton)
    _wait_done(qtbot, prediction)
    assert "stopped" in prediction.label.text()
    assert prediction.actions["tissue"].isEnabled()


class Unsure(ClassTwo):
    """Class 2 by a hair over class 1 everywhere: every region it finishes is one to check."""

    def __init__(self, delay: float = 0.0):
        super().__init__(delay)
        with torch.no_grad():
            self.conv.bias.copy_(torch.tensor([0.0, 1.0, 1.1]))


def test_after_cancel_the_regions_already_predicted_are_in_the_review_queue(window, slide_window, qtbot):
    window.model_host.select((Unsure(delay=0.4), META), "cpu")
    prediction, review = slide_window.prediction, slide_window.review
    assert review.session.queue is None  # nothing predicted yet: N asks for a prediction first
    prediction.actions["tissue"].trigger()
    qtbot.waitUntil(lambda: prediction.bar.value() >= 7, timeout=60000)  # of 17: a few rows are finished
    qtbot.mouseClick(prediction.cancel_button, Qt.MouseButton.LeftButton)
    _wait_done(qtbot, prediction)
    assert "stopped" in prediction.label.text()
    queue = review.session.queue
    assert queue is not None and queue.total > 0
    assert review.panel.regions.count() == min(queue.total, review.panel.regions.count()) > 0
    doc = slide_window.doc
    first = queue.regions[0]
    assert doc.store.read(first.y0, first.x0, first.h, first.w).any()  # a region that was predicted
    qtbot.keyClick(slide_window.canvas, Qt.Key.Key_N)  # Review > Next Region to Check
    centre = slide_window.canvas.mapToScene(slide_window.canvas.viewport().rect().center())
    shown = queue.current
    assert shown is not None
    assert shown.x0 <= centre.x() <= shown.x0 + shown.w and shown.y0 <= centre.y() <= shown.y0 + shown.h


def test_closing_the_window_mid_prediction_stops_it_and_keeps_the_labels(window, slide_window, qtbot):
    window.model_host.select((ClassTwo(delay=0.2), META), "cpu")
    prediction, doc = slide_window.prediction, slide_window.doc
    prediction.actions["tissue"].trigger()
    qtbot.waitUntil(lambda: prediction.bar.value() >= 2, timeout=60000)
    slide_window.close()
    qtbot.waitUntil(lambda: not window.model_host.busy("predict_slide"), timeout=60000)
    assert not doc.model.unsaved


class BrightWhereHematoxylin(torch.nn.Module):
    """A one-channel model: class 1 where its input is bright."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[[[-10.0]]], [[[10.0]]]]))
            self.conv.bias.copy_(torch.tensor([5.0, -5.0]))

    def forward(self, x):
        return self.conv(x)


GREY_META = SimpleNamespace(name="nuclei", in_channels=1, normalisation={"kind": "none"}, classes=[], input={})


def test_a_colour_slide_for_a_one_channel_model_asks_what_to_feed_it_once(window, slide_window, qtbot, monkeypatch):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QMessageBox

    from segstudio.core.model_fit import HE_STAIN_VECTORS

    assert slide_window.doc.slide.info.channels == 3
    window.model_host.select((BrightWhereHematoxylin(), GREY_META), "cpu")
    host, sent, asked = slide_window.prediction.host, [], []
    submit = host.submit
    monkeypatch.setattr(host, "submit", lambda kind, *a, **k: sent.append(k["settings"]) or submit(kind, *a, **k))

    def answer(button_text):
        def click():
            box = QApplication.activeModalWidget()
            if not isinstance(box, QMessageBox) or box.objectName() != "slideFeedQuestion":
                QTimer.singleShot(10, click)  # not open yet
                return
            asked.append(box.text())
            if button_text is None:
                box.button(QMessageBox.StandardButton.Cancel).click()
            else:
                next(b for b in box.buttons() if b.text() == button_text).click()
        QTimer.singleShot(0, click)

    predict_view = slide_window.prediction.actions["view"]  # Predict > Predict View
    answer(None)  # Cancel: nothing runs
    predict_view.trigger()
    assert len(asked) == 1 and "This slide is in colour, but nuclei reads one channel" in asked[0] and not sent
    answer("Use the H&E path")
    predict_view.trigger()
    _wait_done(qtbot, slide_window.prediction)
    assert sent[-1].model_input == {"kind": "he", "stain_vectors": [list(v) for v in HE_STAIN_VECTORS]}
    predict_view.trigger()  # asked once for this model
    _wait_done(qtbot, slide_window.prediction)
    assert len(asked) == 2 and len(sent) == 2 and sent[-1].model_input["kind"] == "he"

    window.model_host.select((BrightWhereHematoxylin(), GREY_META), "cpu")  # another model: asked again
    answer("Average to grey")
    predict_view.trigger()
    _wait_done(qtbot, slide_window.prediction)
    assert len(asked) == 3 and sent[-1].model_input is None
