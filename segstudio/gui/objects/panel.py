"""The Objects dock: one row per object (sortable), the per-class summary, the pixel size and Export CSV."""
from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QSortFilterProxyModel, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from segstudio.core.objects.measure import Measurements, summarise

_HEADERS = {"id": "Object", "class": "Class", "area_px": "Area (px)", "area_um2": "Area (µm²)",
            "perimeter_px": "Perimeter (px)", "perimeter_um": "Perimeter (µm)", "centroid_x": "X",
            "centroid_y": "Y", "corrected": "Corrected", "model": "Model"}


class ObjectTableModel(QAbstractTableModel):
    """The rows of a Measurements, read in place: 5,000 objects cost no widget each."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.columns: list[str] = []
        self.rows: list[dict] = []

    def set_table(self, table: Measurements | None) -> None:
        self.beginResetModel()
        self.columns = list(table.columns) if table else []
        self.rows = list(table.rows) if table else []
        self.endResetModel()

    def rowCount(self, parent=None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self.rows)

    def columnCount(self, parent=None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self.columns)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        value = self.rows[index.row()].get(self.columns[index.column()])
        if role == Qt.ItemDataRole.DisplayRole:
            return "yes" if value is True else "" if value is False else value
        if role == Qt.ItemDataRole.UserRole:  # what sorting compares: numbers as numbers
            return value
        return None

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            name = self.columns[section]
            return _HEADERS.get(name, name.capitalize())
        return None

    def object_id(self, row: int) -> int:
        return int(self.rows[row]["id"])


class ObjectsPanel(QWidget):
    object_activated = Signal(int)  # a row was clicked: its object id
    export_csv_requested = Signal()
    pixel_size_changed = Signal(float)  # micrometres per pixel; 0: unknown

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("objectsPanel")
        self.model = ObjectTableModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(Qt.ItemDataRole.UserRole)
        self.table = QTableView()
        self.table.setObjectName("objectsTable")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.clicked.connect(self._clicked)
        self.summary = QLabel("No objects yet: View > Object View finds them.")
        self.summary.setObjectName("objectsSummary")
        self.summary.setWordWrap(True)
        self.pixel_size = QDoubleSpinBox()
        self.pixel_size.setObjectName("pixelSize")
        self.pixel_size.setDecimals(4)
        self.pixel_size.setRange(0.0, 1000.0)
        self.pixel_size.setSingleStep(0.01)
        self.pixel_size.setSpecialValueText("unknown")
        self.pixel_size.setSuffix(" µm")
        self.pixel_size.setToolTip("Side of one pixel in micrometres (read from the file when it says; "
                                   "set it here for this image)")
        self.pixel_size.editingFinished.connect(lambda: self.pixel_size_changed.emit(self.pixel_size.value()))
        self.export_button = QPushButton("Export CSV...")
        self.export_button.setObjectName("exportCsv")
        self.export_button.clicked.connect(self.export_csv_requested)
        row = QHBoxLayout()
        row.addWidget(QLabel("Pixel size"))
        row.addWidget(self.pixel_size)
        row.addStretch(1)
        row.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addLayout(row)
        layout.addWidget(self.table, 1)

    def show_table(self, table: Measurements | None) -> None:
        sort = self.table.horizontalHeader().sortIndicatorSection(), self.table.horizontalHeader().sortIndicatorOrder()
        self.model.set_table(table)
        if sort[0] >= 0:
            self.proxy.sort(sort[0], sort[1])
        self.export_button.setEnabled(bool(table and table.rows))
        self.summary.setText(_summary_text(table))

    def set_pixel_size(self, value: float | None) -> None:
        self.pixel_size.blockSignals(True)
        self.pixel_size.setValue(value or 0.0)
        self.pixel_size.blockSignals(False)

    def select_object(self, object_id: int) -> None:
        for row in range(self.proxy.rowCount()):
            if self.model.object_id(self.proxy.mapToSource(self.proxy.index(row, 0)).row()) == object_id:
                self.table.selectRow(row)
                self.table.scrollTo(self.proxy.index(row, 0))
                return

    def _clicked(self, index) -> None:
        self.object_activated.emit(self.model.object_id(self.proxy.mapToSource(index).row()))


def _summary_text(table: Measurements | None) -> str:
    if table is None:
        return "No objects yet: View > Object View finds them."
    parts = []
    for entry in summarise(table):
        text = f"{entry['class']}: {entry['count']} objects, mean area {entry['mean_area_px']:g} px"
        if entry["density_per_mm2"] is not None:
            text += f", {entry['density_per_mm2']:g} per mm²"
        parts.append(text)
    return "; ".join(parts) if parts else "No objects in this image."
