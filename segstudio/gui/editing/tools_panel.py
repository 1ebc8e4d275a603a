"""Tools dock: the correction tools as buttons, the brush size and the mask opacity."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

DEFAULT_OPACITY_PERCENT = 50


class ToolsPanel(QWidget):
    brush_radius_changed = Signal(float)
    opacity_changed = Signal(float)  # 0..1

    def __init__(self, tool_actions: list[QAction], max_radius: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("toolsPanel")
        layout = QVBoxLayout(self)

        grid = QGridLayout()
        grid.setSpacing(2)
        self.tool_buttons: dict[str, QToolButton] = {}
        columns = 3
        for i, action in enumerate(tool_actions):
            button = QToolButton()
            button.setDefaultAction(action)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            button.setObjectName(f"toolButton_{action.objectName()}")
            self.tool_buttons[action.objectName()] = button
            grid.addWidget(button, i // columns, i % columns)
        layout.addLayout(grid)

        form = QFormLayout()
        self.radius_slider = QSlider(Qt.Orientation.Horizontal)
        self.radius_slider.setObjectName("brushRadiusSlider")
        self.radius_slider.setRange(0, max_radius)
        self.radius_slider.setToolTip("Brush radius in image pixels ([ smaller, ] larger)")
        self.radius_spin = QSpinBox()
        self.radius_spin.setObjectName("brushRadiusSpin")
        self.radius_spin.setRange(0, max_radius)
        self.radius_spin.setSuffix(" px")
        self.radius_slider.valueChanged.connect(self._on_radius)
        self.radius_spin.valueChanged.connect(self._on_radius)
        row = QHBoxLayout()
        row.addWidget(self.radius_slider, 1)
        row.addWidget(self.radius_spin)
        form.addRow("Brush radius", row)

        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setObjectName("maskOpacitySlider")
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setToolTip("How strongly the mask covers the image")
        self.opacity_label = QLabel()
        self.opacity_label.setMinimumWidth(36)
        self.opacity_slider.valueChanged.connect(self._on_opacity)
        row = QHBoxLayout()
        row.addWidget(self.opacity_slider, 1)
        row.addWidget(self.opacity_label)
        form.addRow("Mask opacity", row)
        layout.addLayout(form)
        layout.addStretch(1)
        self.opacity_slider.setValue(DEFAULT_OPACITY_PERCENT)
        self._on_opacity(DEFAULT_OPACITY_PERCENT)

    def set_brush_radius(self, radius: float) -> None:
        value = round(radius)
        for widget in (self.radius_slider, self.radius_spin):
            widget.blockSignals(True)
            widget.setValue(value)
            widget.blockSignals(False)

    def opacity(self) -> float:
        return self.opacity_slider.value() / 100.0

    def _on_radius(self, value: int) -> None:
        self.set_brush_radius(value)
        self.brush_radius_changed.emit(float(value))

    def _on_opacity(self, value: int) -> None:
        self.opacity_label.setText(f"{value}%")
        self.opacity_changed.emit(value / 100.0)
