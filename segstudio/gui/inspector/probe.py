"""Pixel probe: one pixel's activation through the network, drawn as bars, and its class probabilities."""
from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from segstudio.engine.inspect import PixelProbe

KIND_COLOURS = {
    "encoder": QColor(90, 150, 230),
    "context": QColor(170, 120, 220),
    "skip": QColor(240, 170, 60),
    "decoder": QColor(90, 190, 120),
    "fusion": QColor(220, 110, 110),
    "logits": QColor(200, 200, 200),
}
ROW = 18
VALUE_WIDTH = 96
LABEL_WIDTH = 190
CLASS_COLOURS = [QColor(140, 140, 140), QColor(230, 80, 60), QColor(70, 170, 240), QColor(250, 200, 50),
                 QColor(120, 220, 120), QColor(200, 110, 230)]


class ProbeChart(QWidget):
    """Per tap, two bars on one shared axis: mean over channels (solid) and max over channels (outline),
    at the pixel's cell in that tap's grid. Then one bar per class for its probability."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("probeChart")
        self.probe: PixelProbe | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)

    def set_probe(self, probe: PixelProbe | None) -> None:
        self.probe = probe
        self.updateGeometry()
        self.setMinimumHeight(self.sizeHint().height())
        self.update()

    def sizeHint(self) -> QSize:
        rows = 0 if self.probe is None else len(self.probe.rows) + len(self.probe.probabilities) + 4
        return QSize(420, max(80, rows * ROW + 16))

    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.fillRect(self.rect(), self.palette().base())
        text_pen = QPen(self.palette().text().color())
        painter.setPen(text_pen)
        metrics = QFontMetrics(painter.font())
        if self.probe is None:
            painter.drawText(self.rect().adjusted(8, 8, -8, -8), Qt.TextFlag.TextWordWrap,
                             "Switch on Probe and click a pixel (or Ctrl+click one) to follow it through the network.")
            return
        probe = self.probe
        width = self.width()
        plot_left, plot_right = LABEL_WIDTH + 8, width - VALUE_WIDTH - 8
        values = [v for row in probe.rows for v in (row.mean, row.max)] or [1.0]
        low, high = min(0.0, min(values)), max(0.0, max(values))
        span = (high - low) or 1.0

        def x_of(value: float) -> float:
            return plot_left + (value - low) / span * max(1, plot_right - plot_left)

        bold = QFont(painter.font())
        bold.setBold(True)
        y = 4
        painter.setFont(bold)
        painter.drawText(QRectF(4, y, width - 8, ROW), Qt.AlignmentFlag.AlignVCenter,
                         f"Pixel x {probe.x}, y {probe.y}: mean (bar) / max (outline) over channels")
        painter.setFont(self.font())
        y += ROW + 2
        zero = x_of(0.0)
        top = y
        for row in probe.rows:
            colour = KIND_COLOURS.get(row.kind, QColor(160, 160, 160))
            label = metrics.elidedText(row.name, Qt.TextElideMode.ElideRight, LABEL_WIDTH - 8)
            painter.setPen(text_pen)
            painter.drawText(QRectF(4, y, LABEL_WIDTH, ROW), Qt.AlignmentFlag.AlignVCenter, label)
            x_mean, x_max = x_of(row.mean), x_of(row.max)
            painter.fillRect(QRectF(min(zero, x_mean), y + 4, abs(x_mean - zero), ROW - 8), colour)
            painter.setPen(QPen(colour.darker(130), 1.2))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(QRectF(min(zero, x_max), y + 2, abs(x_max - zero), ROW - 4))
            painter.setPen(text_pen)
            painter.drawText(QRectF(plot_right + 4, y, VALUE_WIDTH, ROW), Qt.AlignmentFlag.AlignVCenter,
                             f"{row.mean:.2g} / {row.max:.2g}")
            y += ROW
        painter.setPen(QPen(self.palette().mid().color(), 1, Qt.PenStyle.DashLine))
        painter.drawLine(int(zero), top, int(zero), y)
        painter.setPen(text_pen)
        painter.drawText(QRectF(plot_left - 30, y, 60, ROW), Qt.AlignmentFlag.AlignCenter, f"{low:.3g}")
        painter.drawText(QRectF(plot_right - 30, y, 60, ROW), Qt.AlignmentFlag.AlignCenter, f"{high:.3g}")
        y += ROW + 6
        painter.setFont(bold)
        painter.drawText(QRectF(4, y, width - 8, ROW), Qt.AlignmentFlag.AlignVCenter, "Class probabilities")
        painter.setFont(self.font())
        y += ROW
        for index, (name, p) in enumerate(probe.probabilities):
            painter.setPen(text_pen)
            painter.drawText(QRectF(4, y, LABEL_WIDTH, ROW), Qt.AlignmentFlag.AlignVCenter,
                             metrics.elidedText(name, Qt.TextElideMode.ElideRight, LABEL_WIDTH - 8))
            length = p * max(1, plot_right - plot_left)
            painter.fillRect(QRectF(plot_left, y + 3, length, ROW - 6), CLASS_COLOURS[index % len(CLASS_COLOURS)])
            painter.drawText(QRectF(plot_right + 4, y, 60, ROW), Qt.AlignmentFlag.AlignVCenter, f"{p:.1%}")
            y += ROW
        painter.end()
