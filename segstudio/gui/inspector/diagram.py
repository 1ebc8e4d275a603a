"""The network drawn as its shape: one node per tap, laid out by engine.inspect_layout from the taps' levels
and skip pairs, each showing its maps on the current region, its size and its scale.

Clicking a node asks for that tap's maps; clicking a skip arc asks for that skip's pair side by side.
Before a region is computed the nodes are placeholders, so the shape is there at once.

The levels are fitted to the height of the view; where that would shrink the captions below reading size
(a 1366 x 768 screen gives the dock about 270 px for the five levels of the bundled U-Net), the nodes turn
compact (the thumbnail beside the caption, half the height) and the network scrolls sideways instead.
"""
from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class NodeLook:
    """Scene units of a layout cell and of the node drawn in it."""

    cell_w: int
    cell_h: int
    node_w: int
    node_h: int
    thumb: int
    beside: bool  # the caption beside the thumbnail rather than under it


TALL = NodeLook(112, 104, 100, 96, 64, False)
COMPACT = NodeLook(160, 54, 150, 48, 42, True)
EDGE_COLOURS = {"flow": QColor(150, 150, 160), "branch": QColor(120, 170, 120), "skip": QColor(240, 150, 40)}
READABLE_SCALE = 0.85  # 9 pt captions drawn smaller than this are hard to read: compact nodes instead
MIN_SCALE = 0.5  # below this even compact captions are unreadable: scroll instead


def level_scale(level: int | None) -> str:
    if level is None:
        return "scale unknown"
    return "full size" if level == 0 else f"1/{2 ** level} size"


def short_scale(level: int | None) -> str:
    return "?" if level is None else ("1" if level == 0 else f"1/{2 ** level}")


class TapNode(QGraphicsRectItem):
    """A tap: its thumbnail (or a placeholder), its name, shape and scale."""

    def __init__(self, spec, x: float, y: float, look: NodeLook = TALL) -> None:
        super().__init__(0, 0, look.node_w, look.node_h)
        self.spec, self.look = spec, look
        self.setPos(x, y)
        colour = KIND_COLOURS.get(spec.kind, QColor(160, 160, 160))
        self.setPen(QPen(colour, 2))
        self.setBrush(QBrush(QColor(36, 36, 42)))
        self.setZValue(2)
        self.setAcceptHoverEvents(True)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.thumb = QGraphicsPixmapItem(self)
        tx, ty = self.thumb_origin()
        self.thumb.setPos(tx, ty)
        self.placeholder = QGraphicsRectItem(tx, ty, look.thumb, look.thumb, self)
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

    def thumb_origin(self) -> tuple[float, float]:
        look = self.look
        return (3.0, (look.node_h - look.thumb) / 2) if look.beside else ((look.node_w - look.thumb) / 2, 4.0)

    def thumb_centre(self) -> QPointF:
        tx, ty = self.thumb_origin()
        return QPointF(tx + self.look.thumb / 2, ty + self.look.thumb / 2)

    def set_info(self, text: str) -> None:
        self.info_text.setText(text)
        look = self.look
        for line, item in enumerate((self.name_text, self.info_text)):
            if look.beside:
                item.setPos(look.thumb + 8, look.node_h / 2 - 15 + 15 * line)
            else:
                item.setPos(max(2.0, (look.node_w - item.boundingRect().width()) / 2), look.thumb + 5 + 13 * line)

    def set_picture(self, rgb: np.ndarray | None, info: str) -> None:
        if rgb is None:
            self.thumb.setPixmap(rgb_pixmap(np.zeros((1, 1, 3), np.uint8), 1))
            self.placeholder.setVisible(True)
        else:
            pixmap = rgb_pixmap(rgb, self.look.thumb)
            self.thumb.setPixmap(pixmap)
            tx, ty = self.thumb_origin()
            self.thumb.setPos(tx + (self.look.thumb - pixmap.width()) / 2, ty + (self.look.thumb - pixmap.height()) / 2)
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
        self.look = TALL
        self._specs: list = []
        self._shown: tuple[Inspection | None, bool] = (None, False)
        self._press = None

    # --- building ------------------------------------------------------------------------------
    def set_specs(self, specs) -> None:
        self._specs, self._shown, self.selected = list(specs), (None, False), None
        self.layout = layout_taps(self._specs) if self._specs else None
        self._build()
        self._fit()

    def _build(self) -> None:
        scene = self.scene()
        scene.clear()
        self.nodes, self.edges = {}, []
        if self.layout is None:
            return
        look = self.look
        for spec in self._specs:
            node = self.layout.nodes[spec.name]
            item = TapNode(spec, node.column * look.cell_w + (look.cell_w - look.node_w) / 2, node.row * look.cell_h,
                           look)
            scene.addItem(item)
            self.nodes[spec.name] = item
        for edge in self.layout.edges:
            item = EdgeItem(edge, self._edge_path(edge))
            scene.addItem(item)
            self.edges.append(item)
        scene.setSceneRect(scene.itemsBoundingRect().adjusted(-8, -8, 8, 8))

    def _centre(self, name: str) -> QPointF:
        return self.nodes[name].sceneBoundingRect().center()

    def _edge_path(self, edge: DiagramEdge) -> QPainterPath:
        start, end = self._centre(edge.source), self._centre(edge.target)
        path = QPainterPath(start)
        if edge.kind == "skip" and abs(start.y() - end.y()) < 1:
            # An arc over the top of the row, so a skip reads as a bridge and never hides under a node.
            lift = self.look.node_h / 2 + 4
            path.cubicTo(QPointF(start.x(), start.y() - lift), QPointF(end.x(), end.y() - lift), end)
        else:
            middle = (start.x() + end.x()) / 2
            path.cubicTo(QPointF(middle, start.y()), QPointF(middle, end.y()), end)
        return path

    def edge_for_skip(self, skip: str) -> EdgeItem | None:
        return next((e for e in self.edges if e.edge.skip == skip), None)

    # --- showing a region ----------------------------------------------------------------------
    def set_inspection(self, inspection: Inspection | None, preview: bool = False) -> None:
        self._shown = (inspection, preview)
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
        if self.layout is None:
            return
        rows = 1 + max(node.row for node in self.layout.nodes.values())
        # Fit the height (the levels); a network wider than the view scrolls sideways. The horizontal
        # scroll bar is counted as shown: the network is wider than the view whenever the height is tight.
        height = self.height() - 2 * self.frameWidth() - self.horizontalScrollBar().sizeHint().height()
        look = TALL if height / (rows * TALL.cell_h + 16) >= READABLE_SCALE else COMPACT
        if look != self.look:
            self.look = look
            self._build()
            inspection, preview = self._shown
            self.set_inspection(inspection, preview)
            self.select(self.selected)
        scale = max(MIN_SCALE, min(1.2, height / self.sceneRect().height()))
        self.resetTransform()
        self.scale(scale, scale)

    def wheelEvent(self, event) -> None:
        # A network wider than the view and as tall as it: the wheel scrolls along it.
        bar = self.horizontalScrollBar()
        if self.verticalScrollBar().maximum() == 0 and bar.maximum() > 0 and event.angleDelta().x() == 0:
            bar.setValue(bar.value() - event.angleDelta().y())
            event.accept()
            return
        super().wheelEvent(event)

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
        return self.mapFromScene(node.mapToScene(node.thumb_centre()))

    def skip_view_point(self, skip: str):
        """A point on skip `skip`'s arc, away from any node, in viewport coordinates."""
        # In sight first: an arc longer than the view (compact nodes, scrolled sideways) shows only a part.
        found = None
        for edge in (e for e in self.edges if e.edge.skip == skip):
            for t in (0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8, 0.1, 0.9):
                point = edge.path().pointAtPercent(t)
                if not any(isinstance(i, TapNode) for i in self.scene().items(point)):
                    found = found or self.mapFromScene(point)
                    if self.viewport().rect().contains(self.mapFromScene(point)):
                        return self.mapFromScene(point)
        return found


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

