"""Images dock: the open images with a thumbnail and where each one stands (new, predicted, edited, exported)."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from segstudio.core.imageio import DisplayPicture
from segstudio.gui.canvas.overlay import rgb_to_pixmap

THUMB = 48
ROW_HEIGHT = THUMB + 8
# Rows the list shows before it scrolls: enough to see where a handful of images stand at 1366 x 768.
ROWS_SHOWN = 4
DOC_ROLE = Qt.ItemDataRole.UserRole
STATUS_COLOURS = {
    "new": QColor(140, 140, 140),
    "predicted": QColor(70, 140, 230),
    "edited": QColor(230, 160, 40),
    "exported": QColor(60, 170, 90),
}


def thumbnail(picture: DisplayPicture, size: int = THUMB) -> QPixmap:
    """A small copy of the display picture, downsampled by area so thin structures do not alias away."""
    import cv2

    pixels = picture.pixels
    h, w = pixels.shape[:2]
    scale = size / max(h, w)
    if scale < 1.0:
        pixels = cv2.resize(pixels, (max(1, round(w * scale)), max(1, round(h * scale))),
                            interpolation=cv2.INTER_AREA)
    return rgb_to_pixmap(DisplayPicture(np.ascontiguousarray(pixels), picture.grey_levels).rgb())


def with_status_dot(thumb: QPixmap, colour: QColor | None) -> QPixmap:
    """The thumbnail centred on a square canvas, with a dot in the status colour in its corner."""
    canvas = QPixmap(THUMB, THUMB)
    canvas.fill(Qt.GlobalColor.transparent)
    painter = QPainter(canvas)
    painter.drawPixmap((THUMB - thumb.width()) // 2, (THUMB - thumb.height()) // 2, thumb)
    if colour is not None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(QPen(QColor(0, 0, 0, 180), 1))
        painter.setBrush(colour)
        painter.drawEllipse(THUMB - 13, THUMB - 13, 11, 11)
    painter.end()
    return canvas


def status_text(doc) -> str:
    text = doc.status.value
    if doc.read_only is not None:
        text += " — read-only"
    elif doc.autosave_error:
        text += " — not saved"
    elif doc.unsaved:
        text += " — unsaved"
    return text


class _ImageList(QListWidget):
    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        return QSize(hint.width(), ROWS_SHOWN * ROW_HEIGHT + 2 * self.frameWidth())


class ImagesPanel(QWidget):
    document_selected = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("imagesPanel")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        self.list = _ImageList()
        self.list.setObjectName("imageList")
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setUniformItemSizes(True)
        self.list.setToolTip("Open images; PgUp/PgDown step through them")
        self.list.currentItemChanged.connect(self._on_current_changed)
        # Asked for, not forced: a minimum this tall would push a laptop-sized window past the screen
        # wherever the dock is put.
        self.list.setMinimumHeight(ROW_HEIGHT + 2 * self.list.frameWidth())
        layout.addWidget(self.list)
        self._thumbs: dict[int, QPixmap] = {}
        self._filling = False

    def set_documents(self, docs, current) -> None:
        self._filling = True
        self.list.clear()
        alive = set()
        for doc in docs:
            alive.add(id(doc))
            item = QListWidgetItem()
            item.setData(DOC_ROLE, doc)
            item.setSizeHint(QSize(THUMB + 8, ROW_HEIGHT))
            self.list.addItem(item)
            self.update_document(doc)
        self._thumbs = {k: v for k, v in self._thumbs.items() if k in alive}
        self._filling = False
        self.set_current(current)

    def item_for(self, doc) -> QListWidgetItem | None:
        for row in range(self.list.count()):
            if self.list.item(row).data(DOC_ROLE) is doc:
                return self.list.item(row)
        return None

    def update_document(self, doc) -> None:
        item = self.item_for(doc)
        if item is None:
            return
        if id(doc) not in self._thumbs:
            self._thumbs[id(doc)] = thumbnail(doc.display_picture())
        pixmap = with_status_dot(self._thumbs[id(doc)], STATUS_COLOURS.get(doc.status.value))
        icon = QIcon(pixmap)
        icon.addPixmap(pixmap, QIcon.Mode.Selected)  # the selection colour must not tint the image
        item.setIcon(icon)
        item.setText(f"{doc.title}\n{status_text(doc)}")
        tip = str(doc.path)
        if doc.read_only is not None:
            tip += f"\nRead-only: {doc.read_only}"
        if doc.autosave_error:
            tip += f"\nAutosave failed: {doc.autosave_error}"
            item.setForeground(QColor(220, 50, 50))
        else:
            item.setData(Qt.ItemDataRole.ForegroundRole, None)
        item.setToolTip(tip)

    def forget_thumbnail(self, doc) -> None:
        """The display changed (other channels): make the thumbnail again."""
        self._thumbs.pop(id(doc), None)
        self.update_document(doc)

    def set_current(self, doc) -> None:
        self._filling = True
        item = self.item_for(doc) if doc is not None else None
        if item is not None:
            self.list.setCurrentItem(item)
        else:
            self.list.clearSelection()
        self._filling = False

    def _on_current_changed(self, current, _previous) -> None:
        if current is not None and not self._filling:
            self.document_selected.emit(current.data(DOC_ROLE))
