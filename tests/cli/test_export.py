"""`segstudio export`: masks from a folder or from the autosave store into a dataset folder."""
import json

import cv2
import numpy as np
import pytest
import tifffile

from segstudio import synth
from segstudio.cli import main
from segstudio.core.autosave import AutosaveStore
from segstudio.core.dataset import load_entry, load_manifest
from segstudio.core.labels import ClassTable


@pytest.fixture
def images(tmp_path):
    """Two tiny generated images (16-bit TIFF and 8-bit PNG) with their true masks."""
    folder = tmp_path / "images"
    folder.mkdir()
    img16, mask16, _ = synth.generate_nuclei_image(1, height=40, width=48, bit_depth=16)
    img8, mask8, _ = synth.generate_nuclei_image(2, height=32, width=32, bit_depth=8)
    tifffile.imwrite(folder / "a.tif", img16)
    cv2.imwrite(str(folder / "b.png"), img8)
    return {"a": (folder / "a.tif", img16, mask16), "b": (folder / "b.png", img8, mask8)}


def _entries_by_name(dataset_dir):
    return {e["source"].rsplit("/", 1)[-1]: e for e in load_manifest(dataset_dir)["entries"]}


def test_export_from_a_mask_folder(tmp_path, images, capsys):
    masks = tmp_path / "masks"
    masks.mkdir()
    cv2.imwrite(str(masks / "a_mask.png"), images["a"][2])  # as `segstudio predict` names them
    cv2.imwrite(str(masks / "b.png"), images["b"][2])  # plain <stem>.png
    ds = tmp_path / "ds"
    rc = main(["export", str(images["a"][0]), str(images["b"][0]), "--masks", str(masks), "--to", str(ds),
               "--model-version", "nuclei-unet/v1"])
    assert rc == 0
    entries = _entries_by_name(ds)
    assert set(entries) == {"a.tif", "b.png"}
    for name, key in (("a.tif", "a"), ("b.png", "b")):
        pixels, mask, hand = load_entry(ds, entries[name])
        np.testing.assert_array_equal(pixels[:, :, 0], images[key][1])
        assert pixels.dtype == images[key][1].dtype
        np.testing.assert_array_equal(mask, images[key][2])
        assert not hand.any()  # masks from a folder are not hand-painted unless told so
        assert entries[name]["model_version"] == "nuclei-unet/v1"
    assert "2 exported, 0 failed" in capsys.readouterr().out


def test_missing_or_bad_masks_fail_per_file_with_nonzero_exit(tmp_path, images, capsys):
    masks = tmp_path / "masks"
    masks.mkdir()
    cv2.imwrite(str(masks / "a_mask.png"), images["a"][2])
    ds = tmp_path / "ds"
    rc = main(["export", str(images["a"][0]), str(images["b"][0]), str(tmp_path / "nope.tif"),
               "--masks", str(masks), "--to", str(ds)])
    err = capsys.readouterr().err
    assert rc == 1
    assert "b.png" in err and "no mask" in err
    assert "nope.tif" in err and "not found" in err
    assert set(_entries_by_name(ds)) == {"a.tif"}  # the good one is still exported


def test_mask_of_the_wrong_size_is_reported(tmp_path, images, capsys):
    masks = tmp_path / "masks"
    masks.mkdir()
    cv2.imwrite(str(masks / "a_mask.png"), np.zeros((5, 5), np.uint8))
    rc = main(["export", str(images["a"][0]), "--masks", str(masks), "--to", str(tmp_path / "ds")])
    err = capsys.readouterr().err
    assert rc == 1 and "a.tif" in err and "does not match" in err
    assert not (tmp_path / "ds" / "dataset.json").exists()


def test_unreadable_image_is_reported(tmp_path, capsys):
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"not a tiff at all")
    masks = tmp_path / "masks"
    masks.mkdir()
    rc = main(["export", str(broken), "--masks", str(masks), "--to", str(tmp_path / "ds")])
    assert rc == 1
    assert "broken.tif" in capsys.readouterr().err


def test_export_from_autosave_keeps_classes_and_hand_map(tmp_path, images):
    path, pixels, mask = images["a"]
    classes = ClassTable.from_list([{"id": 0, "name": "background", "color": [0, 0, 0]},
                                    {"id": 1, "name": "nucleus", "color": [255, 0, 0]},
                                    {"id": 2, "name": "mitosis", "color": [0, 255, 0]}])
    labelled = mask.copy()
    labelled[:4, :4] = 2
    hand = np.zeros(mask.shape, bool)
    hand[:10] = True
    AutosaveStore().save(path, labelled, classes, hand)
    ds = tmp_path / "ds"
    rc = main(["export", str(path), "--from-autosave", "--to", str(ds)])
    assert rc == 0
    entry = _entries_by_name(ds)["a.tif"]
    _, got_mask, got_hand = load_entry(ds, entry)
    np.testing.assert_array_equal(got_mask, labelled)
    np.testing.assert_array_equal(got_hand, hand)
    assert entry["hand_fraction"] == pytest.approx(hand.mean())
    assert {c["name"] for c in load_manifest(ds)["classes"]} == {"background", "nucleus", "mitosis"}


def test_export_from_autosave_keeps_the_objects_split_in_the_window(tmp_path, images):
    from segstudio.core.dataset import load_objects

    path, _pixels, mask = images["a"]
    joined = np.zeros(mask.shape, np.uint8)
    joined[10:20, 10:30] = 1  # one patch the user split into two objects in Object View
    objects = np.zeros(mask.shape, np.uint16)
    objects[10:20, 10:20], objects[10:20, 20:30] = 1, 2
    AutosaveStore().save(path, joined, ClassTable.default(), None, objects=objects)
    ds = tmp_path / "ds"
    assert main(["export", str(path), "--from-autosave", "--to", str(ds)]) == 0
    got = load_objects(ds, _entries_by_name(ds)["a.tif"])
    assert len(np.unique(got[joined > 0])) == 2  # not the one connected patch of the mask
    np.testing.assert_array_equal(got > 0, joined > 0)


def test_autosave_without_work_for_an_image_is_an_error(tmp_path, images, capsys):
    rc = main(["export", str(images["b"][0]), "--from-autosave", "--to", str(tmp_path / "ds")])
    assert rc == 1
    assert "no autosaved work" in capsys.readouterr().err


def test_folder_input_skips_mask_files_and_writes_nnunet(tmp_path, images):
    folder = images["a"][0].parent
    cv2.imwrite(str(folder / "a_mask.png"), images["a"][2])  # predictions written next to the images
    cv2.imwrite(str(folder / "b_mask.png"), images["b"][2])
    ds = tmp_path / "ds"
    rc = main(["export", str(folder), "--masks", str(folder), "--hand-painted", "--to", str(ds),
               "--nnunet", str(tmp_path / "raw"), "--nnunet-id", "12", "--nnunet-name", "demo"])
    assert rc == 0
    entries = _entries_by_name(ds)
    assert set(entries) == {"a.tif", "b.png"}
    assert all(e["hand_fraction"] == 1.0 for e in entries.values())
    meta = json.loads((tmp_path / "raw" / "Dataset012_demo" / "dataset.json").read_text())
    assert meta["numTraining"] == 2 and meta["file_ending"] == ".png"


def test_class_ids_outside_the_table_need_a_classes_file(tmp_path, images, capsys):
    path, _, mask = images["a"]
    masks = tmp_path / "masks"
    masks.mkdir()
    three = mask.copy()
    three[:3, :3] = 2
    cv2.imwrite(str(masks / "a_mask.png"), three)
    rc = main(["export", str(path), "--masks", str(masks), "--to", str(tmp_path / "ds")])
    assert rc == 1 and "class ids [2]" in capsys.readouterr().err
    classes = tmp_path / "classes.json"
    classes.write_text(json.dumps([{"id": 0, "name": "background", "color": [0, 0, 0]},
                                   {"id": 1, "name": "nucleus", "color": [255, 0, 0]},
                                   {"id": 2, "name": "debris", "color": [0, 0, 255]}]))
    rc = main(["export", str(path), "--masks", str(masks), "--to", str(tmp_path / "ds"), "--classes", str(classes)])
    assert rc == 0
    assert [c["name"] for c in load_manifest(tmp_path / "ds")["classes"]] == ["background", "nucleus", "debris"]


def test_masks_and_autosave_are_mutually_exclusive(tmp_path, images):
    with pytest.raises(SystemExit) as exc:
        main(["export", str(images["a"][0]), "--masks", str(tmp_path), "--from-autosave", "--to", str(tmp_path)])
    assert exc.value.code == 2
