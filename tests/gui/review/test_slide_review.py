"""The review queue in a slide window: after Predict All Tissue, N shows the regions where the model was
least sure, one after another; painting in a region counts it as corrected; the marks survive reopening."""
from PySide6.QtCore import QPoint, QPointF, Qt

from segstudio.core.review import SLIDE_REGION
from tests.gui.slides.test_slide_predict import META, ClassTwo, small_slide  # noqa: F401 (fixture)
from tests.gui.slides.test_slide_window import _close_all, _drag, open_slide


def _open(window, path, qtbot, monkeypatch):
    return open_slide(window, path, qtbot, monkeypatch)


def _view_centre(canvas) -> QPointF:
    return canvas.mapToScene(canvas.viewport().rect().center())


def test_next_region_walks_the_queue_counts_checks_and_corrections_and_survives_reopening(
        window, small_slide, qtbot, monkeypatch):  # noqa: F811
    window.model_host.select((ClassTwo(), META), "cpu")
    slide_window = _open(window, small_slide, qtbot, monkeypatch)
    review, canvas = slide_window.review, slide_window.canvas
    assert "Predict first" in review.panel.counts.text()
    slide_window.prediction.actions["tissue"].trigger()
    qtbot.waitUntil(lambda: review.session.queue is not None, timeout=60000)
    queue = review.session.queue
    # The tissue (1000-1500 x 1000-1600) lies in the four regions at the top left; the glass is not queued.
    assert {r.key for r in queue.regions} <= {"0,0", "0,1024", "1024,0", "1024,1024"} and queue.total >= 2
    assert review.panel.counts.text() == f"Checked 0 of {queue.total} regions"
    assert review.panel.regions.count() == queue.total

    qtbot.keyClick(canvas, Qt.Key.Key_N)  # Review > Next Region to Check
    first = queue.current
    assert first is queue.regions[0]
    centre = _view_centre(canvas)
    assert abs(centre.x() - (first.x0 + first.w / 2)) < 20 and abs(centre.y() - (first.y0 + first.h / 2)) < 20
    assert canvas.zoom() > 0.4  # zoomed in to the region, not the whole slide
    qtbot.keyClick(canvas, Qt.Key.Key_N)
    second = queue.current
    assert second is queue.regions[1] and first.checked
    assert review.panel.counts.text() == f"Checked 1 of {queue.total} regions"

    # Paint inside the region shown: once autosaved, it counts as corrected.
    slide_window.tools["brush"].trigger()
    middle = canvas.viewport().rect().center()
    _drag(canvas, [middle, middle + QPoint(30, 0)])
    qtbot.waitUntil(lambda: second.corrected, timeout=15000)
    assert review.panel.counts.text() == f"Checked 2 of {queue.total} regions (1 corrected)"
    total = queue.total
    _close_all(window)

    again = _open(window, small_slide, qtbot, monkeypatch)
    assert again.review.panel.counts.text() == f"Checked 2 of {total} regions (1 corrected)"
    assert again.review.session.queue.current.key == second.key
    assert second.w <= SLIDE_REGION
    _close_all(window)
