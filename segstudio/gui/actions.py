"""Every menu command in one place, with its shortcut, so menus, toolbars and tests share the same QActions."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from html import escape

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from segstudio import __version__


@dataclass
class Actions:
    open: QAction
    open_folder: QAction
    open_project: QAction
    save_project: QAction
    close_image: QAction
    export_mask: QAction
    export_dataset: QAction
    quit: QAction
    undo: QAction
    redo: QAction
    zoom_in: QAction
    zoom_out: QAction
    zoom_fit: QAction
    zoom_actual: QAction
    toggle_mask: QAction
    outline_mask: QAction
    channels: QAction
    next_image: QAction
    previous_image: QAction
    predict: QAction
    predict_replace: QAction
    fine_tune: QAction
    new_model: QAction
    import_model: QAction
    export_model: QAction
    shortcuts: QAction
    about: QAction
    # Actions that feature modules create themselves (tools, class keys), listed with the rest.
    extra: list[QAction] = field(default_factory=list)

    def all(self) -> list[QAction]:
        return [getattr(self, f.name) for f in fields(self) if f.name != "extra"] + list(self.extra)

    def register(self, *actions: QAction) -> None:
        self.extra.extend(actions)


def _action(window: QMainWindow, text: str, shortcut=None, tip: str = "", enabled: bool = True) -> QAction:
    action = QAction(text, window)
    if shortcut is not None:
        if isinstance(shortcut, (list, tuple)):
            action.setShortcuts([QKeySequence(s) for s in shortcut])
        else:
            action.setShortcut(QKeySequence(shortcut))
    if tip:
        action.setStatusTip(tip)
        action.setToolTip(tip)
    action.setEnabled(enabled)
    return action


def create_actions(window: QMainWindow) -> Actions:
    K = QKeySequence.StandardKey
    a = Actions(
        open=_action(window, "&Open Images...", K.Open, "Open one or more image files"),
        open_folder=_action(window, "Open &Folder...", "Ctrl+Shift+O", "Open every image in a folder"),
        open_project=_action(window, "Open &Project...", "Ctrl+Alt+O",
                             "Open a project folder: its images, masks, classes, model and view"),
        save_project=_action(window, "&Save Project...", K.Save,
                             "Save the open images' masks, the classes, the model and the view in a project folder",
                             enabled=False),
        close_image=_action(window, "&Close Image", K.Close, "Close the current image", enabled=False),
        export_mask=_action(
            window, "Export &Mask...", "Ctrl+E", "Save the current mask as an index PNG", enabled=False
        ),
        export_dataset=_action(
            window, "Export to &Dataset...", "Ctrl+Shift+E", "Add corrected masks to a training dataset folder",
            enabled=False,
        ),
        quit=_action(window, "&Quit", K.Quit, "Quit segstudio"),
        undo=_action(window, "&Undo", K.Undo, enabled=False),
        redo=_action(window, "&Redo", ["Ctrl+Shift+Z", "Ctrl+Y"], enabled=False),
        zoom_in=_action(window, "Zoom &In", [K.ZoomIn, "Ctrl+=", "+"], "Zoom in", enabled=False),
        zoom_out=_action(window, "Zoom &Out", [K.ZoomOut, "-"], "Zoom out", enabled=False),
        zoom_fit=_action(window, "&Fit to Window", ["Ctrl+0", "F"], "Show the whole image", enabled=False),
        zoom_actual=_action(window, "&Actual Pixels", "Ctrl+1", "One image pixel per screen pixel", enabled=False),
        toggle_mask=_action(window, "Show &Mask", "M", "Show or hide the mask overlay", enabled=False),
        outline_mask=_action(
            window, "Mask &Outlines Only", "O", "Draw only the outline of each region", enabled=False
        ),
        channels=_action(
            window, "&Channels and Page...", "Ctrl+Shift+C", "Choose the page and channels to show and use",
            enabled=False,
        ),
        next_image=_action(
            window, "&Next Image", ["PgDown", "Ctrl+Right"], "Go to the next open image", enabled=False
        ),
        previous_image=_action(
            window, "&Previous Image", ["PgUp", "Ctrl+Left"], "Go to the previous open image", enabled=False
        ),
        predict=_action(
            window, "&Predict", ["Ctrl+P", "F5"], "Pre-fill the mask with the selected model", enabled=False
        ),
        predict_replace=_action(
            window, "Predict and &Replace All", "Ctrl+Shift+P", "Predict and overwrite pixels painted by hand too",
            enabled=False,
        ),
        fine_tune=_action(
            window, "&Fine-tune...", "Ctrl+T", "Train a new model version on exported datasets", enabled=False
        ),
        new_model=_action(window, "&New Model...", "Ctrl+Shift+N",
                          "Make a model: pick the network, the input, the classes and where it starts",
                          enabled=False),
        import_model=_action(window, "&Import Model...", tip="Add a model file from another lab to your library",
                             enabled=False),
        export_model=_action(window, "E&xport Model...", tip="Write the selected model as files to share",
                             enabled=False),
        shortcuts=_action(window, "&Keyboard Shortcuts", K.HelpContents, "List every keyboard shortcut"),
        about=_action(window, "&About segstudio"),
    )
    # Their menu text follows the undo stack ("Undo Brush stroke"); the shortcut list names them plainly.
    a.undo.setProperty(SHORTCUT_NAME, "Undo")
    a.redo.setProperty(SHORTCUT_NAME, "Redo")
    a.toggle_mask.setCheckable(True)
    a.toggle_mask.setChecked(True)
    a.outline_mask.setCheckable(True)
    return a


def build_menus(window: QMainWindow, a: Actions) -> dict[str, QMenu]:
    bar = window.menuBar()
    menus: dict[str, QMenu] = {}
    file_menu = menus["file"] = bar.addMenu("&File")
    file_menu.addActions([a.open, a.open_folder])
    menus["recent"] = file_menu.addMenu("Open &Recent")
    menus["recent"].setObjectName("recentMenu")
    menus["samples"] = file_menu.addMenu("Open &Sample")
    menus["samples"].setObjectName("samplesMenu")
    file_menu.addSeparator()
    file_menu.addActions([a.open_project, a.save_project])
    file_menu.addSeparator()
    file_menu.addActions([a.export_mask, a.export_dataset])
    file_menu.addSeparator()
    file_menu.addActions([a.close_image, a.quit])

    edit = menus["edit"] = bar.addMenu("&Edit")
    edit.addActions([a.undo, a.redo])
    edit.addSeparator()
    menus["tools"] = edit.addMenu("&Tools")

    view = menus["view"] = bar.addMenu("&View")
    view.addActions([a.zoom_in, a.zoom_out, a.zoom_fit, a.zoom_actual])
    view.addSeparator()
    view.addActions([a.toggle_mask, a.outline_mask, a.channels])
    view.addSeparator()
    view.addActions([a.previous_image, a.next_image])
    view.addSeparator()
    menus["panels"] = view.addMenu("&Panels")

    model = menus["model"] = bar.addMenu("&Model")
    model.addActions([a.predict, a.predict_replace])
    model.addSeparator()
    model.addAction(a.fine_tune)
    model.addSeparator()
    model.addActions([a.new_model, a.import_model, a.export_model])

    help_menu = menus["help"] = bar.addMenu("&Help")
    help_menu.addActions([a.shortcuts, a.about])
    return menus


# Gestures and keys that belong to a tool or a panel rather than to a menu command.
GESTURES: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("On the image", (
        ("Zoom about the cursor", "Mouse wheel"),
        ("Pan", "Middle drag, Space + drag"),
        ("Erase while using the brush", "Right drag"),
        ("Polygon / Lasso: close the shape", "Enter, right click"),
        ("Polygon / Lasso: remove the last point", "Backspace"),
        ("Polygon / Lasso: cancel the shape", "Esc"),
        ("Probe a pixel (Network Inspector open)", "Ctrl+click"),
    )),
    ("Panels and jobs", (
        ("Rename the selected class (Classes panel)", "F2, double-click"),
        ("Cancel a running Predict", "Esc"),
    )),
)
SHORTCUT_NAME = "shortcut_name"  # action property: the name listed when the action's text changes (Undo)
SHORTCUT_SUMMARY = "shortcut_summary"  # menu property: one row instead of each of its actions


def _shortcut_name(action: QAction) -> str:
    name = action.property(SHORTCUT_NAME) or action.text()
    return name.replace("&", "").rstrip(".…")


def _keys(action: QAction) -> str:
    return ", ".join(s.toString(QKeySequence.SequenceFormat.NativeText) for s in action.shortcuts())


def shortcut_groups(window: QMainWindow) -> list[tuple[str, list[tuple[str, str]]]]:
    """(group title, [(command, keys)]) in menu order, one group per menu and submenu, then the gestures."""
    groups: list[tuple[str, list[tuple[str, str]]]] = []

    def walk(menu: QMenu, title: str) -> None:
        rows: list[tuple[str, str]] = []
        groups.append((title, rows))
        for action in menu.actions():
            sub = action.menu()
            if sub is not None:
                summary = sub.property(SHORTCUT_SUMMARY)
                if summary:
                    rows.append(tuple(summary))
                else:
                    walk(sub, f"{title} > {sub.title().replace('&', '')}")
            elif _keys(action):
                rows.append((_shortcut_name(action), _keys(action)))

    for action in window.menuBar().actions():
        if action.menu() is not None:
            walk(action.menu(), action.menu().title().replace("&", ""))
    groups = [(title, rows) for title, rows in groups if rows]
    return groups + [(title, list(rows)) for title, rows in GESTURES]


def _group_html(title: str, rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><td>{escape(name)}</td><td style='padding-left:12px'><b>{escape(keys)}</b></td></tr>"
                   for name, keys in rows)
    return f"<h4 style='margin-bottom:2px'>{escape(title)}</h4><table cellspacing='0'>{body}</table>"


def _columns(groups: list[tuple[str, list]], count: int) -> list[list[tuple[str, list]]]:
    """Groups in menu order, cut into `count` columns of about the same number of lines."""
    total = sum(len(rows) + 2 for _, rows in groups)
    columns: list[list[tuple[str, list]]] = [[]]
    filled = 0
    for group in groups:
        if filled >= total / count * len(columns) and len(columns) < count:
            columns.append([])
        columns[-1].append(group)
        filled += len(group[1]) + 2
    return columns


def show_shortcuts(window: QMainWindow) -> QDialog:
    """Help > Keyboard Shortcuts: read from the menus themselves, so the list cannot drift."""
    groups = shortcut_groups(window)
    cells = "".join("<td valign='top' style='padding-right:24px'>" + "".join(_group_html(*g) for g in column)
                    + "</td>" for column in _columns(groups, 3))
    dialog = QDialog(window)
    dialog.setObjectName("shortcutsDialog")
    dialog.setWindowTitle("Keyboard Shortcuts")
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    text = QLabel(f"<table><tr>{cells}</tr></table>")
    text.setObjectName("shortcutsText")
    text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    scroll = QScrollArea()
    scroll.setWidget(text)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QScrollArea.Shape.NoFrame)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.reject)
    layout = QVBoxLayout(dialog)
    layout.addWidget(scroll)
    layout.addWidget(buttons)
    # As large as the list, but never taller or wider than the screen.
    screen = window.screen().availableGeometry()
    hint = text.sizeHint()
    dialog.resize(min(hint.width() + 40, screen.width() - 40), min(hint.height() + 70, screen.height() - 60))
    dialog.open()
    return dialog


def show_about(parent: QWidget) -> None:
    QMessageBox.about(
        parent,
        "About segstudio",
        f"<b>segstudio {__version__}</b><p>Label biomedical slides with a segmentation network in the loop.</p>",
    )
