"""Model files from elsewhere: each bad one is refused with its name and reason, and never hides the others."""
import json
import multiprocessing
import threading
import time

import pytest
import torch
from safetensors.torch import save

from segstudio.models.checkpoint import CheckpointError, ModelMeta, load_checkpoint, read_meta, save_checkpoint
from segstudio.models.library import ModelLibrary, ModelProblem
from segstudio.models.registry import build_model

CLASSES = [{"id": 0, "name": "background", "color": [0, 0, 0]}, {"id": 1, "name": "nucleus", "color": [255, 0, 0]}]


def tiny_unet(seed=0):
    torch.manual_seed(seed)
    return build_model("unet", in_channels=1, num_classes=2, base_channels=2, depth=2)


def meta_dict(**overrides):
    model = tiny_unet()
    data = dict(name="shared", version=1, arch="unet", config=dict(model.config), classes=CLASSES, in_channels=1)
    data.update(overrides)
    return data


def write_raw(path, meta_text: str, tensors=None):
    tensors = tensors if tensors is not None else {k: v.contiguous() for k, v in tiny_unet().state_dict().items()}
    path.write_bytes(save(tensors, metadata={"format": "segstudio-model", "format_version": "1",
                                             "segstudio_meta": meta_text}))
    return path


HOSTILE_METADATA = {
    "version_infinity": ('{"name": "shared", "version": Infinity, "arch": "unet"}', "Infinity"),
    "version_nan": ('{"name": "shared", "version": NaN, "arch": "unet"}', "NaN"),
    "version_negative": (json.dumps(meta_dict(version=-3)), "version"),
    "version_huge": (json.dumps(meta_dict(version=10**40)), "version"),
    "deep_nesting": ('{"name": "shared", "version": 1, "arch": "unet", "training": ' + "[" * 100_000
                     + "]" * 100_000 + "}", "nested too deeply"),
    "classes_string": (json.dumps(meta_dict(classes="background,nucleus")), "classes must be a list"),
    "name_number": (json.dumps(meta_dict(name=5)), "name must be text"),
    "class_name_huge": (json.dumps(meta_dict(classes=[{"id": 0, "name": "x" * 10_000}])), "classes[0].name"),
    "too_many_classes": (json.dumps(meta_dict(classes=[f"c{i}" for i in range(100_000)])), "over the limit"),
    "config_string": (json.dumps(meta_dict(config="big")), "config must be a JSON object"),
    "not_json": ("{'name': 'shared'", "not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_METADATA))
def test_hostile_metadata_is_refused_with_the_field_named(tmp_path, case):
    text, reason = HOSTILE_METADATA[case]
    path = write_raw(tmp_path / f"{case}.safetensors", text)
    with pytest.raises(CheckpointError, match="Cannot load model") as caught:
        read_meta(path)
    assert reason in str(caught.value) and case in str(caught.value)


def test_one_bad_file_never_hides_the_other_models(tmp_path):
    bundled, user = tmp_path / "bundled", tmp_path / "user"
    bundled.mkdir()
    save_checkpoint(bundled / "nuclei-unet.safetensors", tiny_unet(), ModelMeta(name="nuclei-unet", version=1,
                                                                                   arch="unet", classes=CLASSES))
    family = user / "shared"
    family.mkdir(parents=True)
    for number, (_case, (text, _)) in enumerate(sorted(HOSTILE_METADATA.items()), start=1):
        write_raw(family / f"v{number}.safetensors", text)
    other = user / "other"
    other.mkdir()
    write_raw(other / "v1.safetensors", json.dumps(meta_dict(name=7)))  # a name of another type than the rest
    save_checkpoint(other / "v2.safetensors", tiny_unet(), ModelMeta(name="other", version=2, arch="unet",
                                                                     classes=CLASSES))
    library = ModelLibrary(bundled, user)
    assert [e.id for e in library.entries()] == ["nuclei-unet/v1", "other/v2"]
    assert len(library.problems) == len(HOSTILE_METADATA) + 1
    assert all(isinstance(p, ModelProblem) and p.path.is_file() and p.reason for p in library.problems)
    assert library.load("nuclei-unet")[1].id == "nuclei-unet/v1"


def test_an_oversized_architecture_is_refused_before_anything_is_built(tmp_path, monkeypatch):
    """Refused from its shapes alone: a network of these sizes is only ever sized on the "meta" device,
    which holds no memory (counted, not timed: the real build would take minutes and gigabytes)."""
    from segstudio.models import checkpoint

    built_on = []
    real_build = checkpoint.build_model

    def recording_build(*args, **kwargs):
        model = real_build(*args, **kwargs)
        built_on.append({p.device.type for p in model.parameters()})
        return model

    monkeypatch.setattr(checkpoint, "build_model", recording_build)
    for config_change, reason in ((dict(base_channels=1500), "base_channels"), (dict(depth=1_000_000), "depth"),
                                  (dict(depth=8, base_channels=256), "M parameters"),
                                  (dict(num_classes=100_000), "num_classes")):
        config = dict(tiny_unet().config, **config_change)
        path = write_raw(tmp_path / "big.safetensors", json.dumps(meta_dict(config=config)))
        with pytest.raises(CheckpointError, match=reason) as caught:
            load_checkpoint(path)
        assert "big.safetensors" in str(caught.value)
    assert all(devices <= {"meta"} for devices in built_on)


def test_tensor_shapes_in_the_file_must_fit_the_config_before_weights_are_read(tmp_path):
    config = dict(tiny_unet().config, base_channels=3)  # the file holds base_channels=2 tensors
    path = write_raw(tmp_path / "mismatch.safetensors", json.dumps(meta_dict(config=config)))
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_checkpoint(path)


@pytest.mark.parametrize("damage", ["nan", "inf", "negative_variance"])
def test_weights_that_would_predict_garbage_are_refused(tmp_path, damage):
    model = tiny_unet()
    state = {k: v.clone().contiguous() for k, v in model.state_dict().items()}
    if damage == "negative_variance":
        name = next(k for k in state if k.endswith("running_var"))
        state[name][0] = -1.0
    else:
        name = next(k for k in state if k.endswith("weight"))
        state[name].view(-1)[0] = float(damage)
    path = write_raw(tmp_path / f"{damage}.safetensors", json.dumps(meta_dict()), state)
    with pytest.raises(CheckpointError, match="NaN or infinite|variance is negative") as caught:
        load_checkpoint(path)
    assert f"{damage}.safetensors" in str(caught.value) and name in str(caught.value)


def test_a_nan_metric_is_saved_as_null_so_the_file_stays_readable(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, tiny_unet(), ModelMeta(name="m", version=1, arch="unet", classes=CLASSES,
                                                 metrics={"val": {"mean_iou": float("nan")}}))
    assert read_meta(path).metrics == {"val": {"mean_iou": None}}


def _save_one(user_dir, seed, results):
    library = ModelLibrary(user_dir / "none", user_dir)
    path, version = library.next_version_path("raced")
    # The same two steps the fine-tune takes: reserve, then write the file.
    save_checkpoint(path, tiny_unet(seed), ModelMeta(name="raced", version=version, arch="unet", classes=CLASSES,
                                                     description=f"seed {seed}"))
    results.append((version, seed))


def _save_in_process(user_dir, seed, queue):
    results = []
    _save_one(user_dir, seed, results)
    queue.put(results[0])


def test_racing_saves_each_get_their_own_version_and_none_is_overwritten(tmp_path):
    results: list = []
    threads = [threading.Thread(target=_save_one, args=(tmp_path, seed, results)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    processes = [context.Process(target=_save_in_process, args=(tmp_path, seed, queue)) for seed in range(8, 12)]
    for process in processes:
        process.start()
    results += [queue.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(60)
    versions = [v for v, _ in results]
    assert len(set(versions)) == len(results) == 12
    for version, seed in results:  # every file still holds the model its writer saved
        assert read_meta(tmp_path / "raced" / f"v{version}.safetensors").description == f"seed {seed}"


def test_save_version_never_replaces_a_file(tmp_path):
    library = ModelLibrary(tmp_path / "none", tmp_path)
    path, stored = library.save_version("fam", tiny_unet(), ModelMeta(name="x", version=99, arch="unet",
                                                                        classes=CLASSES))
    assert stored.id == "fam/v1" and path.name == "v1.safetensors"
    assert not list(path.parent.glob(".*"))  # no reservation or temp file left behind
    assert library.save_version("fam", tiny_unet(1), stored)[1].version == 2


def test_stale_temp_files_of_killed_writers_are_cleared_from_the_model_folder(tmp_path):
    import os

    family = tmp_path / "fam"
    family.mkdir()
    debris = family / ".v3.safetensors.0123abcd.tmp"
    debris.write_bytes(b"x" * 1000)
    old = time.time() - 7200
    os.utime(debris, (old, old))
    fresh = family / ".v4.safetensors.89abcdef.tmp"  # maybe a writer at work right now: kept
    fresh.write_bytes(b"y")
    ModelLibrary(tmp_path / "none", tmp_path).next_version_path("fam")
    assert not debris.exists() and fresh.exists()


def test_an_unreadable_user_folder_is_a_problem_not_a_crash(tmp_path):
    user = tmp_path / "user"
    user.write_text("not a folder")
    library = ModelLibrary(tmp_path / "none", user)
    assert library.entries() == []
    assert library.problems and "folder cannot be read" in library.problems[0]


def test_a_reservation_is_released_when_its_model_is_saved(tmp_path):
    library = ModelLibrary(tmp_path / "none", tmp_path)
    path, version = library.next_version_path("fam")
    assert (path.parent / f".v{version}.reserved").exists()
    save_checkpoint(path, tiny_unet(), ModelMeta(name="fam", version=version, arch="unet", classes=CLASSES))
    assert [p.name for p in path.parent.iterdir()] == [path.name]
