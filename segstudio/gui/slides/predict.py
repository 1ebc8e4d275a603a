"""Predict in a slide window: the view, a drawn rectangle, or all the tissue, through the model host.

The job runs on the model host's thread (engine.predict.slide): finished rows come back as signals and
are written into the slide's labels on this thread, keeping hand-painted pixels, so the overlay fills in
as tiles finish and autosave keeps them. Progress, the time left and Cancel sit in the status bar; after
Cancel the rows finished so far stay.
"""
from __future__ import annotations

import time

from PySide6.QtCore import QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QAction, QColor, QKeySequence, QPen
from PySide6.QtWidgets import QGraphicsRectItem, QLabel, QMessageBox, QProgressBar, QPushButton

from segstudio.core.model_fit import fed_definition
from segstudio.core.words import count, duration, time_left


def _meta_of(selected):
    """The metadata of the model host's selection: a library id, or (model, metadata) as tests select it."""
    if isinstance(selected, tuple):
        return selected[1]
    if not selected:
        return None
    from segstudio.models.library import ModelLibrary

    try:
        return ModelLibrary().find(selected).meta
    except ValueError:
        return None  # the host reports an unknown model in its own words


class _WindowSink(QObject):
    """engine LabelSink whose rows travel to the GUI thread as signals (queued across threads)."""

    rows = Signal(int, int, object)

    def is_done(self, key: str) -> bool:
        return False

    def write(self, y0: int, x0: int, labels) -> None:
        self.rows.emit(y0, x0, labels)

    def block_done(self, key: str, box, uncertainty) -> None:
        pass


class PredictRectangleTool:
    """Drag a rectangle on the slide; releasing the mouse predicts inside it."""

    def __init__(self, on_box) -> None:
        self.on_box = on_box
        self._start: QPointF | None = None
        self._item: QGraphicsRectItem | None = None

    def mouse_press(self, canvas, pos: QPointF, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        self._start = QPointF(pos)
        if self._item is None:
            self._item = QGraphicsRectItem()
            pen = QPen(QColor(0, 200, 255), 2)
            pen.setCosmetic(True)
            self._item.setPen(pen)
            self._item.setZValue(5)
            canvas.scene().addItem(self._item)
        self._item.setRect(QRectF(pos, pos))

    def mouse_move(self, canvas, pos: QPointF, event) -> None:
        if self._start is not None and self._item is not None:
            self._item.setRect(QRectF(self._start, pos).normalized())

    def mouse_release(self, canvas, pos: QPointF, event) -> None:
        if self._start is None:
            return
        rect = QRectF(self._start, pos).normalized()
        self._start = None
        self.deactivate(canvas)
        if rect.width() >= 1 and rect.height() >= 1:
            self.on_box((int(rect.top()), int(rect.left()), int(rect.height()) + 1, int(rect.width()) + 1))

    def deactivate(self, canvas) -> None:
        if self._item is not None:
            canvas.scene().removeItem(self._item)
            self._item = None


class SlidePrediction(QObject):
    """The Predict menu of one slide window and the job it runs."""

    def __init__(self, window, host) -> None:
        super().__init__(window)
        self.window, self.host, self.doc = window, host, window.doc
        self.job = None
        self.last_result = None
        self._started = 0.0
        self.sink = _WindowSink(self)
        self.sink.rows.connect(self.doc.put_prediction)
        self.rectangle_tool = PredictRectangleTool(self.predict_box)
        menu = window.menuBar().addMenu("&Predict")
        self.actions = {
            "view": self._action(menu, "Predict &View", "Ctrl+P", self.predict_view),
            "rectangle": self._action(menu, "Predict &Rectangle (drag on the slide)", "R", self.draw_rectangle),
            "tissue": self._action(menu, "Predict All &Tissue", "Ctrl+Shift+P", self.predict_tissue),
        }
        menu.addSeparator()
        self.actions["cancel"] = self._action(menu, "&Cancel Prediction", "Esc", self.cancel)
        self._build_status()
        self._set_running(False)
        if host is not None:
            host.progress.connect(self._progress)
            host.finished.connect(self._finished)
            host.failed.connect(self._failed)
            host.cancelled.connect(self._cancelled)

    def _action(self, menu, text: str, key: str, slot) -> QAction:
        action = menu.addAction(text)
        action.setShortcut(QKeySequence(key))
        action.triggered.connect(lambda _=False: slot())
        return action

    def _build_status(self) -> None:
        bar = self.window.statusBar()
        self.label = QLabel()
        self.bar = QProgressBar(maximumWidth=180)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("slidePredictCancel")
        self.cancel_button.clicked.connect(self.cancel)
        for widget in (self.label, self.bar, self.cancel_button):
            bar.addPermanentWidget(widget)

    def _set_running(self, running: bool) -> None:
        for name in ("view", "rectangle", "tissue"):
            self.actions[name].setEnabled(not running and self.host is not None)
        self.actions["cancel"].setEnabled(running)
        self.bar.setVisible(running)
        self.cancel_button.setVisible(running)
        if not running:
            self.bar.setValue(0)

    # --- what to predict ----------------------------------------------------------------------------------
    def predict_view(self) -> None:
        canvas = self.window.canvas
        rect = canvas.mapToScene(canvas.viewport().rect()).boundingRect()
        self.predict_box((int(rect.top()), int(rect.left()), int(rect.height()) + 1, int(rect.width()) + 1))

    def draw_rectangle(self) -> None:
        self.window.canvas.set_tool(self.rectangle_tool)
        self.window.statusBar().showMessage("Drag a rectangle on the slide to predict inside it", 5000)

    def predict_tissue(self) -> None:
        self.predict_box(None)

    def predict_box(self, box) -> None:
        """Predict `box` (y0, x0, h, w level-0 pixels, clipped to the slide) or, with None, all tissue."""
        if self.job is not None or self.host is None:
            return
        slide = self.doc.slide
        if box is not None:
            y0, x0 = max(0, box[0]), max(0, box[1])
            box = (y0, x0, min(slide.height, box[0] + box[2]) - y0, min(slide.width, box[1] + box[3]) - x0)
            if box[2] < 1 or box[3] < 1:
                self.window.statusBar().showMessage("That area is outside the slide", 5000)
                return
        from segstudio.engine.predict import PredictSettings

        feed = self._model_input()
        if feed is False:
            return  # the user cancelled the question
        self._started = time.monotonic()
        self.job = self.host.submit("predict_slide", settings=PredictSettings(model_input=feed), tag=self.doc,
                                    request={"slide": slide, "box": box, "sink": self.sink})
        self.label.setText("Predicting: finding the tissue...")
        self._set_running(True)

    def _model_input(self):
        """The input definition for this slide (None: the model's own), or False when the user cancelled.

        A colour slide for a model that reads one channel of its own choosing is never averaged to grey
        unasked: the first Predict asks whether to feed the H&E path or the grey mean, once per model."""
        selected = self.host.selected_model()
        meta = _meta_of(selected)
        own = dict(getattr(meta, "input", None) or {})
        if meta is None or int(meta.in_channels) != 1 or self.doc.slide.info.channels < 3 or own.get("kind") in (
                "he", "channels"):
            return None
        feeds, key = self.doc.feeds, self.doc.feed_key(selected)
        if key not in feeds:
            answer = self._ask_feed(getattr(meta, "name", "") or "the model")
            if answer is None:
                return False
            feeds[key] = answer
        return fed_definition(own, feeds[key])

    def _ask_feed(self, model: str) -> str | None:
        """"he" or "" (the grey mean), or None for Cancel."""
        box = QMessageBox(QMessageBox.Icon.Question, "Predict",
                          f"This slide is in colour, but {model} reads one channel. For a stained brightfield slide "
                          "(H&E), the H&E path feeds it the hematoxylin (nuclear) stain separated from the colours; "
                          "otherwise the colours are averaged to grey. (Asked once per model for this slide.)",
                          QMessageBox.StandardButton.Cancel, self.window)
        box.setObjectName("slideFeedQuestion")
        he = box.addButton("Use the H&E path", QMessageBox.ButtonRole.AcceptRole)
        grey = box.addButton("Average to grey", QMessageBox.ButtonRole.AcceptRole)
        box.setDefaultButton(he)
        box.exec()
        return {he: "he", grey: ""}.get(box.clickedButton())

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel.set()
            self.label.setText("Stopping...")

    # --- the job's signals --------------------------------------------------------------------------------
    def _progress(self, job, done: int, total: int) -> None:
        if job is not self.job or not total:
            return
        self.bar.setMaximum(total)
        self.bar.setValue(done)
        left = time_left(done, total, time.monotonic() - self._started)
        self.label.setText(f"Predicting: {done} of {count(total, 'tile')}" + (f", about {left} left" if left else ""))

    def _finished(self, job, result) -> None:
        if job is not self.job:
            return
        self._done()
        self.last_result = result
        self.label.setText(f"Predicted {count(result.tiles_run, 'tile')} in {duration(result.seconds)}; "
                           f"{result.tiles_skipped} of glass skipped")

    def _failed(self, job, message: str) -> None:
        if job is not self.job:
            return
        self._done()
        self.label.setText(f"Predict failed: {message}")

    def _cancelled(self, job) -> None:
        if job is not self.job:
            return
        self._done()
        self.label.setText("Prediction stopped; the labels finished so far are kept")

    def _done(self) -> None:
        self.job = None
        self._set_running(False)
