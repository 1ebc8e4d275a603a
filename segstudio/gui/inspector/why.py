"""Why this pixel: the answer in plain sentences first, then the numbers behind it (the class score with and
without each skip connection, and each layer's push on the score), from engine.inspect_why."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import QHeaderView, QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from segstudio.engine.inspect_why import Explanation, level_size

UP, DOWN = QColor(60, 170, 90), QColor(210, 80, 70)


class WhyView(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("whyView")
        self.explanation: Explanation | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.answer = QLabel("")
        self.answer.setObjectName("whyAnswer")
        self.answer.setWordWrap(True)
        self.answer.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.answer.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.answer)
        self.table = QTreeWidget()
        self.table.setObjectName("whyNumbers")
        self.table.setHeaderLabels(["What", "Size", "Change in score", "Details"])
        self.table.setRootIsDecorated(True)
        header = self.table.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        layout.addWidget(self.table, 1)
        self.set_explanation(None)

    def set_waiting(self, x: int, y: int) -> None:
        self.answer.setText(f"Working out why pixel ({x}, {y}) got its class…")
        self.table.clear()

    def set_explanation(self, explanation: Explanation | None) -> None:
        self.explanation = explanation
        self.table.clear()
        if explanation is None:
            self.answer.setText("Ctrl+click a pixel on the image (or press Probe and click) to see which levels "
                                "and skip connections made the network draw it.")
            return
        first, *rest = explanation.sentences
        self.answer.setText(f"<b>Pixel ({explanation.x}, {explanation.y}).</b> {first}<br>" + "<br>".join(rest))
        self.answer.setToolTip(f"Computed on the {explanation.window[2]} x {explanation.window[3]} px window "
                               f"around the pixel at x {explanation.window[0]}, y {explanation.window[1]}.")
        bold = QFont(self.table.font())
        bold.setBold(True)
        cls = explanation.class_name
        if explanation.skips:
            group = self._group("Skip connections switched off one at a time", bold)
            for skip in sorted(explanation.skips, key=lambda s: -abs(s.delta)):
                self._row(group, skip.name, skip.level, skip.delta,
                          f"{cls} score {skip.with_skip:.2f} with it, {skip.without_skip:.2f} without")
        group = self._group("Each layer's push on the score (gradient x activation)", bold)
        for push in explanation.pushes:
            self._row(group, push.name, push.level, push.push, f"{push.kind}: "
                      + ("for " if push.push >= 0 else "against ") + cls)

    def _group(self, title: str, font: QFont) -> QTreeWidgetItem:
        group = QTreeWidgetItem([title])
        group.setFont(0, font)
        self.table.addTopLevelItem(group)
        group.setFirstColumnSpanned(True)
        group.setExpanded(True)
        return group

    def _row(self, group: QTreeWidgetItem, name: str, level, value: float, details: str) -> None:
        item = QTreeWidgetItem([name, level_size(level), f"{value:+.2f}", details])
        item.setForeground(2, QBrush(UP if value >= 0 else DOWN))
        for column in range(4):
            item.setToolTip(column, f"{name}: {details} ({value:+.3f})")
        group.addChild(item)

    def rows(self) -> dict[str, list[tuple[str, str]]]:
        """{group title: [(name, change text)]} as shown."""
        shown = {}
        for g in range(self.table.topLevelItemCount()):
            group = self.table.topLevelItem(g)
            shown[group.text(0)] = [(group.child(c).text(0), group.child(c).text(2)) for c in range(group.childCount())]
        return shown
