"""The class palette: one table for every open image; edits reach the documents and the overlay colours."""
import numpy as np
import pytest
import tifffile
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from tests.gui.conftest import rename_class_in_panel


@pytest.fixture
def two_docs(window, tmp_path):
    for name in ("one.tif", "two.tif"):
        tifffile.imwrite(tmp_path / name, np.full((24, 24), 50, np.uint8))
    docs = window.open_paths([tmp_path / "one.tif", tmp_path / "two.tif"])
    QApplication.processEvents()
    return docs


def test_every_open_image_shares_the_session_class_table(window, two_docs):
    first, second = two_docs
    assert first.classes is second.classes is window.editing.classes.table
    assert [c.name for c in first.classes] == ["background", "nucleus"]


def test_add_button_adds_a_class_to_all_images_and_selects_it(window, two_docs, qtbot):
    panel = window.editing.classes_panel
    qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
    for doc in two_docs:
        assert len(doc.classes) == 3
    new_id = doc.classes.classes[-1].id
    assert window.editing.session.active_class == new_id
    assert panel.selected_id() == new_id
    assert panel.list.count() == 3


def test_rename_by_editing_the_list_item(window, two_docs, qtbot):
    panel = window.editing.classes_panel
    rename_class_in_panel(qtbot, panel, 1, "cell")
    # The item view commits an edit through a queued call.
    qtbot.waitUntil(lambda: two_docs[0].classes.get(1).name == "cell")
    for doc in two_docs:
        assert doc.classes.get(1).name == "cell"
    assert panel.item_for(1).text() == "cell"


def test_rename_to_a_taken_name_is_refused_and_explained(window, two_docs):
    editing = window.editing
    editing.classes.add("membrane")
    editing.classes_panel.item_for(1).setText("Membrane")
    assert two_docs[0].classes.get(1).name == "nucleus"
    assert editing.classes_panel.item_for(1).text() == "nucleus"
    assert "membrane" in window.last_error.lower()


def test_recolour_changes_the_overlay_lookup_table(window, two_docs, qtbot, monkeypatch):
    doc = window.current
    mask = np.zeros(doc.mask.shape, np.uint8)
    mask[2:6, 2:6] = 1
    doc.replace_mask(mask)
    editing = window.editing
    monkeypatch.setattr(editing, "choose_color", lambda current, name: (10, 200, 30))
    editing.classes_panel.list.setCurrentItem(editing.classes_panel.item_for(1))
    qtbot.mouseClick(editing.classes_panel.color_button, Qt.MouseButton.LeftButton)
    assert two_docs[1].classes.get(1).color == (10, 200, 30)
    overlay = window.canvas.overlay
    assert tuple(overlay._lut[1][:3]) == (10, 200, 30)
    assert tuple(overlay.rendered_rgba()[3, 3, :3]) == (10, 200, 30)


def test_reorder_with_buttons_and_number_keys_follow_the_order(window, two_docs, qtbot):
    editing = window.editing
    membrane = editing.classes.add("membrane")
    panel = editing.classes_panel
    panel.list.setCurrentItem(panel.item_for(membrane.id))
    assert not panel.down_button.isEnabled()
    qtbot.mouseClick(panel.up_button, Qt.MouseButton.LeftButton)
    assert [c.name for c in window.current.classes] == ["background", "membrane", "nucleus"]
    assert panel.list.item(1).text() == "membrane"
    assert not panel.up_button.isEnabled()  # nothing goes above the background

    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_2)
    assert editing.session.active_class == 1  # nucleus is now second
    qtbot.keyClick(window.canvas, Qt.Key.Key_1)
    assert editing.session.active_class == membrane.id
    assert panel.selected_id() == membrane.id
    qtbot.keyClick(window.canvas, Qt.Key.Key_0)
    assert editing.session.active_class == 0
    qtbot.keyClick(window.canvas, Qt.Key.Key_9)  # no ninth class: nothing changes
    assert editing.session.active_class == 0


def test_remove_class_clears_its_pixels_undoably_and_keeps_background(window, two_docs, monkeypatch):
    editing = window.editing
    membrane = editing.classes.add("membrane")
    first, second = two_docs
    mask = np.zeros(first.mask.shape, np.uint8)
    mask[1:4, 1:4] = membrane.id
    mask[10:12, 10:12] = 1
    first.replace_mask(mask.copy())
    asked = []
    monkeypatch.setattr(
        editing, "confirm_remove", lambda name, pixels, images: asked.append((name, pixels, images)) or True
    )
    editing.classes_panel.list.setCurrentItem(editing.classes_panel.item_for(membrane.id))
    editing.classes_panel.remove_button.click()
    assert asked == [("membrane", 9, 1)]
    assert membrane.id not in second.classes.ids()
    assert not (first.mask == membrane.id).any() and (first.mask[10:12, 10:12] == 1).all()
    first.undo_stack.undo()
    np.testing.assert_array_equal(first.mask, mask)

    editing.classes_panel.list.setCurrentItem(editing.classes_panel.item_for(0))
    assert not editing.classes_panel.remove_button.isEnabled()
    editing.remove_class(0)
    assert 0 in first.classes.ids()


def test_class_edit_marks_edited_images_unsaved_but_not_blank_ones(window, two_docs):
    first, second = two_docs
    first.set_status(first.status.__class__.EDITED)
    window.editing.classes.rename(1, "cell")
    assert first.unsaved and not second.unsaved


def test_dragging_a_class_reorders_the_table(window, two_docs):
    from PySide6.QtCore import QMimeData, QPointF
    from PySide6.QtGui import QDropEvent

    editing = window.editing
    membrane = editing.classes.add("membrane")
    panel = editing.classes_panel
    panel.list.setCurrentItem(panel.item_for(membrane.id))
    target = panel.list.visualItemRect(panel.item_for(1)).center()
    event = QDropEvent(QPointF(target), Qt.DropAction.MoveAction, QMimeData(), Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    event.source = lambda: panel.list  # a synthetic drop has no drag source of its own
    panel.list.dropEvent(event)
    assert [c.name for c in two_docs[1].classes] == ["background", "membrane", "nucleus"]
    assert [panel.list.item(i).text() for i in range(3)] == ["background", "membrane", "nucleus"]
