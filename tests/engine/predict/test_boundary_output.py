"""A model whose metadata declares a boundary output: its last channel is a border map (not a class), which the
prediction returns, and the objects split along it where the distance transform would not."""
from __future__ import annotations

import numpy as np
import pytest

from segstudio.core.objects.instances import find_instances, split_touching
from segstudio.engine.predict import Predictor, PredictSettings
from segstudio.models.checkpoint import load_checkpoint
from segstudio.models.metadata import MetadataError, check_meta
from tests.engine.predict import boundary_net


def test_the_boundary_channel_is_a_map_not_a_class_and_splits_the_objects(tmp_path, monkeypatch):
    path = boundary_net.save(tmp_path / "borders.safetensors", monkeypatch)
    model, meta = load_checkpoint(path)
    assert meta.objects == {"boundary_channel": 2}
    image = boundary_net.two_touching_squares()
    result = Predictor(model, meta, device="cpu").predict(image, PredictSettings(tile=32))
    assert set(np.unique(result.labels)) == {0, 1}  # never the boundary channel's index
    assert (result.labels[20:40, 20:61] == 1).all() and not result.notes
    assert result.boundary.dtype == np.float16
    assert (result.boundary[20:40, 40] > 0.9).all() and (result.boundary[20:40, 30] < 0.01).all()
    assert result.confidence[30, 30] > 0.99  # the classes' softmax leaves the boundary out
    assert split_touching(result.labels).max() == 1  # one rectangle to the distance transform
    ids = find_instances(result.labels, result.boundary)
    assert ids.max() == 2 and ids[30, 25] != ids[30, 55]
    assert np.array_equal(ids > 0, result.labels > 0)


def test_a_model_without_the_declaration_keeps_every_channel_a_class(tmp_path, monkeypatch):
    path = boundary_net.save(tmp_path / "plain.safetensors", monkeypatch, objects={},
                             classes=[{"id": i, "name": n, "color": [i, i, i]}
                                      for i, n in enumerate(("background", "nucleus", "edge"))])
    model, meta = load_checkpoint(path)
    result = Predictor(model, meta, device="cpu").predict(boundary_net.two_touching_squares(), PredictSettings(tile=32))
    assert result.boundary is None and (result.labels[20:40, 40] == 2).all()


@pytest.mark.parametrize(("objects", "reason"), [
    ({"boundary_channel": 1}, "must be the network's last output \\(2\\)"),
    ({"boundary_channel": "last"}, "objects.boundary_channel must be a whole number"),
    ([2], "objects must be a JSON object"),
])
def test_a_wrong_boundary_declaration_is_refused_naming_the_field(objects, reason):
    record = boundary_net.meta().to_dict()
    record["objects"] = objects
    with pytest.raises(MetadataError, match=reason):
        check_meta(record)
