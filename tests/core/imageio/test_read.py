import importlib.util
import io
import logging
import pickle
import struct
import tracemalloc
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from segstudio.core.imageio import (
    DEFAULT_MAX_PIXELS,
    SUPPORTED_SUFFIXES,
    ImageReadError,
    probe_image,
    raster,
    read_image,
    to_display_rgb,
)


# --- writing test files --------------------------------------------------------------------------------
def write_with_opencv(path: Path, rgb: np.ndarray, params=()) -> Path:
    """Write (H, W), (H, W, 3) RGB or (H, W, 4) RGBA with OpenCV, which expects BGR order."""
    array = rgb
    if rgb.ndim == 3 and rgb.shape[2] == 3:
        array = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    elif rgb.ndim == 3 and rgb.shape[2] == 4:
        array = cv2.cvtColor(rgb, cv2.COLOR_RGBA2BGRA)
    ok, encoded = cv2.imencode(path.suffix, array, list(params))
    assert ok
    path.write_bytes(encoded.tobytes())
    return path


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def fake_huge_png(path: Path, width=100_000, height=100_000) -> Path:
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    tiny_data = zlib.compress(b"\x00" * 16)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", tiny_data)
                     + png_chunk(b"IEND", b""))
    return path


def fake_huge_tiff(path: Path, width=100_000, height=100_000) -> Path:
    entries = [  # tag, type (3 SHORT, 4 LONG), value
        (256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
        (273, 4, 256), (277, 3, 1), (278, 4, height), (279, 4, 0xFFFFFFFF),
    ]
    ifd = struct.pack("<H", len(entries))
    ifd += b"".join(struct.pack("<HHII", tag, kind, 1, value) for tag, kind, value in entries)
    ifd += struct.pack("<I", 0)
    path.write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x00" * 64)
    return path


def fake_huge_jpeg(path: Path, width=65_535, height=65_535) -> Path:
    frame = struct.pack(">BHHB", 8, height, width, 1) + bytes([1, 0x11, 0])
    path.write_bytes(b"\xff\xd8" + b"\xff\xc0" + struct.pack(">H", len(frame) + 2) + frame + b"\xff\xd9")
    return path


def fake_huge_bmp(path: Path, width=100_000, height=100_000) -> Path:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 0, 0, 0, 0)
    path.write_bytes(b"BM" + struct.pack("<IHHI", 54 + 16, 0, 0, 54) + info + b"\x00" * 16)
    return path


def gradient(shape, dtype, top):
    """A smooth, non-trivial test picture (JPEG keeps smooth images nearly exact)."""
    h, w = shape[:2]
    channels = shape[2] if len(shape) == 3 else 1
    yy, xx = np.mgrid[0:h, 0:w]
    planes = [(yy * (c + 1) + xx * (channels - c)) / ((h - 1) * (c + 1) + (w - 1) * (channels - c))
              for c in range(channels)]
    array = (np.stack(planes, axis=-1) * top).astype(dtype)
    return array if len(shape) == 3 else array[:, :, 0]


def as_hwc(array):
    return array[:, :, np.newaxis] if array.ndim == 2 else array


# --- round trips ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix, shape, dtype, top", [
    (".png", (23, 31), np.uint8, 255),
    (".png", (23, 31), np.uint16, 65535),
    (".png", (23, 31, 3), np.uint8, 255),
    (".png", (23, 31, 3), np.uint16, 65535),
    (".png", (23, 31, 4), np.uint8, 255),
    (".png", (23, 31, 4), np.uint16, 65535),
    (".bmp", (23, 31), np.uint8, 255),
    (".bmp", (23, 31, 3), np.uint8, 255),
    (".bmp", (23, 31, 4), np.uint8, 255),
])
def test_lossless_formats_round_trip_exactly_in_rgb_order(tmp_path, rng, suffix, shape, dtype, top):
    pixels = rng.integers(0, top + 1, shape).astype(dtype)
    path = write_with_opencv(tmp_path / f"img{suffix}", pixels)
    image = read_image(path)
    np.testing.assert_array_equal(image.pixels, as_hwc(pixels))
    meta = image.meta
    channels = 1 if len(shape) == 2 else shape[2]
    assert (meta.height, meta.width, meta.channels) == (23, 31, channels)
    assert image.shape == (23, 31) and image.channels == channels
    assert meta.dtype == np.dtype(dtype).name and meta.bit_depth == np.dtype(dtype).itemsize * 8
    assert meta.format == suffix[1:] and meta.pages == 1 and meta.page == 0 and meta.path == path
    assert meta.channel_names == {1: None, 3: ("R", "G", "B"), 4: ("R", "G", "B", "A")}[channels]
    assert probe_image(path) == meta


@pytest.mark.parametrize("shape", [(40, 48), (40, 48, 3)])
def test_jpeg_reads_close_to_what_was_written(tmp_path, shape):
    pixels = gradient(shape, np.uint8, 255)
    path = write_with_opencv(tmp_path / "img.jpg", pixels, (cv2.IMWRITE_JPEG_QUALITY, 98))
    image = read_image(path)
    assert image.pixels.shape == as_hwc(pixels).shape and image.meta.format == "jpeg"
    assert np.abs(image.pixels.astype(int) - as_hwc(pixels)).mean() < 3
    assert probe_image(path) == image.meta


def test_colour_order_is_rgb_for_every_opencv_format(tmp_path):
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    for suffix in (".png", ".jpg", ".bmp"):
        pixels = read_image(write_with_opencv(tmp_path / f"red{suffix}", red)).pixels
        assert pixels[..., 0].min() > 240 and pixels[..., 1:].max() < 15, suffix


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.int16, np.float16, np.float32, np.float64])
def test_tiff_grey_keeps_dtype_and_values(tmp_path, rng, dtype):
    pixels = (rng.random((21, 17)) * 1000 - (100 if np.dtype(dtype).kind in "if" else 0)).astype(dtype)
    path = tmp_path / "grey.tif"
    tifffile.imwrite(path, pixels)
    image = read_image(path)
    np.testing.assert_array_equal(image.pixels, pixels[:, :, np.newaxis])
    assert image.meta.dtype == np.dtype(dtype).name
    assert image.meta.bit_depth == np.dtype(dtype).itemsize * 8
    assert image.meta.format == "tiff" and image.meta.channels == 1


TIFF_CHANNEL_LAYOUTS = [
    ("hwc3", {"photometric": "rgb"}, ("R", "G", "B")),
    ("hwc4", {"photometric": "rgb", "extrasamples": ["unassalpha"]}, ("R", "G", "B", "A")),
    ("chw3", {"photometric": "rgb", "planarconfig": "separate"}, ("R", "G", "B")),
    ("hwc4", {"photometric": "minisblack", "planarconfig": "contig"}, None),
    ("hwc5", {"photometric": "minisblack", "planarconfig": "contig"}, None),
    ("chw4", {"photometric": "minisblack"}, None),
    ("chw5", {}, None),
    ("hwc5", {}, None),  # a plain (H, W, 5) array written without any hint
    ("chw5", {"metadata": {"axes": "CYX"}}, None),
]


@pytest.mark.parametrize("layout, write_kwargs, names, dtype", [
    (*case, dtype)
    for case in TIFF_CHANNEL_LAYOUTS
    for dtype in (np.uint8, np.uint16, np.float32)
    if not (dtype == np.float32 and case[1].get("photometric") == "rgb")  # no float RGB from scanners
])
def test_tiff_channel_layouts_all_read_as_hwc(tmp_path, rng, layout, write_kwargs, names, dtype):
    channels = int(layout[-1])
    hwc = (rng.random((24, 30, channels)) * 200).astype(dtype)
    stored = hwc if layout.startswith("hwc") else np.moveaxis(hwc, -1, 0)
    path = tmp_path / f"{layout}.tif"
    tifffile.imwrite(path, stored, **write_kwargs)
    image = read_image(path)
    np.testing.assert_array_equal(image.pixels, hwc)
    assert image.meta.channels == channels and image.meta.pages == 1
    assert image.meta.channel_names == names
    assert probe_image(path) == image.meta


def test_bilevel_tiff_reads_as_zero_one(tmp_path):
    bits = np.zeros((9, 12), bool)
    bits[2:5, 3:9] = True
    tifffile.imwrite(tmp_path / "bits.tif", bits)
    image = read_image(tmp_path / "bits.tif")
    assert image.pixels.dtype == np.uint8 and image.meta.bit_depth == 1
    np.testing.assert_array_equal(image.pixels[:, :, 0], bits.astype(np.uint8))


def test_paths_with_non_ascii_characters(tmp_path, rng):
    folder = tmp_path / "Bilder \u00e4\u00f6 \u6e2c\u8a66"
    folder.mkdir()
    pixels = rng.integers(0, 65535, (10, 11, 3)).astype(np.uint16)
    png = write_with_opencv(folder / "Schnitt \u00b5m.png", pixels)
    np.testing.assert_array_equal(read_image(png).pixels, pixels)
    tif = folder / "\u00e9chantillon.tif"
    tifffile.imwrite(tif, pixels[..., 0])
    np.testing.assert_array_equal(read_image(tif).pixels[..., 0], pixels[..., 0])


def test_content_decides_the_format_not_the_name(tmp_path, rng):
    pixels = rng.integers(0, 255, (6, 7)).astype(np.uint8)
    ok, encoded = cv2.imencode(".png", pixels)
    (tmp_path / "really_png.tif").write_bytes(encoded.tobytes())
    image = read_image(tmp_path / "really_png.tif")
    assert image.meta.format == "png"
    np.testing.assert_array_equal(image.pixels[..., 0], pixels)


# --- pages and channels --------------------------------------------------------------------------------
def test_user_picks_a_page_of_a_stack(tmp_path, rng):
    stack = rng.integers(0, 4000, (6, 20, 25)).astype(np.uint16)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack, metadata={"axes": "ZYX"})
    assert probe_image(path).pages == 6
    for page in (0, 3, 5):
        image = read_image(path, page=page)
        np.testing.assert_array_equal(image.pixels[..., 0], stack[page])
        assert (image.meta.page, image.meta.pages, image.meta.channels) == (page, 6, 1)
    with pytest.raises(ImageReadError, match=r"page 6 does not exist \(the file has 6 pages, numbered from 0\)"):
        read_image(path, page=6)


def test_pages_written_one_by_one_can_differ_in_size(tmp_path, rng):
    first = rng.integers(0, 255, (20, 30)).astype(np.uint8)
    second = rng.integers(0, 255, (8, 9, 3)).astype(np.uint8)
    path = tmp_path / "pages.tif"
    with tifffile.TiffWriter(path) as writer:
        writer.write(first)
        writer.write(second, photometric="rgb")
    assert probe_image(path).pages == 2
    np.testing.assert_array_equal(read_image(path, page=0).pixels[..., 0], first)
    np.testing.assert_array_equal(read_image(path, page=1).pixels, second)
    assert probe_image(path, page=1).channels == 3


def test_pages_of_a_file_without_metadata(tmp_path, rng):
    planes = [rng.integers(0, 255, (16, 18)).astype(np.uint8) for _ in range(3)]
    path = tmp_path / "scanner.tif"
    with tifffile.TiffWriter(path) as writer:
        for plane in planes:
            writer.write(plane, metadata=None)
    assert probe_image(path).pages == 3
    np.testing.assert_array_equal(read_image(path, page=2).pixels[..., 0], planes[2])


def test_imagej_hyperstack_pages_and_channels(tmp_path, rng):
    zcyx = rng.integers(0, 60000, (3, 2, 16, 20)).astype(np.uint16)
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(path, zcyx, imagej=True, metadata={"axes": "ZCYX"})
    meta = probe_image(path)
    assert (meta.pages, meta.channels) == (3, 2)
    image = read_image(path, page=1)
    np.testing.assert_array_equal(image.pixels, np.moveaxis(zcyx[1], 0, -1))
    only_second = read_image(path, page=2, channels=[1])
    np.testing.assert_array_equal(only_second.pixels[..., 0], zcyx[2, 1])
    assert only_second.meta.channels == 1


def test_user_picks_and_orders_channels(tmp_path, rng):
    chw = rng.integers(0, 60000, (5, 12, 14)).astype(np.uint16)
    path = tmp_path / "five.tif"
    tifffile.imwrite(path, chw)
    image = read_image(path, channels=[4, 0])
    np.testing.assert_array_equal(image.pixels, np.stack([chw[4], chw[0]], axis=-1))
    assert image.meta.channels == 2
    with pytest.raises(ImageReadError, match=r"channel 5 does not exist \(the image has 5, numbered from 0\)"):
        read_image(path, channels=[5])
    with pytest.raises(ImageReadError, match="no channels"):
        read_image(path, channels=[])

    rgb = rng.integers(0, 255, (6, 7, 3)).astype(np.uint8)
    png = write_with_opencv(tmp_path / "rgb.png", rgb)
    blue = read_image(png, channels=[2])
    np.testing.assert_array_equal(blue.pixels[..., 0], rgb[..., 2])
    assert blue.meta.channel_names == ("B",)
    with pytest.raises(ImageReadError, match="page 1 does not exist"):
        read_image(png, page=1)


# --- bad input -----------------------------------------------------------------------------------------
def _reason(excinfo) -> str:
    return excinfo.value.reason


def test_error_names_the_file_and_the_reason(tmp_path):
    missing = tmp_path / "gone.png"
    with pytest.raises(ImageReadError) as caught:
        read_image(missing)
    assert str(caught.value) == f"Cannot open {missing}: file does not exist"
    assert caught.value.path == missing and caught.value.reason == "file does not exist"
    assert isinstance(caught.value, ValueError)
    copy = pickle.loads(pickle.dumps(caught.value))
    assert str(copy) == str(caught.value) and copy.path == missing


def test_empty_folder_and_unsupported_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"empty\.png: file is empty$"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "folder.tif").mkdir()
    with pytest.raises(ImageReadError, match="is a folder"):
        read_image(tmp_path / "folder.tif")
    (tmp_path / "data.xyz").write_bytes(b"whatever")
    with pytest.raises(ImageReadError) as caught:
        read_image(tmp_path / "data.xyz")
    assert _reason(caught) == f"unsupported file type '.xyz' (supported: {', '.join(SUPPORTED_SUFFIXES)})"
    (tmp_path / "README").write_bytes(b"text")
    with pytest.raises(ImageReadError, match="no file extension"):
        probe_image(tmp_path / "README")
    (tmp_path / "notes.png").write_text("this is not a picture")
    with pytest.raises(ImageReadError, match=r"file is truncated or corrupt \(it does not start like a PNG file\)"):
        read_image(tmp_path / "notes.png")


def _valid_files(folder: Path, rng) -> dict[str, Path]:
    grey16 = rng.integers(1, 65535, (24, 31)).astype(np.uint16)
    rgb8 = gradient((24, 31, 3), np.uint8, 255)
    files = {
        "png16": write_with_opencv(folder / "a.png", grey16),
        "png-rgba": write_with_opencv(folder / "b.png", rng.integers(0, 255, (24, 31, 4)).astype(np.uint8)),
        "jpeg": write_with_opencv(folder / "c.jpg", rgb8),
        "bmp-rgb": write_with_opencv(folder / "d.bmp", rgb8),
        "bmp-palette": write_with_opencv(folder / "e.bmp", grey16.astype(np.uint8)),
    }
    tifffile.imwrite(folder / "f.tif", grey16)
    tifffile.imwrite(folder / "g.tif", rng.random((24, 31)).astype(np.float32), compression="zlib")
    tifffile.imwrite(folder / "h.tif", rng.integers(1, 255, (4, 24, 31)).astype(np.uint8), photometric="minisblack",
                     metadata={"axes": "ZYX"})
    # libtiff (through OpenCV) writes the page directory after the pixel data, tifffile before it
    write_with_opencv(folder / "i.tif", rgb8, (cv2.IMWRITE_TIFF_COMPRESSION, 1))
    ok, encoded = cv2.imencodemulti(".tif", [grey16, grey16 // 2, grey16 // 3], [cv2.IMWRITE_TIFF_COMPRESSION, 1])
    (folder / "j.tif").write_bytes(encoded.tobytes())
    files.update({"tiff16": folder / "f.tif", "tiff-zlib": folder / "g.tif", "tiff-stack": folder / "h.tif",
                  "tiff-libtiff": folder / "i.tif", "tiff-libtiff-pages": folder / "j.tif"})
    return files


def _truncation_lengths(size: int) -> list[int]:
    lengths = {1, 2, 7, 16, 40, size // 5, size // 3, size // 2, 2 * size // 3, size - 100, size - 9, size - 1}
    return sorted(n for n in lengths if 0 < n < size)


def _last_needed_byte(path: Path) -> int:
    """End of the last byte a reader needs: pixel data, page directories and their tag values.

    A TIFF may end in slack (tifffile pads after the last directory); cutting only that loses nothing.
    """
    if path.suffix != ".tif":
        return path.stat().st_size
    end = 0
    with tifffile.TiffFile(path) as tif:
        for page in tif.pages:
            end = max(end, *(offset + count for offset, count in zip(page.dataoffsets, page.databytecounts)))
            directory = tif.tiff.tagnosize + len(page.tags) * tif.tiff.tagsize + tif.tiff.offsetsize
            end = max(end, page.offset + directory)
            end = max(end, *(tag.valueoffset + tag.valuebytecount for tag in page.tags.values()))
    return end


def _page_count(path: Path) -> int:
    if path.suffix != ".tif":
        return 1
    with tifffile.TiffFile(path) as tif:
        return len(tif.pages)


def test_truncated_files_never_load_wrong_pixels(tmp_path, rng):
    """Cutting bytes a page needs is always an error; whatever still loads is exactly the original."""
    sources = tmp_path / "valid"
    sources.mkdir()
    for kind, source in _valid_files(sources, rng).items():
        complete = source.read_bytes()
        pages = _page_count(source)
        originals = [read_image(source, page=page).pixels for page in range(pages)]
        needed = _last_needed_byte(source)
        for length in _truncation_lengths(len(complete)):
            cut = tmp_path / f"cut{source.suffix}"
            cut.write_bytes(complete[:length])
            failures = 0
            for page in range(pages):
                try:
                    pixels = read_image(cut, page=page).pixels
                except ImageReadError as error:
                    assert error.reason.startswith("file is truncated or corrupt ("), (kind, length, str(error))
                    failures += 1
                else:
                    np.testing.assert_array_equal(pixels, originals[page], err_msg=f"{kind} cut at {length}")
            if length < needed:
                assert failures, f"{kind} cut at {length} of {len(complete)} bytes loaded without complaint"
            if pages == 1 and source.suffix != ".tif":
                assert failures == 1
    assert not logging.getLogger("tifffile").handlers  # the warning collector is always detached


def test_truncated_tiff_pixel_data_is_never_filled_with_zeros(tmp_path, rng):
    pixels = rng.integers(1, 65535, (64, 50)).astype(np.uint16)
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, pixels)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])  # the directory survives, part of the strip does not
    assert probe_image(path).height == 64  # the header alone is intact
    with pytest.raises(ImageReadError, match=r"ends at byte 6,656, past the end of the file \(5,656 bytes\)"):
        read_image(path)


def test_lzw_tiff_needs_imagecodecs_and_says_so(tmp_path, rng):
    pixels = rng.integers(0, 255, (12, 14)).astype(np.uint8)
    path = write_with_opencv(tmp_path / "lzw.tif", pixels, (cv2.IMWRITE_TIFF_COMPRESSION, 5))
    assert probe_image(path).height == 12  # the header needs no codec
    if importlib.util.find_spec("imagecodecs") is not None:
        np.testing.assert_array_equal(read_image(path).pixels[..., 0], pixels)
    else:
        with pytest.raises(ImageReadError, match="TIFF compression LZW needs the 'imagecodecs' package"):
            read_image(path)


def test_truncated_bmp_says_how_much_pixel_data_is_missing(tmp_path, rng):
    path = write_with_opencv(tmp_path / "cut.bmp", rng.integers(0, 255, (24, 31, 3)).astype(np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[:-500])
    with pytest.raises(ImageReadError, match=r"BMP pixel data needs 2,358 bytes but the file has 1,858"):
        read_image(path)


def test_truncated_page_list_is_an_error_not_fewer_pages(tmp_path, rng):
    planes = [rng.integers(1, 255, (32, 30)).astype(np.uint8) for _ in range(4)]
    ok, encoded = cv2.imencodemulti(".tif", planes, [cv2.IMWRITE_TIFF_COMPRESSION, 1])
    data = encoded.tobytes()
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        last_directory = tif.pages[3].offset
    path = tmp_path / "pages.tif"
    path.write_bytes(data[:last_directory + 4])
    with pytest.raises(ImageReadError, match="truncated or corrupt"):
        probe_image(path)
    with pytest.raises(ImageReadError, match="truncated or corrupt"):
        read_image(path, page=0)


def test_any_damaged_byte_in_a_png_is_detected(tmp_path, rng):
    pixels = rng.integers(0, 255, (20, 20, 3)).astype(np.uint8)
    complete = bytearray(write_with_opencv(tmp_path / "ok.png", pixels).read_bytes())
    positions = rng.choice(len(complete), size=40, replace=False)
    for position in positions:
        damaged = bytearray(complete)
        damaged[position] ^= 0x5A
        path = tmp_path / "damaged.png"
        path.write_bytes(bytes(damaged))
        with pytest.raises(ImageReadError, match="truncated or corrupt"):
            read_image(path)


@pytest.mark.parametrize("kind, position, value", [
    ("jpeg", 1, 0x00),  # start-of-image marker
    ("jpeg", 2, 0x00),  # first segment marker
    ("bmp-rgb", 0, ord("X")),
    ("bmp-rgb", 28, 7),  # bits per pixel
    ("tiff16", 2, 0x00),  # TIFF magic number
    ("tiff16", 7, 0x7F),  # offset of the first page directory, now past the end
    ("tiff-libtiff", 2, 0x2B),  # claims BigTIFF
])
def test_damaged_headers_are_detected(tmp_path, rng, kind, position, value):
    source = _valid_files(tmp_path, rng)[kind]
    damaged = bytearray(source.read_bytes())
    damaged[position] = value
    path = tmp_path / f"damaged{source.suffix}"
    path.write_bytes(bytes(damaged))
    with pytest.raises(ImageReadError, match="truncated or corrupt"):
        read_image(path)


HUGE = {
    "png": (fake_huge_png, "100000 x 100000"),
    "tif": (fake_huge_tiff, "100000 x 100000"),
    "jpg": (fake_huge_jpeg, "65535 x 65535"),
    "bmp": (fake_huge_bmp, "100000 x 100000"),
}


@pytest.mark.parametrize("suffix", sorted(HUGE))
def test_huge_image_is_refused_from_its_header_before_any_pixels_exist(tmp_path, monkeypatch, suffix):
    make, size_text = HUGE[suffix]
    path = make(tmp_path / f"huge.{suffix}")
    assert path.stat().st_size < 300

    def must_not_decode(*args, **kwargs):
        raise AssertionError("pixel decoding started")

    monkeypatch.setattr(raster.cv2, "imdecode", must_not_decode)
    monkeypatch.setattr(tifffile.TiffPage, "asarray", must_not_decode)
    tracemalloc.start()
    try:
        with pytest.raises(ImageReadError) as caught:
            read_image(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.reason.startswith(
        f"image is {size_text} pixels, over the limit of {DEFAULT_MAX_PIXELS:,} pixels"), caught.value
    assert peak < 2_000_000
    meta = probe_image(path)  # looking at the header is still fine
    assert f"{meta.width} x {meta.height}" == size_text


def test_pixel_limit_from_argument_and_environment(tmp_path, rng, monkeypatch):
    path = write_with_opencv(tmp_path / "small.png", rng.integers(0, 255, (40, 50)).astype(np.uint8))
    with pytest.raises(ImageReadError, match="image is 50 x 40 pixels, over the limit of 1,999 pixels"):
        read_image(path, max_pixels=1999)
    assert read_image(path, max_pixels=2000).shape == (40, 50)
    monkeypatch.setenv("SEGSTUDIO_MAX_PIXELS", "1000")
    with pytest.raises(ImageReadError, match="over the limit of 1,000 pixels"):
        read_image(path)
    assert read_image(path, max_pixels=5000).shape == (40, 50)  # an explicit argument wins
    monkeypatch.setenv("SEGSTUDIO_MAX_PIXELS", "not a number")
    assert read_image(path).shape == (40, 50)


def test_read_then_display_a_dim_16_bit_png(tmp_path, rng):
    dim = rng.integers(100, 401, (16, 16)).astype(np.uint16)
    path = write_with_opencv(tmp_path / "dim.png", dim)
    shown = to_display_rgb(read_image(path).pixels)
    assert shown.max() == 255 and shown.min() == 0


def test_fluorescence_channel_names_come_from_ome_and_imagej_metadata(tmp_path):
    planes = np.zeros((3, 8, 8), np.uint16)
    ome, imagej, plain = tmp_path / "a.ome.tif", tmp_path / "b.tif", tmp_path / "c.tif"
    tifffile.imwrite(ome, planes, ome=True, metadata={"axes": "CYX", "Channel": {"Name": ["DAPI", "GFP", "Cy5"]}})
    tifffile.imwrite(imagej, planes, imagej=True, metadata={"axes": "CYX", "Labels": ["Hoechst", "actin", "x"]})
    tifffile.imwrite(plain, planes, photometric="minisblack")
    assert read_image(ome).meta.channel_names == ("DAPI", "GFP", "Cy5")
    assert read_image(imagej).meta.channel_names == ("Hoechst", "actin", "x")
    assert read_image(plain).meta.channel_names is None
