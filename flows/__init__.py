"""Prefect flows: they wire the tasks of flows/tasks.py together."""

from .submit_round import ModelReport, submit_model, submit_round

__all__ = ["ModelReport", "submit_model", "submit_round"]
