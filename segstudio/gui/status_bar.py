"""The permanent part of the status bar: the pixel under the cursor, the zoom and the model's device.

The pixel read-out is hidden while the cursor is off the image, so a message has the bar's width; a message
too long for it still reads in full in the bar's tooltip.
"""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QLabel, QStatusBar


class StatusLabels:
    """Three labels at the right of the status bar, fed by the canvas and the model host."""

    def __init__(self, bar: QStatusBar, canvas, model_host, current: Callable[[], object]) -> None:
        self._current = current  # the document shown, or None
        self._cursor = (-1, -1)  # image pixel under the cursor, (-1, -1) off the image
        self.position_label = QLabel("")
        self.position_label.setObjectName("positionLabel")
        self.position_label.setMinimumWidth(260)
        self.zoom_label = QLabel("")
        self.zoom_label.setObjectName("zoomLabel")
        self.device_label = QLabel("Device: automatic")
        self.device_label.setObjectName("deviceLabel")
        bar.addPermanentWidget(self.position_label)
        bar.addPermanentWidget(self.zoom_label)
        bar.addPermanentWidget(self.device_label)
        self.position_label.hide()
        bar.messageChanged.connect(lambda text: bar.setToolTip(text))  # a slot PySide can wrap
        canvas.cursor_moved.connect(self.show_cursor_info)
        canvas.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f}%"))
        model_host.model_ready.connect(lambda _model_id, device: self.device_label.setText(device))

    def refresh(self) -> None:
        """The mask or the image changed under a still cursor (a fill, undo, Predict): read the pixel again."""
        self.show_cursor_info(*self._cursor)

    def show_cursor_info(self, x: int, y: int) -> None:
        self._cursor = (x, y)
        doc = self._current()
        if doc is None or x < 0 or y >= doc.mask.shape[0] or x >= doc.mask.shape[1]:
            self.position_label.setText("")
            self.position_label.hide()
            return
        self.position_label.show()
        value = doc.image.pixels[y, x]
        shown = str(value[0].item()) if value.shape[0] == 1 else "(" + ", ".join(str(v.item()) for v in value) + ")"
        if doc.image.pixels.dtype.kind == "f":
            shown = f"{value[0]:.4g}" if value.shape[0] == 1 else "(" + ", ".join(f"{v:.4g}" for v in value) + ")"
        label_id = int(doc.mask[y, x])
        cls = doc.classes.get(label_id) if label_id in doc.classes.ids() else None
        label = cls.name if cls is not None else str(label_id)
        self.position_label.setText(f"x {x}  y {y}   value {shown}   label {label}")
