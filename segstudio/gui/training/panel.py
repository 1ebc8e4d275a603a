"""Training dock: progress, ETA, Cancel, and a live plot of the loss and the validation IoU of a fine-tune."""
from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPainterPath, QPalette, QPen
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from segstudio.engine.training import events
from segstudio.gui.progress import format_eta

LOSS_COLOR = QColor(52, 120, 246)
IOU_COLOR = QColor(230, 126, 34)


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k that is >= value, so axis labels stay short."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        candidate = step * 10 ** exponent
        if candidate >= value * (1 - 1e-9):
            return candidate
    return 10 ** (exponent + 1)


class LossIouPlot(QWidget):
    """Training loss per reported step (left axis) and validation IoU per epoch (right axis, 0..1).

    The parent's validation IoU is a dashed line: the new version is promoted only if it ends above it.
    """

    MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 52, 44, 26, 30

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("lossIouPlot")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 160)
        self.clear()

    def clear(self) -> None:
        self.losses: list[tuple[int, float]] = []
        self.ious: list[tuple[int, float]] = []
        self.parent_iou: float | None = None
        self.total_steps = 0
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(560, 180)

    def set_total_steps(self, total: int) -> None:
        self.total_steps = max(0, int(total))
        self.update()

    def add_loss(self, step: int, loss: float) -> None:
        if math.isfinite(loss):
            self.losses.append((int(step), float(loss)))
            self.update()

    def add_iou(self, step: int, iou: float) -> None:
        if math.isfinite(iou):
            self.ious.append((int(step), float(iou)))
            self.update()

    def set_parent_iou(self, iou: float | None) -> None:
        self.parent_iou = iou if iou is not None and math.isfinite(iou) else None
        self.update()

    # --- drawing -------------------------------------------------------------------------------
    def _plot_rect(self) -> QRectF:
        return QRectF(self.MARGIN_LEFT, self.MARGIN_TOP,
                      max(1, self.width() - self.MARGIN_LEFT - self.MARGIN_RIGHT),
                      max(1, self.height() - self.MARGIN_TOP - self.MARGIN_BOTTOM))

    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        painter.fillRect(self.rect(), palette.color(QPalette.ColorRole.Base))
        text_color = palette.color(QPalette.ColorRole.Text)
        grid_color = QColor(text_color)
        grid_color.setAlpha(40)
        font = QFont(self.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.85))
        painter.setFont(font)
        rect = self._plot_rect()

        last_step = max([s for s, _ in self.losses] + [s for s, _ in self.ious] + [0])
        x_max = max(self.total_steps, last_step, 1)
        loss_max = _nice_ceiling(max((v for _, v in self.losses), default=1.0) * 1.05)

        def x_of(step: float) -> float:
            return rect.left() + rect.width() * step / x_max

        def y_loss(value: float) -> float:
            return rect.bottom() - rect.height() * min(value, loss_max) / loss_max

        def y_iou(value: float) -> float:
            return rect.bottom() - rect.height() * min(max(value, 0.0), 1.0)

        empty = not self.losses and not self.ious
        self._draw_axes(painter, rect, x_max, loss_max, empty, text_color, grid_color)

        painter.save()
        painter.setClipRect(rect.adjusted(-4, -4, 4, 4))
        if self.parent_iou is not None:
            pen = QPen(IOU_COLOR.darker(130), 1.2, Qt.PenStyle.DashLine)
            painter.setPen(pen)
            y = y_iou(self.parent_iou)
            painter.drawLine(QPointF(rect.left(), y), QPointF(rect.right(), y))
        if self.losses:
            path = QPainterPath(QPointF(x_of(self.losses[0][0]), y_loss(self.losses[0][1])))
            for step, value in self.losses[1:]:
                path.lineTo(x_of(step), y_loss(value))
            painter.setPen(QPen(LOSS_COLOR, 1.8))
            painter.drawPath(path)
        if self.ious:
            painter.setPen(QPen(IOU_COLOR, 2.0))
            points = [QPointF(x_of(s), y_iou(v)) for s, v in self.ious]
            for a, b in zip(points, points[1:]):
                painter.drawLine(a, b)
            painter.setBrush(IOU_COLOR)
            for p in points:
                painter.drawEllipse(p, 3.2, 3.2)
        painter.restore()

        if empty:
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, "Waiting for the first training step...")
        self._draw_legend(painter, text_color)
        painter.end()

    def _draw_axes(self, painter: QPainter, rect: QRectF, x_max: int, loss_max: float, empty: bool,
                   text_color: QColor, grid_color: QColor) -> None:
        # Grid and axes: four horizontal divisions shared by both scales. Without data there is no scale
        # to label yet, only the frame and a line saying what will appear.
        metrics = painter.fontMetrics()

        def x_of(step: float) -> float:
            return rect.left() + rect.width() * step / x_max

        for k in range(5):
            y = rect.bottom() - rect.height() * k / 4
            painter.setPen(QPen(grid_color, 1))
            painter.drawLine(QPointF(rect.left(), y), QPointF(rect.right(), y))
            if empty:
                continue
            painter.setPen(LOSS_COLOR)
            label = f"{loss_max * k / 4:.3g}"
            painter.drawText(QRectF(0, y - 8, rect.left() - 6, 16),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, label)
            painter.setPen(IOU_COLOR)
            painter.drawText(QRectF(rect.right() + 6, y - 8, self.MARGIN_RIGHT - 6, 16),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, f"{k / 4:.2g}")
        painter.setPen(QPen(text_color, 1))
        painter.drawLine(rect.bottomLeft(), rect.bottomRight())
        if not empty:
            tick = max(1, int(_nice_ceiling(x_max / 5)))
            for step in range(0, x_max + 1, tick):
                x = x_of(step)
                painter.drawLine(QPointF(x, rect.bottom()), QPointF(x, rect.bottom() + 3))
                painter.drawText(QRectF(x - 40, rect.bottom() + 4, 80, metrics.height()),
                                 Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, str(step))
            painter.drawText(QRectF(0, rect.bottom() + 4, rect.left() - 12, metrics.height()),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop, "step")

    def _draw_legend(self, painter: QPainter, text_color: QColor) -> None:
        x, y = float(self.MARGIN_LEFT), 6.0
        metrics = painter.fontMetrics()
        items = [(LOSS_COLOR, Qt.PenStyle.SolidLine, "training loss (left)"),
                 (IOU_COLOR, Qt.PenStyle.SolidLine, "validation IoU per epoch (right)")]
        if self.parent_iou is not None:
            items.append((IOU_COLOR.darker(130), Qt.PenStyle.DashLine, f"parent IoU {self.parent_iou:.3f}"))
        for color, style, text in items:
            painter.setPen(QPen(color, 2, style))
            mid = y + metrics.height() / 2
            painter.drawLine(QPointF(x, mid), QPointF(x + 18, mid))
            painter.setPen(text_color)
            width = metrics.horizontalAdvance(text)
            painter.drawText(QRectF(x + 22, y, width + 4, metrics.height()), Qt.AlignmentFlag.AlignVCenter, text)
            x += 22 + width + 16


def split_words(event: events.Started) -> str:
    """How many images train and how many check, in the dialog's words (engine.training.split)."""
    from segstudio.engine.training.split import HOLDOUT_STRIP

    train, check = event.train_images, event.val_images
    if train is None or check is None:
        return "reading the images..."
    if event.val_source == "strip":
        return f"it trains on {100 - int(HOLDOUT_STRIP * 100)}% of each image and is checked on the rest."
    return (f"{train} image{'s' if train != 1 else ''} train it, {check} "
            f"{'is' if check == 1 else 'are'} set aside to check it.")


def _fmt(value, spec: str = ".3f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) and math.isfinite(value) else "-"


class TrainingPanel(QWidget):
    """Shows one fine-tune at a time; keeps the last run's curves after it ends."""

    cancel_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("trainingPanel")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        self.title = QLabel("No fine-tune has run yet. Start one with Model > Fine-tune... (Ctrl+T).")
        self.title.setObjectName("trainingTitle")
        self.title.setWordWrap(True)
        layout.addWidget(self.title)

        row = QHBoxLayout()
        self.bar = QProgressBar()
        self.bar.setObjectName("trainingBar")
        self.bar.setFormat("%v / %m steps")
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        row.addWidget(self.bar, 1)
        self.eta = QLabel("")
        self.eta.setObjectName("trainingEta")
        self.eta.setMinimumWidth(110)
        row.addWidget(self.eta)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelTrainingButton")
        self.cancel_button.setToolTip("Stop fine-tuning; nothing is saved and the model library stays as it was")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_requested)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)

        self.stats = QLabel("")
        self.stats.setObjectName("trainingStats")
        self.stats.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.stats)
        self.plot = LossIouPlot()
        layout.addWidget(self.plot, 1)
        self.notes = QLabel("")
        self.notes.setObjectName("trainingNotes")
        self.notes.setWordWrap(True)
        self.notes.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.notes)
        self._last: dict = {}

    def begin(self, config) -> None:
        """A run of `config` (an engine.training.config.TrainConfig) is starting."""
        self.plot.clear()
        self._last = {}
        self.title.setText(f"Fine-tuning <b>{config.base}</b>: loading the datasets and the model...")
        self.bar.setRange(0, 0)  # busy until the child reports its number of steps
        self.eta.setText("")
        self.stats.setText("")
        self.notes.setText("")
        self.cancel_button.setEnabled(True)
        self.cancel_button.setText("Cancel")

    def set_cancelling(self) -> None:
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText("Cancelling...")

    def handle_event(self, event: events.TrainingEvent) -> None:
        if isinstance(event, events.Started):
            self._on_start(event)
        elif isinstance(event, events.Evaluated) and event.model == "parent":
            iou = (event.val or {}).get("mean_iou")
            self.plot.set_parent_iou(iou if isinstance(iou, (int, float)) else None)
        elif isinstance(event, events.StepProgress):
            self._on_step(event)
        elif isinstance(event, events.EpochProgress):
            iou = (event.val or {}).get("mean_iou")
            step = event.step if event.step is not None else self._last.get("step", 0)
            if isinstance(iou, (int, float)):
                self.plot.add_iou(int(step), float(iou))
            self._last["epoch"] = event.epoch
            self._last["val_iou"] = iou
            self._show_stats()
        elif isinstance(event, events.OutOfMemory):
            self._add_note(f"Out of memory: {event.action}")
        # A failure is said once, in the title and the error message, not again as a note.

    def _on_start(self, event: events.Started) -> None:
        if event.steps is not None and event.steps > 0:
            self.plot.set_total_steps(event.steps)
            self.bar.setRange(0, event.steps)
            self.bar.setValue(0)
        self.title.setText(f"Fine-tuning <b>{event.base or ''}</b> into a new <b>{event.name or ''}</b> version "
                           f"on {event.device or 'this computer'}: {split_words(event)}")
        for note in event.notes:
            self._add_note(str(note))

    def _on_step(self, event: events.StepProgress) -> None:
        step, steps = event.step, event.steps
        if step is None or steps is None:
            return
        if steps != self.plot.total_steps:  # the plan changes after an out-of-memory retry
            self.plot.set_total_steps(steps)
        self.bar.setRange(0, max(1, steps))
        self.bar.setValue(min(step, steps))
        if event.loss is not None:
            self.plot.add_loss(step, float(event.loss))
        self.eta.setText(format_eta(float(event.eta_s)) if event.eta_s is not None else "")
        self._last.update(step=step, steps=steps, loss=event.loss, lr=event.lr,
                          epoch=event.epoch if event.epoch is not None else self._last.get("epoch"))
        self._show_stats()

    def _show_stats(self) -> None:
        last = self._last
        parts = []
        if "step" in last:
            parts.append(f"step {last['step']} of {last['steps']}")
        if last.get("epoch") is not None:
            parts.append(f"epoch {last['epoch']}")
        if "loss" in last:
            parts.append(f"loss {_fmt(last['loss'], '.4f')}")
        if isinstance(last.get("lr"), (int, float)):
            parts.append(f"learning rate {last['lr']:.2g}")
        if "val_iou" in last:
            parts.append(f"validation IoU {_fmt(last['val_iou'])}")
        if self.plot.parent_iou is not None:
            parts.append(f"previous model {self.plot.parent_iou:.3f}")
        self.stats.setText("   ".join(parts))

    def _add_note(self, text: str) -> None:
        current = self.notes.text()
        self.notes.setText(f"{current}\n{text}" if current else text)

    def end(self, outcome) -> None:
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText("Cancel")
        self.eta.setText("")
        if self.bar.maximum() == 0:
            self.bar.setRange(0, 1)
        if outcome.status == "done":
            self.bar.setValue(self.bar.maximum())
            state = ("now in use" if outcome.promoted else "saved but not in use: the previous model was kept because "
                     "the new one scored lower on the images set aside for checking")
            self.title.setText(f"Finished: <b>{outcome.version}</b> saved, {state}.")
        elif outcome.status == "cancelled":
            self.title.setText("Cancelled: no new model version was saved.")
        else:
            first_line = outcome.message.splitlines()[0] if outcome.message else "unknown error"
            self.title.setText(f"Failed: {first_line}")
