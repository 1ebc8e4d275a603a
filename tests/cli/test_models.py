"""`segstudio models list` and `segstudio models architectures`: the library as a table or JSON."""
import json

import pytest

from segstudio.cli import main
from segstudio.cli.models import list_architectures, list_models
from segstudio.models.library import ModelLibrary
from segstudio.models.registry import list_models as architectures
from tests.models.sample_library import populate


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    bundled, user = populate(tmp_path)
    monkeypatch.setattr("segstudio.core.paths.bundled_models_dir", lambda: bundled)
    monkeypatch.setattr("segstudio.core.paths.user_models_dir", lambda: user)
    return bundled, user


def test_cli_list_json(cli_env, capsys):
    ModelLibrary().set_active("nuclei-unet/v2")
    assert list_models(json_output=True) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == ["nuclei-unet/v1", "tissue-unet/v1", "nuclei-unet/v2", "nuclei-unet/v3"]
    by_id = {r["id"]: r for r in rows}
    assert by_id["nuclei-unet/v3"]["lineage"] == ["nuclei-unet/v3", "nuclei-unet/v2", "nuclei-unet/v1"]
    assert by_id["nuclei-unet/v3"]["parent"] == "nuclei-unet/v2"
    assert by_id["nuclei-unet/v1"]["bundled"] and not by_id["nuclei-unet/v2"]["bundled"]
    assert [r["id"] for r in rows if r["active"]] == ["nuclei-unet/v2"]
    assert by_id["tissue-unet/v1"]["arch"] == "unet"
    assert by_id["tissue-unet/v1"]["classes"] == ["background", "nucleus"]
    assert by_id["tissue-unet/v1"]["created"]


def test_cli_list_text(cli_env, capsys):
    assert list_models(json_output=False) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if "nuclei-unet/v3 " in row)
    assert "nuclei-unet/v3 <- nuclei-unet/v2 <- nuclei-unet/v1" in line
    assert "unet" in line and "background, nucleus" in line and "user" in line
    active_line = next(row for row in out.splitlines() if "nuclei-unet/v1 " in row and "bundled" in row)
    assert active_line.startswith("*")


def test_cli_via_segstudio_command(cli_env, capsys):
    assert main(["models", "list", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 4
    assert main(["models", "architectures"]) == 0
    assert "deeplabv3plus" in capsys.readouterr().out


def test_cli_lists_architectures(capsys):
    assert list_architectures() == 0
    out = capsys.readouterr().out
    lines = [line.split()[0] for line in out.strip().splitlines()]
    assert lines == architectures()


def test_models_needs_a_sub_command(capsys):
    with pytest.raises(SystemExit) as info:
        main(["models"])
    assert info.value.code == 2
    assert "the following arguments are required: models_command" in capsys.readouterr().err


def test_models_new_appears_in_the_list_and_predicts(cli_env, capsys):
    import numpy as np

    from segstudio.engine.predict import Predictor, PredictSettings

    assert main(["models", "new", "mito", "--arch", "fcn8s", "--classes", "background,nucleus,mitochondrion",
                 "--input", "rgb"]) == 0
    assert "Made mito/v1 (fcn8s, 3 input channel(s)" in capsys.readouterr().out
    assert main(["models", "list", "--json"]) == 0
    row = next(r for r in json.loads(capsys.readouterr().out) if r["id"] == "mito/v1")
    assert row["classes"] == ["background", "nucleus", "mitochondrion"] and row["in_channels"] == 3
    assert not row["bundled"] and row["lineage"] == ["mito/v1"]
    model, meta = ModelLibrary().load("mito")
    result = Predictor(model, meta, device="cpu").predict(np.zeros((40, 50, 3), np.uint8), PredictSettings(tile=64))
    assert result.labels.shape == (40, 50)


def test_models_new_from_a_model_keeps_shared_classes_and_says_so(cli_env, capsys):
    import torch

    assert main(["models", "new", "nuclei-he", "--arch", "unet", "--classes", "background,nucleus,mitosis",
                 "--input", "he", "--from", "nuclei-unet/v2"]) == 0
    out = capsys.readouterr().out
    assert "kept the rows of background, nucleus" in out and "New classes start untrained: mitosis" in out
    library = ModelLibrary()
    new, meta = library.load("nuclei-he/v1")
    old, _ = library.load("nuclei-unet/v2")
    assert meta.parent == "nuclei-unet/v2" and meta.input["kind"] == "he" and len(meta.input["stain_vectors"]) == 3
    assert torch.equal(new.head.weight[:2], old.head.weight)
    assert torch.equal(new.enc1.block1.conv.weight, old.enc1.block1.conv.weight)


def test_a_lab_sets_its_own_stain_vectors_and_predict_separates_with_them(cli_env, tmp_path, capsys):
    import numpy as np

    from segstudio.core.model_fit import HE_STAIN_VECTORS
    from segstudio.engine.predict import ModelInput
    from segstudio.engine.predict.stains import hematoxylin, separation_matrix
    from segstudio.synth.he import generate_he_image

    ours = tmp_path / "our-stains.txt"
    ours.write_text("0.30 0.80 0.52\n0.05 0.95 0.30\n0.27 0.57 0.78\n")
    assert main(["models", "new", "lab-he", "--arch", "unet", "--classes", "background,nucleus", "--input", "he",
                 "--from", "nuclei-unet/v2", "--stain-vectors", str(ours)]) == 0
    capsys.readouterr()
    _, meta = ModelLibrary().load("lab-he")
    assert meta.input["stain_vectors"] == [[0.30, 0.80, 0.52], [0.05, 0.95, 0.30], [0.27, 0.57, 0.78]]
    assert main(["models", "list", "--json"]) == 0
    row = next(r for r in json.loads(capsys.readouterr().out) if r["id"] == "lab-he/v1")
    assert row["input"] == "hematoxylin from H&E colour images (the lab's own stain vectors)"
    rgb, _, _ = generate_he_image(3, height=48, width=48)
    fed = ModelInput(rgb, 1, None, meta.input).region(slice(None), slice(None))[0]  # what Predict feeds it
    np.testing.assert_allclose(fed, hematoxylin(rgb, separation_matrix(meta.input["stain_vectors"])))
    assert not np.allclose(fed, hematoxylin(rgb, separation_matrix(HE_STAIN_VECTORS)), atol=1e-3)

    assert main(["models", "new", "typed", "--arch", "unet", "--classes", "nucleus", "--input", "he",
                 "--stain-vectors", "0.6,0.75,0.28; 0.1,0.95,0.2; 0.3,0.5,0.8"]) == 0
    assert ModelLibrary().find("typed/v1").meta.input["stain_vectors"][0] == [0.6, 0.75, 0.28]


def test_stain_vectors_are_refused_clearly(cli_env, tmp_path, capsys):
    broken = tmp_path / "broken.txt"
    broken.write_text("0.6 0.75 0.28\n0.6 0.75 0.28\n0.3 0.5 0.8\n")
    assert main(["models", "new", "a", "--arch", "unet", "--classes", "nucleus", "--input", "he",
                 "--stain-vectors", str(broken)]) == 2
    assert f"{broken}: two of the stain vectors have (nearly) the same colour" in capsys.readouterr().err
    assert main(["models", "new", "b", "--arch", "unet", "--classes", "nucleus", "--input", "he",
                 "--stain-vectors", "0.6,0.75"]) == 2
    assert "must be three rows of r,g,b" in capsys.readouterr().err
    assert main(["models", "new", "c", "--arch", "unet", "--classes", "nucleus", "--input", "rgb",
                 "--stain-vectors", "0.6,0.75,0.28; 0.1,0.95,0.2; 0.3,0.5,0.8"]) == 2
    assert "Stain vectors are for a model that reads the hematoxylin" in capsys.readouterr().err
    assert [e.meta.name for e in ModelLibrary().entries() if e.meta.name in "abc"] == []


def test_models_new_refuses_clearly(cli_env, capsys):
    assert main(["models", "new", "nuclei-unet", "--arch", "unet", "--classes", "nucleus"]) == 2
    assert "exists already" in capsys.readouterr().err
    assert main(["models", "new", "b", "--arch", "fcn8s", "--classes", "cell", "--from", "nuclei-unet"]) == 2
    assert "weights can only be kept from the same network" in capsys.readouterr().err
    assert main(["models", "new", "c", "--arch", "unet", "--classes", "cell", "--input", "rgb", "--channels", "1"]) == 2
    assert "3 channel(s), not 1" in capsys.readouterr().err
    assert main(["models", "new", "d", "--arch", "unet", "--classes", "cell", "--imagenet"]) == 2
    assert "No ImageNet weights for U-Net" in capsys.readouterr().err


def test_export_then_import_as_another_lab(cli_env, tmp_path, capsys):
    import torch

    out = tmp_path / "shared"
    assert main(["models", "export", "nuclei-unet/v2", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["nuclei-unet-v2.json", "nuclei-unet-v2.safetensors"]
    assert json.loads((out / "nuclei-unet-v2.json").read_text())["arch"] == "unet"
    assert main(["models", "import", str(out / "nuclei-unet-v2.safetensors")]) == 0
    assert "Imported nuclei-unet-2/v1" in capsys.readouterr().out  # the name is taken: the next free one
    imported, meta = ModelLibrary().load("nuclei-unet-2")
    original, _ = ModelLibrary().load("nuclei-unet/v2")
    assert meta.training["original_id"] == "nuclei-unet/v2"
    assert all(torch.equal(a, b) for a, b in zip(imported.state_dict().values(), original.state_dict().values()))


def test_import_a_pt_state_dict_with_its_metadata_and_refuse_one_without(cli_env, tmp_path, capsys):
    import torch

    out = tmp_path / "shared"
    main(["models", "export", "tissue-unet", str(out)])
    model, _ = ModelLibrary().load("tissue-unet")
    torch.save({"state_dict": model.state_dict()}, out / "tissue-unet-v1.pt")
    (out / "tissue-unet-v1.safetensors").unlink()
    assert main(["models", "import", str(out / "tissue-unet-v1.pt"), "--name", "from-pt"]) == 0
    assert ModelLibrary().find("from-pt").meta.arch == "unet"
    lonely = tmp_path / "lonely.pt"
    torch.save(model.state_dict(), lonely)
    capsys.readouterr()
    assert main(["models", "import", str(lonely)]) == 2
    assert "lonely.json" in capsys.readouterr().err
    evil = tmp_path / "evil.pt"
    torch.save({"weights": model.state_dict(), "code": print}, evil)  # a pickled function: refused
    (tmp_path / "evil.json").write_text((out / "tissue-unet-v1.json").read_text())
    assert main(["models", "import", str(evil)]) == 2
    assert "run code" in capsys.readouterr().err


def test_onnx_export_runs_in_onnxruntime(cli_env, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import numpy as np
    import torch

    assert main(["models", "export", "tissue-unet", str(tmp_path), "--onnx"]) == 0
    model, _ = ModelLibrary().load("tissue-unet")
    x = np.random.default_rng(0).random((1, 1, 64, 96), dtype=np.float32)
    (logits,) = ort.InferenceSession(str(tmp_path / "tissue-unet-v1.onnx")).run(None, {"image": x})
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4)


@pytest.mark.parametrize("arch", ["unet", "fcn32s", "fcn16s", "fcn8s", "deconvnet", "pspnet", "deeplabv3plus"])
def test_every_network_exports_to_onnx_and_answers_as_in_torch(cli_env, tmp_path, arch):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import numpy as np
    import onnx
    import torch

    from segstudio.engine.new_model import NewModelSpec, classes_from_names, create_model
    from tests.models.conftest import TINY_CONFIGS

    torch.manual_seed(0)
    made = create_model(NewModelSpec(name=f"t-{arch}", arch=arch, classes=classes_from_names("nucleus"),
                                     config=dict(TINY_CONFIGS[arch])))
    assert main(["models", "export", made.meta.id, str(tmp_path), "--onnx"]) == 0
    written = tmp_path / f"t-{arch}-v1.onnx"
    size = {p.key: p.value for p in onnx.load(str(written)).metadata_props}["input_size"]
    shapes = [(2, 1, 512, 512)] if size == "512x512" else [(2, 1, 512, 512), (1, 1, 128, 160)]
    assert (size == "512x512") == (arch == "pspnet")  # its pyramid pools are laid out for the tile size
    model, _ = ModelLibrary().load(made.meta.id)
    session = ort.InferenceSession(str(written))
    for shape in shapes:
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        (logits,) = session.run(None, {"image": x})
        with torch.no_grad():
            np.testing.assert_allclose(logits, model(torch.from_numpy(x)).numpy(), atol=1e-4)


def test_onnx_export_without_the_onnx_package_says_what_to_install(cli_env, tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)  # as if it were not installed
    assert main(["models", "export", "tissue-unet", str(tmp_path), "--onnx"]) == 2
    assert "pip install onnx" in capsys.readouterr().err
