"""Prefect blocks of this project; register them with `prefect block register -m blocks`."""

from .client import (
    NumeraiAPI,
    NumeraiAuthError,
    NumeraiClient,
    NumeraiError,
    NumeraiQueryError,
    NumeraiUnavailable,
    RoundInfo,
    RoundScores,
    SubmissionInfo,
    is_transient,
)
from .numerai import NumeraiCredentials, NumeraiModel, model_block_name

__all__ = [
    "NumeraiAPI",
    "NumeraiAuthError",
    "NumeraiClient",
    "NumeraiCredentials",
    "NumeraiError",
    "NumeraiModel",
    "NumeraiQueryError",
    "NumeraiUnavailable",
    "RoundInfo",
    "RoundScores",
    "SubmissionInfo",
    "is_transient",
    "model_block_name",
]
