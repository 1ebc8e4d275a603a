"""libjpeg's warnings about damaged data, caught while OpenCV decodes a JPEG.

OpenCV's JPEG decoder leaves libjpeg's default message handler in place: a scan cut short prints
"Corrupt JPEG data: premature end of data segment" on the process's stderr and the decode *succeeds*,
with the missing blocks filled in grey. Neither OpenCV nor Pillow reports this to the caller, so the
warning is read back from file descriptor 2: for the length of one decode, fd 2 points at a temporary
file, and the lines libjpeg wrote there are returned. Lines that are not libjpeg damage warnings (another
thread logging at that moment) are written on to the real stderr, so nothing printed is lost.

The swap of fd 2 is process-wide, so decodes that capture are serialised with one lock.
"""
from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# libjpeg's warnings that mean pixels were made up (jerror.h: JWRN_HIT_MARKER, JWRN_HUFF_BAD_CODE,
# JWRN_MUST_RESYNC, JWRN_JPEG_EOF, JWRN_BOGUS_PROGRESSION, ...). "extraneous bytes before marker" is
# left out: cameras write it for padding and no pixel is affected.
_DAMAGE = (
    "premature end of data segment",
    "bad huffman code",
    "found marker",
    "premature end of jpeg file",
    "inconsistent progression sequence",
    "invalid sos parameters",
    "corrupt jpeg data: bad",
)

_lock = threading.Lock()


@contextmanager
def decoder_warnings() -> Iterator[list[str]]:
    """Yield a list that, after the block, holds the damage warnings the decoder printed."""
    found: list[str] = []
    with _lock, tempfile.TemporaryFile() as capture:
        try:
            sys.stderr.flush()
        except (AttributeError, OSError, ValueError):
            pass
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            yield found
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", "replace")
    passed_on = []
    for line in text.splitlines():
        if any(pattern in line.lower() for pattern in _DAMAGE):
            found.append(line.strip())
        else:
            passed_on.append(line)
    if passed_on:
        os.write(2, ("\n".join(passed_on) + "\n").encode("utf-8", "replace"))
