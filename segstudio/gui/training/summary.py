"""The summary of a finished fine-tune: the new version, whether it was promoted, and its scores next to
its parent's."""
from __future__ import annotations

import math

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from segstudio.core.words import count
from segstudio.gui.training.process import TrainingOutcome


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def metric_rows(parent: dict | None, child: dict | None) -> list[tuple[str, float | None, float | None]]:
    """(label, parent value, new value): mean IoU first, then the IoU of every class either one scored."""
    parent, child = parent or {}, child or {}
    rows = [("Mean IoU", _number(parent.get("mean_iou")), _number(child.get("mean_iou")))]
    names: list[str] = []
    for source in (parent.get("iou") or {}, child.get("iou") or {}):
        names += [n for n in source if n not in names]
    for name in names:
        rows.append((f"IoU: {name}", _number((parent.get("iou") or {}).get(name)),
                     _number((child.get("iou") or {}).get(name))))
    rows.append(("Mean Dice", _number(parent.get("mean_dice")), _number(child.get("mean_dice"))))
    if "border_dice" in parent or "border_dice" in child:  # a model with a border output, images with objects
        rows.append(("Borders between objects (Dice)", _number(parent.get("border_dice")),
                     _number(child.get("border_dice"))))
    rows.append(("Validation loss", _number(parent.get("loss")), _number(child.get("loss"))))
    return rows


class TrainingSummaryDialog(QDialog):
    def __init__(self, outcome: TrainingOutcome, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("trainingSummaryDialog")
        self.setWindowTitle("Fine-tuning Finished")
        self.outcome = outcome
        layout = QVBoxLayout(self)
        parent_id = outcome.parent or "the parent"
        headline = QLabel(f"<b>{outcome.version}</b> was saved as a new version of the model library.")
        headline.setWordWrap(True)
        layout.addWidget(headline)
        if outcome.promoted:
            verdict = (f"It scores at least as well as {parent_id} on the images set aside for checking, so it is "
                       "<b>now in use</b>: the Model panel has selected it.")
        else:
            verdict = (f"{parent_id} was <b>kept in use</b> because the new version scored lower on the images set "
                       "aside for checking. The new version is listed in the Model panel if you want to compare "
                       "them on your images.")
        self.verdict = QLabel(verdict)
        self.verdict.setObjectName("promotionLabel")
        self.verdict.setWordWrap(True)
        layout.addWidget(self.verdict)

        rows = metric_rows(outcome.parent_metrics, outcome.child_metrics)
        self.table = QTableWidget(len(rows), 3)
        self.table.setObjectName("metricsTable")
        self.table.setHorizontalHeaderLabels([f"Parent\n{parent_id}", f"New\n{outcome.version}", "Change"])
        self.table.setVerticalHeaderLabels([label for label, _, _ in rows])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        lower_is_better = {"Validation loss"}
        for r, (label, before, after) in enumerate(rows):
            for c, value in enumerate((before, after)):
                item = QTableWidgetItem(
                    "-" if value is None else f"{value:.3f}" if "loss" not in label else f"{value:.4f}"
                )
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
            change = QTableWidgetItem("")
            if before is not None and after is not None:
                delta = after - before
                change.setText(f"{delta:+.3f}" if "loss" not in label else f"{delta:+.4f}")
                better = delta < 0 if label in lower_is_better else delta > 0
                if abs(delta) >= 5e-4:
                    change.setForeground(QBrush(QColor(30, 140, 60) if better else QColor(200, 50, 40)))
            change.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(r, 2, change)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setMinimumSectionSize(90)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._fit_table()
        layout.addWidget(self.table)

        done = outcome.done_event
        details = []
        if done is not None and done.steps is not None:
            epochs = count(done.epochs, "epoch") if done.epochs is not None else "? epochs"
            details.append(f"{count(done.steps, 'step')} in {epochs}")
        images = (outcome.child_metrics or {}).get("images")
        if isinstance(images, int):
            details.append(f"scored on {images} validation image{'s' if images != 1 else ''}")
        total_s = (done.timing if done is not None else {}).get("total_s")
        if isinstance(total_s, (int, float)):
            details.append(f"took {total_s:.0f} s" if total_s < 120 else f"took {total_s / 60:.1f} min")
        if details:
            info = QLabel("; ".join(details).capitalize() + ".")
            info.setWordWrap(True)
            layout.addWidget(info)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        layout.addWidget(buttons)

    def _fit_table(self) -> None:
        # The whole table without scrolling: a handful of rows, and the point is to compare them at a glance.
        table = self.table
        table.resizeColumnsToContents()
        table.resizeRowsToContents()
        frame = 2 * table.frameWidth()
        width = table.verticalHeader().width() + frame + sum(table.columnWidth(c) for c in range(table.columnCount()))
        height = table.horizontalHeader().height() + frame + sum(table.rowHeight(r) for r in range(table.rowCount()))
        table.setFixedSize(width + 2, min(height + 2, 480))

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._fit_table()  # header sizes are final only once the table is polished and shown
        self.adjustSize()
