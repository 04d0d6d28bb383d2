"""`doctor` asks what Numerai and Prefect really hold: each model's registered webhook and the
receiver behind it, the notifier and the automations."""

from __future__ import annotations

import pytest
from prefect.client.orchestration import get_client

from tests.support import free_port

from .conftest import Project, receiver

pytestmark = pytest.mark.integration


def _row(output: str, check: str) -> str:
    """The doctor table's row of one check."""
    return next(line for line in output.splitlines() if f" {check} " in line)


def test_doctor_probes_the_receiver_each_model_is_registered_at(
    project: Project, prefect_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "500")  # one line a row
    monkeypatch.setenv("NUMERAI_WEBHOOK_SECRET", project.secret)
    a, b = project.names
    block_b = project.blocks[1]
    id_b = project.sandbox.models[b]
    with receiver(project.secret, prefect_server) as base:
        assert project.cli("setup", "--webhook-url", base).exit_code == 0
        # Nothing listens at the host b is registered at, though the URL is well formed.
        elsewhere = f"http://127.0.0.1:{free_port()}"
        project.sandbox.set_webhook(id_b, f"{elsewhere}/webhook/{project.secret}/{block_b}")
        result = project.cli("doctor")  # no --webhook-url: what Numerai holds is checked
        assert result.exit_code == 1
        assert "✓" in _row(result.output, f"webhook {a}")
        row = _row(result.output, f"webhook {b}")
        assert "✗" in row and f"receiver at {elsewhere} unreachable" in row
        assert f"{elsewhere}/webhook/***/{block_b}" in row
        assert "python -m deployments.receiver" in row  # how to start it

        # The right host with a secret the receiver does not know (and none here to compare).
        monkeypatch.delenv("NUMERAI_WEBHOOK_SECRET")
        other_secret = "s" * 43
        project.sandbox.set_webhook(id_b, f"{base}/webhook/{other_secret}/{block_b}")
        result = project.cli("doctor")
        row = _row(result.output, f"webhook {b}")
        assert "✗" in row and "refuses the secret" in row
        assert "✓" in _row(result.output, f"webhook {a}")
        assert other_secret not in result.output

        # Another host than the one the user says the receiver is at.
        result = project.cli("doctor", "--webhook-url", elsewhere)
        row = _row(result.output, f"webhook {a}")
        assert "✗" in row and f"wrong host: points at {base}/webhook/***/" in row
        assert f"setup --webhook-url {elsewhere}" in row

        project.sandbox.set_webhook(id_b, None)
        result = project.cli("doctor")
        row = _row(result.output, f"webhook {b}")
        assert "✗" in row and "not registered on Numerai" in row
        assert f"numerai-prefect setup --webhook-url {base}" not in row  # no base known for b
        assert project.secret not in result.output


def test_doctor_checks_the_notifier_and_that_the_automations_are_on(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "500")
    assert project.cli("setup").exit_code == 0
    before = project.cli("doctor")
    assert "✗" in _row(before.output, "notifier")
    assert "setup --notify" in _row(before.output, "automations")

    monkeypatch.setenv("NUMERAI_NOTIFY_URL", "http://127.0.0.1:9/hooks/private-token")
    assert project.cli("setup", "--notify", "webhook").exit_code == 0
    result = project.cli("doctor")
    assert "✓" in _row(result.output, "notifier")
    assert "✓" in _row(result.output, "automation numerai-run-failed")
    assert "✓" in _row(result.output, "automation numerai-round-about-to-be-missed-1h")
    assert "private-token" not in result.output

    with get_client(sync_client=True) as client:
        (failed,) = client.read_automations_by_name("numerai-run-failed")
        client.pause_automation(failed.id)
    result = project.cli("doctor")
    row = _row(result.output, "automation numerai-run-failed")
    assert "✗" in row and "disabled" in row and "numerai-prefect setup" in row
    assert "automation numerai-run-failed" in result.output.splitlines()[-1]  # the verdict
    assert project.cli("setup").exit_code == 0  # the fix doctor names
    assert "✓" in _row(project.cli("doctor").output, "automation numerai-run-failed")

    with get_client(sync_client=True) as client:
        for document in client.read_block_documents(include_secrets=False):
            if document.name == "numerai-notify":
                client.delete_block_document(document.id)
    result = project.cli("doctor")
    row = _row(result.output, "notifier")
    assert "✗" in row and "setup --notify" in row
    row = _row(result.output, "automation numerai-run-failed")
    assert "✗" in row and "not numerai-notify" in row
