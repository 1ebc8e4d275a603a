"""The review queue of a slide window: after Predict, the regions where the model was least sure; Review >
Next Region to Check (N) shows the next one and counts the one shown before as looked at.

The queue is saved beside the slide's labels (autosave/slides/<key>.review.json), so reopening the slide
shows the marks and the counts again. A region where a person painted counts as corrected: the slide's
hand map is read for the regions an edit touched once the autosave has written it (by then the
background painting of the stroke is done).
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget

from segstudio.gui.review.marks import ReviewMarks
from segstudio.gui.review.panel import ReviewPanel
from segstudio.gui.review.session import ReviewSession, show_region


def review_path(labels_folder: Path) -> Path:
    """The queue's file beside a slide's labels folder (<key>.zarr -> <key>.review.json)."""
    return labels_folder.with_name(labels_folder.stem + ".review.json")


class SlideReview(QObject):
    def __init__(self, window, host=None) -> None:
        super().__init__(window)
        self.window, self.doc = window, window.doc
        hand = self.doc.hand
        # any_in looks only at which chunks exist, so the glass and untouched tissue cost no reading.
        self.session = ReviewSession(review_path(self.doc.store.folder),
                                     lambda box: hand.any_in(*box) and bool(hand.read(*box).any()))
        self.marks = ReviewMarks(self.doc.slide.shape)
        window.canvas.scene().addItem(self.marks)
        self.next_action = QAction("&Next Region to Check", window)
        self.next_action.setShortcut(QKeySequence("N"))
        self.next_action.setStatusTip("Show the region where the model was least sure that nobody has checked yet")
        self.next_action.triggered.connect(self.next_region)
        menu = window.menuBar().addMenu("Re&view")
        menu.addAction(self.next_action)
        self.panel = ReviewPanel(self.next_action)
        self.panel.region_chosen.connect(self.go_to)
        self.dock = QDockWidget("Review", window)
        self.dock.setObjectName("dock_slideReview")
        self.dock.setWidget(self.panel)
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self._touched = None  # the box changed since the last autosave
        self.doc.labels_changed.connect(self._changed)
        self.doc.saved.connect(self._after_save)
        if host is not None:
            host.finished.connect(self._finished)
            # A prediction stopped with Cancel keeps its finished rows: the regions it covered are queued too.
            host.cancelled.connect(self._stopped)
        self._refresh()

    def _finished(self, job, result) -> None:
        grid = getattr(result, "regions", None)
        if job.tag is not self.doc or job.kind != "predict_slide" or grid is None:
            return
        self.session.adopt(grid.regions(), grid.mean())
        self._refresh()
        queue = self.session.queue
        if queue.total:
            self.window.statusBar().showMessage(f"{queue.describe()}: press N for the next region to check", 8000)

    def _stopped(self, job) -> None:
        partial = job.extra.get("partial")
        if partial is not None and partial.regions is not None and partial.regions.mean() is not None:
            self._finished(job, partial)  # no region finished: the queue from before stays

    def next_region(self) -> None:
        if self.session.queue is None:
            self.window.statusBar().showMessage("Predict first: then N shows where the model was least sure", 5000)
            return
        region = self.session.next()
        if region is None:
            self.window.statusBar().showMessage(f"Every region is checked: {self.session.queue.describe()}", 8000)
        else:
            show_region(self.window.canvas, region)
        self._refresh()

    def go_to(self, key: str) -> None:
        region = self.session.go_to(key)
        if region is not None:
            show_region(self.window.canvas, region)
            self._refresh()

    def _changed(self, y0: int, x0: int, h: int, w: int) -> None:
        if self._touched is None:
            self._touched = (y0, x0, h, w)
            return
        ty, tx, th, tw = self._touched
        top, left = min(ty, y0), min(tx, x0)
        self._touched = (top, left, max(ty + th, y0 + h) - top, max(tx + tw, x0 + w) - left)

    def _after_save(self, *_saved) -> None:
        touched, self._touched = self._touched, None
        if touched is not None and self.session.recheck(touched):
            self._refresh()

    def _refresh(self) -> None:
        self.marks.set_queue(self.session.queue)
        self.panel.show_queue(self.session.queue)
        if self.session.error:
            self.window.statusBar().showMessage(self.session.error, 10000)


def attach_slide_review(window, host=None) -> SlideReview:
    window.review = SlideReview(window, host)
    return window.review
