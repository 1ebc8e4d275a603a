"""Dataset folders: layout, manifest, updates without duplicates, fixed split, lossless images, nnU-Net export."""
import json
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from segstudio.core import dataset, nnunet
from segstudio.core.imageio import ImageData, ImageMeta
from segstudio.core.labels import ClassTable


def make_image(pixels, path):
    pixels = np.asarray(pixels)
    hwc = pixels if pixels.ndim == 3 else pixels[:, :, None]
    meta = ImageMeta(path=Path(path), format="tiff", dtype=pixels.dtype.name, bit_depth=pixels.dtype.itemsize * 8,
                     height=hwc.shape[0], width=hwc.shape[1], channels=hwc.shape[2], pages=1, page=0,
                     channel_names=None)
    return ImageData(pixels=hwc, meta=meta)


def random_image(rng, shape=(12, 10, 1), dtype=np.uint16):
    if np.dtype(dtype).kind == "f":
        return rng.normal(0, 1000, shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, endpoint=True, dtype=dtype)


def random_mask(rng, shape=(12, 10), ids=(0, 1)):
    return rng.choice(np.array(ids, dtype=np.uint8), shape)


def test_export_writes_the_layout_and_manifest(tmp_path, rng):
    root = tmp_path / "ds"
    image = make_image(random_image(rng), tmp_path / "cells.tif")
    mask = random_mask(rng)
    hand = np.zeros((12, 10), bool)
    hand[:3] = True  # 30 of 120 pixels
    entry = dataset.export_to_dataset(root, image, mask, ClassTable.default(), hand=hand, model_version="nuclei/v2")

    manifest = json.loads((root / "dataset.json").read_text())
    assert manifest["format"] == "segstudio-dataset" and manifest["version"] == 1
    assert manifest["classes"] == json.loads(json.dumps(ClassTable.default().to_list()))
    assert manifest["entries"] == [entry]
    sha = dataset.content_hash(image.pixels)
    assert entry["sha256"] == sha and entry["id"] == sha[:16]
    assert entry["image"] == f"images/{entry['id']}.tif"
    assert entry["mask"] == f"masks/{entry['id']}.png"
    assert entry["hand"] == f"hand/{entry['id']}.png"
    for key in ("image", "mask", "hand"):
        assert (root / entry[key]).is_file()
    assert entry["source"] == str((tmp_path / "cells.tif").resolve())
    assert entry["model_version"] == "nuclei/v2"
    assert entry["hand_fraction"] == pytest.approx(0.25)
    assert entry["split"] == ("val" if int(sha[:8], 16) % 5 == 0 else "train")
    assert (entry["height"], entry["width"], entry["channels"], entry["dtype"]) == (12, 10, 1, "uint16")
    assert datetime.fromisoformat(entry["updated"]).tzinfo is not None
    assert entry["class_pixels"] == {str(k): int((mask == k).sum()) for k in (0, 1) if (mask == k).any()}
    # No temporary files left behind by the atomic writes.
    assert sorted(p.name for p in root.iterdir()) == ["dataset.json", "hand", "images", "masks", "objects"]
    assert [len(list((root / d).iterdir())) for d in ("images", "masks", "hand", "objects")] == [1, 1, 1, 1]


@pytest.mark.parametrize("shape,dtype", [
    ((9, 7), np.uint8), ((9, 7, 1), np.uint16), ((9, 7, 2), np.uint16), ((9, 7, 3), np.uint8),
    ((9, 7, 3), np.uint16), ((9, 7, 4), np.float32), ((9, 7), np.int16),
])
def test_images_round_trip_losslessly_with_dtype_and_channels(tmp_path, rng, shape, dtype):
    pixels = random_image(rng, shape, dtype)
    mask = random_mask(rng, (9, 7))
    hand = rng.random((9, 7)) < 0.3
    entry = dataset.export_to_dataset(tmp_path / "ds", make_image(pixels, tmp_path / "a.tif"), mask,
                                      ClassTable.default(), hand=hand)
    got_pixels, got_mask, got_hand = dataset.load_entry(tmp_path / "ds", entry)
    expected = pixels if pixels.ndim == 3 else pixels[:, :, None]
    assert got_pixels.dtype == expected.dtype and got_pixels.shape == expected.shape
    np.testing.assert_array_equal(got_pixels, expected)
    np.testing.assert_array_equal(got_mask, mask)
    np.testing.assert_array_equal(got_hand, hand)
    assert got_hand.dtype == bool
    # Loading by id gives the same.
    np.testing.assert_array_equal(dataset.load_entry(tmp_path / "ds", entry["id"])[1], mask)


def test_masks_with_ids_above_255_are_kept(tmp_path, rng):
    classes = ClassTable.from_list([{"id": 0, "name": "background", "color": [0, 0, 0]},
                                    {"id": 300, "name": "gland", "color": [0, 200, 0]}])
    mask = np.zeros((6, 6), np.uint16)
    mask[2:4, 2:4] = 300
    entry = dataset.export_to_dataset(tmp_path / "ds", make_image(random_image(rng, (6, 6)), tmp_path / "g.tif"),
                                      mask, classes)
    _, got, _ = dataset.load_entry(tmp_path / "ds", entry)
    np.testing.assert_array_equal(got, mask)


def test_reexporting_the_same_image_updates_its_entry(tmp_path, rng):
    root = tmp_path / "ds"
    image = make_image(random_image(rng), tmp_path / "a.tif")
    first = dataset.export_to_dataset(root, image, np.zeros((12, 10), np.uint8), ClassTable.default(),
                                      model_version="m/v1")
    corrected = random_mask(rng)
    second = dataset.export_to_dataset(root, image, corrected, ClassTable.default(), model_version="m/v2")
    manifest = dataset.load_manifest(root)
    assert len(manifest["entries"]) == 1
    assert second["id"] == first["id"]
    assert manifest["entries"][0]["model_version"] == "m/v2"
    np.testing.assert_array_equal(dataset.load_entry(root, second)[1], corrected)


def test_a_changed_source_file_replaces_its_old_entry(tmp_path, rng):
    root = tmp_path / "ds"
    path = tmp_path / "a.tif"
    other = dataset.export_to_dataset(root, make_image(random_image(rng), tmp_path / "b.tif"), random_mask(rng),
                                      ClassTable.default())
    old = dataset.export_to_dataset(root, make_image(random_image(rng), path), random_mask(rng),
                                    ClassTable.default())
    new = dataset.export_to_dataset(root, make_image(random_image(rng), path), random_mask(rng),
                                    ClassTable.default())
    assert new["id"] != old["id"]
    ids = [e["id"] for e in dataset.load_manifest(root)["entries"]]
    assert ids == [other["id"], new["id"]]
    for key in ("image", "mask", "hand"):
        assert not (root / old[key]).exists()  # no orphaned files of the replaced content
        assert (root / other[key]).exists()


def test_identical_pixels_from_two_files_are_one_entry(tmp_path, rng):
    root = tmp_path / "ds"
    pixels = random_image(rng)
    dataset.export_to_dataset(root, make_image(pixels, tmp_path / "a.tif"), random_mask(rng), ClassTable.default())
    dataset.export_to_dataset(root, make_image(pixels.copy(), tmp_path / "copy.tif"), random_mask(rng),
                              ClassTable.default())
    entries = dataset.load_manifest(root)["entries"]
    assert len(entries) == 1
    assert entries[0]["source"].endswith("copy.tif")


def test_split_is_fixed_by_content(tmp_path, rng):
    pixels = random_image(rng)
    a = dataset.export_to_dataset(tmp_path / "one", make_image(pixels, tmp_path / "x.tif"), random_mask(rng),
                                  ClassTable.default())
    b = dataset.export_to_dataset(tmp_path / "two", make_image(pixels, tmp_path / "elsewhere/y.png"),
                                  random_mask(rng), ClassTable.default())
    assert (a["id"], a["split"]) == (b["id"], b["split"])
    # About one image in five goes to validation, decided by the hash alone.
    splits = [dataset.split_for(dataset.content_hash(random_image(rng, (4, 4, 1)))) for _ in range(500)]
    assert 0.14 < splits.count("val") / len(splits) < 0.26
    assert set(splits) == {"train", "val"}


def test_content_hash_ignores_layout_but_not_values_or_dtype(rng):
    pixels = random_image(rng, (5, 6, 1))
    h = dataset.content_hash(pixels)
    assert dataset.content_hash(pixels[:, :, 0]) == h
    assert dataset.content_hash(pixels.astype(">u2")) == h
    assert dataset.content_hash(pixels.astype(np.uint32)) != h
    assert dataset.content_hash(pixels.reshape(6, 5, 1)) != h
    changed = pixels.copy()
    changed[0, 0, 0] ^= 1
    assert dataset.content_hash(changed) != h


def test_manifest_hash_tracks_training_data_only(tmp_path, rng):
    root = tmp_path / "ds"
    image = make_image(random_image(rng), tmp_path / "a.tif")
    mask = random_mask(rng)
    dataset.export_to_dataset(root, image, mask, ClassTable.default())
    h1 = dataset.manifest_hash(root)
    dataset.export_to_dataset(root, image, mask.copy(), ClassTable.default())  # same data, new timestamp
    assert dataset.manifest_hash(root) == h1
    mask2 = mask.copy()
    mask2[0, 0] = 1 - mask2[0, 0]
    dataset.export_to_dataset(root, image, mask2, ClassTable.default())
    assert dataset.manifest_hash(root) != h1


def test_invalid_masks_are_refused_and_leave_the_dataset_unchanged(tmp_path, rng):
    root = tmp_path / "ds"
    dataset.export_to_dataset(root, make_image(random_image(rng), tmp_path / "a.tif"), random_mask(rng),
                              ClassTable.default())
    before = (root / "dataset.json").read_bytes()
    image = make_image(random_image(rng), tmp_path / "b.tif")
    with pytest.raises(dataset.DatasetError, match=r"class ids \[7\]"):
        dataset.export_to_dataset(root, image, np.full((12, 10), 7, np.uint8), ClassTable.default())
    with pytest.raises(dataset.DatasetError, match="does not match"):
        dataset.export_to_dataset(root, image, np.zeros((5, 5), np.uint8), ClassTable.default())
    assert (root / "dataset.json").read_bytes() == before
    assert len(list((root / "images").iterdir())) == 1


def test_export_many_reports_bad_items_and_keeps_the_good_ones(tmp_path, rng):
    good = dataset.ExportItem(pixels=random_image(rng), mask=random_mask(rng), source="/data/good.tif")
    bad = dataset.ExportItem(pixels=random_image(rng), mask=np.zeros((3, 3), np.uint8), source="/data/bad.tif")
    errors = []
    written = dataset.export_many(tmp_path / "ds", [bad, good], ClassTable.default(),
                                  on_error=lambda item, exc: errors.append((item.source, str(exc))))
    assert [e["source"] for e in written] == ["/data/good.tif"]
    assert errors and errors[0][0] == "/data/bad.tif" and "does not match" in errors[0][1]
    assert len(dataset.load_manifest(tmp_path / "ds")["entries"]) == 1


def test_class_table_changes_merge_into_the_dataset(tmp_path, rng):
    root = tmp_path / "ds"
    three = ClassTable.from_list([{"id": 0, "name": "background", "color": [0, 0, 0]},
                                  {"id": 1, "name": "nucleus", "color": [255, 0, 0]},
                                  {"id": 2, "name": "mitosis", "color": [0, 255, 0]}])
    dataset.export_to_dataset(root, make_image(random_image(rng), tmp_path / "a.tif"),
                              random_mask(rng, ids=(0, 1, 2)), three)
    renamed = ClassTable.from_list([{"id": 0, "name": "background", "color": [0, 0, 0]},
                                    {"id": 1, "name": "cell", "color": [255, 0, 0]}])
    dataset.export_to_dataset(root, make_image(random_image(rng), tmp_path / "b.tif"), random_mask(rng), renamed)
    classes = {c["id"]: c["name"] for c in dataset.load_manifest(root)["classes"]}
    assert classes == {0: "background", 1: "cell", 2: "mitosis"}
    assert [c.name for c in dataset.load_classes(root)] == ["background", "cell", "mitosis"]


def test_load_manifest_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a segstudio dataset"):
        dataset.load_manifest(tmp_path)
    (tmp_path / "dataset.json").write_text('{"format": "something-else"}')
    with pytest.raises(dataset.DatasetError, match="not a segstudio dataset manifest"):
        dataset.load_manifest(tmp_path)
    (tmp_path / "dataset.json").write_text(
        '{"format": "segstudio-dataset", "version": 99, "classes": [], "entries": []}')
    with pytest.raises(dataset.DatasetError, match="version 99"):
        dataset.load_manifest(tmp_path)
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(dataset.DatasetError, match="Cannot read"):
        dataset.load_manifest(tmp_path)


def test_remove_entry_drops_files(tmp_path, rng):
    root = tmp_path / "ds"
    e = dataset.export_to_dataset(root, make_image(random_image(rng), tmp_path / "a.tif"), random_mask(rng),
                                  ClassTable.default())
    assert dataset.remove_entry(root, e["id"])
    assert dataset.load_manifest(root)["entries"] == []
    assert not (root / e["image"]).exists()
    assert not dataset.remove_entry(root, e["id"])


# --- nnU-Net -----------------------------------------------------------------------------------------------

def read_png(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_nnunet_export_of_grey_16bit_images(tmp_path, rng):
    root = tmp_path / "ds"
    exported = []
    for i in range(3):
        pixels = random_image(rng, (12, 10, 1), np.uint16)
        mask = random_mask(rng)
        entry = dataset.export_to_dataset(root, make_image(pixels, tmp_path / f"{i}.tif"), mask, ClassTable.default())
        exported.append((entry, pixels, mask))
    out = nnunet.export_nnunet(root, tmp_path / "nnUNet_raw", dataset_id=7, name="nuclei")
    assert out == tmp_path / "nnUNet_raw" / "Dataset007_nuclei"
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "intensity"}
    assert meta["labels"] == {"background": 0, "nucleus": 1}
    assert meta["numTraining"] == 3
    assert meta["file_ending"] == ".png"
    for entry, pixels, mask in exported:
        img = read_png(out / "imagesTr" / f"{entry['id']}_0000.png")
        assert img.dtype == np.uint16
        np.testing.assert_array_equal(img, pixels[:, :, 0])
        np.testing.assert_array_equal(read_png(out / "labelsTr" / f"{entry['id']}.png"), mask)
    assert len(list((out / "imagesTr").iterdir())) == 3 and len(list((out / "labelsTr").iterdir())) == 3
    splits = json.loads((out / "splits_final.json").read_text())
    assert sorted(splits[0]["train"] + splits[0]["val"]) == sorted(e["id"] for e, _, _ in exported)
    assert all(e["split"] == "val" for e, _, _ in exported if e["id"] in splits[0]["val"])


def test_nnunet_export_writes_each_channel_as_its_own_file(tmp_path, rng):
    root = tmp_path / "ds"
    pixels = random_image(rng, (8, 8, 3), np.uint8)
    entry = dataset.export_to_dataset(root, make_image(pixels, tmp_path / "rgb.png"), random_mask(rng, (8, 8)),
                                      ClassTable.default())
    out = nnunet.export_nnunet(root, tmp_path / "raw")
    for k in range(3):
        plane = read_png(out / "imagesTr" / f"{entry['id']}_{k:04d}.png")
        assert plane.ndim == 2
        np.testing.assert_array_equal(plane, pixels[:, :, k])
    assert json.loads((out / "dataset.json").read_text())["channel_names"] == {"0": "R", "1": "G", "2": "B"}


def test_nnunet_labels_are_renumbered_consecutively(tmp_path, rng):
    root = tmp_path / "ds"
    classes = ClassTable.from_list([{"id": 0, "name": "background", "color": [0, 0, 0]},
                                    {"id": 1, "name": "nucleus", "color": [255, 0, 0]},
                                    {"id": 5, "name": "membrane", "color": [0, 0, 255]}])
    mask = random_mask(rng, ids=(0, 1, 5))
    entry = dataset.export_to_dataset(root, make_image(random_image(rng), tmp_path / "a.tif"), mask, classes)
    out = nnunet.export_nnunet(root, tmp_path / "raw")
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "nucleus": 1, "membrane": 2}
    label = read_png(out / "labelsTr" / f"{entry['id']}.png")
    np.testing.assert_array_equal(label, np.where(mask == 5, 2, mask))


def test_nnunet_export_uses_tif_for_float_images(tmp_path, rng):
    import tifffile

    root = tmp_path / "ds"
    pixels = random_image(rng, (8, 8, 1), np.float32)
    mask = random_mask(rng, (8, 8))
    entry = dataset.export_to_dataset(root, make_image(pixels, tmp_path / "f.tif"), mask, ClassTable.default())
    out = nnunet.export_nnunet(root, tmp_path / "raw")
    assert json.loads((out / "dataset.json").read_text())["file_ending"] == ".tif"
    np.testing.assert_array_equal(tifffile.imread(out / "imagesTr" / f"{entry['id']}_0000.tif"), pixels[:, :, 0])
    np.testing.assert_array_equal(tifffile.imread(out / "labelsTr" / f"{entry['id']}.tif"), mask)


def test_nnunet_reexport_drops_cases_removed_from_the_dataset(tmp_path, rng):
    root = tmp_path / "ds"
    a = dataset.export_to_dataset(root, make_image(random_image(rng), tmp_path / "a.tif"), random_mask(rng),
                                  ClassTable.default())
    b = dataset.export_to_dataset(root, make_image(random_image(rng), tmp_path / "b.tif"), random_mask(rng),
                                  ClassTable.default())
    out = nnunet.export_nnunet(root, tmp_path / "raw")
    dataset.remove_entry(root, a["id"])
    nnunet.export_nnunet(root, tmp_path / "raw")
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == [f"{b['id']}_0000.png"]
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == [f"{b['id']}.png"]
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == 1


def test_nnunet_export_refuses_mixed_channel_counts(tmp_path, rng):
    root = tmp_path / "ds"
    dataset.export_to_dataset(root, make_image(random_image(rng, (8, 8, 1)), tmp_path / "a.tif"),
                              random_mask(rng, (8, 8)), ClassTable.default())
    dataset.export_to_dataset(root, make_image(random_image(rng, (8, 8, 2)), tmp_path / "b.tif"),
                              random_mask(rng, (8, 8)), ClassTable.default())
    with pytest.raises(dataset.DatasetError, match="same number of channels"):
        nnunet.export_nnunet(root, tmp_path / "raw")
    with pytest.raises(dataset.DatasetError, match="letters, digits"):
        nnunet.export_nnunet(root, tmp_path / "raw", name="bad name")


def test_a_removed_class_leaves_the_dataset_when_no_mask_uses_it_any_more(tmp_path, rng):
    root = tmp_path / "ds"
    three = ClassTable.from_list([{"id": 0, "name": "background", "color": [0, 0, 0]},
                                  {"id": 1, "name": "nucleus", "color": [255, 0, 0]},
                                  {"id": 2, "name": "mitosis", "color": [0, 255, 0]}])
    image = make_image(random_image(rng), tmp_path / "a.tif")
    dataset.export_to_dataset(root, image, random_mask(rng, ids=(0, 1, 2)), three)
    assert [c["name"] for c in dataset.load_manifest(root)["classes"]] == ["background", "nucleus", "mitosis"]
    # The user removed "mitosis" (its pixels became background) and exports the same image again.
    two = ClassTable.from_list(three.to_list()[:2])
    dataset.export_to_dataset(root, image, random_mask(rng, ids=(0, 1)), two)
    assert [c["name"] for c in dataset.load_manifest(root)["classes"]] == ["background", "nucleus"]
    # A class defined in the session but not painted yet stays: it is part of the table the user exported.
    dataset.export_to_dataset(root, image, random_mask(rng, ids=(0, 1)), three)
    assert len(dataset.load_manifest(root)["classes"]) == 3
