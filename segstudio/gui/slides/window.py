"""The window of one whole slide: tiled canvas, overview, scale bar, magnifications and label tools.

A slide gets a window of its own rather than a place among the main window's images: the features there
(Predict, export, the inspector) work on images held whole in memory, which a slide never is.
"""
from __future__ import annotations

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence, QPixmap
from PySide6.QtWidgets import QComboBox, QLabel, QMainWindow, QMessageBox, QSpinBox, QToolBar

from segstudio.gui.canvas.tiles import label_item, rgb_image, slide_item
from segstudio.gui.canvas.view import ImageCanvas
from segstudio.gui.slides.dataset_export import SlideDatasetExport
from segstudio.gui.slides.document import SlideDocument
from segstudio.gui.slides.fill import SlideEyedropperTool, SlideFillTool
from segstudio.gui.slides.predict import SlidePrediction
from segstudio.gui.slides.tools import SlideBrushTool, SlidePolygonTool

MAGNIFICATIONS = ((1, "1"), (5, "5"), (10, "0"), (20, "2"), (40, "4"))


def scan_magnification(slide) -> float | None:
    """The objective power the slide was scanned at, or its usual equivalent from the pixel size
    (0.25 µm per pixel is "40x" on most scanners)."""
    if slide.info.magnification:
        return float(slide.info.magnification)
    return 10.0 / slide.mpp if slide.mpp else None


class SlideWindow(QMainWindow):
    def __init__(self, doc: SlideDocument, parent=None, model_host=None) -> None:
        super().__init__(parent)
        self.setObjectName("slideWindow")
        self.doc = doc
        self.setWindowTitle(f"{doc.title}[*] — whole slide")
        self.resize(1200, 800)
        self.canvas = ImageCanvas(self)
        self.setCentralWidget(self.canvas)
        slide = doc.slide
        self.image_tiles = slide_item(slide)
        self.label_tiles = label_item(doc.store, doc.classes.lut_rgba())
        self.label_tiles.setOpacity(0.5)
        self.canvas.set_tiled([self.image_tiles, self.label_tiles], slide.shape, slide.mpp)
        self.navigator = self.canvas.set_overview(rgb_image(slide.thumbnail(400)))
        self.radius = QSpinBox(minimum=1, maximum=200, value=12, suffix=" px on screen")
        self.radius.setObjectName("slideBrushRadius")
        self.class_box = QComboBox()
        self.class_box.setObjectName("slideClass")
        for label_class in doc.classes:
            if label_class.id:
                self.class_box.addItem(label_class.name, label_class.id)
        self.tools = self._build_tools()
        self.magnification_actions = self._build_magnifications()
        self._build_edit_menu()
        self.prediction = SlidePrediction(self, model_host)
        self.dataset_export = SlideDatasetExport(self)
        self.position = QLabel()
        self.statusBar().addPermanentWidget(self.position)
        self.canvas.cursor_moved.connect(self._show_position)
        doc.labels_changed.connect(self.label_tiles.invalidate)
        doc.undo_stack.cleanChanged.connect(lambda clean: self.setWindowModified(not clean))
        doc.save_failed.connect(lambda text: self.statusBar().showMessage(text))
        self._describe()

    # --- building ---------------------------------------------------------------------------------------
    def _build_tools(self) -> dict[str, QAction]:
        bar = QToolBar("Label tools", self)
        bar.setObjectName("slideTools")
        self.addToolBar(bar)
        group = QActionGroup(self)
        doc = self.doc
        value = lambda: self.class_box.currentData() or 1
        radius = lambda: self.radius.value()
        tell = lambda text: self.statusBar().showMessage(text, 6000)
        made = {"pan": (None, "Pan", "H"),
                "brush": (SlideBrushTool(doc, value, radius), "Brush", "B"),
                "eraser": (SlideBrushTool(doc, value, radius, erase=True), "Eraser", "E"),
                "fill": (SlideFillTool(doc, value, tell), "Fill", "G"),
                "polygon": (SlidePolygonTool(doc, value), "Polygon", "P"),
                "delete": (SlideFillTool(doc, value, tell, delete=True), "Delete Object", "D"),
                "eyedropper": (SlideEyedropperTool(doc, self.choose_class), "Eyedropper", "I")}
        tips = {"fill": "Fill the touching region of the clicked class, within the view, with the chosen class",
                "delete": "Turn the clicked object (the touching region of its class, within the view) into "
                          "background",
                "eyedropper": "Choose the class under the cursor"}
        actions = {}
        for name, (tool, text, key) in made.items():
            action = QAction(text, self, checkable=True)
            action.setShortcut(QKeySequence(key))
            action.setToolTip(f"{tips.get(name, text)} ({key})")
            action.triggered.connect(lambda _=False, t=tool: self.canvas.set_tool(t))
            group.addAction(action)
            bar.addAction(action)
            actions[name] = action
        actions["pan"].setChecked(True)
        bar.addSeparator()
        bar.addWidget(QLabel(" Class "))
        bar.addWidget(self.class_box)
        bar.addWidget(QLabel(" Size "))
        bar.addWidget(self.radius)
        return actions

    def choose_class(self, class_id: int) -> None:
        """The class the painting tools use, from the eyedropper; background is the eraser's."""
        index = self.class_box.findData(class_id)
        if index >= 0:
            self.class_box.setCurrentIndex(index)
            self.statusBar().showMessage(f"Painting {self.class_box.currentText()}", 4000)
        else:
            self.statusBar().showMessage("That is background: use the eraser (E) to paint it", 4000)

    def _build_magnifications(self) -> dict[int, QAction]:
        menu = self.menuBar().addMenu("&View")
        fit = menu.addAction("&Fit to Window")
        fit.setShortcut(QKeySequence("F"))
        fit.triggered.connect(self.canvas.fit_to_window)
        menu.addSeparator()
        actions = {}
        scanned = scan_magnification(self.doc.slide)
        for power, key in MAGNIFICATIONS:
            action = menu.addAction(f"Magnification {power}x")
            action.setShortcut(QKeySequence(key))
            action.setEnabled(scanned is not None)
            action.triggered.connect(lambda _=False, p=power: self.set_magnification(p))
            actions[power] = action
        associated = self.menuBar().addMenu("&Associated Images")
        for name in self.doc.slide.info.associated:
            associated.addAction(name.capitalize()).triggered.connect(lambda _=False, n=name: self.show_associated(n))
        associated.setEnabled(bool(self.doc.slide.info.associated))
        return actions

    def _build_edit_menu(self) -> None:
        menu = self.menuBar().addMenu("&Edit")
        undo = self.doc.undo_stack.createUndoAction(self, "&Undo")
        undo.setShortcut(QKeySequence.StandardKey.Undo)
        redo = self.doc.undo_stack.createRedoAction(self, "&Redo")
        redo.setShortcut(QKeySequence.StandardKey.Redo)
        menu.addAction(undo)
        menu.addAction(redo)
        self.undo_action, self.redo_action = undo, redo

    # --- view -------------------------------------------------------------------------------------------
    def set_magnification(self, power: float) -> None:
        """Zoom so the slide shows as under a ``power`` objective (scan power = one pixel per pixel)."""
        scanned = scan_magnification(self.doc.slide)
        if scanned:
            centre = self.canvas.mapToScene(self.canvas.viewport().rect().center())
            self.canvas.set_zoom(power / scanned)
            self.canvas.centerOn(QPointF(centre))

    def view_state(self) -> tuple[float, tuple[float, float]]:
        """The zoom and the slide point (x, y) at the centre of the view."""
        centre = self.canvas.mapToScene(self.canvas.viewport().rect().center())
        return self.canvas.zoom(), (centre.x(), centre.y())

    def show_view(self, zoom: float, centre: tuple[float, float]) -> None:
        self._fitted = True  # a view asked for is not replaced by the whole slide when the window shows
        self.canvas.set_zoom(zoom)
        self.canvas.centerOn(QPointF(*centre))

    def show_associated(self, name: str) -> None:
        box = QMessageBox(self)
        box.setWindowTitle(f"{self.doc.title}: {name}")
        box.setIconPixmap(QPixmap.fromImage(rgb_image(self.doc.slide.associated_image(name))))
        box.open()

    def _describe(self) -> None:
        slide = self.doc.slide
        size = f"{slide.width:,} x {slide.height:,} pixels, {len(slide.levels)} levels"
        pixel = f", {slide.mpp:.3g} µm per pixel" if slide.mpp else ", pixel size not recorded"
        self.statusBar().showMessage(f"{self.doc.title}: {size}{pixel}", 8000)

    def _show_position(self, x: int, y: int) -> None:
        if x < 0:
            self.position.clear()
            return
        mpp = self.doc.slide.mpp
        where = f"x {x:,}  y {y:,}"
        if mpp:
            where += f"  ({x * mpp / 1000:.3f}, {y * mpp / 1000:.3f} mm)"
        self.position.setText(where)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not getattr(self, "_fitted", False):  # the window has its size now: the whole slide in view
            self._fitted = True
            self.canvas.fit_to_window()

    def closeEvent(self, event) -> None:
        running = self.prediction.job is not None
        self.prediction.cancel()
        self.dataset_export.shutdown()
        # A prediction still reading the slide stops at its next batch; the slide closes when it lets go.
        self.doc.close(close_slide=not running)
        super().closeEvent(event)


def open_slide_window(slide, parent=None, classes=None) -> SlideWindow:
    window = SlideWindow(SlideDocument(slide, classes), parent, getattr(parent, "model_host", None))
    window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    return window
