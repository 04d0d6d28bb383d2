"""A local stand-in for Numerai's tournament API that unmodified numerapi can talk to."""

from sandbox.core import Fault, Round, Sandbox, SubmissionRecord
from sandbox.data import SIZES, DataSize

__all__ = ["SIZES", "DataSize", "Fault", "Round", "Sandbox", "SubmissionRecord"]
