"""`make run` training the example model says how the download and the training went."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from blocks import NumeraiCredentials
from deployments import local
from sandbox import Sandbox
from tests.support import LogRecords


@pytest.fixture
def make_run_logs() -> Iterator[list[logging.LogRecord]]:
    handler = LogRecords()
    local.log.addHandler(handler)
    level = local.log.level
    local.log.setLevel(logging.INFO)
    try:
        yield handler.records
    finally:
        local.log.removeHandler(handler)
        local.log.setLevel(level)


def test_training_the_example_reports_download_size_and_trees(
    tmp_path: Path, make_run_logs: list[logging.LogRecord]
) -> None:
    with Sandbox(tmp_path / "sandbox", seed=0, size="tiny") as sandbox:
        credentials = NumeraiCredentials(
            public_id=sandbox.public_id,
            secret_key=SecretStr(sandbox.secret_key),
            api_url=sandbox.api_url,
        )
        entry = local.ModelEntry(name="example_small", feature_set="small")
        assert local.train_example(credentials, entry, tmp_path / "work").is_file()
    lines = [r.getMessage() for r in make_run_logs]
    downloaded = re.compile(r"Downloaded v[\d.]+/train\.parquet: [\d.]+ [kMG]?B in [\d.]+ s")
    assert any(downloaded.fullmatch(m) for m in lines), lines
    # Not a terminal here: no bar, a line when the trees are all grown.
    trained = "Training the example model (small features): 300 of 300 trees (100%)"
    assert any(m.startswith(trained) for m in lines), lines
