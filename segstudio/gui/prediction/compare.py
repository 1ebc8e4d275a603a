"""Compare two models on the open image: predict with both, flip between their predictions, count corrections.

Compare never touches the user's mask: each model's prediction is kept beside the document, and showing
one points the canvas's overlay at that prediction (read-only) instead of the mask. While a prediction is
shown the left button pans; any change to the mask (an edit from the keyboard, an undo) brings the mask
back at once, so nothing is ever painted where it cannot be seen. How much each model needed correcting is
counted against the user's mask (core.model_compare).
"""
from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
)

from segstudio.core.model_compare import corrections, describe
from segstudio.core.text import printable

VIEWS = ("mask", "a", "b")  # the order Switch Compared View steps through


def model_title(entry) -> str:
    return printable(f"{entry.meta.name} v{entry.meta.version}")


class ComparePanel(QGroupBox):
    """The Compare section of the Model dock: the second model, Compare, what to show, the counts."""

    compare_requested = Signal()
    view_requested = Signal(str)  # one of VIEWS

    def __init__(self, parent=None) -> None:
        super().__init__("Compare two models", parent)
        self.setObjectName("comparePanel")
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.second_combo = QComboBox()
        self.second_combo.setObjectName("compareCombo")
        self.second_combo.setToolTip("The model to compare with the one chosen above")
        form.addRow("With", self.second_combo)
        layout.addLayout(form)
        self.compare_button = QPushButton("Compare")
        self.compare_button.setObjectName("compareButton")
        self.compare_button.setToolTip("Predict this image with both models; your mask is not changed (Ctrl+Alt+P)")
        self.compare_button.clicked.connect(self.compare_requested.emit)
        layout.addWidget(self.compare_button)
        row = QHBoxLayout()
        self.view_group = QButtonGroup(self)
        self.view_group.setExclusive(True)
        self.view_buttons: dict[str, QPushButton] = {}
        for view, text in (("mask", "Your mask"), ("a", "A"), ("b", "B")):
            button = QPushButton(text)
            button.setObjectName(f"compareShow_{view}")
            button.setCheckable(True)
            button.clicked.connect(lambda _=False, v=view: self.view_requested.emit(v))
            self.view_group.addButton(button)
            self.view_buttons[view] = button
            row.addWidget(button)
        self.view_buttons["mask"].setChecked(True)
        layout.addLayout(row)
        self.result = QLabel("Pick a second model and press Compare: both predict this image, and you can flip "
                             "between their predictions (Shift+M) without changing your mask.")
        self.result.setObjectName("compareResult")
        self.result.setWordWrap(True)
        layout.addWidget(self.result)
        self._entries: dict[str, object] = {}
        self.show_pair(None)

    def set_models(self, entries, first: str | None) -> None:
        """List every model; keep the second model chosen before if it is still there."""
        keep = self.second_id()
        self.second_combo.clear()
        self._entries = {e.id: e for e in entries}
        for entry in entries:
            self.second_combo.addItem(model_title(entry), entry.id)
        index = self.second_combo.findData(keep) if keep and keep != first else -1
        if index < 0:  # the first model that is not the one chosen above
            index = next((i for i in range(self.second_combo.count()) if self.second_combo.itemData(i) != first), 0)
        self.second_combo.setCurrentIndex(index)

    def second_id(self) -> str | None:
        return self.second_combo.currentData()

    def title(self, model_id: str) -> str:
        entry = self._entries.get(model_id)
        return model_title(entry) if entry is not None else printable(model_id)

    def show_pair(self, pair: tuple[str, str] | None) -> None:
        """Name the compared models on the A and B buttons' tips; without a comparison only the mask shows."""
        for key, index in (("a", 0), ("b", 1)):
            button = self.view_buttons[key]
            button.setEnabled(pair is not None)
            # Short texts: the dock stays as narrow as it was; the counts below name the models.
            button.setToolTip(f"Show {self.title(pair[index])}'s prediction instead of your mask" if pair else "")

    def side(self, pair: tuple[str, str], index: int) -> str:
        """"A (nuclei-unet v1)": a compared model as the counts and the status bar name it."""
        return f"{'AB'[index]} ({self.title(pair[index])})"

    def show_view(self, view: str) -> None:
        self.view_buttons[view].setChecked(True)


class CompareController(QObject):
    """Runs the comparison through the model host and shows its results; owned by PredictionController."""

    def __init__(self, window, prediction) -> None:
        super().__init__(window)
        self.window = window
        self.prediction = prediction
        self.host = window.model_host
        self.panel = ComparePanel()
        self.predictions: dict = {}  # document -> {model id: labels}
        self.pairs: dict = {}  # document -> (model A id, model B id) of its last comparison
        self.view = "mask"
        self._doc = None  # the document whose mask signals are connected
        self._suspended_tool = None  # the canvas tool put aside while a prediction is shown
        self._recount = QTimer(self)
        self._recount.setSingleShot(True)
        self._recount.setInterval(300)  # counting is a full-image comparison: once per pause, not per segment
        self._recount.timeout.connect(self.show_counts)

        self.compare_action = QAction("&Compare with Second Model", window)
        self.compare_action.setShortcut(QKeySequence("Ctrl+Alt+P"))
        self.compare_action.setStatusTip("Predict this image with the model chosen above and a second one; "
                                         "your mask is not changed")
        self.compare_action.triggered.connect(self.compare)
        self.switch_action = QAction("S&witch Compared View", window)
        self.switch_action.setShortcut(QKeySequence("Shift+M"))
        self.switch_action.setStatusTip("Show your mask, model A's prediction, model B's prediction in turn")
        self.switch_action.triggered.connect(self.switch_view)
        menu = window.menus["model"]
        menu.insertActions(menu.actions()[2] if len(menu.actions()) > 2 else None,
                           [self.compare_action, self.switch_action])
        window.actions.register(self.compare_action, self.switch_action)
        self.panel.compare_requested.connect(self.compare)
        self.panel.view_requested.connect(self.show_view)
        self.host.finished.connect(self._on_finished)
        self.host.failed.connect(lambda job, _message: self._on_stopped(job))
        self.host.cancelled.connect(self._on_stopped)
        window.document_changed.connect(self._on_document_changed)
        window.documents_changed.connect(self._forget_closed)
        self.update_enabled()

    # --- running the comparison -------------------------------------------------------------------
    def compare(self) -> None:
        doc = self.window.current
        first, second = self.prediction.model_id(), self.panel.second_id()
        if doc is None or first is None or second is None or self.host.busy("predict"):
            return
        if first == second:
            self.panel.result.setText("Pick a second model other than the one chosen above.")
            return
        self.show_view("mask")
        self.pairs[doc] = (first, second)
        self.predictions.setdefault(doc, {}).pop(first, None)
        self.predictions[doc].pop(second, None)
        for model_id in (first, second):
            self.prediction.submit_predict(doc, model_id, compare=True)
        self.prediction.progress.start(f"Comparing {self.panel.title(first)} and {self.panel.title(second)}")
        self.panel.result.setText("Predicting with both models...")
        self.prediction.update_enabled()

    def record(self, doc, model_id: str, labels) -> None:
        """Keep a model's prediction of `doc` (a Predict or a comparison); the counts follow."""
        self.predictions.setdefault(doc, {})[model_id] = labels
        if doc is self.window.current:
            self._recount.start()

    def _on_finished(self, job, result) -> None:
        if job.kind != "predict" or not job.extra.get("compare"):
            return
        doc = job.tag
        if doc in self.window.documents:
            self.record(doc, job.model, result.labels)
        if not self._comparing():
            self.prediction.progress.finish()
            if doc is self.window.current:
                self.panel.show_pair(self.pairs.get(doc))
                self.show_counts()
        self.prediction.update_enabled()

    def _on_stopped(self, job) -> None:
        if job.kind == "predict" and job.extra.get("compare"):
            self.pairs.pop(job.tag, None)
            if job.tag is self.window.current:
                self.panel.show_pair(None)
                self.panel.result.setText("The comparison did not finish; your mask is unchanged.")

    def _comparing(self) -> bool:
        return any(job.kind == "predict" and job.extra.get("compare") for job in self.host.jobs.values())

    # --- counts ------------------------------------------------------------------------------------
    def show_counts(self) -> None:
        doc = self.window.current
        pair = self.pairs.get(doc) if doc is not None else None
        known = self.predictions.get(doc, {})
        if pair is None or any(model_id not in known for model_id in pair):
            return
        rows = [corrections(self.panel.side(pair, i), doc.mask, known[m]) for i, m in enumerate(pair)]
        self.panel.result.setText("\n".join(describe(rows, int(doc.hand.sum()))))

    # --- what the canvas shows --------------------------------------------------------------------
    def show_view(self, view: str) -> None:
        doc = self.window.current
        pair = self.pairs.get(doc) if doc is not None else None
        known = self.predictions.get(doc, {})
        if view != "mask" and (pair is None or pair[VIEWS.index(view) - 1] not in known):
            view = "mask"
        canvas = self.window.canvas
        if view == "mask":
            if self.view != "mask" and doc is not None:
                canvas.set_mask(doc.mask, doc.classes.lut_rgba())
            self._resume_tool()
        else:
            model_id = pair[VIEWS.index(view) - 1]
            canvas.set_mask(known[model_id], doc.classes.lut_rgba())
            if not self.window.actions.toggle_mask.isChecked():
                self.window.actions.toggle_mask.setChecked(True)
            self._suspend_tool()
            self.window.statusBar().showMessage(
                f"Showing {self.panel.side(pair, VIEWS.index(view) - 1)}'s prediction; your mask is unchanged "
                "(Shift+M shows the next, editing shows your mask again)", 10000)
        self.view = view
        self.panel.show_view(view)

    def switch_view(self) -> None:
        self.show_view(VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)])

    def _suspend_tool(self) -> None:
        canvas = self.window.canvas
        if canvas.tool() is not None:
            self._suspended_tool = canvas.tool()
            canvas.set_tool(None)  # the left button pans: nothing is painted under a prediction

    def _resume_tool(self) -> None:
        canvas = self.window.canvas
        if self._suspended_tool is not None and canvas.tool() is None:
            canvas.set_tool(self._suspended_tool)
        self._suspended_tool = None

    def _on_mask_changed(self, *_args) -> None:
        if self.view != "mask":
            self.show_view("mask")
        self._recount.start()

    def _on_mask_replaced(self) -> None:
        # The window has pointed the overlay at the mask again already.
        self.view = "mask"
        self.panel.show_view("mask")
        self._resume_tool()
        self._recount.start()

    def _on_document_changed(self, doc) -> None:
        if self._doc is not None:
            try:
                self._doc.mask_changed.disconnect(self._on_mask_changed)
                self._doc.mask_replaced.disconnect(self._on_mask_replaced)
                self._doc.classes_changed.disconnect(self._on_mask_replaced)
            except RuntimeError:  # the document was closed and deleted
                pass
        self._doc = doc
        if doc is not None:
            doc.mask_changed.connect(self._on_mask_changed)
            doc.mask_replaced.connect(self._on_mask_replaced)
            doc.classes_changed.connect(self._on_mask_replaced)
        self.view = "mask"  # the window shows the new document's mask
        self.panel.show_view("mask")
        self._resume_tool()
        self.panel.show_pair(self.pairs.get(doc))
        self.panel.result.setText("")
        self.show_counts()
        self.update_enabled()

    def _forget_closed(self) -> None:
        open_now = set(self.window.documents)
        self.predictions = {d: v for d, v in self.predictions.items() if d in open_now}
        self.pairs = {d: v for d, v in self.pairs.items() if d in open_now}

    def update_enabled(self) -> None:
        ready = (self.window.current is not None and self.prediction.model_id() is not None
                 and self.panel.second_id() is not None and not self.host.busy("predict"))
        self.compare_action.setEnabled(ready)
        self.panel.compare_button.setEnabled(ready)
        self.switch_action.setEnabled(self.window.current in self.pairs)
