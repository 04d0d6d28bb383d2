"""The operator CLI against a real Prefect server and the sandbox."""

from __future__ import annotations

import json
import time
from typing import cast

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import VariableCreate
from prefect.exceptions import ObjectNotFound
from prefect.logging.handlers import APILogWorker
from pydantic import SecretStr
from typer.testing import CliRunner

from blocks import NumeraiCredentials, NumeraiModel
from deployments.cli import app
from deployments.process_pool import command_default, engine_command
from model.names import trigger_variable_name
from tests.support import free_port

from .conftest import Project, receiver, worker

pytestmark = pytest.mark.integration


def _pool_exists(name: str) -> bool:
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
        except ObjectNotFound:
            return False
        return True


def test_every_command_has_help() -> None:
    runner = CliRunner()
    for command in ("setup", "test", "status", "logs", "doctor", "teardown", "new"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and version.output.startswith("numerai-prefect ")
    assert "--install-completion" in runner.invoke(app, ["--help"]).output


def test_status_fits_80_columns_without_cutting_a_long_model_name(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows import submit_round

    long_name = f"{project.names[0]}_with_a_name_longer_than_the_terminal_is_wide_{'x' * 30}"
    project.sandbox.add_model(long_name)
    project.models_file.write_text(
        project.models_file.read_text()
        + f'[[model]]\nname = "{long_name}"\npredictor = "predict.pkl"\nfeature_set = "small"\n'
    )
    project.names.append(long_name)
    assert project.cli("setup").exit_code == 0
    state = submit_round(
        models=[project.blocks[-1]],
        credentials_block=project.credentials_block,
        data_dir=str(project.tmp / "data"),
        return_state=True,
    )
    assert state.is_completed(), state.message
    monkeypatch.setenv("COLUMNS", "80")
    result = project.cli("status", "--model", long_name)
    assert result.exit_code == 0
    assert long_name in result.output.splitlines()
    table_lines = [line for line in result.output.splitlines() if not line.startswith("  round ")]
    assert max(len(line) for line in table_lines if line != long_name) <= 80


def test_setup_twice_changes_nothing_the_second_time(project: Project) -> None:
    first = project.cli("setup")
    assert first.exit_code == 0
    assert "created" in first.output
    assert project.sandbox.secret_key not in first.output
    for block, name in zip(project.blocks, project.names, strict=True):
        model = cast(NumeraiModel, NumeraiModel.load(block))
        assert model.model_name == name
        assert model.predictor_path == str(project.tmp / "predict.pkl")
    credentials = cast(NumeraiCredentials, NumeraiCredentials.load(project.credentials_block))
    assert credentials.api_url == project.sandbox.api_url
    assert _pool_exists(project.pool)
    with get_client(sync_client=True) as client:  # each run started once, by this interpreter
        template = client.read_work_pool(project.pool).base_job_template
    assert command_default(template) == engine_command()

    second = project.cli("setup")
    assert second.exit_code == 0
    assert "Nothing changed" in second.output
    assert "unchanged" in second.output and "exists" in second.output
    assert "created" not in second.output


def test_setup_with_a_webhook_url_needs_the_webhook_secret(project: Project) -> None:
    result = project.cli("setup", "--webhook-url", "http://127.0.0.1:9")
    assert result.exit_code == 1
    assert "NUMERAI_WEBHOOK_SECRET is not set" in result.output
    assert not _pool_exists(project.pool)  # refused before changing anything
    assert project.sandbox.webhooks == {}


def test_setup_registers_the_webhooks_without_printing_the_secret(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NUMERAI_WEBHOOK_SECRET", project.secret)
    base = "http://127.0.0.1:9"
    first = project.cli("setup", "--webhook-url", base + "/")
    assert first.exit_code == 0
    assert project.secret not in first.output
    assert f"{base}/webhook/***/{project.blocks[0]}" in first.output
    models = project.sandbox.models
    assert project.sandbox.webhooks == {
        models[name]: f"{base}/webhook/{project.secret}/{block}"
        for name, block in zip(project.names, project.blocks, strict=True)
    }
    second = project.cli("setup", "--webhook-url", base)
    assert second.exit_code == 0
    assert "Nothing changed" in second.output


def test_doctor_names_the_missing_worker_and_its_fix(
    project: Project, prefect_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NUMERAI_WEBHOOK_SECRET", project.secret)
    monkeypatch.setenv("NUMERAI_NOTIFY_URL", "http://127.0.0.1:9/hooks/private-token")
    with receiver(project.secret, prefect_server) as base:
        setup = project.cli("setup", "--webhook-url", base, "--notify", "webhook")
        assert setup.exit_code == 0
        project.deploy()
        result = project.cli("doctor")
    assert result.exit_code == 1
    assert "1 check failed: worker online" in result.output
    assert f"prefect worker start --pool {project.pool}" in result.output
    assert "retry schedules in round windows" in result.output
    assert project.secret not in result.output


def test_models_are_found_on_numerai_as_the_runs_find_them(project: Project) -> None:
    """A models.toml name in another case than Numerai's: the runs find the model (by its
    lowercase name), so setup, doctor and status must find the same one."""
    from flows import submit_round

    shouted = project.names[0].upper()
    project.models_file.write_text(
        project.models_file.read_text().replace(project.names[0], shouted)
    )
    assert project.cli("setup").exit_code == 0
    doctor = project.cli("doctor")
    row = next(line for line in doctor.output.splitlines() if f"model {shouted} in" in line)
    assert "✓" in row and project.sandbox.models[project.names[0]] in row

    state = submit_round(
        models=[project.blocks[0]],
        credentials_block=project.credentials_block,
        data_dir=str(project.tmp / "data"),
        return_state=True,
    )
    assert state.is_completed(), state.message
    status = project.cli("status", "--model", shouted, "-o", "json")
    assert status.exit_code == 0
    rows = json.loads(status.output)
    assert [(r["model"], r["round"], r["submitted"]) for r in rows] == [(shouted, 1000, True)]
    assert rows[0]["run_state"] == "Completed"


def test_doctor_with_bad_keys_fails_the_keys_check(project: Project) -> None:
    assert project.cli("setup").exit_code == 0
    NumeraiCredentials(
        public_id=project.sandbox.public_id,
        secret_key=SecretStr("WRONG"),
        api_url=project.sandbox.api_url,
        timeout_seconds=2,
    ).save(project.credentials_block, overwrite=True)
    result = project.cli("doctor")
    assert result.exit_code == 1
    keys_row = next(line for line in result.output.splitlines() if "API keys valid" in line)
    assert "✗" in keys_row and "Invalid credentials" in keys_row


def test_status_and_logs_after_a_round(project: Project) -> None:
    from flows import submit_round

    assert project.cli("setup").exit_code == 0
    state = submit_round(
        models=project.blocks,
        credentials_block=project.credentials_block,
        data_dir=str(project.tmp / "data"),
        trigger_id="trigger-status",
        return_state=True,
    )
    assert state.is_completed(), state.message
    APILogWorker.drain_all(timeout=10)

    status = project.cli("status", "--rounds", "2")
    assert status.exit_code == 0
    assert "Round 1000 is open" in status.output
    lines = status.output.splitlines()
    block = lines[lines.index(project.names[0]) :]
    row = next(line for line in block if line.startswith("1000"))
    assert "yes" in row and "trigger-status" in row and "Completed" in row
    assert "round 1000: http" in status.output and "/runs/flow-run/" in status.output
    # Only rounds the model had: round 999 (before the sandbox's first round) is not listed.
    assert not any(line.startswith("999") for line in lines)

    one = project.cli("status", "--model", project.names[1], "-o", "json")
    assert one.exit_code == 0
    rows = json.loads(one.output)
    assert [(r["model"], r["round"], r["submitted"]) for r in rows] == [
        (project.names[1], 1000, True)
    ]
    assert rows[0]["trigger_id"] == "trigger-status" and rows[0]["run_state"] == "Completed"
    assert rows[0]["run_url"].endswith(f"/runs/flow-run/{state.state_details.flow_run_id}")

    run_id = str(state.state_details.flow_run_id)
    for args in (("logs", "--run", run_id), ("logs",), ("logs", "-f")):
        logs = project.cli(*args)
        assert logs.exit_code == 0
        assert "Round 1000 is open until" in logs.output  # the submit-round run's own log
        for name in project.names:  # and each model's task run's
            assert f"round-1000-{name}" in logs.output
            assert f"round-1000-{name}: verified submission " in logs.output
        assert "Finished in state Completed()" not in logs.output  # what finished is said above


def test_teardown_removes_what_setup_created_and_nothing_else(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NUMERAI_WEBHOOK_SECRET", project.secret)
    assert project.cli("setup", "--webhook-url", "http://127.0.0.1:9").exit_code == 0
    unrelated = f"unrelated-{project.pool}"
    NumeraiModel(model_name="someone_else", predictor_path="x.pkl").save(unrelated)
    # The receiver kept a trigger for the first model (see model.triggers) and for the other.
    kept = [project.blocks[0], unrelated]
    with get_client(sync_client=True) as client:
        for block in kept:
            client.create_variable(
                VariableCreate(name=trigger_variable_name(block), value={"trigger_id": "t"})
            )
    try:
        declined = project.cli("teardown", input="n\n")
        assert declined.exit_code == 1
        assert _pool_exists(project.pool) and len(project.sandbox.webhooks) == 2

        result = project.cli("teardown", "--yes")
        assert result.exit_code == 0
        assert project.sandbox.webhooks == {}
        assert not _pool_exists(project.pool)
        for block in project.blocks:
            with pytest.raises(ValueError):
                NumeraiModel.load(block)
        with pytest.raises(ValueError):
            NumeraiCredentials.load(project.credentials_block)
        assert NumeraiModel.load(unrelated)
        with get_client(sync_client=True) as client:
            assert client.read_variable_by_name(trigger_variable_name(kept[0])) is None
            assert client.read_variable_by_name(trigger_variable_name(unrelated)) is not None
        assert "Nothing to remove" in project.cli("teardown", "--yes").output
    finally:
        with get_client(sync_client=True) as client:
            client.delete_variable_by_name(trigger_variable_name(unrelated))
            client.delete_block_document(
                client.read_block_document_by_name(unrelated, block_type_slug="numerai-model").id
            )


def test_test_fails_cleanly_when_no_run_appears(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NUMERAI_WEBHOOK_SECRET", project.secret)
    base = f"http://127.0.0.1:{free_port()}"  # nothing listens: no receiver
    assert project.cli("setup", "--webhook-url", base).exit_code == 0
    started = time.monotonic()
    result = project.cli("test", "--timeout", "3")
    assert result.exit_code == 1
    assert "no run appeared within 3 s" in result.output
    assert "is the receiver reachable" in result.output
    assert time.monotonic() - started < 15
    assert len(project.sandbox.triggers) == 1


def test_test_follows_the_webhook_run_to_a_verified_submission(
    project: Project, prefect_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("deployments.receiver")
    monkeypatch.setenv("NUMERAI_WEBHOOK_SECRET", project.secret)
    monkeypatch.setenv("NUMERAI_NOTIFY_URL", "http://127.0.0.1:9/hooks/private-token")
    with receiver(project.secret, prefect_server) as base:
        setup = project.cli("setup", "--webhook-url", base, "--notify", "webhook")
        assert setup.exit_code == 0
        with worker(project.pool, prefect_server, project.tmp / "worker.log"):
            project.deploy()  # while the worker starts
            result = project.cli("test", "--model", project.names[1], "--timeout", "90")
            assert result.exit_code == 0, (project.tmp / "worker.log").read_text()
            model_id = project.sandbox.models[project.names[1]]
            (trigger,) = [t for m, t in project.sandbox.triggers if m == model_id]
            assert f"carries trigger {trigger}" in result.output
            assert "Running" in result.output and "Completed" in result.output
            assert [s.trigger_id for s in project.sandbox.submissions(model_id)] == [trigger]

            doctor = project.cli("doctor", "--webhook-url", base)
            assert doctor.exit_code == 0
            assert "All checks passed" in doctor.output


def test_setup_notify_applies_the_automations_once_and_teardown_removes_them(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client

    monkeypatch.setenv("NUMERAI_NOTIFY_URL", "http://127.0.0.1:9/hooks/private-token")
    first = project.cli("setup", "--notify", "webhook")
    assert first.exit_code == 0, first.output
    assert "numerai-run-failed" in first.output and "created" in first.output
    assert "private-token" not in first.output

    def ours() -> list[str]:
        with get_client(sync_client=True) as client:
            return sorted(
                a.name for a in client.read_automations() if a.name.startswith("numerai-")
            )

    applied = ours()
    assert "numerai-run-failed" in applied and "numerai-round-about-to-be-missed-1h" in applied
    second = project.cli("setup")
    assert second.exit_code == 0, second.output
    assert "Nothing changed" in second.output
    assert ours() == applied  # no duplicates

    gone = project.cli("teardown", "--yes")
    assert gone.exit_code == 0, gone.output
    assert ours() == []


def test_setup_notify_without_its_settings_fails_before_changing_anything(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NUMERAI_NOTIFY_URL", raising=False)
    result = project.cli("setup", "--notify", "slack")
    assert result.exit_code == 1
    assert "NUMERAI_NOTIFY_URL" in result.output
    assert not _pool_exists(project.pool)
