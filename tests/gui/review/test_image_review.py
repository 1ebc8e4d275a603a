"""Review in the main window: after Predict, Shift+N walks the image's regions where the model was least
sure, painting there counts as corrected, Alt+N goes to the most uncertain open image, and the marks are
back when the image is opened again."""
import numpy as np
import pytest
import tifffile
from PySide6.QtCore import QPoint, Qt

from tests.gui.prediction.test_predict_panel import click_predict, known_answer, tiny_model  # noqa: F401
from tests.gui.slides.test_slide_window import _drag


def _image(path, greys):
    """512^2: black, a bright square (so the display and model scaling keep mid-grey at the middle) and
    mid-grey boxes, where the model cannot tell nucleus from background."""
    pixels = np.zeros((512, 512), np.uint8)
    pixels[0:60, 0:60] = 255
    for y0, x0, h, w in greys:
        pixels[y0:y0 + h, x0:x0 + w] = 128
    tifffile.imwrite(path, pixels)
    return path


@pytest.fixture
def images(tmp_path):
    return [_image(tmp_path / "a.tif", [(256, 128, 128, 128), (0, 384, 64, 64)]),
            _image(tmp_path / "b.tif", [(300, 300, 16, 16)]),
            _image(tmp_path / "c.tif", [])]


def test_regions_are_walked_most_uncertain_first_corrections_count_and_marks_survive_reopening(
        window, qtbot, tiny_model, known_answer, images):  # noqa: F811
    window.prediction.reload_models()
    a, _b, _c = window.open_paths(images)
    window.set_current(a)
    review = window.review
    assert not review.next_region.isEnabled()
    click_predict(qtbot, window)
    queue = review.session(a).queue
    assert [r.key for r in queue.regions[:2]] == ["256,128", "0,384"]  # the grey box, then the small one
    assert review.panel.counts.text() == f"Checked 0 of {queue.total} regions"

    canvas = window.canvas
    qtbot.keyClick(canvas, Qt.Key.Key_N, Qt.KeyboardModifier.ShiftModifier)  # Review > Next Region to Check
    centre = canvas.mapToScene(canvas.viewport().rect().center())
    assert queue.current.key == "256,128" and abs(centre.x() - 192) < 4 and abs(centre.y() - 320) < 4
    view = canvas.viewport()
    assert canvas.zoom() > 2.5 * min(view.width(), view.height()) / 512  # zoomed in on the region
    review.next_region.trigger()
    assert queue.current.key == "0,384" and review.panel.counts.text() == f"Checked 1 of {queue.total} regions"

    qtbot.keyClick(canvas, Qt.Key.Key_B)  # the brush
    middle = canvas.viewport().rect().center()
    _drag(canvas, [middle, middle + QPoint(10, 0)])
    assert a.hand[0:64, 384:448].any()
    assert queue.regions[1].corrected
    assert review.panel.counts.text() == f"Checked 2 of {queue.total} regions (1 corrected)"

    # Reopen: the marks and the counts are back from the autosave folder.
    total = queue.total
    window.close_document(a)
    (a,) = window.open_paths([images[0]])
    window.set_current(a)
    assert review.session(a).queue.total == total
    assert review.panel.counts.text() == f"Checked 2 of {total} regions (1 corrected)"


def test_next_most_uncertain_image_goes_by_mean_uncertainty_and_skips_unpredicted_ones(
        window, qtbot, tiny_model, known_answer, images):  # noqa: F811
    window.prediction.reload_models()
    a, b, c = window.open_paths(images)
    for doc in (b, a):
        window.set_current(doc)
        click_predict(qtbot, window)
    assert review_mean(window, a) > review_mean(window, b) > 0
    window.set_current(c)  # not predicted
    qtbot.keyClick(window.canvas, Qt.Key.Key_N, Qt.KeyboardModifier.AltModifier)  # Next Most Uncertain Image
    assert window.current is a
    window.review.next_image.trigger()
    assert window.current is b
    assert "Images visited: 1 of 2 predicted (1 image not predicted yet)" == window.review.panel.images.text()
    assert not window.review.next_image.isEnabled()  # a was visited, b is shown, c has no prediction


def review_mean(window, doc) -> float:
    return window.review.session(doc).queue.mean_uncertainty
