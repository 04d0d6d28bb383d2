"""`python -m deployments.cli`: the same as the numerai-prefect command."""

from deployments.cli import app

app()
