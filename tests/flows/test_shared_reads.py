"""A round's models read each live file once and share what was read."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, cast

import pandas as pd
import pytest

from flows.tasks import SHARED_READS, SharedReads

from .conftest import Round


def test_threads_asking_at_once_read_the_file_once(tmp_path: Path) -> None:
    path = tmp_path / "live.parquet"
    path.write_bytes(b"x")
    reads: list[int] = []

    def reader() -> str:
        reads.append(1)
        time.sleep(0.2)  # the others ask while this read is under way
        return "frame"

    shared = SharedReads()
    got: list[str] = []
    threads = [
        threading.Thread(target=lambda: got.append(shared.read(path, ("a",), reader)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert got == ["frame"] * 8
    assert len(reads) == 1


def test_what_is_read_and_the_file_itself_are_the_key(tmp_path: Path) -> None:
    path = tmp_path / "live.parquet"
    path.write_bytes(b"x")
    shared = SharedReads()
    calls = iter(range(100))
    assert shared.read(path, ("a",), lambda: next(calls)) == 0
    assert shared.read(path, ("a",), lambda: next(calls)) == 0
    assert shared.read(path, ("b",), lambda: next(calls)) == 1  # other columns
    path.write_bytes(b"a new download")
    assert shared.read(path, ("a",), lambda: next(calls)) == 2
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert shared.read(path, ("a",), lambda: next(calls)) == 3


def test_a_failed_read_is_not_kept(tmp_path: Path) -> None:
    path = tmp_path / "live.parquet"
    path.write_bytes(b"x")
    shared = SharedReads()

    def broken() -> str:
        raise ValueError("cannot read live data")

    with pytest.raises(ValueError, match="cannot read live data"):
        shared.read(path, (), broken)
    assert shared.read(path, (), lambda: "frame") == "frame"


def test_a_missing_file_is_left_to_the_reader_to_name(tmp_path: Path) -> None:
    def reader() -> str:
        raise FileNotFoundError("live.parquet is missing")

    with pytest.raises(FileNotFoundError, match=r"live\.parquet is missing"):
        SharedReads().read(tmp_path / "live.parquet", (), reader)


def test_forget_drops_the_directory_only(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = tmp_path / "a" / "live.parquet", tmp_path / "b" / "live.parquet"
    first.write_bytes(b"x")
    second.write_bytes(b"x")
    shared = SharedReads()
    shared.read(first, (), lambda: "a")
    shared.read(second, (), lambda: "b")
    shared.forget(tmp_path / "a")
    assert shared.read(first, (), lambda: "a again") == "a again"
    assert shared.read(second, (), lambda: "b again") == "b"


def buffer_recorder(directory: Path) -> Any:
    """A predictor that writes down where its first feature column's values are in memory."""

    def predict(live_features: pd.DataFrame) -> Any:
        import time as clock

        feature = next(c for c in live_features.columns if c.startswith("feature_"))
        address = live_features[feature].to_numpy().__array_interface__["data"][0]
        total = int(live_features[feature].sum())
        (directory / str(clock.perf_counter_ns())).write_text(f"{address} {total}")
        live_features[feature] = 0  # a model changing its frame changes no one else's
        return live_features[feature].rank(pct=True, method="first").to_frame("prediction")

    return predict


@pytest.mark.integration
def test_a_rounds_models_share_one_read_of_the_live_data(open_round: Round, tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    seen.mkdir()
    names = ["share_a", "share_b", "share_c"]
    blocks = [open_round.save_model(n, buffer_recorder(seen)) for n in names]
    state = open_round.run(blocks)
    assert state.is_completed(), state.message
    records = [p.read_text().split() for p in seen.iterdir()]
    assert len(records) == 3
    assert len({address for address, _ in records}) == 1, "each model read the live data again"
    totals = {int(total) for _, total in records}
    assert len(totals) == 1 and totals != {0}, "a model saw another model's change"
    assert not SHARED_READS._values, "the round's reads outlived it"


@pytest.mark.integration
def test_an_unknown_feature_set_fails_its_model_by_name_and_spares_the_others(
    open_round: Round,
) -> None:
    from blocks import NumeraiModel

    good = open_round.save_model("sets_good")
    bad = open_round.save_model("sets_bad")
    config = cast(NumeraiModel, NumeraiModel.load(bad))
    config.feature_set = "no_such_set"
    config.save(bad, overwrite=True)
    state = open_round.run([good, bad])
    assert state.is_failed()
    reports = {r.model: r for r in state.result(raise_on_failure=False)}
    assert reports["sets_good"].status == "verified"
    assert reports["sets_bad"].submission_id is None
    assert "unknown feature set 'no_such_set'" in (reports["sets_bad"].error or "")
    assert "available: all, medium" in (reports["sets_bad"].error or "")
