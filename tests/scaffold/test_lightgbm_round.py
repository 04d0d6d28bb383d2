"""A user's LightGBM model folder, pickled as Numerai's example scripts do, through a round."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import cast

import numpy as np
from pydantic import SecretStr

from blocks import NumeraiCredentials, NumeraiModel
from flows import ModelReport
from sandbox import Sandbox
from tests.scaffold.lightgbm_model import (
    uploaded_predictions,
    whole_frame_predictions,
    write_lightgbm_model,
)


def test_lightgbm_pickle_predicts_on_the_whole_live_frame_and_is_verified(
    prefect_server: str, tmp_path: Path
) -> None:
    from flows import submit_round

    suffix = uuid.uuid4().hex[:6]
    name = f"lgbm_{suffix}"
    with Sandbox(tmp_path / "sandbox", seed=7, size="tiny") as sandbox:
        model_id = sandbox.add_model(name)
        current = sandbox.open_round()
        version = sandbox.data_version
        pickle = write_lightgbm_model(
            tmp_path / "models" / name, sandbox.store.path(version, "train.parquet", 0)
        )
        NumeraiCredentials(
            public_id=sandbox.public_id,
            secret_key=SecretStr(sandbox.secret_key),
            api_url=sandbox.api_url,
            timeout_seconds=5,
        ).save(f"numerai-{suffix}")
        # No feature set declared: the predictor gets the whole live frame, as on Numerai.
        NumeraiModel(model_name=name, predictor_path=str(pickle)).save(f"model-{suffix}")

        state = submit_round(
            models=[f"model-{suffix}"],
            credentials_block=f"numerai-{suffix}",
            data_dir=str(tmp_path / "data"),
            return_state=True,
        )
        assert state.is_completed(), state.message
        (report,) = cast(list[ModelReport], state.result())
        assert report.verified
        (submission,) = sandbox.submissions(model_id)
        assert submission.id == report.submission_id

        expected = whole_frame_predictions(
            pickle, sandbox.store.path(version, "live.parquet", current.number)
        )
        sent = uploaded_predictions(submission.data)
        assert list(sent.index) == list(expected.index)
        # Handed a column slice, reindex would fill the missing features with NaN and the
        # predictions would differ without an error.
        assert np.allclose(sent.to_numpy(), expected.to_numpy(), atol=1e-9)
