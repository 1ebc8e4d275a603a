"""Skip connections side by side: what a skip carries across, what it meets, and what comes out.

Every map is resampled onto the region's input grid first, so cells of coarse and fine tensors line up
and the columns can be compared position by position.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from segstudio.engine.inspect import (
    Comparison,
    Inspection,
    class_score_map,
    comparisons,
    foreground_class,
    sort_channels,
    to_input_grid,
)
from segstudio.gui.inspector.render import colourise, is_flat, label_colours, normalise, rgb_pixmap, value_range

CELL = 132  # the smallest picture side worth showing; larger when the dock has room
MAX_CELL = 256
STRONGEST = 3  # strongest channels shown under each mean, as many as fit without scrolling
CAPTION = 34  # two lines of caption under each picture
ARGMAX = -1


class SkipComparisonView(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("skipComparison")
        self.inspection: Inspection | None = None
        self.found: list[Comparison] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.combo = QComboBox()
        self.combo.setObjectName("comparisonCombo")
        self.combo.setToolTip("Which connection to look at")
        self.class_combo = QComboBox()
        self.class_combo.setObjectName("scoreClassCombo")
        self.class_combo.setToolTip("Class-score maps: one class's score, or the winning class at each position")
        row.addWidget(QLabel("Connection"))
        row.addWidget(self.combo, 1)
        row.addWidget(self.class_combo)
        layout.addLayout(row)
        self.note = QLabel("")
        self.note.setObjectName("comparisonNote")
        self.note.setWordWrap(True)
        layout.addWidget(self.note)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.canvas = QWidget()
        self.cells = QGridLayout(self.canvas)
        self.cells.setSpacing(6)
        self.cells.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.scroll.setWidget(self.canvas)
        layout.addWidget(self.scroll, 1)
        self.combo.currentIndexChanged.connect(lambda _i: self._draw())
        self.class_combo.currentIndexChanged.connect(lambda _i: self._draw())
        self.cell = CELL
        self.channel_rows = STRONGEST
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(120)
        self._redraw_timer.timeout.connect(self._draw)
        self.set_inspection(None)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._redraw_timer.start()  # pictures follow the dock's size once the user stops dragging

    def _fit_cells(self, columns: int, scores: bool) -> None:
        """Picture side and number of channel rows so the whole comparison fits the view without scrolling:
        the means as large as the room allows, strongest channels only while pictures stay >= CELL."""
        room = self.scroll.viewport().size()
        width = (room.width() - 8 * columns) / max(1, columns)
        header = 2 * self.fontMetrics().lineSpacing() + 8
        for rows in ([0] if scores else range(STRONGEST, -1, -1)):
            height = (room.height() - header) / (1 + rows) - CAPTION - 8
            side = int(min(MAX_CELL, width, height))
            if side >= CELL or rows == 0:
                self.cell, self.channel_rows = max(64, side), rows
                return

    def set_inspection(self, inspection: Inspection | None) -> None:
        self.inspection = inspection
        self.found = comparisons(inspection) if inspection is not None else []
        self.combo.blockSignals(True)
        self.class_combo.blockSignals(True)
        self.combo.clear()
        for comparison in self.found:
            self.combo.addItem(comparison.title)
        self.class_combo.clear()
        if inspection is not None:
            for index, name in enumerate(inspection.class_names):
                self.class_combo.addItem(f"score: {name}", index)
            self.class_combo.addItem("winning class", ARGMAX)
            self.class_combo.setCurrentIndex(foreground_class(inspection))
        self.combo.blockSignals(False)
        self.class_combo.blockSignals(False)
        self._draw()

    def select(self, title_part: str) -> bool:
        for index, comparison in enumerate(self.found):
            if title_part in comparison.title:
                self.combo.setCurrentIndex(index)
                return True
        return False

    def current(self) -> Comparison | None:
        index = self.combo.currentIndex()
        return self.found[index] if 0 <= index < len(self.found) else None

    def column_titles(self) -> list[str]:
        comparison = self.current()
        return list(comparison.taps) if comparison is not None else []

    # --- drawing -----------------------------------------------------------------------------------
    def _clear_cells(self) -> None:
        while self.cells.count():
            item = self.cells.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()

    def _cell(self, rgb: np.ndarray, caption: str, tooltip: str = "") -> QWidget:
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        picture = QLabel()
        picture.setPixmap(rgb_pixmap(rgb, self.cell))
        picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        picture.setToolTip(tooltip)
        text = QLabel(caption)
        text.setWordWrap(True)
        text.setMaximumWidth(self.cell)
        text.setToolTip(caption)
        text.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        layout.addWidget(picture)
        layout.addWidget(text)
        return box

    def _draw(self) -> None:
        self._clear_cells()
        comparison = self.current()
        scores = comparison is not None and comparison.mode == "scores"
        self.class_combo.setVisible(scores)
        if self.inspection is None or comparison is None:
            self.note.setText("Compute a region to compare the tensors a skip connection joins."
                              if self.inspection is None else "This network has no skip connections to compare.")
            return
        self.note.setText(comparison.note)
        self._fit_cells(len(comparison.taps), scores)
        shape = self.inspection.input_shape
        for column, name in enumerate(comparison.taps):
            tap = self.inspection.tap(name)
            header = QLabel(f"<b>{name}</b><br>{tap.describe_shape()}, 1/{tap.stride:g}")
            header.setWordWrap(True)
            header.setMaximumWidth(self.cell)
            header.setToolTip(tap.spec.description)
            self.cells.addWidget(header, 0, column)
            if scores:
                self._draw_scores(column, name, shape)
            else:
                self._draw_features(column, tap, shape)

    def _draw_scores(self, column: int, name: str, shape) -> None:
        tap = self.inspection.tap(name)
        wanted = self.class_combo.currentData()
        if wanted == ARGMAX:
            # Scores are resampled first and compared after, as the label would be if the network stopped here.
            upsampled = np.stack([to_input_grid(tap.channel(k), tap.scale, shape) for k in range(tap.channels)])
            rgb = label_colours(upsampled.argmax(axis=0), self.inspection.num_classes)
            caption = "winning class"
        else:
            values = to_input_grid(class_score_map(self.inspection, name, wanted), tap.scale, shape)
            rgb, _flat = _picture(values)
            caption = f"{self.inspection.class_names[wanted]} score, {values.min():.3g} to {values.max():.3g}"
        self.cells.addWidget(self._cell(rgb, caption, tap.spec.description), 1, column)

    def _draw_features(self, column: int, tap, shape) -> None:
        mean = to_input_grid(tap.mean_map, tap.scale, shape)
        rgb, flat = _picture(mean)
        caption = f"mean of {tap.channels} channels" + (f": the same everywhere ({mean.flat[0]:.3g})" if flat else "")
        self.cells.addWidget(self._cell(rgb, caption, tap.spec.description), 1, column)
        for row, channel in enumerate(sort_channels(tap.stats, "mean")[:self.channel_rows], start=2):
            values = to_input_grid(tap.channel(int(channel)), tap.scale, shape)
            rgb, flat = _picture(values)
            caption = f"channel {int(channel)} (mean {tap.stats.mean[channel]:.3g}{', flat' if flat else ''})"
            self.cells.addWidget(self._cell(rgb, caption), row, column)


def _picture(values: np.ndarray) -> tuple[np.ndarray, bool]:
    low, high = value_range(values, False)
    return colourise(normalise(values, low, high), "viridis"), is_flat(low, high)

