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


def test_error_messages_show_hostile_file_names_harmlessly(tmp_path):
    import pytest

    from segstudio.core.imageio import ImageReadError, read_image

    name = tmp_path / "x\x1b[2J.png"
    with pytest.raises(ImageReadError) as caught:
        read_image(name)
    assert "\x1b" not in str(caught.value) and "x.png" in str(caught.value)
