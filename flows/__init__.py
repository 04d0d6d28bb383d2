"""Prefect flows: submit_round.py wires the tasks of live.py and submission.py together."""

from .submission import ModelReport, submit_model
from .submit_round import submit_round

__all__ = ["ModelReport", "submit_model", "submit_round"]
