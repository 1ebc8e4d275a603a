import json

import pytest
import torch

from segstudio.models.checkpoint import CheckpointError
from segstudio.models.library import ModelLibrary
from segstudio.models.registry import build_model
from tests.models.sample_library import populate
from tests.models.sample_library import save_tiny as _save


def _tiny(seed):
    torch.manual_seed(seed)
    return build_model("unet", in_channels=1, num_classes=2, base_channels=2, depth=2)


@pytest.fixture
def dirs(tmp_path):
    return populate(tmp_path)


@pytest.fixture
def lib(dirs):
    return ModelLibrary(*dirs)


def test_bundled_and_user_versions_listed_together(lib, dirs):
    entries = lib.entries()
    assert [e.id for e in entries] == ["nuclei-unet/v1", "tissue-unet/v1", "nuclei-unet/v2", "nuclei-unet/v3"]
    assert [e.bundled for e in entries] == [True, True, False, False]
    assert entries[2].path == dirs[1] / "nuclei-unet" / "v2.safetensors"
    assert lib.problems == []


def test_find_by_id_family_and_path(lib, dirs, tmp_path):
    assert lib.find("nuclei-unet/v2").path.name == "v2.safetensors"
    assert lib.find("nuclei-unet").id == "nuclei-unet/v3"  # newest version
    assert lib.find("tissue-unet").bundled
    by_path = lib.find(str(dirs[0] / "tissue-unet.safetensors"))
    assert by_path.id == "tissue-unet/v1" and by_path.bundled
    outside = tmp_path / "elsewhere.safetensors"
    _save(outside, "shared-model", 7)
    found = lib.find(outside)
    assert found.id == "shared-model/v7" and not found.bundled
    with pytest.raises(ValueError) as info:
        lib.find("nuclei-unet/v9")
    for valid in ("nuclei-unet/v1", "nuclei-unet/v3", "tissue-unet/v1"):
        assert valid in str(info.value)


def test_load_returns_the_saved_weights(lib):
    model, meta = lib.load("nuclei-unet/v2")
    assert meta.id == "nuclei-unet/v2" and not model.training
    x = torch.randn(1, 1, 20, 20)
    with torch.no_grad():
        assert torch.equal(model(x), _tiny(3).eval()(x))


def test_lineage_walks_back_into_the_bundled_model(lib):
    assert lib.lineage("nuclei-unet") == ["nuclei-unet/v3", "nuclei-unet/v2", "nuclei-unet/v1"]
    assert lib.lineage("tissue-unet/v1") == ["tissue-unet/v1"]


def test_lineage_stops_at_a_missing_parent_and_survives_cycles(dirs):
    bundled, user = dirs
    (user / "loop").mkdir()
    _save(user / "loop" / "v1.safetensors", "loop", 1, parent="loop/v2")
    _save(user / "loop" / "v2.safetensors", "loop", 2, parent="loop/v1")
    (user / "orphan").mkdir()
    _save(user / "orphan" / "v4.safetensors", "orphan", 4, parent="deleted/v1")
    lib = ModelLibrary(bundled, user)
    assert lib.lineage("loop/v2") == ["loop/v2", "loop/v1"]
    assert lib.lineage("orphan") == ["orphan/v4", "deleted/v1"]


def test_next_version_never_overwrites(lib, dirs):
    bundled, user = dirs
    path, version = lib.next_version_path("nuclei-unet")
    assert (path, version) == (user / "nuclei-unet" / "v4.safetensors", 4)
    assert not path.exists() and path.parent.is_dir()
    # A bundled-only family continues in the user folder, above the bundled version.
    path, version = lib.next_version_path("tissue-unet")
    assert (path, version) == (user / "tissue-unet" / "v2.safetensors", 2)
    # An unreadable file still occupies its version number.
    (user / "nuclei-unet" / "v7.safetensors").write_bytes(b"interrupted copy")
    assert lib.next_version_path("nuclei-unet")[1] == 8
    assert lib.next_version_path("brand-new") == (user / "brand-new" / "v1.safetensors", 1)
    for bad in ("", "../escape", "a/b", ".hidden"):
        with pytest.raises(ValueError):
            lib.next_version_path(bad)
    assert sorted(p.name for p in bundled.iterdir()) == ["nuclei-unet-v1.safetensors", "tissue-unet.safetensors"]


def test_damaged_files_are_skipped_and_reported(dirs):
    bundled, user = dirs
    (user / "nuclei-unet" / "v5.safetensors").write_text("half a file")
    lib = ModelLibrary(bundled, user)
    assert "nuclei-unet/v3" in [e.id for e in lib.entries()]
    assert len(lib.problems) == 1 and "v5.safetensors" in lib.problems[0]


def test_active_model_defaults_to_bundled_and_persists(dirs, tmp_path):
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"brush_size": 12}))
    lib = ModelLibrary(*dirs, settings_path=settings)
    assert lib.active_id() == "nuclei-unet/v1"  # the bundled default
    assert lib.set_active("nuclei-unet") == "nuclei-unet/v3"
    assert ModelLibrary(*dirs, settings_path=settings).active_id() == "nuclei-unet/v3"
    stored = json.loads(settings.read_text())
    assert stored == {"brush_size": 12, "active_model": "nuclei-unet/v3"}  # other settings kept
    with pytest.raises(ValueError):
        lib.set_active("no-such-model")
    assert json.loads(settings.read_text())["active_model"] == "nuclei-unet/v3"
    # The chosen version disappears: fall back to the bundled default rather than fail.
    (dirs[1] / "nuclei-unet" / "v3.safetensors").unlink()
    assert lib.active_id() == "nuclei-unet/v1"


def test_active_model_outside_the_library_is_remembered_by_path(dirs, tmp_path):
    outside = tmp_path / "colleague.safetensors"
    _save(outside, "colleague-unet", 2)
    lib = ModelLibrary(*dirs)
    value = lib.set_active(outside)
    assert value == str(outside.resolve())
    assert lib.active_id() == value
    assert lib.load(lib.active_id())[1].id == "colleague-unet/v2"


def test_settings_go_to_the_user_data_folder_by_default(dirs, _isolated_user_data):
    ModelLibrary(*dirs).set_active("tissue-unet/v1")
    assert json.loads((_isolated_user_data / "settings.json").read_text())["active_model"] == "tissue-unet/v1"


def test_an_unreadable_file_given_by_path_names_the_file(lib, tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(CheckpointError, match="broken.safetensors"):
        lib.find(bad)


def test_the_default_is_nuclei_unet_even_when_other_bundled_files_sort_first(dirs, tmp_path):
    bundled, user = dirs
    _save(bundled / "nuclei-deeplabv3plus.safetensors", "nuclei-deeplabv3plus", 1, seed=5)
    _save(bundled / "nuclei-fcn8s.safetensors", "nuclei-fcn8s", 1, seed=6)
    lib = ModelLibrary(bundled, user, settings_path=tmp_path / "settings.json")
    assert [e.id for e in lib.entries() if e.bundled][0] == "nuclei-deeplabv3plus/v1"  # by file name
    assert lib.default_id() == lib.active_id() == "nuclei-unet/v1"
    (bundled / "nuclei-unet-v1.safetensors").unlink()
    assert ModelLibrary(bundled, user).default_id() == "nuclei-deeplabv3plus/v1"  # the first one left
