"""Names from files and folders, made safe to print.

A file or class name is whatever bytes its author chose: Linux allows names that are not UTF-8
(Python keeps them as lone surrogates, "surrogateescape"), and any name may hold terminal control
sequences (ESC[2J clears the screen when printed). printable() is for every message that shows such a
name on a terminal or in a dialog; the name itself is never changed.
"""
from __future__ import annotations

import os
import re
import unicodedata

# CSI (ESC [ ... final byte), OSC (ESC ] ... BEL or ESC \) and two-character escapes: removed whole, so
# no fragment of the sequence is left to be interpreted.
_ESCAPE_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"            # CSI
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC
    r"|\x1b[@-Z\\-_]"                     # two-character escapes
    r"|\x9b[0-?]*[ -/]*[@-~]"              # the one-byte CSI
)


def printable(name: object) -> str:
    """`name` as text that is safe to print: escape sequences removed, other control and format
    characters and undecodable bytes shown as \\xNN / \\uNNNN."""
    text = os.fspath(name) if isinstance(name, os.PathLike) else name
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    text = str(text)
    # Bytes that were not UTF-8 come back as \\xNN rather than as lone surrogates (which cannot be printed).
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    text = _ESCAPE_SEQUENCE.sub("", text)
    return "".join(_shown(ch) for ch in text)


def _shown(ch: str) -> str:
    if ch == " " or unicodedata.category(ch)[0] != "C":
        return ch
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
