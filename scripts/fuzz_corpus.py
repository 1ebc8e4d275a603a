"""The malformed corpus for fuzz_files.py: generators, the check each case runs, and killed writers."""
from __future__ import annotations

import json
import os
import random
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _case(family, name, check, expect, **extra) -> dict:
    return {"family": family, "name": name, "check": check, "expect": expect, **extra}


# --- images ----------------------------------------------------------------------------------------------

def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _rle8_bmp(width: int, height: int) -> bytes:
    palette = b"".join(bytes([b, g, r, 0]) for r, g, b in [(0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)])
    stream = b"".join(bytes([width, y % 4]) + b"\x00\x00" for y in range(height)) + b"\x00\x01"
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(stream), 0, 0, 4, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(stream), 0, 0, offset) + info + palette + stream


def image_cases(folder: Path, seed: int) -> list[dict]:
    import cv2
    import tifffile

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    cases = []
    rgb = (rng.random((64, 48, 3)) * 255).astype(np.uint8)
    np.save(folder / "rgb.npy", rgb)
    valid = {}
    for suffix in (".png", ".jpg", ".bmp"):
        ok, encoded = cv2.imencode(suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        valid[suffix] = encoded.tobytes()
    buf = folder / "valid.tif"
    tifffile.imwrite(buf, rgb, photometric="rgb", compression="zlib")
    valid[".tif"] = buf.read_bytes()
    for suffix, data in valid.items():
        path = folder / f"valid{suffix}"
        path.write_bytes(data)
        lossless = suffix != ".jpg"
        cases.append(_case("image", f"valid{suffix}", "image", "ok", path=str(path),
                           reference=str(folder / "rgb.npy") if lossless else None))
        for fraction in (0.02, 0.2, 0.5, 0.8, 0.97, 0.999):
            cut = folder / f"cut{int(fraction * 1000)}{suffix}"
            cut.write_bytes(data[: int(len(data) * fraction)])
            cases.append(_case("image", cut.name, "image", "error", path=str(cut)))
        if suffix in (".png", ".tif"):  # checksummed or deflated: a flipped bit must not load as other pixels
            for flip in range(12):
                damaged = bytearray(data)
                position = int(rng.integers(8, len(data)))
                damaged[position] ^= 1 << int(rng.integers(0, 8))
                path = folder / f"flip{flip}{suffix}"
                path.write_bytes(bytes(damaged))
                cases.append(_case("image", path.name, "image", "any", path=str(path),
                                   reference=str(folder / "rgb.npy")))
    scan = valid[".jpg"].find(b"\xff\xda")
    for index, fraction in enumerate((0.3, 0.6, 0.9)):
        path = folder / f"cutscan{index}.jpg"
        path.write_bytes(valid[".jpg"][: scan + int((len(valid[".jpg"]) - scan) * fraction)] + b"\xff\xd9")
        cases.append(_case("image", path.name, "image", "error", path=str(path)))
    patched = bytearray(valid[".jpg"])
    struct.pack_into(">HH", patched, patched.find(b"\xff\xc0") + 5, 32000, 32000)
    (folder / "patched.jpg").write_bytes(bytes(patched))
    cases.append(_case("image", "patched.jpg", "image", "error", path=str(folder / "patched.jpg")))
    bomb = struct.pack(">IIBBBBB", 30000, 30000, 16, 6, 0, 0, 0)
    (folder / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", bomb)
                                      + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _png_chunk(b"IEND", b""))
    cases.append(_case("image", "bomb.png", "image", "error", path=str(folder / "bomb.png")))
    tifffile.imwrite(folder / "bomb.tif", np.zeros((16, 16, 4), np.float32), photometric="minisblack",
                     planarconfig="contig", compression="zlib")
    with tifffile.TiffFile(folder / "bomb.tif", mode="r+b") as tif:
        for tag in ("ImageWidth", "ImageLength", "RowsPerStrip"):
            tif.pages[0].tags[tag].overwrite(30000)
    cases.append(_case("image", "bomb.tif", "image", "error", path=str(folder / "bomb.tif")))
    rle = _rle8_bmp(40, 30)
    (folder / "rle.bmp").write_bytes(rle)
    (folder / "rle-cut.bmp").write_bytes(rle[:-20])
    big = bytearray(rle)
    struct.pack_into("<ii", big, 18, 30000, 30000)
    (folder / "rle-bomb.bmp").write_bytes(bytes(big))
    cases.append(_case("image", "rle.bmp", "image", "ok", path=str(folder / "rle.bmp")))
    cases += [_case("image", n, "image", "error", path=str(folder / n)) for n in ("rle-cut.bmp", "rle-bomb.bmp")]
    colormap = np.zeros((3, 256), np.uint16)
    colormap[0, 1] = 65535
    tifffile.imwrite(folder / "palette.tif", np.array([[0, 1]], np.uint8), photometric="palette", colormap=colormap)
    np.save(folder / "palette.npy", np.array([[[0, 0, 0], [255, 0, 0]]], np.uint8))
    cases.append(_case("image", "palette.tif", "image", "ok", path=str(folder / "palette.tif"),
                       reference=str(folder / "palette.npy")))
    os.mkfifo(folder / "fifo.png")
    (folder / "empty.png").write_bytes(b"")
    (folder / "folder.png").mkdir()
    (folder / "noise.tif").write_bytes(b"II*\x00" + rng.bytes(4000))
    (folder / "noise.jpg").write_bytes(b"\xff\xd8\xff" + rng.bytes(4000))
    for name in ("fifo.png", "empty.png", "folder.png", "noise.tif", "noise.jpg"):
        cases.append(_case("image", name, "image", "error", path=str(folder / name)))
    return cases


def check_image(case: dict) -> str:
    from segstudio.core.imageio import read_image

    pixels = read_image(case["path"]).pixels
    if case["expect"] == "error":
        return "silent wrong"
    reference = case.get("reference")
    if reference and not np.array_equal(pixels, np.load(reference)):
        return "silent wrong"
    return "loaded ok"


# --- model files -----------------------------------------------------------------------------------------

def _tiny_state(seed=0):
    import torch

    from segstudio.models.registry import build_model

    torch.manual_seed(seed)
    model = build_model("unet", in_channels=1, num_classes=2, base_channels=2, depth=2)
    return model, {k: v.clone().contiguous() for k, v in model.state_dict().items()}


def _raw_model(path: Path, meta_text: str, state) -> None:
    from safetensors.torch import save

    path.write_bytes(save(state, metadata={"format": "segstudio-model", "format_version": "1",
                                           "segstudio_meta": meta_text}))


def model_cases(folder: Path, seed: int) -> list[dict]:
    from segstudio.models.checkpoint import ModelMeta, save_checkpoint

    user = folder / "user" / "shared"
    user.mkdir(parents=True)
    model, state = _tiny_state(seed)
    good = {"name": "shared", "version": 1, "arch": "unet", "config": dict(model.config),
            "classes": [{"id": 0, "name": "background"}, {"id": 1, "name": "nucleus"}]}
    texts = {
        "version-infinity": '{"name": "shared", "version": Infinity, "arch": "unet"}',
        "version-nan": '{"name": "shared", "version": NaN, "arch": "unet"}',
        "deep-json": '{"name": "x", "version": 1, "arch": "unet", "t": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "classes-string": json.dumps({**good, "classes": "a,b"}),
        "name-number": json.dumps({**good, "name": 3}),
        "many-classes": json.dumps({**good, "classes": [f"c{i}" for i in range(100_000)]}),
        "base-channels-1500": json.dumps({**good, "config": {**good["config"], "base_channels": 1500}}),
        "depth-1e6": json.dumps({**good, "config": {**good["config"], "depth": 1_000_000}}),
        "params-127G": json.dumps({**good, "config": {**good["config"], "depth": 8, "base_channels": 256}}),
        "shapes-mismatch": json.dumps({**good, "config": {**good["config"], "base_channels": 3}}),
        "escape-name": json.dumps({**good, "description": "\x1b[2J", "classes": ["bg", "\x1b[2Jx"]}),
    }
    cases = []
    for number, (name, text) in enumerate(texts.items(), start=2):
        path = user / f"v{number}.safetensors"
        _raw_model(path, text, state)
        expect = "ok" if name == "escape-name" else "error"
        cases.append(_case("model", name, "model", expect, path=str(path)))
    for damage in ("nan", "inf", "neg-var"):
        bad = {k: v.clone() for k, v in state.items()}
        key = next(k for k in bad if k.endswith("running_var" if damage == "neg-var" else "weight"))
        bad[key].view(-1)[0] = {"nan": float("nan"), "inf": float("inf"), "neg-var": -1.0}[damage]
        path = user / f"v{len(cases) + 2}.safetensors"
        _raw_model(path, json.dumps({**good, "version": len(cases) + 2}), bad)
        cases.append(_case("model", f"weights-{damage}", "model", "error", path=str(path)))
    good_path = folder / "good.safetensors"
    save_checkpoint(good_path, model, ModelMeta(name="good", version=1, arch="unet", classes=good["classes"]))
    cases.append(_case("model", "valid", "model", "ok", path=str(good_path)))
    cases.append(_case("model", "valid-predicts", "predict", "ok", path=str(good_path)))
    # Finite weights, so the load check passes, that overflow to inf in the first layer: Predict must refuse.
    overflow = {k: (v.clone().fill_(3e38) if v.ndim == 4 else v.clone()) for k, v in state.items()}
    overflow_path = folder / "overflowing.safetensors"
    _raw_model(overflow_path, json.dumps(good), overflow)
    cases.append(_case("model", "predicts-not-numbers", "predict", "error", path=str(overflow_path)))
    data = good_path.read_bytes()
    rng = random.Random(seed)
    for index, fraction in enumerate((0.001, 0.01, 0.3, 0.7, 0.999)):
        path = user / f"v{100 + index}.safetensors"
        path.write_bytes(data[: int(len(data) * fraction)])
        cases.append(_case("model", f"cut{index}", "model", "error", path=str(path)))
    for index in range(4):
        path = user / f"v{200 + index}.safetensors"
        damaged = bytearray(data)
        damaged[rng.randrange(0, 8)] = rng.randrange(256)
        path.write_bytes(bytes(damaged))
        cases.append(_case("model", f"header-length{index}", "model", "any", path=str(path)))
    import torch

    pickled = user / "v300.safetensors"
    torch.save({"weights": state, "code": print}, pickled)
    cases.append(_case("model", "pickle-renamed", "model", "error", path=str(pickled)))
    bundled = folder / "bundled"
    bundled.mkdir()
    save_checkpoint(bundled / "nuclei.safetensors", model, ModelMeta(name="nuclei", version=1, arch="unet",
                                                                     classes=good["classes"]))
    cases.append(_case("model", "library-lists-the-good-ones", "library", "ok", bundled=str(bundled),
                       user=str(folder / "user"), ids=["nuclei/v1", "shared/v13"]))
    return cases


def check_model(case: dict) -> str:
    from segstudio.models.checkpoint import load_checkpoint

    load_checkpoint(case["path"])
    return "silent wrong" if case["expect"] == "error" else "loaded ok"


def check_predict(case: dict) -> str:
    from segstudio.engine.predict import Predictor
    from segstudio.models.checkpoint import load_checkpoint

    model, meta = load_checkpoint(case["path"])
    result = Predictor(model, meta, device="cpu").predict(np.random.default_rng(0).random((48, 48, 1)) * 1000)
    return "silent wrong" if case["expect"] == "error" else "loaded ok" if result.labels.shape == (48, 48) \
        else "silent wrong"


def check_library(case: dict) -> str:
    from segstudio.models.library import ModelLibrary

    library = ModelLibrary(case["bundled"], case["user"])
    ids = [e.id for e in library.entries()]
    expected = set(case["ids"])
    return "loaded ok" if expected <= set(ids) and library.problems else "silent wrong"


# --- dataset folders -------------------------------------------------------------------------------------

def _export(root: Path, seed: int, mask_value: int = 1, source: str = "/data/a.tif"):
    from segstudio.core.dataset import ExportItem, export_many
    from segstudio.core.labels import ClassTable

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 60000, (16, 16), dtype=np.uint16)
    return export_many(root, [ExportItem(pixels, np.full((16, 16), mask_value, np.uint8), source)],
                       ClassTable.default())


def dataset_cases(folder: Path, seed: int) -> list[dict]:
    folder.mkdir(parents=True)
    victim = folder / "victim" / "important"
    victim.parent.mkdir()
    victim.write_text("keep me")
    edits = {
        "id-traversal": ("id", "../victim/important"), "id-absolute": ("id", str(victim)),
        "image-absolute": ("image", str(victim)), "mask-traversal": ("mask", "masks/../../victim/important"),
        "id-number": ("id", 7), "height-string": ("height", "16"), "split-other": ("split", "test"),
        "entry-list": (None, ["not", "an", "entry"]),
    }
    cases = []
    for name, (field, value) in edits.items():
        root = folder / name
        _export(root, seed)
        manifest = json.loads((root / "dataset.json").read_text())
        if field is None:
            manifest["entries"][0] = value
        else:
            manifest["entries"][0][field] = value
        (root / "dataset.json").write_text(json.dumps(manifest))
        cases.append(_case("dataset", name, "dataset", "error", root=str(root), victim=str(victim)))
    root = folder / "symlinked-masks"
    root.mkdir()
    (root / "masks").symlink_to(victim.parent)
    cases.append(_case("dataset", "symlinked-masks", "dataset", "error", root=str(root), victim=str(victim)))
    for name in ("fifo-image", "swapped-mask", "deep-json", "valid"):
        root = folder / name
        entry = _export(root, seed)[0]
        if name == "fifo-image":
            (root / entry["image"]).unlink()
            os.mkfifo(root / entry["image"])
        elif name == "swapped-mask":
            other = _export(folder / "other", seed + 1, mask_value=0)[0]
            os.replace(folder / "other" / other["mask"], root / entry["mask"])
        elif name == "deep-json":
            (root / "dataset.json").write_text('{"format": "segstudio-dataset", "version": 1, "classes": [], '
                                               '"entries": ' + "[" * 100_000 + "]" * 100_000 + "}")
        expect = "ok" if name == "valid" else "error"
        cases.append(_case("dataset", name, "dataset", expect, root=str(root), victim=str(victim)))
    return cases


def check_dataset(case: dict) -> str:
    from segstudio.core.dataset import load_entry, load_manifest
    from segstudio.core.nnunet import export_nnunet

    root, victim = Path(case["root"]), Path(case["victim"])
    try:
        for entry in load_manifest(root)["entries"] if (root / "dataset.json").exists() else []:
            load_entry(root, entry)
        _export(root, 99, source="/data/new.tif")
        export_nnunet(root, root.parent / f"{root.name}-nnunet")
    finally:
        if victim.read_text() != "keep me" or not victim.is_file():
            return "data lost"  # noqa: B012 - the victim decides, whatever was raised
    return "silent wrong" if case["expect"] == "error" else "loaded ok"


CHECKS = {"image": check_image, "model": check_model, "predict": check_predict, "library": check_library,
          "dataset": check_dataset}


# --- killed writers --------------------------------------------------------------------------------------

_EXPORT_LOOP = """
import sys, numpy as np
from segstudio.core.dataset import ExportItem, export_many
from segstudio.core.labels import ClassTable
pixels = np.random.default_rng(0).integers(0, 60000, (256, 256), dtype=np.uint16)
print("ready", flush=True)
value = 0
while True:
    value = 1 - value
    export_many(sys.argv[1], [ExportItem(pixels, np.full((256, 256), value, np.uint8), "/a.tif")],
                ClassTable.default())
"""

_SAVE_LOOP = """
import sys, torch
from segstudio.models.checkpoint import ModelMeta, save_checkpoint
from segstudio.models.library import ModelLibrary
from segstudio.models.registry import build_model
model = build_model("unet", in_channels=1, num_classes=2, base_channels=8, depth=3)
library = ModelLibrary(sys.argv[1] + "/none", sys.argv[1])
print("ready", flush=True)
while True:  # the fine-tune's two steps: reserve a version, then write it
    path, version = library.next_version_path("killed")
    save_checkpoint(path, model, ModelMeta(name="killed", version=version, arch="unet"))
"""


def _killed(script: str, target: Path, rng: random.Random) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen([sys.executable, "-c", script, str(target)], stdout=subprocess.PIPE, env=env)
    process.stdout.readline()
    time.sleep(rng.uniform(0.01, 0.4))
    process.send_signal(signal.SIGKILL)
    process.wait()


def _mask_hash(mask: np.ndarray) -> str:
    import hashlib

    mask = np.ascontiguousarray(mask)
    return hashlib.sha256(mask.tobytes() + repr(mask.shape).encode() + mask.dtype.name.encode()).hexdigest()


def kill_cases(folder: Path, kills: int, seed: int) -> dict[str, list[tuple[str, str]]]:
    from segstudio.core.dataset import DatasetError, load_entry, load_manifest
    from segstudio.models.checkpoint import CheckpointError, load_checkpoint

    rng = random.Random(seed)
    results: dict[str, list[tuple[str, str]]] = {"killed export": [], "killed model save": []}
    dataset = folder / "ds"
    _export(dataset, 0)
    for attempt in range(kills):
        _killed(_EXPORT_LOOP, dataset, rng)
        try:
            entries = load_manifest(dataset)["entries"]
            outcome = "loaded ok" if entries else "data lost"
            for entry in entries:
                _, mask, _ = load_entry(dataset, entry)
                if _mask_hash(mask) != entry.get("mask_sha256"):
                    outcome = "data lost"  # the entry describes a mask that is not the one on disk
        except (DatasetError, ValueError):
            outcome = "data lost"
        results["killed export"].append((f"kill{attempt}", outcome))
    models = folder / "models"
    models.mkdir()
    for attempt in range(max(kills // 2, 1)):
        _killed(_SAVE_LOOP, models, rng)
        outcome = "loaded ok"
        for path in sorted((models / "killed").glob("v*.safetensors")):
            try:
                load_checkpoint(path)
            except CheckpointError:
                outcome = "data lost"
        results["killed model save"].append((f"kill{attempt}", outcome))
    return results
