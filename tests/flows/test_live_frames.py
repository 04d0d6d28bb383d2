"""A round's models share one read of the live data per feature set, and its failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pandas as pd
import pytest

from blocks import NumeraiModel

from .conftest import Round, reports_of

pytestmark = pytest.mark.integration


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


def test_an_unknown_feature_set_fails_its_model_by_name_and_spares_the_others(
    open_round: Round,
) -> None:
    good = open_round.save_model("sets_good")
    bad = open_round.save_model("sets_bad")
    config = cast(NumeraiModel, NumeraiModel.load(bad))
    config.feature_set = "no_such_set"
    config.save(bad, overwrite=True)
    state = open_round.run([good, bad])
    assert state.is_failed()
    reports = {r.model: r for r in reports_of(state)}
    assert reports["sets_good"].status == "verified"
    assert reports["sets_bad"].submission_id is None
    assert "unknown feature set 'no_such_set'" in (reports["sets_bad"].error or "")
    assert "available: all, medium" in (reports["sets_bad"].error or "")
