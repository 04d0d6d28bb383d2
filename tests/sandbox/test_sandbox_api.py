"""Real numerapi 3.1.1 calls against the sandbox."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import numerapi
import pandas as pd
import pytest
import requests

from sandbox import Sandbox

SUBMISSIONS_QUERY = """
query($modelId: String) {
  submissions(modelId: $modelId) { id filename insertedAt round { number tournament } triggerId }
}
"""


def _live(numerai: numerapi.NumerAPI, tmp_path: Path) -> pd.DataFrame:
    return pd.read_parquet(numerai.download_dataset("v5.3/live.parquet", str(tmp_path / "l.pq")))


def _preds(live: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"id": live.index, "prediction": live.index.str[1:].map(hash) % 97 / 97})


def test_list_datasets(numerai: numerapi.NumerAPI) -> None:
    names = numerai.list_datasets()
    for f in ("features.json", "live.parquet", "live_example_preds.parquet", "train.parquet"):
        assert f"v5.3/{f}" in names
        assert f"v5.2/{f}" in names


def test_download_identical_and_range_resume(
    sandbox: Sandbox, numerai: numerapi.NumerAPI, tmp_path: Path
) -> None:
    dest = tmp_path / "live.parquet"
    numerai.download_dataset("v5.3/live.parquet", str(dest))
    original = sandbox.store.path("v5.3", "live.parquet", 1000).read_bytes()
    assert dest.read_bytes() == original

    resumed = tmp_path / "again.parquet"
    half = len(original) // 2
    Path(str(resumed) + ".temp").write_bytes(original[:half])
    numerai.download_dataset("v5.3/live.parquet", str(resumed))
    assert resumed.read_bytes() == original
    assert sandbox.downloads[-1][2] == half


def test_range_and_unknown_token(sandbox: Sandbox, numerai: numerapi.NumerAPI) -> None:
    url = numerai.raw_query('{ dataset(filename: "v5.3/features.json") }')["data"]["dataset"]
    full = requests.get(url, timeout=5)
    part = requests.get(url, headers={"Range": "bytes=10-"}, timeout=5)
    assert part.status_code == 206
    assert part.content == full.content[10:]
    assert part.headers["content-range"] == f"bytes 10-{len(full.content) - 1}/{len(full.content)}"
    too_far = requests.get(url, headers={"Range": f"bytes={len(full.content)}-"}, timeout=5)
    assert too_far.status_code == 416
    assert requests.get(sandbox.base_url + "/files/nope", timeout=5).status_code == 403
    assert requests.put(sandbox.base_url + "/uploads/nope", data=b"x", timeout=5).status_code == 403


def test_unknown_dataset(numerai: numerapi.NumerAPI, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Dataset not found"):
        numerai.download_dataset("v9/live.parquet", str(tmp_path / "x"))


def test_live_data_differs_per_round(sandbox: Sandbox, numerai: numerapi.NumerAPI, tmp_path: Path):
    first = _live(numerai, tmp_path)
    sandbox.open_round()
    second = pd.read_parquet(numerai.download_dataset("v5.3/live.parquet", str(tmp_path / "2.pq")))
    assert numerai.get_current_round() == 1001
    assert not first.index.isin(second.index).any()


def test_current_round_and_check_open(sandbox: Sandbox, numerai: numerapi.NumerAPI) -> None:
    assert numerai.get_current_round() == 1000
    assert numerai.check_round_open() is True
    assert numerai.check_new_round() is True
    sandbox.close_round()
    assert numerai.check_round_open() is False
    with pytest.raises(ValueError, match="Current round not open for submissions"):
        numerai.get_current_round()
    rounds = numerai.list_rounds()
    assert [r["number"] for r in rounds] == [1000]
    assert rounds[0]["closeStakingTime"].tzinfo is not None


def test_get_models_and_account(sandbox: Sandbox, numerai: numerapi.NumerAPI) -> None:
    assert numerai.get_models() == sandbox.models
    assert numerai.get_models(tournament=11) == {}
    account = numerai.get_account()
    assert {m["name"] for m in account["models"]} == {"alpha", "beta"}
    assert account["apiTokens"][0]["public_id"] == sandbox.public_id


def test_upload_with_trigger_id(
    sandbox: Sandbox, numerai: numerapi.NumerAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIGGER_ID", "trigger-123")
    model_id = sandbox.models["alpha"]
    preds = _preds(_live(numerai, tmp_path))
    sub_id = numerai.upload_predictions(df=preds, model_id=model_id)

    assert [s["id"] for s in numerai.submission_ids(model_id)] == [sub_id]
    raw = numerai.raw_query(SUBMISSIONS_QUERY, {"modelId": model_id}, authorization=True)
    (sub,) = raw["data"]["submissions"]
    assert sub["round"] == {"number": 1000, "tournament": 8}
    assert sub["triggerId"] == "trigger-123"
    (rec,) = sandbox.submissions(model_id)
    assert (rec.id, rec.round_number, rec.late, rec.source) == (sub_id, 1000, False, "numerapi")
    pd.testing.assert_frame_equal(pd.read_csv(io.BytesIO(rec.data)), preds)
    assert sandbox.submissions(sandbox.models["beta"]) == []
    assert len(sandbox.uploads) == 1


def test_late_submission_goes_to_latest_round(
    sandbox: Sandbox, numerai: numerapi.NumerAPI, tmp_path: Path
) -> None:
    preds = _preds(_live(numerai, tmp_path))
    sandbox.close_round()
    numerai.upload_predictions(df=preds, model_id=sandbox.models["beta"])
    (rec,) = sandbox.submissions()
    assert (rec.round_number, rec.late, rec.trigger_id) == (1000, True, None)


def test_create_submission_needs_a_fresh_upload(
    sandbox: Sandbox, numerai: numerapi.NumerAPI
) -> None:
    query = """mutation($m: String) { create_submission(filename: "predictions.csv",
        tournament: 8, modelId: $m) { id } }"""
    with pytest.raises(ValueError, match=r"File not found: predictions\.csv"):
        numerai.raw_query(query, {"m": sandbox.models["alpha"]}, authorization=True)


def test_bad_keys(sandbox: Sandbox, numerai: numerapi.NumerAPI) -> None:
    with pytest.raises(ValueError, match="Invalid credentials"):
        numerapi.NumerAPI(sandbox.public_id, "wrong").get_models()
    with pytest.raises(ValueError, match="Invalid credentials"):
        numerapi.NumerAPI("a", "b").submission_ids(sandbox.models["alpha"])
    anon = {"query": "{ account { id } }"}
    assert requests.post(sandbox.api_url, json=anon, timeout=5).json()["errors"][0]["message"] == (
        "Invalid credentials"
    )


def test_foreign_model_id(numerai: numerapi.NumerAPI) -> None:
    other = str(uuid.uuid4())
    with pytest.raises(ValueError, match=other):
        numerai.submission_ids(other)


def test_graphql_validation_errors(numerai: numerapi.NumerAPI) -> None:
    with pytest.raises(ValueError, match="Cannot query field 'nope'"):
        numerai.raw_query("{ rounds(number: 0) { number nope } }")
    with pytest.raises(ValueError, match="Unknown argument 'bogus'"):
        numerai.raw_query("{ rounds(bogus: 1) { number } }")
    with pytest.raises(ValueError, match="Int cannot represent"):
        numerai.raw_query('{ rounds(number: "x") { number } }')


def test_webhook_and_trigger(sandbox: Sandbox, numerai: numerapi.NumerAPI) -> None:
    model_id = sandbox.models["alpha"]
    assert numerai.set_submission_webhook(model_id, "http://127.0.0.1:9/hook") is True
    assert sandbox.webhooks == {model_id: "http://127.0.0.1:9/hook"}
    mutation = "mutation($m: String!) { triggerModelWebhook(modelId: $m) }"
    trigger = numerai.raw_query(mutation, {"m": model_id}, authorization=True)["data"]
    assert sandbox.triggers == [(model_id, trigger["triggerModelWebhook"])]
    assert numerai.set_submission_webhook(model_id, None) is True
    assert sandbox.webhooks == {}


def test_no_round_at_all(tmp_path: Path) -> None:
    with Sandbox(tmp_path) as sb, sb.use_as_numerai():
        napi = numerapi.NumerAPI(sb.public_id, sb.secret_key)
        assert napi.check_round_open() is False
        assert sb.requests == [("rounds", "err")]


def test_use_as_numerai_restores_url(sandbox: Sandbox) -> None:
    before = numerapi.base_api.API_TOURNAMENT_URL
    with sandbox.use_as_numerai():
        assert sandbox.api_url == numerapi.base_api.API_TOURNAMENT_URL
    assert before == numerapi.base_api.API_TOURNAMENT_URL
