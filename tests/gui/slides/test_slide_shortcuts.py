"""Every keyboard shortcut of the main window and of a slide window does one thing: two actions sharing a
key in one window make Qt call the key ambiguous, and then neither runs."""
from collections import Counter

from PySide6.QtGui import QAction, QKeySequence

from tests.gui.slides.test_slide_export import _open
from tests.gui.slides.test_slide_predict import small_slide  # noqa: F401 (fixture)


def _shared_shortcuts(widget) -> dict[str, list[str]]:
    keys = Counter()
    names: dict[str, list[str]] = {}
    for action in widget.findChildren(QAction):
        for sequence in action.shortcuts():
            key = sequence.toString(QKeySequence.SequenceFormat.PortableText)
            if key:
                keys[key] += 1
                names.setdefault(key, []).append(action.text())
    return {key: names[key] for key, count in keys.items() if count > 1}


def test_no_two_actions_of_a_window_share_a_shortcut(window, small_slide, qtbot, monkeypatch):  # noqa: F811
    slide_window = _open(window, small_slide, qtbot, monkeypatch)
    assert _shared_shortcuts(slide_window) == {}
    main_only = [a for a in window.findChildren(QAction) if slide_window not in _ancestors(a)]
    keys = Counter(s.toString(QKeySequence.SequenceFormat.PortableText) for a in main_only for s in a.shortcuts())
    keys.pop("", None)
    assert {k: n for k, n in keys.items() if n > 1} == {}


def _ancestors(obj):
    found = []
    while obj is not None:
        found.append(obj)
        obj = obj.parent()
    return found

