"""The Review dock: how far the checking has come, the regions most uncertain first, and Next.

Counts read "Checked 3 of 20 regions (1 corrected)"; a region's row says how unsure the model was there
in percent and where (x, y of its top left corner), marked ✓ once looked at, ✎ once painted in, ▶ while
shown. A click on a row shows that region.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel, QListWidget, QListWidgetItem, QToolButton, QVBoxLayout, QWidget

LISTED = 200  # rows shown: the most uncertain regions; the counts cover them all


class ReviewPanel(QWidget):
    region_chosen = Signal(str)  # the region's key

    def __init__(self, next_region: QAction, next_image: QAction | None = None, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("reviewPanel")
        layout = QVBoxLayout(self)
        self.counts = QLabel("Predict first: the regions where the model was least sure are listed here")
        self.counts.setObjectName("reviewCounts")
        self.counts.setWordWrap(True)
        layout.addWidget(self.counts)
        self.next_button = QToolButton()
        self.next_button.setDefaultAction(next_region)
        self.next_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        layout.addWidget(self.next_button)
        self.regions = QListWidget()
        self.regions.setObjectName("reviewRegions")
        self.regions.itemActivated.connect(self._chosen)
        self.regions.itemClicked.connect(self._chosen)
        # Three rows at least; the list grows with the dock (the right-hand column is short on a laptop).
        self.regions.setMinimumHeight(3 * self.regions.fontMetrics().height() + 8)
        layout.addWidget(self.regions, 1)
        self.images = QLabel()
        self.images.setObjectName("reviewImages")
        self.images.setWordWrap(True)
        if next_image is not None:
            button = QToolButton()
            button.setDefaultAction(next_image)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            layout.addWidget(self.images)
            layout.addWidget(button)
        else:
            self.images.hide()

    def show_queue(self, queue) -> None:
        self.regions.clear()
        if queue is None:
            self.counts.setText("Predict first: the regions where the model was least sure are listed here")
            return
        self.counts.setText(queue.describe())
        for rank, region in enumerate(queue.regions[:LISTED], start=1):
            mark = "✎ " if region.corrected else "✓ " if region.checked else "▶ " if region is queue.current else ""
            item = QListWidgetItem(f"{mark}{rank}. {region.uncertainty:.0%} unsure at ({region.x0:,}, {region.y0:,})")
            item.setToolTip("corrected: painted by hand" if region.corrected else "checked: looked at"
                            if region.checked else "shown now" if region is queue.current else "not checked yet")
            item.setData(Qt.ItemDataRole.UserRole, region.key)
            self.regions.addItem(item)

    def show_images(self, text: str) -> None:
        self.images.setText(text)

    def _chosen(self, item: QListWidgetItem) -> None:
        self.region_chosen.emit(item.data(Qt.ItemDataRole.UserRole))
