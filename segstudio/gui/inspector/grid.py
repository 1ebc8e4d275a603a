"""The channel grid: one thumbnail per channel of a tap, paged, sorted, colour-mapped; one channel large.

A toggle puts the large channel over the image, resampled to the region's pixels and placed at the
region's offset, so the user sees which structures on the slide excite it.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from segstudio.engine.inspect import Inspection, sort_channels, to_input_grid
from segstudio.gui.inspector.render import (
    COLORMAPS,
    SCALES,
    colormap_lut,
    is_flat,
    map_pixmap,
    normalise,
)

PAGE_SIZE = 64
THUMB = 128
LARGE = 184
SORT_CHOICES = [("Mean activation", "mean"), ("Variance", "variance"), ("Channel index", "index")]


class ChannelBrowser(QWidget):
    # (unit values on the region's input grid, (256, 3) LUT, (x, y, w, h) in image pixels) or None
    overlay_changed = Signal(object)
    channel_selected = Signal(int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("channelBrowser")
        self.inspection: Inspection | None = None
        self.tap_name: str | None = None
        self.order = np.zeros(0, np.int64)
        self.page = 0
        self.selected: int | None = None
        self._overlay_shown = False

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self._build_view_options())
        # Thumbnails and pager on the left, the chosen channel large on the right: both fit the height of a
        # bottom dock on a 1366 x 768 screen, and the overlay switch stays in sight above the large view.
        body = QHBoxLayout()
        browse = QVBoxLayout()
        browse.addWidget(self._build_thumbnail_grid(), 1)
        browse.addLayout(self._build_pager())
        body.addLayout(browse, 1)
        body.addLayout(self._build_channel_detail())
        layout.addLayout(body, 1)
        self._connect_controls()
        self._update_pager()

    def _build_view_options(self) -> QHBoxLayout:
        """Sort order, colour map and scale, side by side."""
        self.sort_combo = QComboBox()
        self.sort_combo.setObjectName("sortCombo")
        for text, key in SORT_CHOICES:
            self.sort_combo.addItem(text, key)
        self.sort_combo.setToolTip("Order of the thumbnails: strongest mean activation or variance over the "
                                   "region first, or channel index")
        self.colormap_combo = QComboBox()
        self.colormap_combo.setObjectName("colormapCombo")
        self.colormap_combo.addItems(COLORMAPS)
        self.colormap_combo.setToolTip("Colour map. 'signed' shows negative values blue, zero white, positive red "
                                       "(useful before a ReLU, e.g. upsampled or merged tensors).")
        self.scale_combo = QComboBox()
        self.scale_combo.setObjectName("scaleCombo")
        self.scale_combo.addItems(SCALES)
        self.scale_combo.setToolTip("Per channel: each thumbnail uses its own range, so weak channels still show "
                                    "their pattern. Shared: one range for the whole tap, so brightness compares.")
        row = QHBoxLayout()
        # The order's words are never cut (they say what the thumbnails are sorted by); the others may shrink.
        self.sort_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        row.addWidget(self.sort_combo)
        for combo in (self.colormap_combo, self.scale_combo):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(6)
            row.addWidget(combo, 1)
        # In the top row, so it is in sight however low the dock is.
        self.overlay_check = QCheckBox("Overlay on image")
        self.overlay_check.setObjectName("overlayChannel")
        self.overlay_check.setToolTip("Show the large channel over the slide, aligned with the region it was "
                                      "computed on")
        row.addWidget(self.overlay_check)
        return row

    def _build_thumbnail_grid(self) -> QListWidget:
        self.grid = QListWidget()
        self.grid.setObjectName("channelGrid")
        self.grid.setViewMode(QListView.ViewMode.IconMode)
        self.grid.setIconSize(QSize(THUMB, THUMB))
        self.grid.setGridSize(QSize(THUMB + 12, THUMB + 22))
        self.grid.setResizeMode(QListView.ResizeMode.Adjust)
        self.grid.setMovement(QListView.Movement.Static)
        self.grid.setUniformItemSizes(True)
        self.grid.setMinimumHeight(THUMB + 30)
        self.grid.currentItemChanged.connect(self._on_current_item)
        return self.grid

    def _build_pager(self) -> QHBoxLayout:
        pager = QHBoxLayout()
        self.prev_button = QPushButton("◀")
        self.prev_button.setObjectName("prevPage")
        self.prev_button.setToolTip("Previous page of channels")
        self.next_button = QPushButton("▶")
        self.next_button.setObjectName("nextPage")
        self.next_button.setToolTip("Next page of channels")
        for button in (self.prev_button, self.next_button):
            button.setFixedWidth(36)
        self.page_label = QLabel("")
        self.page_label.setObjectName("pageLabel")
        self.page_label.setWordWrap(True)  # an unwrapped label would widen the whole dock as its text grows
        pager.addWidget(self.prev_button)
        pager.addWidget(self.page_label, 1)
        pager.addWidget(self.next_button)
        return pager

    def _build_channel_detail(self) -> QVBoxLayout:
        """The selected channel large, and its numbers."""
        detail = QVBoxLayout()
        self.large = QLabel()
        self.large.setObjectName("largeChannel")
        self.large.setFixedSize(LARGE, LARGE)
        self.large.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.large.setStyleSheet("background: #202024;")
        detail.addWidget(self.large)
        self.channel_info = QLabel("Click a thumbnail to see the channel large.")
        self.channel_info.setObjectName("channelInfo")
        self.channel_info.setWordWrap(True)
        self.channel_info.setFixedWidth(LARGE)
        self.channel_info.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Expanding)
        self.channel_info.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        detail.addWidget(self.channel_info, 1)
        return detail

    def _connect_controls(self) -> None:
        # Connected only once every widget exists: each handler touches the grid, the pager and the detail.
        self.sort_combo.currentIndexChanged.connect(lambda _i: self._reorder())
        self.colormap_combo.currentIndexChanged.connect(lambda _i: self._redraw())
        self.scale_combo.currentIndexChanged.connect(lambda _i: self._redraw())
        self.prev_button.clicked.connect(lambda: self.show_page(self.page - 1))
        self.next_button.clicked.connect(lambda: self.show_page(self.page + 1))
        self.overlay_check.toggled.connect(lambda _on: self._emit_overlay())

    # --- state -----------------------------------------------------------------------------------
    def sort_key(self) -> str:
        return self.sort_combo.currentData()

    def colormap(self) -> str:
        return self.colormap_combo.currentText()

    def shared_scale(self) -> bool:
        return self.scale_combo.currentIndex() == 1

    def page_count(self) -> int:
        return max(1, -(-len(self.order) // PAGE_SIZE))

    def page_channels(self) -> list[int]:
        return [int(c) for c in self.order[self.page * PAGE_SIZE:(self.page + 1) * PAGE_SIZE]]

    def clear(self) -> None:
        self.inspection = None
        self.tap_name = None
        self.order = np.zeros(0, np.int64)
        self.page = 0
        self.selected = None
        self.grid.clear()
        self.large.clear()
        self.channel_info.setText("Compute a region and choose a tap to see its channels.")
        self._update_pager()
        self._emit_overlay()

    def set_tap(self, inspection: Inspection | None, name: str | None) -> None:
        if inspection is None or name is None or name not in inspection.taps:
            self.clear()
            return
        same_tap = self.tap_name == name
        self.inspection, self.tap_name = inspection, name
        self._reorder(keep_page=same_tap, keep_selection=same_tap)

    # --- drawing ---------------------------------------------------------------------------------
    def _reorder(self, keep_page: bool = False, keep_selection: bool = False) -> None:
        if self.inspection is None or self.tap_name is None:
            return
        tap = self.inspection.tap(self.tap_name)
        self.order = sort_channels(tap.stats, self.sort_key())
        if not keep_page:
            self.page = 0
        if not keep_selection or self.selected is None or self.selected >= tap.channels:
            self.selected = int(self.order[0]) if len(self.order) else None
        self._redraw()

    def _range_for(self, channel: int) -> tuple[float, float]:
        tap = self.inspection.tap(self.tap_name)
        signed = self.colormap().startswith("signed")
        if self.shared_scale():
            low, high = float(tap.stats.min.min()), float(tap.stats.max.max())
        else:
            low, high = float(tap.stats.min[channel]), float(tap.stats.max[channel])
        if signed:
            bound = max(abs(low), abs(high))
            return -bound, bound
        return low, high

    def _redraw(self) -> None:
        if self.inspection is None or self.tap_name is None:
            return
        self.page = min(max(0, self.page), self.page_count() - 1)
        tap = self.inspection.tap(self.tap_name)
        colormap = self.colormap()
        self.grid.blockSignals(True)
        self.grid.clear()
        current = None
        for channel in self.page_channels():
            values = tap.channel(channel)[: tap.valid[0], : tap.valid[1]]
            item = QListWidgetItem(QIcon(map_pixmap(values, colormap, self._range_for(channel), THUMB)), f"#{channel}")
            item.setData(Qt.ItemDataRole.UserRole, channel)
            item.setToolTip(f"Channel {channel}: mean {tap.stats.mean[channel]:.3g}, std {tap.stats.std[channel]:.3g}, "
                            f"range {tap.stats.min[channel]:.3g} to {tap.stats.max[channel]:.3g}")
            self.grid.addItem(item)
            if channel == self.selected:
                current = item
        if current is not None:
            self.grid.setCurrentItem(current)
        self.grid.blockSignals(False)
        self._update_pager()
        self._show_selected()

    def show_page(self, page: int) -> None:
        if self.inspection is None:
            return
        self.page = min(max(0, page), self.page_count() - 1)
        self._redraw()

    def _update_pager(self) -> None:
        total = len(self.order)
        if total == 0:
            self.page_label.setText("")
        else:
            first, last = self.page * PAGE_SIZE + 1, min(total, (self.page + 1) * PAGE_SIZE)
            self.page_label.setText(f"Page {self.page + 1} of {self.page_count()}: channels {first}-{last} of {total}")
        self.prev_button.setEnabled(self.page > 0)
        self.next_button.setEnabled(self.page + 1 < self.page_count())

    def _on_current_item(self, item: QListWidgetItem | None, _previous=None) -> None:
        if item is None:
            return
        self.select_channel(int(item.data(Qt.ItemDataRole.UserRole)))

    def select_channel(self, channel: int) -> None:
        if self.inspection is None or self.tap_name is None:
            return
        self.selected = int(channel)
        self._show_selected()
        self.channel_selected.emit(self.selected)

    def _show_selected(self) -> None:
        if self.inspection is None or self.selected is None:
            self.large.clear()
            self._emit_overlay()
            return
        tap = self.inspection.tap(self.tap_name)
        c = self.selected
        values = tap.channel(c)[: tap.valid[0], : tap.valid[1]]
        self.large.setPixmap(map_pixmap(values, self.colormap(), self._range_for(c), LARGE))
        rank = int(np.nonzero(self.order == c)[0][0]) + 1 if len(self.order) else 0
        low, high = self._range_for(c)
        flat = " (flat: one value everywhere)" if is_flat(float(tap.stats.min[c]), float(tap.stats.max[c])) else ""
        full = (f"<b>{self.tap_name}</b>, channel {c} (rank {rank} of {tap.channels} by "
                f"{self.sort_combo.currentText().lower()})<br>mean {tap.stats.mean[c]:.4g}, std {tap.stats.std[c]:.4g}"
                f"<br>min {tap.stats.min[c]:.4g}, max {tap.stats.max[c]:.4g}{flat}<br>colours span {low:.3g} to "
                f"{high:.3g}<br>grid {tap.shape[1]} x {tap.shape[2]}, one cell = {tap.scale[0]:g} x {tap.scale[1]:g} "
                "input px")
        # The short form fits under the large view; the tooltip holds every number.
        self.channel_info.setText(f"<b>channel {c}</b> (rank {rank} of {tap.channels})<br>mean "
                                  f"{tap.stats.mean[c]:.3g}, range {tap.stats.min[c]:.3g} to {tap.stats.max[c]:.3g}"
                                  f"{flat}")
        self.channel_info.setToolTip(full)
        self.large.setToolTip(full)
        self._emit_overlay()

    def overlay_values(self) -> np.ndarray | None:
        """The selected channel on the region's input grid, scaled to [0, 1] as in the large view."""
        if self.inspection is None or self.selected is None:
            return None
        tap = self.inspection.tap(self.tap_name)
        grid = to_input_grid(tap.channel(self.selected), tap.scale, self.inspection.input_shape)
        return normalise(grid, *self._range_for(self.selected))

    def show_overlay_again(self) -> None:
        """Put the overlay back up if it was on (the inspector was closed and is open again)."""
        if self._overlay_shown:
            self._emit_overlay()

    def _emit_overlay(self) -> None:
        values = self.overlay_values() if self.overlay_check.isChecked() else None
        if values is None:
            # Only take down what this browser put up: the canvas may be showing the prediction's confidence.
            if self._overlay_shown:
                self._overlay_shown = False
                self.overlay_changed.emit(None)
            return
        self._overlay_shown = True
        self.overlay_changed.emit((values, colormap_lut(self.colormap()), self.inspection.region.rect))
