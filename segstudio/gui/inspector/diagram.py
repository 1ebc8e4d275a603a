"""The network drawn as its shape: one node per tap, laid out by engine.inspect_layout from the taps' levels
and skip pairs, each showing its maps on the current region, its size and its scale.

Clicking a node asks for that tap's maps; clicking a skip arc asks for that skip's pair side by side.
Before a region is computed the nodes are placeholders, so the shape is there at once.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPainterPath, QPainterPathStroker, QPen
from PySide6.QtWidgets import (
    QGraphicsPathItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
)

from segstudio.engine.inspect import Inspection
from segstudio.engine.inspect_layout import DiagramEdge, DiagramLayout, layout_taps
from segstudio.gui.inspector.probe import KIND_COLOURS
from segstudio.gui.inspector.render import colourise, label_colours, normalise, rgb_pixmap, value_range

CELL_W, CELL_H = 112, 104  # scene units per layout cell
NODE_W, NODE_H = 100, 96
THUMB = 64
EDGE_COLOURS = {"flow": QColor(150, 150, 160), "branch": QColor(120, 170, 120), "skip": QColor(240, 150, 40)}
MIN_SCALE = 0.5  # below this the captions are unreadable: scroll instead


def level_scale(level: int | None) -> str:
    if level is None:
        return "scale unknown"
    return "full size" if level == 0 else f"1/{2 ** level} size"


def short_scale(level: int | None) -> str:
    return "?" if level is None else ("1" if level == 0 else f"1/{2 ** level}")


class TapNode(QGraphicsRectItem):
    """A tap: its thumbnail (or a placeholder), its name, shape and scale."""

    def __init__(self, spec, x: float, y: float) -> None:
        super().__init__(0, 0, NODE_W, NODE_H)
        self.spec = spec
        self.setPos(x, y)
        colour = KIND_COLOURS.get(spec.kind, QColor(160, 160, 160))
        self.setPen(QPen(colour, 2))
        self.setBrush(QBrush(QColor(36, 36, 42)))
        self.setZValue(2)
        self.setAcceptHoverEvents(True)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.thumb = QGraphicsPixmapItem(self)
        self.thumb.setPos((NODE_W - THUMB) / 2, 4)
        self.placeholder = QGraphicsRectItem((NODE_W - THUMB) / 2, 4, THUMB, THUMB, self)
        self.placeholder.setBrush(QBrush(QColor(70, 70, 78)))
        self.placeholder.setPen(QPen(Qt.PenStyle.NoPen))
        self.name_text = QGraphicsSimpleTextItem(self)
        self.info_text = QGraphicsSimpleTextItem(self)
        font = QFont()
        font.setPointSizeF(9)
        for item in (self.name_text, self.info_text):
            item.setFont(font)
            item.setBrush(QBrush(QColor(230, 230, 235)))
        self.name_text.setText(f"{_elide(spec.name.split(' (')[0], 11)} · {short_scale(spec.level)}")
        self.set_info("…")
        self.setToolTip(f"<b>{spec.name}</b> ({spec.kind}, {level_scale(spec.level)})<br>{spec.description}"
                        "<br><i>Click to see its maps.</i>")

    def set_info(self, text: str) -> None:
        self.info_text.setText(text)
        for line, item in enumerate((self.name_text, self.info_text)):
            width = item.boundingRect().width()
            item.setPos(max(2.0, (NODE_W - width) / 2), THUMB + 5 + 13 * line)

    def set_picture(self, rgb: np.ndarray | None, info: str) -> None:
        if rgb is None:
            self.thumb.setPixmap(rgb_pixmap(np.zeros((1, 1, 3), np.uint8), 1))
            self.placeholder.setVisible(True)
        else:
            pixmap = rgb_pixmap(rgb, THUMB)
            self.thumb.setPixmap(pixmap)
            self.thumb.setPos((NODE_W - pixmap.width()) / 2, 4 + (THUMB - pixmap.height()) / 2)
            self.placeholder.setVisible(False)
        self.set_info(info)

    def set_selected_look(self, on: bool) -> None:
        colour = KIND_COLOURS.get(self.spec.kind, QColor(160, 160, 160))
        self.setPen(QPen(QColor(255, 255, 255) if on else colour, 4 if on else 2))


class EdgeItem(QGraphicsPathItem):
    def __init__(self, edge: DiagramEdge, path: QPainterPath) -> None:
        super().__init__(path)
        self.edge = edge
        pen = QPen(EDGE_COLOURS.get(edge.kind, QColor(150, 150, 150)), 4 if edge.kind == "skip" else 2)
        if edge.kind == "branch":
            pen.setStyle(Qt.PenStyle.DashLine)
        self.setPen(pen)
        self.setZValue(1 if edge.kind == "skip" else 0)
        if edge.skip is not None:
            self.setCursor(Qt.CursorShape.PointingHandCursor)
            self.setToolTip(f"Skip connection {edge.skip}: click to see what it carries and what it meets")

    def shape(self) -> QPainterPath:
        stroker = QPainterPathStroker()
        stroker.setWidth(14)  # easy to hit with a mouse
        return stroker.createStroke(self.path())


class NetworkDiagram(QGraphicsView):
    tap_clicked = Signal(str)
    skip_clicked = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("networkDiagram")
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setBackgroundBrush(QBrush(QColor(24, 24, 28)))
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.layout: DiagramLayout | None = None
        self.nodes: dict[str, TapNode] = {}
        self.edges: list[EdgeItem] = []
        self.selected: str | None = None
        self._press = None

    # --- building ------------------------------------------------------------------------------
    def set_specs(self, specs) -> None:
        scene = self.scene()
        scene.clear()
        self.nodes, self.edges, self.selected = {}, [], None
        specs = list(specs)
        self.layout = layout_taps(specs) if specs else None
        if self.layout is None:
            return
        for spec in specs:
            node = self.layout.nodes[spec.name]
            item = TapNode(spec, node.column * CELL_W + (CELL_W - NODE_W) / 2, node.row * CELL_H)
            scene.addItem(item)
            self.nodes[spec.name] = item
        for edge in self.layout.edges:
            item = EdgeItem(edge, self._edge_path(edge))
            scene.addItem(item)
            self.edges.append(item)
        scene.setSceneRect(scene.itemsBoundingRect().adjusted(-8, -8, 8, 8))
        self._fit()

    def _centre(self, name: str) -> QPointF:
        return self.nodes[name].sceneBoundingRect().center()

    def _edge_path(self, edge: DiagramEdge) -> QPainterPath:
        start, end = self._centre(edge.source), self._centre(edge.target)
        path = QPainterPath(start)
        if edge.kind == "skip" and abs(start.y() - end.y()) < 1:
            # An arc over the top of the row, so a skip reads as a bridge and never hides under a node.
            lift = NODE_H / 2 + 4
            path.cubicTo(QPointF(start.x(), start.y() - lift), QPointF(end.x(), end.y() - lift), end)
        else:
            middle = (start.x() + end.x()) / 2
            path.cubicTo(QPointF(middle, start.y()), QPointF(middle, end.y()), end)
        return path

    def edge_for_skip(self, skip: str) -> EdgeItem | None:
        return next((e for e in self.edges if e.edge.skip == skip), None)

    # --- showing a region ----------------------------------------------------------------------
    def set_inspection(self, inspection: Inspection | None, preview: bool = False) -> None:
        for name, node in self.nodes.items():
            if inspection is None or name not in inspection.taps:
                node.set_picture(None, "…")
                continue
            tap = inspection.tap(name)
            c, h, w = tap.shape
            info = f"{c}×{h}×{w}"
            node.set_picture(thumbnail(inspection, name), info + (" (preview)" if preview else ""))
            node.setToolTip(f"<b>{name}</b> ({tap.spec.kind}): {c} maps of {h} × {w}, "
                            f"{level_scale(node.spec.level)}<br>{tap.spec.description}<br>"
                            f"<i>Thumbnail: mean over the {c} maps. Click to see its maps.</i>")

    def select(self, name: str | None) -> None:
        if self.selected in self.nodes:
            self.nodes[self.selected].set_selected_look(False)
        self.selected = name if name in self.nodes else None
        if self.selected is not None:
            self.nodes[self.selected].set_selected_look(True)
            self.ensureVisible(self.nodes[self.selected], 20, 20)

    # --- fitting and clicking ------------------------------------------------------------------
    def _fit(self) -> None:
        rect = self.sceneRect()
        if rect.isEmpty():
            return
        viewport = self.viewport().size()
        # Fit the height (the levels); a network wider than the view scrolls sideways.
        scale = min(1.2, viewport.height() / rect.height())
        scale = max(MIN_SCALE, scale)
        self.resetTransform()
        self.scale(scale, scale)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit()

    def mousePressEvent(self, event) -> None:
        self._press = event.position()
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        super().mouseReleaseEvent(event)
        press, self._press = self._press, None
        if event.button() != Qt.MouseButton.LeftButton or press is None:
            return
        if (event.position() - press).manhattanLength() > 6:
            return  # a drag to scroll, not a click
        self.click_at(event.position().toPoint())

    def click_at(self, point) -> None:
        for item in self.items(point):
            while item is not None and not isinstance(item, (TapNode, EdgeItem)):
                item = item.parentItem()
            if isinstance(item, TapNode):
                self.tap_clicked.emit(item.spec.name)
                return
            if isinstance(item, EdgeItem) and item.edge.skip is not None:
                self.skip_clicked.emit(item.edge.skip)
                return

    def node_view_point(self, name: str):
        """Where tap `name`'s thumbnail is in viewport coordinates (for a click)."""
        node = self.nodes[name]
        return self.mapFromScene(node.mapToScene(QPointF(NODE_W / 2, 4 + THUMB / 2)))

    def skip_view_point(self, skip: str):
        """A point on skip `skip`'s arc, away from any node, in viewport coordinates."""
        for edge in (e for e in self.edges if e.edge.skip == skip):
            for t in (0.5, 0.4, 0.6, 0.3, 0.7):
                point = edge.path().pointAtPercent(t)
                if not any(isinstance(i, TapNode) for i in self.scene().items(point)):
                    return self.mapFromScene(point)
        return None


def thumbnail(inspection: Inspection, name: str) -> np.ndarray:
    """The tap as one picture: the winning class for class scores, else the mean over its maps."""
    tap = inspection.tap(name)
    rows, cols = tap.valid
    if inspection.is_class_score(name):
        labels = tap.tensor[:, :rows, :cols].astype(np.float32).argmax(axis=0)
        return label_colours(labels, inspection.num_classes)
    values = tap.mean_map[:rows, :cols]
    return colourise(normalise(values, *value_range(values, False)), "viridis")


def _elide(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

