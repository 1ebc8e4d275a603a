"""Prediction settings refuse values that cannot work."""
from __future__ import annotations

import pytest

from segstudio.engine.predict import PredictSettings


def test_settings_are_checked():
    for bad in (PredictSettings(tile=0), PredictSettings(overlap=1.0), PredictSettings(batch=-1)):
        with pytest.raises(ValueError):
            bad.validate()
