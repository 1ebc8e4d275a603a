"""Tiled prediction of whole images: settings, tiling and blending, network input, outputs, the predictor."""
from segstudio.engine.predict.model_input import (
    DEFAULT_NORMALISATION,
    ModelInput,
    prepare_input,
)
from segstudio.engine.predict.outputs import PredictResult
from segstudio.engine.predict.predictor import PredictionCancelled, Predictor
from segstudio.engine.predict.settings import (
    CancelCallback,
    PredictSettings,
    ProgressCallback,
)
from segstudio.engine.predict.tiling import TilePlan, plan_tiles

__all__ = [
    "DEFAULT_NORMALISATION",
    "CancelCallback",
    "ModelInput",
    "PredictResult",
    "PredictSettings",
    "PredictionCancelled",
    "Predictor",
    "ProgressCallback",
    "TilePlan",
    "plan_tiles",
    "prepare_input",
]
