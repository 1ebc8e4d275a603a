"""Every one of the seven networks goes the whole way: made as a new model, fine-tuned a few steps, saved,
read back from the library and predicted with, through the same calls the window makes."""
import numpy as np
import pytest

from segstudio.engine.new_model import NewModelSpec, classes_from_names, create_model
from segstudio.engine.predict import Predictor, PredictSettings
from segstudio.engine.training.config import TrainConfig
from segstudio.engine.training.loop import fine_tune
from segstudio.models.library import ModelLibrary
from segstudio.synth import generate_nuclei_image, make_training_set
from tests.models.conftest import TINY_CONFIGS

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def nuclei_data(tmp_path_factory):
    return make_training_set(tmp_path_factory.mktemp("nuclei"), 4, seed=11, size=64)


@pytest.mark.parametrize("arch", sorted(TINY_CONFIGS))
def test_new_train_save_reload_predict(arch, nuclei_data):
    spec = NewModelSpec(name=f"tiny-{arch}", arch=arch, classes=classes_from_names("background,nucleus"),
                        input="grey", config=dict(TINY_CONFIGS[arch]))
    made = create_model(spec)
    assert made.meta.id == f"tiny-{arch}/v1"
    result = fine_tune(TrainConfig(base=made.meta.id, data=[nuclei_data], steps=2, batch_size=2, crop=64, lr=1e-3,
                                   device="cpu", seed=0, num_workers=0, progress_interval_s=0.0))
    assert result.status == "done" and result.version == f"tiny-{arch}/v2"
    model, meta = ModelLibrary().load(result.version)  # what the model host does
    assert meta.parent == made.meta.id and meta.arch == arch
    image, _, _ = generate_nuclei_image(3, height=70, width=90, bit_depth=8)
    predicted = Predictor(model, meta, device="cpu").predict(image, PredictSettings(tile=64, batch=1))
    assert predicted.labels.shape == (70, 90) and set(np.unique(predicted.labels)) <= {0, 1}
    assert np.isfinite(predicted.confidence).all()
