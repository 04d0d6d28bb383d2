"""A run that starts during a Numerai outage waits it out instead of failing at once."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

from flows.policies import patient_delays
from sandbox import Fault, Sandbox
from tests.support import ROOT

RESOLVE = """
from blocks import NumeraiAPI
from flows.policies import with_api_retries
from flows.submission import resolve_round

class Keys:  # the one method resolve_round uses
    def get_client(self, tournament):
        return NumeraiAPI({public!r}, {secret!r}, api_url={url!r}, timeout=5)

print(with_api_retries(resolve_round, patient=True)(Keys(), 8).number)
"""


def test_patient_delays_double_up_to_the_longest_and_stay_within_the_patience() -> None:
    assert patient_delays(900, 5, 60) == [5, 10, 20, 40] + [60] * 13
    assert sum(patient_delays(900, 5, 60)) <= 900
    assert patient_delays(0, 5, 60) == []
    assert len(patient_delays(10_000, 0.1, 0.1)) == 50  # Prefect's most


def _resolve(
    sandbox: Sandbox, patience: str, prefect_server: str
) -> subprocess.CompletedProcess[str]:
    code = RESOLVE.format(public=sandbox.public_id, secret=sandbox.secret_key, url=sandbox.api_url)
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_server,
        "NUMERAI_RETRY_BASE_SECONDS": "0.2",
        "NUMERAI_ROUND_PATIENCE_SECONDS": patience,
    }
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_first_call_of_a_run_waits_out_an_outage(sandbox: Sandbox, prefect_server: str) -> None:
    # Longer than the usual retries (about 3 s here) and than the subprocess takes to start.
    sandbox.inject(Fault("http_status", status=503, until=sandbox.now() + dt.timedelta(seconds=15)))
    result = _resolve(sandbox, "40", prefect_server)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "1000"
    failed = [r for r in sandbox.requests if r == ("rounds", "err")]
    assert 3 <= len(failed) <= 15  # backed off (2.4 s at most here), not hammering


def test_without_patience_the_usual_retries_give_up(sandbox: Sandbox, prefect_server: str) -> None:
    sandbox.inject(
        Fault("http_status", status=503, until=sandbox.now() + dt.timedelta(seconds=120))
    )
    result = _resolve(sandbox, "0", prefect_server)
    assert result.returncode != 0
    assert "503" in result.stderr
    assert len([r for r in sandbox.requests if r == ("rounds", "err")]) == 5  # 1 + 4 retries
