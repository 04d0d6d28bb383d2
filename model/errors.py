"""Errors raised by the model package, each naming what went wrong."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from model.validation import ValidationResult


class LiveDataError(ValueError):
    """Live data (or its feature list) is not what a model can predict on."""


class PredictorError(RuntimeError):
    """A predictor file could not be loaded, or its function failed or returned garbage."""


class InvalidSubmission(ValueError):
    """A submission failed one or more validation checks; upload must be blocked."""

    def __init__(self, result: ValidationResult) -> None:
        self.result = result
        details = "; ".join(f"{f.check}: {f.detail}" for f in result.failures)
        super().__init__(f"submission failed validation: {details}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild from the result so the exception survives pickling (e.g. as a task result).
        return (type(self), (self.result,))
