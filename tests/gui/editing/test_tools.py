"""Correction tools driven by real mouse and key events on the canvas: exact pixels, one undo step per stroke."""
import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QApplication

from segstudio.core import edits

LEFT = Qt.MouseButton.LeftButton
RIGHT = Qt.MouseButton.RightButton


@pytest.fixture
def doc(window, dim16_tiff):
    (doc,) = window.open_paths([dim16_tiff])
    # The view settles its scroll position once events run; map coordinates only after that.
    QApplication.processEvents()
    return doc


def view_point(window, x, y):
    """The viewport position over the centre of image pixel (x, y)."""
    return window.canvas.mapFromScene(QPointF(x + 0.5, y + 0.5))


def drag(qtbot, window, pixels, button=LEFT):
    viewport = window.canvas.viewport()
    qtbot.mousePress(viewport, button, pos=view_point(window, *pixels[0]))
    for x, y in pixels[1:]:
        qtbot.mouseMove(viewport, view_point(window, x, y))
    qtbot.mouseRelease(viewport, button, pos=view_point(window, *pixels[-1]))


def click(qtbot, window, x, y, button=LEFT):
    qtbot.mouseClick(window.canvas.viewport(), button, pos=view_point(window, x, y))


def expected_stroke(shape, pixels, radius, value, mask=None, hand=None):
    """What core.edits makes of the same stroke: a disk at the press, then a capsule per mouse event."""
    mask = np.zeros(shape, np.uint8) if mask is None else mask.copy()
    hand = np.zeros(shape, bool) if hand is None else hand.copy()
    (x0, y0) = pixels[0]
    edits.paint_disk(mask, y0, x0, radius, value, hand=hand)
    points = pixels + [pixels[-1]]  # the release event ends the stroke where the last move was
    for (xa, ya), (xb, yb) in zip(points, points[1:]):
        edits.paint_segment(mask, (ya, xa), (yb, xb), radius, value, hand=hand)
    return mask, hand


def test_fast_brush_stroke_paints_exact_pixels_and_undoes_as_one_step(window, doc, qtbot):
    editing = window.editing
    editing.select_tool("brush")
    editing.session.set_brush_radius(2)
    changed_rects = []
    doc.mask_changed.connect(lambda *rect: changed_rects.append(rect))
    # Three events far apart, as a fast flick of the mouse gives: the stroke must still be continuous.
    stroke = [(5, 5), (40, 9), (50, 40)]
    drag(qtbot, window, stroke)

    want_mask, want_hand = expected_stroke(doc.mask.shape, stroke, 2, editing.session.active_class)
    np.testing.assert_array_equal(doc.mask, want_mask)
    np.testing.assert_array_equal(doc.hand, want_hand)
    assert doc.undo_stack.count() == 1
    assert doc.status.value == "edited"
    # The overlay was told about rectangles around the stroke, never the whole image.
    assert changed_rects and all(h * w < doc.mask.size for _, _, h, w in changed_rects)
    overlay_alpha = window.canvas.overlay.rendered_rgba()[..., 3]
    assert (overlay_alpha[want_mask > 0] > 0).all() and (overlay_alpha[want_mask == 0] == 0).all()

    window.actions.undo.trigger()
    assert not doc.mask.any() and not doc.hand.any()
    assert not window.canvas.overlay.rendered_rgba()[..., 3].any()
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    np.testing.assert_array_equal(doc.mask, want_mask)
    np.testing.assert_array_equal(doc.hand, want_hand)
    qtbot.keyClick(window.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not doc.mask.any()


def test_right_button_and_eraser_tool_paint_background(window, doc, qtbot):
    editing = window.editing
    editing.session.set_brush_radius(4)
    drag(qtbot, window, [(10, 20), (50, 20)])
    before = doc.mask.copy(), doc.hand.copy()
    drag(qtbot, window, [(20, 10), (20, 30)], button=RIGHT)
    want_mask, want_hand = expected_stroke(doc.mask.shape, [(20, 10), (20, 30)], 4, 0, *before)
    np.testing.assert_array_equal(doc.mask, want_mask)
    np.testing.assert_array_equal(doc.hand, want_hand)

    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_E)
    assert editing.current_tool_name() == "eraser"
    before = doc.mask.copy(), doc.hand.copy()
    drag(qtbot, window, [(40, 10), (40, 30)])
    want_mask, _ = expected_stroke(doc.mask.shape, [(40, 10), (40, 30)], 4, 0, *before)
    np.testing.assert_array_equal(doc.mask, want_mask)
    assert doc.undo_stack.count() == 3


def test_fill_tool_fills_the_clicked_region(window, doc, qtbot):
    ring = np.zeros(doc.mask.shape, np.uint8)
    ring[10:30, 10:30] = 1
    ring[14:26, 14:26] = 0  # a hole inside a ring of class 1
    doc.replace_mask(ring.copy())
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_G)
    assert window.editing.current_tool_name() == "fill"
    click(qtbot, window, 20, 20)
    want = ring.copy()
    edits.flood_fill(want, 20, 20, 1)
    np.testing.assert_array_equal(doc.mask, want)
    assert doc.mask[20, 20] == 1 and doc.mask[40, 50] == 0
    window.actions.undo.trigger()
    np.testing.assert_array_equal(doc.mask, ring)


def test_polygon_by_clicks_closes_with_enter_or_double_click(window, doc, qtbot):
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_L)
    assert window.editing.current_tool_name() == "polygon"
    corners = [(5, 5), (30, 5), (30, 25), (5, 25)]
    for x, y in corners:
        click(qtbot, window, x, y)
    assert not doc.mask.any()  # nothing happens until the polygon is closed
    qtbot.keyClick(window.canvas, Qt.Key.Key_Return)
    want = np.zeros(doc.mask.shape, np.uint8)
    edits.fill_polygon(want, corners, window.editing.session.active_class)
    np.testing.assert_array_equal(doc.mask, want)
    assert doc.undo_stack.count() == 1

    triangle = [(40, 5), (60, 5), (50, 30)]
    for x, y in triangle:
        click(qtbot, window, x, y)
    qtbot.mouseDClick(window.canvas.viewport(), LEFT, pos=view_point(window, *triangle[-1]))
    edits.fill_polygon(want, triangle, window.editing.session.active_class)
    np.testing.assert_array_equal(doc.mask, want)
    assert doc.undo_stack.count() == 2


def test_polygon_escape_aborts_and_does_not_cancel_other_work(window, doc, qtbot):
    window.editing.select_tool("polygon")
    for x, y in [(5, 5), (30, 5), (30, 25)]:
        click(qtbot, window, x, y)
    assert window.editing.tools["polygon"].drawing
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_Escape)
    assert not window.editing.tools["polygon"].drawing
    qtbot.keyClick(window.canvas, Qt.Key.Key_Return)
    assert not doc.mask.any() and doc.undo_stack.count() == 0


def test_lasso_drag_fills_on_release(window, doc, qtbot):
    window.editing.select_tool("polygon")
    path = [(10, 10), (25, 8), (40, 15), (38, 35), (15, 30)]
    drag(qtbot, window, path)
    tool_points = [(x, y) for x, y in path] + [path[-1]]
    want = np.zeros(doc.mask.shape, np.uint8)
    edits.fill_polygon(want, tool_points, window.editing.session.active_class)
    np.testing.assert_array_equal(doc.mask, want)
    assert doc.mask[20, 25] == window.editing.session.active_class
    assert doc.undo_stack.count() == 1


def test_eyedropper_selects_the_class_under_the_cursor(window, doc, qtbot):
    editing = window.editing
    second = editing.classes.add("membrane")
    editing.session.set_active_class(1)
    mask = np.zeros(doc.mask.shape, np.uint8)
    mask[30:40, 40:60] = second.id
    doc.replace_mask(mask)
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_I)
    click(qtbot, window, 45, 35)
    assert editing.session.active_class == second.id
    assert editing.classes_panel.selected_id() == second.id
    click(qtbot, window, 5, 5)
    assert editing.session.active_class == 0


def test_delete_object_removes_one_connected_object(window, doc, qtbot):
    mask = np.zeros(doc.mask.shape, np.uint8)
    mask[5:15, 5:15] = 1
    mask[20:30, 30:40] = 1
    doc.replace_mask(mask.copy())
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_D)
    click(qtbot, window, 8, 8)
    assert not doc.mask[5:15, 5:15].any() and (doc.mask[20:30, 30:40] == 1).all()
    assert doc.hand[5:15, 5:15].all()  # a deletion is a hand correction that Predict must respect
    window.actions.undo.trigger()
    np.testing.assert_array_equal(doc.mask, mask)


def test_bracket_keys_resize_brush_and_outline_follows_cursor(window, doc, qtbot):
    editing = window.editing
    editing.select_tool("brush")
    editing.session.set_brush_radius(5)
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_BracketRight)
    assert editing.session.brush_radius == 6
    assert editing.tools_panel.radius_slider.value() == 6
    qtbot.keyClick(window.canvas, Qt.Key.Key_BracketLeft)
    qtbot.keyClick(window.canvas, Qt.Key.Key_BracketLeft)
    assert editing.session.brush_radius == 4
    editing.tools_panel.radius_slider.setValue(9)
    assert editing.session.brush_radius == 9

    qtbot.mouseMove(window.canvas.viewport(), view_point(window, 17, 12))
    outline = editing.tools["brush"].outline
    qtbot.waitUntil(outline.isVisible)
    assert (outline.centre.x(), outline.centre.y()) == (17.5, 12.5)
    assert outline.radius == pytest.approx(9.5)
    assert outline.scene() is window.canvas.scene()


def test_tool_shortcuts_do_not_clash_with_window_shortcuts(window):
    seen = {}
    for action in window.actions.all():
        for key in action.shortcuts():
            text = key.toString()
            assert text not in seen, f"{text} is bound to {seen[text]} and {action.text()}"
            seen[text] = action.text()
    for name in ("brush", "eraser", "fill", "polygon", "eyedropper", "delete", "pan"):
        assert window.editing.tool_actions[name].shortcut().toString()


def test_opacity_slider_sets_mask_opacity(window, doc):
    window.editing.tools_panel.opacity_slider.setValue(30)
    assert window.canvas.overlay.opacity() == pytest.approx(0.3)


def test_more_than_a_hundred_undo_steps(window, doc):
    session = window.editing.session
    assert doc.undo_stack.undoLimit() >= 100
    for i in range(110):
        y, x = divmod(i, doc.mask.shape[1])
        session.commit(doc, edits.paint_disk(doc.mask, y, x, 0, 1, hand=doc.hand), "dot")
    assert int(doc.mask.sum()) == 110
    for _ in range(110):
        window.actions.undo.trigger()
    assert not doc.mask.any() and not doc.hand.any()


def test_undo_follows_the_current_image(window, tmp_path, qtbot):
    import tifffile

    for name in ("a.tif", "b.tif"):
        tifffile.imwrite(tmp_path / name, np.full((32, 32), 7, np.uint8))
    first, second = window.open_paths([tmp_path / "a.tif", tmp_path / "b.tif"])
    QApplication.processEvents()
    drag(qtbot, window, [(5, 5), (20, 20)])
    assert first.mask.any() and window.actions.undo.isEnabled()
    window.actions.next_image.trigger()
    assert window.current is second and not window.actions.undo.isEnabled()
    window.actions.undo.trigger()
    assert first.mask.any()
    window.actions.previous_image.trigger()
    assert window.actions.undo.isEnabled() and "Brush stroke" in window.actions.undo.text()
    window.actions.undo.trigger()
    assert not first.mask.any() and window.actions.redo.isEnabled()
