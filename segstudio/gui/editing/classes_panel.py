"""Classes dock: the named, coloured label classes of the session, and which one the tools paint.

The panel shows a ClassTable and reports what the user asked for; SessionClasses makes the change and
the panel redraws from the table, so it never holds a second copy of the classes.
"""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from segstudio.core.labels import ClassTable

ID_ROLE = Qt.ItemDataRole.UserRole
SWATCH = 16


def swatch_icon(rgb, size: int = SWATCH) -> QIcon:
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(*rgb))
    painter = QPainter(pixmap)
    painter.setPen(QColor(0, 0, 0, 160))
    painter.drawRect(0, 0, size - 1, size - 1)
    painter.end()
    return QIcon(pixmap)


class _KeyHintDelegate(QStyledItemDelegate):
    """Draws the number key that selects each of the first ten classes at the right of its row."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index) -> None:
        super().paint(painter, option, index)
        if index.row() > 9:
            return
        painter.save()
        selected = option.state & QStyle.StateFlag.State_Selected
        colour = option.palette.highlightedText() if selected else option.palette.placeholderText()
        painter.setPen(colour.color())
        painter.drawText(option.rect.adjusted(0, 0, -6, 0), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                         str(index.row()))
        painter.restore()


class _ClassList(QListWidget):
    """Reordering by drag: reports where the class went instead of letting the widget move items itself."""

    moved = Signal(int, int)  # class id, new position

    def sizeHint(self) -> QSize:
        # A handful of rows; the image list below deserves the room more.
        return QSize(200, 7 * max(self.sizeHintForRow(0), SWATCH + 4))

    def dropEvent(self, event) -> None:
        item = self.currentItem()
        if item is None or event.source() is not self:
            event.ignore()
            return
        target = self.itemAt(event.position().toPoint())
        row = self.row(target) if target is not None else self.count() - 1
        if target is not None and self.dropIndicatorPosition() == QAbstractItemView.DropIndicatorPosition.BelowItem:
            row += 1
        if row > self.row(item):
            row -= 1  # the dragged item no longer occupies its old row
        event.setDropAction(Qt.DropAction.IgnoreAction)
        event.accept()
        self.moved.emit(item.data(ID_ROLE), max(1, row))


class ClassesPanel(QWidget):
    class_selected = Signal(int)
    add_requested = Signal()
    rename_requested = Signal(int, str)
    recolor_requested = Signal(int)
    move_requested = Signal(int, int)  # class id, new position
    remove_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("classesPanel")
        layout = QVBoxLayout(self)
        self.list = _ClassList()
        self.list.setObjectName("classList")
        self.list.setIconSize(QSize(SWATCH, SWATCH))
        self.list.setItemDelegate(_KeyHintDelegate(self.list))
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.list.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.list.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.list.setToolTip(
            "Number keys 1-9 pick a class, 0 the background. Double-click or F2 renames; drag to reorder."
        )
        self.list.currentItemChanged.connect(self._on_current_changed)
        self.list.itemChanged.connect(self._on_item_changed)
        self.list.moved.connect(self.move_requested)
        layout.addWidget(self.list)

        buttons = QHBoxLayout()
        buttons.setSpacing(2)
        self.add_button = self._button("Add", "addClassButton", "Add a class", self.add_requested.emit)
        self.color_button = self._button("Colour…", "colorClassButton", "Change the colour of the selected class",
                                         lambda: self._emit_for_selected(self.recolor_requested))
        self.up_button = self._button("▲", "classUpButton", "Move the selected class up",
                                      lambda: self._move_selected(-1))
        self.down_button = self._button("▼", "classDownButton", "Move the selected class down",
                                        lambda: self._move_selected(+1))
        self.remove_button = self._button("Remove", "removeClassButton", "Remove the selected class",
                                          lambda: self._emit_for_selected(self.remove_requested))
        for button in (self.add_button, self.color_button, self.up_button, self.down_button, self.remove_button):
            buttons.addWidget(button)
        layout.addLayout(buttons)
        self._table: ClassTable | None = None
        self._filling = False

    def _button(self, text, name, tip, slot) -> QToolButton:
        button = QToolButton()
        button.setText(text)
        button.setObjectName(name)
        button.setToolTip(tip)
        button.clicked.connect(slot)
        return button

    # --- showing -------------------------------------------------------------------------------
    def set_classes(self, table: ClassTable, active_id: int) -> None:
        self._table = table
        self._filling = True
        self.list.clear()
        for position, cls in enumerate(table.classes):
            item = QListWidgetItem(swatch_icon(cls.color), cls.name)
            item.setData(ID_ROLE, cls.id)
            item.setToolTip(f"{cls.name}: id {cls.id}" + (f", key {position}" if position <= 9 else ""))
            flags = Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled
            if cls.id != 0:
                flags |= Qt.ItemFlag.ItemIsEditable | Qt.ItemFlag.ItemIsDragEnabled
            item.setFlags(flags)
            self.list.addItem(item)
        self._filling = False
        self.set_active(active_id)

    def set_active(self, class_id: int) -> None:
        self._filling = True
        for row in range(self.list.count()):
            if self.list.item(row).data(ID_ROLE) == class_id:
                self.list.setCurrentRow(row)
                break
        self._filling = False
        self._update_buttons()

    def selected_id(self) -> int | None:
        item = self.list.currentItem()
        return None if item is None else item.data(ID_ROLE)

    def item_for(self, class_id: int) -> QListWidgetItem | None:
        for row in range(self.list.count()):
            if self.list.item(row).data(ID_ROLE) == class_id:
                return self.list.item(row)
        return None

    # --- user intent ---------------------------------------------------------------------------
    def _on_current_changed(self, current, _previous) -> None:
        self._update_buttons()
        if current is not None and not self._filling:
            self.class_selected.emit(current.data(ID_ROLE))

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        if not self._filling:
            self.rename_requested.emit(item.data(ID_ROLE), item.text())

    def _emit_for_selected(self, signal) -> None:
        class_id = self.selected_id()
        if class_id is not None:
            signal.emit(class_id)

    def _move_selected(self, step: int) -> None:
        class_id = self.selected_id()
        if class_id is None or class_id == 0:
            return
        row = self.list.currentRow() + step
        if 1 <= row < self.list.count():
            self.move_requested.emit(class_id, row)

    def _update_buttons(self) -> None:
        class_id = self.selected_id()
        row = self.list.currentRow()
        is_class = class_id is not None and class_id != 0
        self.remove_button.setEnabled(is_class)
        self.color_button.setEnabled(is_class)
        self.up_button.setEnabled(is_class and row > 1)
        self.down_button.setEnabled(is_class and row < self.list.count() - 1)
