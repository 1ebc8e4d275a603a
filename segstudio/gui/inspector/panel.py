"""Network inspector dock: the active model drawn as its shape (diagram.py; the taps as a list beside it),
the region they were computed on, and the views of the chosen tap (its maps, skip connections side by side,
why a pixel got its class, the pixel probe), plus export.

The panel shows state and forwards intent; inspector/controller.py asks the model host for the passes
and talks to the canvas.
"""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from segstudio.engine.inspect import Inspection
from segstudio.gui.inspector.diagram import NetworkDiagram
from segstudio.gui.inspector.grid import ChannelBrowser
from segstudio.gui.inspector.probe import KIND_COLOURS, ProbeChart
from segstudio.gui.inspector.skips import SkipComparisonView
from segstudio.gui.inspector.why import WhyView

# Display groups in the order data flows through a segmentation network. Context branches (ASPP, pyramid
# pooling, the U-Net bottleneck, FCN's fc6/fc7) sit between encoder and decoder, so they get their own group.
TAP_GROUPS = [
    ("Encoder", ("encoder",)),
    ("Context", ("context",)),
    ("Skip connections", ("skip",)),
    ("Decoder and fusion", ("decoder", "fusion")),
    ("Output", ("logits",)),
]
GROUP_TIPS = {
    "Encoder": "Layers that shrink the image into ever more abstract feature maps.",
    "Context": "Layers that look at a wide neighbourhood at once: the bottleneck, ASPP branches, pyramid "
               "pooling or FCN's former classifier layers.",
    "Skip connections": "Fine detail carried from the encoder straight to the decoder.",
    "Decoder and fusion": "Layers that bring the maps back to full size and combine them with the skips.",
    "Output": "Per-class scores; the highest becomes the label.",
}
REGION_SIZES = (128, 256, 384, 512)
LARGE_VIEW_CHOICES = [("centre crop", "crop"), ("downsample", "downsample")]

NAME_ROLE = Qt.ItemDataRole.UserRole
PANEL_WIDTH = 460


def first_sentence(text: str) -> str:
    head = text.split(". ")[0].split(": ")[0]
    return head if head.endswith(".") else head + "."


class InspectorPanel(QWidget):
    compute_requested = Signal()
    probe_mode_toggled = Signal(bool)
    tap_selected = Signal(str)
    save_png_requested = Signal()
    save_tap_requested = Signal()

    MAPS_TAB, SKIPS_TAB, PROBE_TAB, WHY_TAB = range(4)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("inspectorPanel")
        self.specs = []
        self.inspection: Inspection | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setSpacing(2)

        # One row of controls and one of text, so the maps get the height of a laptop screen.
        controls = self._build_region_controls()
        controls.addLayout(self._build_export_buttons())
        layout.addLayout(controls)
        texts = QHBoxLayout()
        self.model_label = QLabel("No model selected.")
        self.model_label.setObjectName("inspectorModel")
        self.model_label.setWordWrap(True)
        self.region_label = QLabel("No region computed yet.")
        self.region_label.setObjectName("regionLabel")
        self.region_label.setWordWrap(True)
        texts.addWidget(self.model_label, 2)
        texts.addWidget(self.region_label, 3)
        layout.addLayout(texts)

        layout.addWidget(self._build_splitter(), 1)

        self.compute_button.clicked.connect(self.compute_requested)
        self.probe_button.toggled.connect(self.probe_mode_toggled)
        self.save_png_button.clicked.connect(self.save_png_requested)
        self.save_tap_button.clicked.connect(self.save_tap_requested)
        self.set_specs([])

    def _build_region_controls(self) -> QHBoxLayout:
        """Compute, probe, and how large a region to compute and how to fit a larger view into it."""
        controls = QHBoxLayout()
        self.compute_button = QPushButton("Compute for view")
        self.compute_button.setObjectName("computeForView")
        self.compute_button.setToolTip("Run the network once on the part of the image in view and capture every tap")
        self.probe_button = QPushButton("Probe")
        self.probe_button.setObjectName("probeButton")
        self.probe_button.setCheckable(True)
        self.probe_button.setToolTip("Click a pixel on the image to follow it through the network "
                                     "(Ctrl+click works in any tool)")
        self.size_combo = QComboBox()
        self.size_combo.setObjectName("regionSizeCombo")
        for size in REGION_SIZES:
            self.size_combo.addItem(f"≤ {size} px", size)
        self.size_combo.setCurrentIndex(len(REGION_SIZES) - 1)
        self.size_combo.setToolTip("Largest region side the taps are computed for; bounds time and memory")
        self.large_combo = QComboBox()
        self.large_combo.setObjectName("largeViewCombo")
        for text, value in LARGE_VIEW_CHOICES:
            self.large_combo.addItem(text, value)
        self.large_combo.setToolTip("A view larger than the cap: compute the centre at full resolution, or the "
                                    "whole view averaged over pixel blocks (the network then sees objects smaller)")
        controls.addWidget(self.compute_button)
        controls.addWidget(self.probe_button)
        controls.addWidget(self.size_combo)
        controls.addWidget(self.large_combo, 1)
        return controls

    def _build_splitter(self) -> QSplitter:
        """The tap list above (or beside, see set_wide) the tabs that show the chosen tap."""
        splitter = self.splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setChildrenCollapsible(False)
        splitter.addWidget(self._build_tap_list())
        splitter.addWidget(self._build_tabs())
        self.tree.setMinimumHeight(110)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([500, 500])
        return splitter

    def _build_tap_list(self) -> QWidget:
        """The network as a diagram, and as a list on a second tab; the chosen tap's description below."""
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        self.network_tabs = QTabWidget()
        self.network_tabs.setObjectName("networkTabs")
        self.diagram = NetworkDiagram()
        self.diagram.tap_clicked.connect(self.show_tap_maps)
        self.diagram.skip_clicked.connect(self.show_skip_pair)
        self.network_tabs.addTab(self.diagram, "Network")
        self.network_tabs.setTabToolTip(0, "The network drawn as its shape: levels from full size (top) to "
                                           "coarsest (bottom), skip connections as orange arcs. Click a "
                                           "layer for its maps, an arc for the pair it joins.")
        self.tree = QTreeWidget()
        self.tree.setObjectName("tapTree")
        self.tree.setColumnCount(4)
        self.tree.setHeaderLabels(["Tap", "C x h x w", "Scale", "What it is"])
        self.tree.setRootIsDecorated(True)
        self.tree.setUniformRowHeights(True)
        header = self.tree.header()
        # Long tap names elide (the full name is in the tooltip and below the list) so the shapes stay in sight.
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(0, 170)
        header.setMinimumSectionSize(40)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.tree.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.tree.currentItemChanged.connect(self._on_tree_item)
        self.network_tabs.addTab(self.tree, "List")
        top_layout.addWidget(self.network_tabs, 1)
        self.description = QLabel("")
        self.description.setObjectName("tapDescription")
        self.description.setWordWrap(True)
        self.description.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        # Layouts do not reserve height for wrapped lines; without this the text runs over the tap list.
        self.description.setMinimumHeight(2 * self.description.fontMetrics().lineSpacing() + 4)
        top_layout.addWidget(self.description)
        return top

    def _build_tabs(self) -> QTabWidget:
        self.tabs = QTabWidget()
        self.tabs.setObjectName("inspectorTabs")
        self.channels = ChannelBrowser()
        self.skips = SkipComparisonView()
        self.probe_chart = ProbeChart()
        probe_scroll = QScrollArea()
        probe_scroll.setWidgetResizable(True)
        probe_scroll.setWidget(self.probe_chart)
        self.why = WhyView()
        self.tabs.addTab(self.channels, "Maps")
        self.tabs.addTab(self.skips, "Skip connections")
        self.tabs.addTab(probe_scroll, "Pixel probe")
        self.tabs.addTab(self.why, "Why this pixel")
        self.tabs.setTabToolTip(self.WHY_TAB, "Ctrl+click a pixel (or use Probe): which levels and skip "
                                              "connections pushed its class, in numbers and words")
        return self.tabs

    def _build_export_buttons(self) -> QHBoxLayout:
        exports = QHBoxLayout()
        self.save_png_button = QPushButton("Save view as PNG…")
        self.save_png_button.setToolTip("The inspector as it looks now, as a picture")
        self.save_png_button.setObjectName("saveInspectorPng")
        self.save_tap_button = QPushButton("Save tap…")
        self.save_tap_button.setObjectName("saveTap")
        self.save_tap_button.setToolTip("The chosen tap's full tensor as .npy or TIFF (float32, C x h x w)")
        exports.addWidget(self.save_png_button)
        exports.addWidget(self.save_tap_button)
        return exports

    def set_wide(self, wide: bool) -> None:
        """Side by side (tap list | maps) in a wide, low dock; stacked in a tall, narrow one."""
        self.splitter.setOrientation(Qt.Orientation.Horizontal if wide else Qt.Orientation.Vertical)

    def hasHeightForWidth(self) -> bool:
        # Wrapped labels give the layout a height-for-width, which the dock's scroll area would honour with
        # the preferred height and scroll a dock that has room; the panel fills the dock, and scrolls only
        # below its minimum height.
        return False

    def sizeHint(self) -> QSize:
        # A width that does not follow the content: otherwise every new result would widen the dock and move
        # the slide under the user's cursor (and change the very view the result was computed for).
        return QSize(PANEL_WIDTH, super().sizeHint().height())

    # --- state in ----------------------------------------------------------------------------------
    def region_cap(self) -> int:
        return int(self.size_combo.currentData())

    def large_view_mode(self) -> str:
        return self.large_combo.currentData()

    def set_model_text(self, text: str) -> None:
        self.model_label.setText(text)

    def set_region_text(self, text: str, stale: bool = False) -> None:
        self.region_label.setText(text)
        self.region_label.setStyleSheet("color: #d08a00;" if stale else "")

    def set_busy(self, busy: bool) -> None:
        self.compute_button.setEnabled(not busy and bool(self.specs))
        self.compute_button.setText("Computing…" if busy else "Compute for view")

    def set_specs(self, specs) -> None:
        """List a model's taps (no region yet: shapes are filled in once one is computed)."""
        self.specs = list(specs)
        self.inspection = None
        self._fill_tree()
        self.compute_button.setEnabled(bool(self.specs))
        self.save_tap_button.setEnabled(False)
        self.channels.clear()
        self.skips.set_inspection(None)
        self.probe_chart.set_probe(None)
        self.why.set_explanation(None)
        self.diagram.set_specs(self.specs)

    def set_inspection(self, inspection: Inspection | None, preview: bool = False) -> None:
        """Show a region's taps; a preview (a quick pass at reduced resolution) fills the diagram only."""
        self.diagram.set_inspection(inspection, preview)
        if preview:
            return
        keep = self.selected_tap()
        self.inspection = inspection
        self._fill_tree()
        self.save_tap_button.setEnabled(inspection is not None)
        self.skips.set_inspection(inspection)
        if inspection is None:
            self.channels.clear()
            return
        name = keep if keep in inspection.taps else next(iter(inspection.taps), None)
        if name is not None:
            self.select_tap(name)

    # --- tap tree ----------------------------------------------------------------------------------
    def _fill_tree(self) -> None:
        self.tree.blockSignals(True)
        self.tree.clear()
        bold = QFont(self.tree.font())
        bold.setBold(True)
        for title, kinds in TAP_GROUPS:
            members = [s for s in self.specs if s.kind in kinds]
            if not members:
                continue
            group = QTreeWidgetItem([title])
            group.setFont(0, bold)
            group.setFlags(Qt.ItemFlag.ItemIsEnabled)
            group.setToolTip(0, GROUP_TIPS.get(title, ""))
            self.tree.addTopLevelItem(group)
            group.setFirstColumnSpanned(True)
            for spec in members:
                item = QTreeWidgetItem([spec.name, "", "", first_sentence(spec.description)])
                item.setData(0, NAME_ROLE, spec.name)
                item.setToolTip(0, f"{spec.name}: {spec.description}")
                item.setToolTip(3, spec.description)
                item.setForeground(0, QBrush(KIND_COLOURS.get(spec.kind, QColor(160, 160, 160)).darker(115)))
                if self.inspection is not None and spec.name in self.inspection.taps:
                    tap = self.inspection.tap(spec.name)
                    item.setText(1, tap.describe_shape())
                    item.setText(2, f"1/{tap.stride:g}" if tap.stride != 1 else "1")
                else:
                    item.setText(1, "–")
                group.addChild(item)
            group.setExpanded(True)
        self.tree.blockSignals(False)

    def listed_taps(self) -> list[tuple[str, str, str]]:
        """(group title, tap name, shape text) as listed, top to bottom."""
        rows = []
        for g in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(g)
            for c in range(group.childCount()):
                item = group.child(c)
                rows.append((group.text(0), item.data(0, NAME_ROLE), item.text(1)))
        return rows

    def _item_for(self, name: str) -> QTreeWidgetItem | None:
        for g in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(g)
            for c in range(group.childCount()):
                if group.child(c).data(0, NAME_ROLE) == name:
                    return group.child(c)
        return None

    def selected_tap(self) -> str | None:
        item = self.tree.currentItem()
        return item.data(0, NAME_ROLE) if item is not None else None

    def select_tap(self, name: str) -> None:
        item = self._item_for(name)
        if item is None:
            raise KeyError(f"no tap {name!r} listed")
        if self.tree.currentItem() is item:
            self._show_tap(name)
        else:
            self.tree.setCurrentItem(item)

    def _on_tree_item(self, item: QTreeWidgetItem | None, _previous=None) -> None:
        name = item.data(0, NAME_ROLE) if item is not None else None
        if name:
            self._show_tap(name)

    def _show_tap(self, name: str) -> None:
        spec = next((s for s in self.specs if s.name == name), None)
        if spec is not None:
            self.description.setText(f"<b>{spec.name}</b> ({spec.kind}): {spec.description}")
        self.channels.set_tap(self.inspection, name)
        self.diagram.select(name)
        self.tap_selected.emit(name)

    # --- diagram clicks ----------------------------------------------------------------------------
    def show_tap_maps(self, name: str) -> None:
        """A node was clicked: that tap's maps."""
        self.select_tap(name)
        self.tabs.setCurrentIndex(self.MAPS_TAB)

    def show_skip_pair(self, skip: str) -> None:
        """A skip arc was clicked: what the skip carries, what it meets and what they make, side by side."""
        self.skips.select(skip)
        self.tabs.setCurrentIndex(self.SKIPS_TAB)
