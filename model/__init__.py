"""Pure-Python model code: live data, predictors, the example model, submission checks."""

from typing import Any

from model.data import (
    check_live,
    check_live_file,
    feature_names,
    read_example_predictions,
    read_feature_sets,
    read_live,
)
from model.errors import InvalidSubmission, LiveDataError, PredictorError
from model.predictor import Predictor, load_predictor, make_predict_fn, save_predict_fn
from model.summary import prediction_summary
from model.validation import CheckFailure, ValidationResult, ensure_valid, validate_submission

_EXAMPLE = ("ExampleModel", "train_example_model", "train_from_files")


def __getattr__(name: str) -> Any:
    # The example model needs scikit-learn, seconds to import: only when asked for, so that a
    # flow run whose models are plain predict functions starts without it.
    if name in _EXAMPLE:
        from model import example

        return getattr(example, name)
    raise AttributeError(f"module 'model' has no attribute {name!r}")


__all__ = [
    "CheckFailure",
    "ExampleModel",
    "InvalidSubmission",
    "LiveDataError",
    "Predictor",
    "PredictorError",
    "ValidationResult",
    "check_live",
    "check_live_file",
    "ensure_valid",
    "feature_names",
    "load_predictor",
    "make_predict_fn",
    "prediction_summary",
    "read_example_predictions",
    "read_feature_sets",
    "read_live",
    "save_predict_fn",
    "train_example_model",
    "train_from_files",
    "validate_submission",
]
