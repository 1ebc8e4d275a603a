"""`segstudio export SLIDE --from-autosave`: the regions corrected in the slide window become dataset patches;
a slide is never exported whole, and one nobody corrected is reported with the reason."""
import numpy as np
import pytest

from segstudio.cli import main
from segstudio.core.dataset import load_entry, load_manifest
from segstudio.core.label_store import LabelStore
from segstudio.core.slide_dataset import PATCH, autosaved_labels_folder
from segstudio.synth.slides import write_pyramid_ome


@pytest.fixture
def slide_file(tmp_path):
    return write_pyramid_ome(tmp_path / "case.ome.tif", 2200, 2600, levels=2, compression="zlib", mpp=0.25)


def _corrected_in_the_window(slide_file, boxes):
    """Labels and a hand map saved where the slide window autosaves them."""
    folder = autosaved_labels_folder(slide_file)
    labels = LabelStore(2200, 2600, folder, pyramid=False)
    hand = LabelStore(2200, 2600, folder.with_name(folder.stem + ".hand.zarr"), pyramid=False)
    labels.put(0, 0, np.ones((300, 300), np.uint8))  # predicted, never looked at
    for y, x, h, w in boxes:
        labels.put(y, x, np.ones((h, w), np.uint8))
        hand.put(y, x, np.ones((h, w), np.uint8))
    labels.save()
    hand.save()
    return labels


def test_the_corrected_regions_of_a_slide_are_exported_as_patches(slide_file, tmp_path, capsys):
    labels = _corrected_in_the_window(slide_file, [(1200, 100, 40, 40), (1500, 2100, 30, 30)])
    code = main(["export", str(slide_file), "--from-autosave", "--to", str(tmp_path / "ds")])
    assert code == 0, capsys.readouterr().err
    entries = load_manifest(tmp_path / "ds")["entries"]
    assert sorted((e["region"]["y"], e["region"]["x"]) for e in entries) == [(PATCH, 0), (PATCH, 2 * PATCH)]
    for entry in entries:
        assert entry["pixel_size_um"] == pytest.approx(0.25)
        y, x, h, w = (entry["region"][k] for k in ("y", "x", "height", "width"))
        _pixels, mask, hand = load_entry(tmp_path / "ds", entry)
        assert np.array_equal(mask, labels.read(y, x, h, w)) and hand.sum() in (1600, 900)
    assert "2 exported, 0 failed" in capsys.readouterr().out


def test_a_slide_nobody_corrected_or_given_with_masks_is_reported_not_exported(slide_file, tmp_path, capsys):
    code = main(["export", str(slide_file), "--from-autosave", "--to", str(tmp_path / "ds")])
    assert code == 1 and "no autosaved labels for this slide" in capsys.readouterr().err
    _corrected_in_the_window(slide_file, [])
    code = main(["export", str(slide_file), "--from-autosave", "--to", str(tmp_path / "ds")])
    assert code == 1 and "nothing to train on" in capsys.readouterr().err
    (tmp_path / "masks").mkdir()
    code = main(["export", str(slide_file), "--masks", str(tmp_path / "masks"), "--to", str(tmp_path / "ds")])
    assert code == 1 and "--from-autosave" in capsys.readouterr().err
    assert not (tmp_path / "ds" / "dataset.json").exists()
