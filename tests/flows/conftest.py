"""A sandbox round with saved blocks, on the session's real Prefect server."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
import pandas as pd
import pytest
from pydantic import SecretStr

from blocks import NumeraiCredentials, NumeraiModel
from sandbox import Sandbox


def rank_first_feature(live_features: pd.DataFrame, live_benchmark_models: pd.DataFrame) -> Any:
    """A Model Uploads style predict function."""
    feature = next(c for c in live_features.columns if c.startswith("feature_"))
    return live_features[feature].rank(pct=True, method="first").to_frame("prediction")


def reports_of(state: Any) -> list[Any]:
    """Every model's report of a finished round run, failed or not."""
    from flows.submit_round import RoundFailed

    outcome = state.result(raise_on_failure=False)
    return outcome.reports if isinstance(outcome, RoundFailed) else outcome


@dataclass
class Round:
    """A sandbox with an open round and block names for its models."""

    sandbox: Sandbox
    tmp: Path
    credentials_block: str

    def save_model(
        self,
        name: str,
        predict: Callable[..., Any] = rank_first_feature,
        *,
        block_name: str | None = None,
        feature_set: str | None = "small",
    ) -> str:
        """Register a model in the sandbox and save its block; returns the block name."""
        if name not in self.sandbox.models:
            self.sandbox.add_model(name)
        path = self.tmp / f"{name}-{uuid.uuid4().hex[:6]}.pkl"
        path.write_bytes(cloudpickle.dumps(predict))
        block_name = block_name or f"{name.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
        NumeraiModel(model_name=name, predictor_path=str(path), feature_set=feature_set).save(
            block_name, overwrite=True
        )
        return block_name

    def run(self, models: list[str], **kwargs: Any) -> Any:
        """Run submit-round in-process against the Prefect server; returns the final state."""
        from flows import submit_round

        kwargs.setdefault("credentials_block", self.credentials_block)
        return submit_round(
            models=models, data_dir=str(self.tmp / "data"), return_state=True, **kwargs
        )


@pytest.fixture
def open_round(prefect_server: str, tmp_path: Path) -> Iterator[Round]:
    with Sandbox(tmp_path / "sandbox", seed=1, size="tiny") as sandbox:
        sandbox.open_round()
        name = f"numerai-{uuid.uuid4().hex[:8]}"
        NumeraiCredentials(
            public_id=sandbox.public_id,
            secret_key=SecretStr(sandbox.secret_key),
            api_url=sandbox.api_url,
            timeout_seconds=2,
        ).save(name)
        yield Round(sandbox, tmp_path, name)
