"""Review in the main window: the regions of the current image where the model was least sure, and the open
images ranked by how unsure the model was over each.

Review > Next Region to Check (Shift+N; N alone is the pan tool here) shows the most uncertain region not
yet checked in the current image; Review > Next Most Uncertain Image (Alt+N) goes to the open image with
the highest mean uncertainty not yet visited this way. Each image's queue is made when Predict finishes
(from the uncertainty map), kept in the autosave folder beside the image's autosaved mask
(<key>.review.json), so the marks and the ranking survive closing the image and reopening it. A region
with pixels painted by hand (the document's hand map) counts as corrected.
"""
from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QKeySequence

from segstudio.core.autosave import AutosaveStore
from segstudio.core.review import ReviewQueue, rank_images
from segstudio.core.words import count
from segstudio.gui.review.marks import ReviewMarks
from segstudio.gui.review.panel import ReviewPanel
from segstudio.gui.review.session import ReviewSession, show_region


def review_path(doc):
    """The queue's file beside the image page's autosave entry."""
    store = AutosaveStore()
    return store.root / f"{store.key(doc.path, doc.image.meta.page)}.review.json"


class ReviewController(QObject):
    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.sessions: dict = {}  # ImageDocument -> ReviewSession
        self.doc = None
        self.next_region = self._action("Next &Region to Check", "Shift+N", self.go_next_region,
                                        "Show the region of this image where the model was least sure, not yet checked")
        self.next_image = self._action("Next Most &Uncertain Image", "Alt+N", self.go_next_image,
                                       "Go to the open image the model was least sure about, not yet visited")
        menu = window.menuBar().addMenu("Re&view")
        window.menuBar().insertMenu(window.menus["help"].menuAction(), menu)
        menu.addActions([self.next_region, self.next_image])
        window.menus["review"] = menu
        window.actions.register(self.next_region, self.next_image)
        self.marks = ReviewMarks((1, 1))
        window.canvas.scene().addItem(self.marks)
        self.panel = ReviewPanel(self.next_region, self.next_image)
        self.panel.region_chosen.connect(self.go_to)
        self.dock = window.add_panel(self.panel, "Review")
        # A tab beside Classes: the right-hand column has no height to spare on a laptop screen.
        window.tabifyDockWidget(window.editing.classes_dock, self.dock)
        window.editing.classes_dock.raise_()
        window.document_changed.connect(self._on_document)
        window.documents_changed.connect(self._on_documents)
        window.model_host.finished.connect(self._on_finished)
        self._refresh()

    def _action(self, text: str, key: str, slot, tip: str) -> QAction:
        action = QAction(text, self.window)
        action.setShortcut(QKeySequence(key))
        action.setStatusTip(tip)
        action.triggered.connect(lambda _=False: slot())
        return action

    def session(self, doc) -> ReviewSession:
        found = self.sessions.get(doc)
        if found is None:
            hand = doc.model.hand
            found = self.sessions[doc] = ReviewSession(
                review_path(doc), lambda box: bool(hand[box[0]:box[0] + box[2], box[1]:box[1] + box[3]].any()))
        return found

    # --- documents and predictions ------------------------------------------------------------------------
    def _on_document(self, doc) -> None:
        if self.doc is not None:
            self.doc.mask_changed.disconnect(self._on_mask_changed)
        self.doc = doc
        if doc is not None:
            doc.mask_changed.connect(self._on_mask_changed)
            self.marks.set_shape(doc.image.meta.height, doc.image.meta.width)
        self._refresh()

    def _on_documents(self) -> None:
        open_now = set(self.window.all_documents())
        for doc in [d for d in self.sessions if d not in open_now]:
            del self.sessions[doc]
        self._refresh()

    def _on_mask_changed(self, y0: int, x0: int, h: int, w: int) -> None:
        if self.doc is not None and self.session(self.doc).recheck((y0, x0, h, w)):
            self._refresh()

    def _on_finished(self, job, result) -> None:
        doc = job.tag
        if job.kind != "predict" or doc not in self.window.documents or getattr(doc, "prediction", None) is not result:
            return
        made = ReviewQueue.from_uncertainty(result.uncertainty)
        self.session(doc).adopt(made.regions, made.mean_uncertainty)
        self._refresh()

    # --- gestures ---------------------------------------------------------------------------------------
    def go_next_region(self) -> None:
        doc = self.window.current
        session = self.session(doc) if doc is not None else None
        if session is None or session.queue is None:
            self._say("Predict first: then Next Region shows where the model was least sure")
            return
        self.dock.show()
        self.dock.raise_()  # its counts say how far the checking has got
        region = session.next()
        if region is None:
            self._say(f"Every region of {doc.title} is checked: {session.queue.describe()}")
        else:
            show_region(self.window.canvas, region)
        self._refresh()

    def go_to(self, key: str) -> None:
        if self.doc is not None:
            region = self.session(self.doc).go_to(key)
            if region is not None:
                show_region(self.window.canvas, region)
                self._refresh()

    def go_next_image(self) -> None:
        current = self.window.current
        if current is not None and self.session(current).queue is not None:
            self.session(current).queue.image_checked = True  # visited: the next one is another image
            self.session(current).save()
        queues = {doc: self.session(doc).queue for doc in self.window.documents if doc is not current}
        ranked = rank_images(queues)
        if not ranked:
            self._say("No other predicted image is left to check" + self._unpredicted_note())
        else:
            self.window.set_current(ranked[0])
            mean = self.session(ranked[0]).queue.mean_uncertainty
            self._say(f"{ranked[0].title}: the model was {mean:.0%} unsure on average here")
        self._refresh()

    # --- showing ----------------------------------------------------------------------------------------
    def _unpredicted_note(self) -> str:
        waiting = [d for d in self.window.documents if self.session(d).queue is None]
        return f" ({count(len(waiting), 'image')} not predicted yet)" if waiting else ""

    def _refresh(self) -> None:
        session = self.session(self.doc) if self.doc is not None else None
        queue = session.queue if session is not None else None
        self.marks.set_queue(queue)
        self.panel.show_queue(queue)
        docs = self.window.documents
        predicted = [d for d in docs if self.session(d).queue is not None]
        visited = [d for d in predicted if self.session(d).queue.image_checked]
        self.panel.show_images(f"Images visited: {len(visited)} of {len(predicted)} predicted"
                               + self._unpredicted_note() if docs else "")
        self.next_region.setEnabled(queue is not None)
        self.next_image.setEnabled(any(d is not self.doc and d not in visited for d in predicted))
        if session is not None and session.error:
            self._say(session.error)

    def _say(self, text: str) -> None:
        self.window.statusBar().showMessage(text, 8000)
