"""Pure-Python model code: live data, predictors, the example model, submission checks."""

from model.data import (
    check_live,
    check_live_file,
    feature_names,
    read_example_predictions,
    read_feature_sets,
    read_live,
)
from model.errors import InvalidSubmission, LiveDataError, PredictorError
from model.example import ExampleModel, train_example_model, train_from_files
from model.predictor import Predictor, load_predictor, make_predict_fn, save_predict_fn
from model.summary import prediction_summary
from model.validation import CheckFailure, ValidationResult, ensure_valid, validate_submission

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
