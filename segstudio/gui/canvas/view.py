"""The image canvas: a QGraphicsView showing the image, the mask overlay and tool feedback.

It knows nothing about files or models. It shows what it is given, reports where the cursor is in image
coordinates, and hands mouse input to the active tool controller.
"""
from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QImage, QMouseEvent, QPainter, QTransform, QWheelEvent
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsScene, QGraphicsView, QLabel, QVBoxLayout

from segstudio.core.imageio import DisplayPicture
from segstudio.gui.canvas.navigator import Navigator
from segstudio.gui.canvas.overlay import MaskOverlayItem, rgb_to_pixmap
from segstudio.gui.canvas.picture import PictureItem, overview_image
from segstudio.gui.canvas.scale_bar import draw_scale_bar
from segstudio.gui.canvas.tiles import LEVELS_FROM

MIN_ZOOM = 1 / 64
MAX_ZOOM = 64.0
KEY_ZOOM_STEP = 1.25


class ImageCanvas(QGraphicsView):
    """Zoom with the wheel or keys, pan with the middle button, Space+drag or (with no tool) the left button."""

    cursor_moved = Signal(int, int)  # image x, y; (-1, -1) when outside the image
    zoom_changed = Signal(float)
    view_changed = Signal()  # the part of the image in view moved or was zoomed (the navigator follows)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("imageCanvas")
        self._scene = QGraphicsScene(self)
        self.setScene(self._scene)
        self.setBackgroundBrush(QBrush(QColor(40, 40, 44)))
        # The wheel zooms about its own position (zoom_about); everything else zooms about the centre.
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.MinimalViewportUpdate)
        self.setMouseTracking(True)
        self.setAcceptDrops(False)  # the main window takes dropped files
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        # Panning is by drag; scrollbars would only steal space and make "fit" leave a margin.
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        self.image_item = PictureItem()
        self.image_item.setZValue(0)
        self._scene.addItem(self.image_item)
        self.overlay = MaskOverlayItem()
        self._scene.addItem(self.overlay)
        self.heatmap_item = QGraphicsPixmapItem()
        self.heatmap_item.setZValue(2)
        self.heatmap_item.setOpacity(0.6)
        self.heatmap_item.setVisible(False)
        self._scene.addItem(self.heatmap_item)

        self._image_shape: tuple[int, int] | None = None
        self._min_zoom = MIN_ZOOM
        self._tiled: list = []  # tiled items of a whole slide, shown instead of image_item and overlay
        self.navigator: Navigator | None = None  # the overview of a slide or a large image
        self._pixel_size_um: float | None = None  # for the scale bar
        self._tool = None
        self._space_down = False
        self._panning_with_middle = False
        self._pan_origin = None
        self.placeholder = self._build_placeholder()

    def _build_placeholder(self) -> QLabel:
        """What an empty window says: where images come from. Hidden while an image is shown."""
        label = QLabel(
            "<p style='font-size:15pt'>Drop images here</p>"
            "<p>or use <b>File &gt; Open Images…</b> (Ctrl+O)<br>"
            "or try <b>File &gt; Open Sample</b></p>", self.viewport())
        label.setObjectName("canvasPlaceholder")
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setStyleSheet("color: rgb(190, 190, 196); background: transparent;")
        label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)  # drops reach the window
        layout = QVBoxLayout(self.viewport())
        layout.addWidget(label, 0, Qt.AlignmentFlag.AlignCenter)
        return label

    # --- content -------------------------------------------------------------------------------
    def set_image(self, picture: DisplayPicture | np.ndarray | None, pixel_size_um: float | None = None) -> None:
        """Show a display picture (or an (H, W, 3) uint8 array); the view fits it to the window.

        The canvas draws the picture's own pixels and keeps no copy of them. ``pixel_size_um``: micrometres
        per pixel, for the scale bar (None: no bar), as for a slide.
        """
        self._drop_tiled()
        if picture is None:
            self.image_item.set_picture(None)
            self._image_shape = None
            self.overlay.set_mask(None)
            self.placeholder.show()
            return
        if not isinstance(picture, DisplayPicture):
            picture = DisplayPicture(np.ascontiguousarray(picture, dtype=np.uint8))
        self.placeholder.hide()
        self.image_item.set_picture(picture)
        self._pixel_size_um = pixel_size_um
        self._show_shape(picture.shape)
        if max(picture.shape) > LEVELS_FROM:  # as large as the view can't show whole at a useful zoom
            self.set_overview(overview_image(picture))

    def set_overview(self, thumbnail: QImage | None) -> Navigator | None:
        """Show ``thumbnail`` (the whole image or slide, small) as the overview in the view's corner, with
        the part in view outlined; None takes it away. The image or slide must be shown first."""
        if self.navigator is not None:
            self.navigator.hide()
            self.navigator.deleteLater()
            self.navigator = None
        if thumbnail is not None and self._image_shape is not None:
            self.navigator = Navigator(self, thumbnail, self._image_shape)
        return self.navigator

    def _show_shape(self, shape: tuple[int, int]) -> None:
        self._image_shape = shape
        h, w = shape
        self._scene.setSceneRect(QRectF(-w * 0.5, -h * 0.5, w * 2.0, h * 2.0))
        self.fit_to_window()

    def set_tiled(self, items: list, shape: tuple[int, int], pixel_size_um: float | None = None) -> None:
        """Show a whole slide as tiled items (gui.canvas.tiles) over level-0 coordinates, instead of a picture.

        ``pixel_size_um``: micrometres per level-0 pixel, for the scale bar (None: no bar).
        """
        self._drop_tiled()
        self.image_item.set_picture(None)
        self.overlay.set_mask(None)
        self.placeholder.hide()
        self._tiled = list(items)
        for item in self._tiled:
            self._scene.addItem(item)
        self._pixel_size_um = pixel_size_um
        self._show_shape(shape)

    def _drop_tiled(self) -> None:
        self.set_overview(None)
        for item in self._tiled:
            self._scene.removeItem(item)
        self._tiled = []
        self._pixel_size_um = None
        self._min_zoom = MIN_ZOOM

    def pixel_size_um(self) -> float | None:
        return self._pixel_size_um

    def set_pixel_size_um(self, pixel_size_um: float | None) -> None:
        """The image's pixel size changed (typed by the user): redraw the scale bar, or hide it (None)."""
        self._pixel_size_um = pixel_size_um or None
        self.viewport().update()

    def has_image(self) -> bool:
        return self._image_shape is not None

    def image_shape(self) -> tuple[int, int] | None:
        return self._image_shape

    def set_mask(self, mask: np.ndarray | None, lut_rgba: np.ndarray | None = None) -> None:
        self.overlay.set_mask(mask, lut_rgba)

    def set_mask_visible(self, visible: bool) -> None:
        self.overlay.setVisible(visible)

    def set_mask_opacity(self, opacity: float) -> None:
        self.overlay.setOpacity(max(0.0, min(1.0, opacity)))

    def set_heatmap(self, values: np.ndarray | None, colormap=None,
                    rect: tuple[float, float, float, float] | None = None) -> None:
        """Show a per-pixel map in [0, 1] (confidence, uncertainty, a feature channel) over the image.

        colormap: an OpenCV colormap id or a (256, 3) uint8 RGB lookup table (viridis by default).
        rect: (x, y, w, h) in image pixels the map covers (a region's feature map); the whole image by default.
        """
        if values is None:
            self.heatmap_item.setVisible(False)
            return
        import cv2

        scaled = np.clip(np.nan_to_num(values.astype(np.float32)), 0.0, 1.0)
        index = np.round(scaled * 255).astype(np.uint8)
        if isinstance(colormap, np.ndarray):
            rgb = np.asarray(colormap, np.uint8).reshape(256, 3)[index]
        else:
            rgb = cv2.applyColorMap(index, cv2.COLORMAP_VIRIDIS if colormap is None else colormap)[..., ::-1]
        pixmap = rgb_to_pixmap(rgb)
        self.heatmap_item.setPixmap(pixmap)
        if rect is None and self._image_shape is not None:
            rect = (0, 0, self._image_shape[1], self._image_shape[0])
        if rect is not None:
            x, y, w, h = rect
            self.heatmap_item.setTransform(
                QTransform.fromTranslate(x, y).scale(w / pixmap.width(), h / pixmap.height()))
        else:
            self.heatmap_item.setTransform(QTransform())
        self.heatmap_item.setVisible(True)

    # --- tools ---------------------------------------------------------------------------------
    def set_tool(self, tool) -> None:
        """Install a tool controller (mouse_press/move/release(canvas, pos, event)); None means pan."""
        if self._tool is not None and hasattr(self._tool, "deactivate"):
            self._tool.deactivate(self)
        self._tool = tool
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag if tool is None else QGraphicsView.DragMode.NoDrag)
        if tool is not None and hasattr(tool, "activate"):
            tool.activate(self)
        self.viewport().unsetCursor() if tool is None else None

    def tool(self):
        return self._tool

    # --- zoom ----------------------------------------------------------------------------------
    def zoom(self) -> float:
        return self.transform().m11()

    def set_zoom(self, factor: float) -> None:
        factor = max(self._min_zoom, min(MAX_ZOOM, factor))
        self._apply_scale(factor / self.zoom())

    def zoom_in(self) -> None:
        self._zoom_about_centre(KEY_ZOOM_STEP)

    def zoom_out(self) -> None:
        self._zoom_about_centre(1 / KEY_ZOOM_STEP)

    def zoom_actual_size(self) -> None:
        self._zoom_about_centre(1.0 / self.zoom())

    def fit_to_window(self) -> None:
        if self._image_shape is None:
            return
        h, w = self._image_shape
        # A whole slide must fit the window: let the zoom go as far out as that, and a bit further.
        fit = min(self.viewport().width() / w, self.viewport().height() / h)
        self._min_zoom = min(MIN_ZOOM, fit / 2)
        self.fitInView(QRectF(0, 0, w, h), Qt.AspectRatioMode.KeepAspectRatio)
        self._after_zoom()

    def _zoom_about_centre(self, step: float) -> None:
        anchor = self.transformationAnchor()
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self._apply_scale(step)
        self.setTransformationAnchor(anchor)

    def _apply_scale(self, step: float) -> None:
        target = self.zoom() * step
        if target < self._min_zoom or target > MAX_ZOOM:
            step = (self._min_zoom if target < self._min_zoom else MAX_ZOOM) / self.zoom()
        if not math.isclose(step, 1.0):
            self.scale(step, step)
        self._after_zoom()

    def _after_zoom(self) -> None:
        # Zoomed out, smoothing hides aliasing; zoomed in, labellers need to see the actual pixels.
        smooth = self.zoom() < 1.0
        self.image_item.set_smooth(smooth)
        for item in self._tiled[:1]:  # the slide's pixels; labels stay crisp
            item.set_smooth(smooth)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
        self.zoom_changed.emit(self.zoom())
        self.view_changed.emit()

    def scrollContentsBy(self, dx: int, dy: int) -> None:
        super().scrollContentsBy(dx, dy)
        self.view_changed.emit()

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:
        super().drawForeground(painter, rect)
        if self._pixel_size_um:
            draw_scale_bar(self, painter, self._pixel_size_um)

    def wheelEvent(self, event: QWheelEvent) -> None:
        delta = event.angleDelta().y() or event.angleDelta().x()
        if delta == 0:
            return
        # Proportional to the wheel angle, so trackpads zoom smoothly and one notch is ~20%.
        self.zoom_about(event.position(), math.pow(1.0015, delta))
        event.accept()

    def zoom_about(self, view_pos: QPointF, step: float) -> None:
        """Scale by ``step`` keeping the image point under ``view_pos`` (viewport pixels) where it is.

        Done by hand rather than with AnchorUnderMouse: Qt's anchor uses the last position a mouse-move
        event told QGraphicsView about, and the editing tools take those events, so with a tool active the
        zoom jumped to wherever the view last saw the mouse. The wheel event carries its own position.
        """
        view_pos = QPointF(view_pos)
        scene_pos, _ = self.viewportTransform().inverted()
        scene_pos = scene_pos.map(view_pos)
        anchor = self.transformationAnchor()
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        try:
            self._apply_scale(step)
        finally:
            self.setTransformationAnchor(anchor)
        # Where that point went, and scroll it back under the cursor (as near as the scene allows).
        drift = self.viewportTransform().map(scene_pos) - view_pos
        hbar, vbar = self.horizontalScrollBar(), self.verticalScrollBar()
        hbar.setValue(hbar.value() + round(drift.x()))
        vbar.setValue(vbar.value() + round(drift.y()))

    # --- coordinates and mouse -----------------------------------------------------------------
    def image_pos(self, view_pos) -> QPointF:
        return self.mapToScene(view_pos.toPoint() if hasattr(view_pos, "toPoint") else view_pos)

    def image_pixel(self, scene_pos: QPointF) -> tuple[int, int] | None:
        if self._image_shape is None:
            return None
        x, y = math.floor(scene_pos.x()), math.floor(scene_pos.y())
        h, w = self._image_shape
        if 0 <= x < w and 0 <= y < h:
            return x, y
        return None

    def _pan_requested(self, event: QMouseEvent) -> bool:
        return event.button() == Qt.MouseButton.MiddleButton or (
            self._space_down and event.button() == Qt.MouseButton.LeftButton
        )

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if self._pan_requested(event):
            self._panning_with_middle = True
            self._pan_origin = event.position()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        if self._tool is not None and self._image_shape is not None:
            self._tool.mouse_press(self, self.mapToScene(event.position().toPoint()), event)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        scene_pos = self.mapToScene(event.position().toPoint())
        pixel = self.image_pixel(scene_pos)
        self.cursor_moved.emit(*(pixel if pixel else (-1, -1)))
        if self._panning_with_middle and self._pan_origin is not None:
            delta = event.position() - self._pan_origin
            self._pan_origin = event.position()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - round(delta.x()))
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - round(delta.y()))
            event.accept()
            return
        if self._tool is not None and self._image_shape is not None:
            self._tool.mouse_move(self, scene_pos, event)
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._panning_with_middle and event.button() in (Qt.MouseButton.MiddleButton, Qt.MouseButton.LeftButton):
            self._panning_with_middle = False
            self._pan_origin = None
            self.viewport().unsetCursor()
            event.accept()
            return
        if self._tool is not None and self._image_shape is not None:
            self._tool.mouse_release(self, self.mapToScene(event.position().toPoint()), event)
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def leaveEvent(self, event) -> None:
        self.cursor_moved.emit(-1, -1)
        super().leaveEvent(event)

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = False
            self.viewport().unsetCursor()
        super().keyReleaseEvent(event)

    def visible_image_rect(self) -> tuple[int, int, int, int] | None:
        """(x, y, w, h) of the image region in view, clipped to the image."""
        if self._image_shape is None:
            return None
        rect = self.mapToScene(self.viewport().rect()).boundingRect()
        h, w = self._image_shape
        x0, y0 = max(0, math.floor(rect.left())), max(0, math.floor(rect.top()))
        x1, y1 = min(w, math.ceil(rect.right())), min(h, math.ceil(rect.bottom()))
        if x1 <= x0 or y1 <= y0:
            return None
        return x0, y0, x1 - x0, y1 - y0
