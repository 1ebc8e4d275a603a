"""Closing the main window closes the slide windows it opened, each with its labels written first."""
from tests.gui.slides.test_slide_export import _open
from tests.gui.slides.test_slide_predict import small_slide  # noqa: F401 (fixture)


def test_closing_the_main_window_closes_its_slide_windows_with_their_labels_saved(window, small_slide,  # noqa: F811
                                                                                  qtbot, monkeypatch):
    from PySide6.QtCore import QPoint

    from tests.gui.slides.test_slide_background import _at, _on_disk
    from tests.gui.slides.test_slide_window import _drag

    slide_window = _open(window, small_slide, qtbot, monkeypatch)
    slide_window.tools["brush"].trigger()
    canvas = slide_window.canvas
    _drag(canvas, [QPoint(400, 300), QPoint(420, 300)])
    doc = slide_window.doc
    painted = canvas.mapToScene(QPoint(410, 300))
    window.close()
    assert not slide_window.isVisible()
    labels, _hand = _on_disk(doc)
    assert _at(labels, painted) == 1  # written before the window went
