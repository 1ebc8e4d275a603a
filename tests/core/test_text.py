from pathlib import Path

from segstudio.core.text import printable


def test_printable_strips_terminal_escape_sequences():
    assert printable("cell\x1b[2J\x1b[31mred") == "cellred"
    assert printable("title\x1b]0;owned\x07x") == "titlex"
    assert "\x1b" not in printable("lone\x1bescape") and "\x07" not in printable("bell\x07")


def test_printable_shows_undecodable_bytes_and_controls_visibly():
    name = b"slide-\xff\xfe.png".decode("utf-8", "surrogateescape")
    assert printable(name) == "slide-\\xff\\xfe.png"
    assert printable(Path("/data") / name).endswith("slide-\\xff\\xfe.png")
    assert printable("two\nlines\u202e") == "two\\x0alines\\u202e"
    assert printable("nucleus ünïcode") == "nucleus ünïcode"
