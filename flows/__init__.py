"""Prefect flows: submit_round.py wires the tasks of live.py and submission.py together."""

from .logs import quiet_bare_completions
from .submission import ModelReport, submit_model
from .submit_round import submit_round

# Wherever the flows run (a worker's flow run process, `make run`), so the logs say what finished.
quiet_bare_completions()

__all__ = ["ModelReport", "submit_model", "submit_round"]
