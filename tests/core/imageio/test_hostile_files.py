"""Malformed and hostile image files: each is refused with a clear reason, never loaded wrong or hung on."""
import os
import struct
import threading
import zlib

import cv2
import numpy as np
import pytest
import tifffile

from segstudio.core.imageio import MAX_BYTES_ENV, ImageReadError, probe_image, read_image


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def jpeg_bytes(shape=(128, 128, 3), seed=0) -> bytes:
    pixels = (np.random.default_rng(seed).random(shape) * 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return encoded.tobytes()


def rle8_bmp(width: int, height: int, rows: list[bytes] | None = None, *, colour=True) -> bytes:
    """An 8-bit RLE BMP; each row is encoded as runs of 'rows[y]' (default: one run of index y % 4)."""
    palette = b"".join(bytes([b, g, r, 0]) for r, g, b in
                       ([(0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)] if colour else
                        [(v, v, v) for v in (0, 80, 160, 240)]))
    stream = b""
    for y in range(height):
        row = rows[y] if rows else bytes([y % 4]) * width
        for start in range(0, width, 255):
            run = row[start:start + 255]
            stream += bytes([len(run), run[0]])
        stream += b"\x00\x00"
    stream += b"\x00\x01"
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(stream), 0, 0, 4, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(stream), 0, 0, offset) + info + palette + stream


def test_a_fifo_named_like_an_image_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "slide.png"
    os.mkfifo(fifo)
    outcome = {}

    def attempt():
        try:
            read_image(fifo)
        except ImageReadError as exc:
            outcome["error"] = str(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(5)
    assert not worker.is_alive(), "reading a FIFO blocked"
    assert "not a regular file" in outcome["error"]


def test_decoded_bytes_over_the_limit_are_reported_as_too_large(tmp_path, monkeypatch):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.zeros((64, 64, 4), np.float32), photometric="minisblack",
                     planarconfig="contig", compression="zlib")
    # 64 x 64 x 4 x 4 bytes = 64 KiB decoded
    with pytest.raises(ImageReadError, match="too large") as caught:
        read_image(path, max_bytes=32 * 1024)
    assert "corrupt" not in str(caught.value)
    monkeypatch.setenv(MAX_BYTES_ENV, str(32 * 1024))
    with pytest.raises(ImageReadError, match="too large"):
        read_image(path)
    monkeypatch.setenv(MAX_BYTES_ENV, str(64 * 1024))
    assert read_image(path).pixels.shape == (64, 64, 4)


def test_a_small_tiff_that_would_decode_to_gigabytes_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.tif"
    tifffile.imwrite(path, np.zeros((16, 16, 4), np.float32), photometric="minisblack", planarconfig="contig",
                     compression="zlib")
    with tifffile.TiffFile(path, mode="r+b") as tif:  # 30000 x 30000 x 4 x float32 = 13.4 GiB
        tif.pages[0].tags["ImageWidth"].overwrite(30000)
        tif.pages[0].tags["ImageLength"].overwrite(30000)
        tif.pages[0].tags["RowsPerStrip"].overwrite(30000)
    with pytest.raises(ImageReadError, match="too large"):
        read_image(path)


def test_a_png_whose_header_claims_gigabytes_is_too_large_not_corrupt(tmp_path):
    path = tmp_path / "bomb.png"
    header = struct.pack(">IIBBBBB", 30000, 30000, 16, 6, 0, 0, 0)  # RGBA, 16 bit: 6.7 GiB
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
                     + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""))
    with pytest.raises(ImageReadError, match="too large") as caught:
        read_image(path)
    assert "corrupt" not in str(caught.value)


def test_a_jpeg_whose_scan_is_cut_short_is_refused(tmp_path):
    data = jpeg_bytes()
    scan = data.find(b"\xff\xda")
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: scan + (len(data) - scan) // 2] + b"\xff\xd9")
    with pytest.raises(ImageReadError, match="damaged data"):
        read_image(path)
    (tmp_path / "whole.jpg").write_bytes(data)
    assert read_image(tmp_path / "whole.jpg").pixels.shape == (128, 128, 3)


def test_a_jpeg_whose_header_was_patched_to_a_huge_size_is_refused(tmp_path):
    data = bytearray(jpeg_bytes())
    frame = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, frame + 5, 32000, 32000)
    path = tmp_path / "patched.jpg"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match="too few"):
        read_image(path)


def test_rle_bmp_reads_whole_and_refuses_when_cut_off(tmp_path):
    whole = tmp_path / "rle.bmp"
    whole.write_bytes(rle8_bmp(40, 6))
    pixels = read_image(whole).pixels
    assert pixels.shape == (6, 40, 3)
    # bottom-up rows: the last stored row (index 5 % 4 = 1, red) is the top row
    assert tuple(pixels[0, 0]) == (255, 0, 0)
    cut = tmp_path / "cut.bmp"
    cut.write_bytes(whole.read_bytes()[:-9])
    with pytest.raises(ImageReadError, match="cut off|stops after row"):
        read_image(cut)


def test_a_tiny_rle_bmp_claiming_thousands_of_rows_is_refused(tmp_path):
    data = bytearray(rle8_bmp(4, 2))
    struct.pack_into("<ii", data, 18, 30000, 30000)  # 30000 x 30000 colour = 2.5 GiB of black
    path = tmp_path / "bomb.bmp"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match="stops after row"):
        read_image(path)


def test_a_palette_tiff_is_read_as_its_colours(tmp_path):
    indices = np.array([[0, 1], [2, 3]], np.uint8)
    colormap = np.zeros((3, 256), np.uint16)
    colours = [(0, 0, 0), (255, 0, 0), (0, 255, 0), (10, 20, 30)]
    for i, rgb in enumerate(colours):
        colormap[:, i] = np.array(rgb) * 257
    path = tmp_path / "palette.tif"
    tifffile.imwrite(path, indices, photometric="palette", colormap=colormap)
    image = read_image(path)
    assert image.pixels.dtype == np.uint8 and image.pixels.shape == (2, 2, 3)
    assert [tuple(int(v) for v in image.pixels[y, x]) for y in range(2) for x in range(2)] == colours
    assert probe_image(path).channels == 3
    assert read_image(path, channels=[2]).pixels[1, 1, 0] == 30
