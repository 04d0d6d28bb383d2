"""`numerai-prefect new`: each tournament's package passes its own test and its model submits."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import cast

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from blocks import NumeraiCredentials, NumeraiModel
from deployments.cli import app
from deployments.local import read_models
from deployments.scaffold import ScaffoldError, scaffold
from flows import ModelReport
from sandbox import Sandbox


@pytest.mark.parametrize("tournament", ["classic", "signals", "crypto"])
def test_new_package_passes_its_own_test_and_its_model_submits(
    prefect_server: str, tmp_path: Path, tournament: str
) -> None:
    models_file = tmp_path / "models.toml"
    name = f"my_{tournament}"
    made = scaffold(name, tournament, tmp_path, models_file)
    assert {p.name for p in made.files} == {
        "predict.py", "train.py", "requirements.txt", f"test_{name}.py",
    }  # fmt: skip

    own_test = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(made.package)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert own_test.returncode == 0, own_test.stdout[-3000:] + own_test.stderr[-2000:]

    (entry,) = read_models(models_file)
    assert (entry.name, entry.tournament) == (name, tournament)
    with Sandbox(tmp_path / "sandbox", seed=2) as sandbox:
        sandbox.add_model(name, tournament=entry.tournament_number)
        sandbox.open_round(tournament=entry.tournament_number)
        trained = subprocess.run(
            [sys.executable, str(made.package / "train.py")],
            capture_output=True, text=True, timeout=300,
            env={**os.environ, "NUMERAI_API_URL": sandbox.api_url},
        )  # fmt: skip
        assert trained.returncode == 0, trained.stderr[-2000:]
        if tournament == "classic":  # not a terminal: one line when done, no line per tree
            assert "trained 100 trees in" in trained.stdout and "[1/100]" not in trained.stdout
        predictor = models_file.parent / entry.predictor
        assert predictor.is_file()

        suffix = uuid.uuid4().hex[:6]
        NumeraiCredentials(
            public_id=sandbox.public_id,
            secret_key=SecretStr(sandbox.secret_key),
            api_url=sandbox.api_url,
            timeout_seconds=5,
        ).save(f"numerai-{suffix}")
        NumeraiModel(
            model_name=entry.name,
            predictor_path=str(predictor),
            feature_set=entry.feature_set if tournament == "classic" else "medium",
            tournament=entry.tournament_number,
        ).save(f"model-{suffix}")
        from flows import submit_round

        state = submit_round(
            models=[f"model-{suffix}"],
            credentials_block=f"numerai-{suffix}",
            data_dir=str(tmp_path / "data"),
            return_state=True,
        )
        assert state.is_completed(), state.message
        (report,) = cast(list[ModelReport], state.result())
        assert report.verified and report.tournament == tournament
        assert [s.id for s in sandbox.submissions(sandbox.models[name])] == [report.submission_id]


def test_new_refuses_to_overwrite_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "train.py").write_text("# my own work\n")
    models_file = tmp_path / "models.toml"
    with pytest.raises(ScaffoldError, match="refusing to overwrite"):
        scaffold("mine", "signals", tmp_path, models_file)
    assert (tmp_path / "mine" / "train.py").read_text() == "# my own work\n"
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["train.py"]
    assert not models_file.exists()


def test_new_refuses_a_name_already_in_models_toml(tmp_path: Path) -> None:
    models_file = tmp_path / "models.toml"
    models_file.write_text('[[model]]\nname = "taken"\n')
    with pytest.raises(ScaffoldError, match="already has a model named"):
        scaffold("taken", "crypto", tmp_path, models_file)
    assert not (tmp_path / "taken").exists()


def test_new_command_prints_the_entry_and_rejects_unknown_tournaments(tmp_path: Path) -> None:
    runner = CliRunner()
    printed = runner.invoke(
        app, ["new", "sig_model", "--tournament", "signals", "--dir", str(tmp_path), "--print"]
    )
    assert printed.exit_code == 0, printed.output
    assert 'tournament = "signals"' in printed.output
    assert (tmp_path / "sig_model" / "predict.py").is_file()
    unknown = runner.invoke(
        app, ["new", "x_model", "--tournament", "forex", "--dir", str(tmp_path)]
    )
    assert unknown.exit_code == 1 and "unknown tournament" in unknown.output
