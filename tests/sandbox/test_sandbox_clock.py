"""The simulated clock: clients on the wall clock see the simulated moment, and outages end."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from blocks import NumeraiAPI, NumeraiUnavailable
from sandbox import Fault, Sandbox

TUESDAY_NOON = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)


def client(sandbox: Sandbox) -> NumeraiAPI:
    return NumeraiAPI(sandbox.public_id, sandbox.secret_key, api_url=sandbox.api_url, timeout=5)


def test_a_simulated_round_looks_open_to_a_client_on_the_wall_clock(sandbox: Sandbox) -> None:
    sandbox.set_clock(TUESDAY_NOON + dt.timedelta(minutes=30), speed=60)
    sandbox.open_round(number=2000, opens=TUESDAY_NOON, closes=TUESDAY_NOON + dt.timedelta(hours=1))
    current = client(sandbox).current_round()
    assert current is not None and current.number == 2000
    assert current.is_open()  # compared with the wall clock
    # Thirty simulated minutes are left: thirty wall seconds at 60x.
    left = (current.close_time - dt.datetime.now(dt.UTC)).total_seconds()
    assert 25 < left <= 30


def test_after_the_simulated_close_the_round_is_closed(sandbox: Sandbox) -> None:
    sandbox.set_clock(TUESDAY_NOON, speed=60)
    sandbox.open_round(number=2001)
    sandbox.advance(dt.timedelta(hours=1))
    assert client(sandbox).current_round() is None
    sandbox.set_clock(None)  # back on the wall clock
    assert abs(sandbox.now() - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=1)


def test_the_clock_runs_at_its_speed(sandbox: Sandbox) -> None:
    sandbox.set_clock(TUESDAY_NOON, speed=600)
    time.sleep(0.2)
    elapsed = sandbox.now() - TUESDAY_NOON
    assert dt.timedelta(seconds=100) <= elapsed < dt.timedelta(seconds=600)


def test_a_speed_must_be_positive(sandbox: Sandbox) -> None:
    with pytest.raises(ValueError, match="positive"):
        sandbox.set_clock(TUESDAY_NOON, speed=0)


def test_an_outage_lasts_until_its_end_on_the_sandbox_clock(sandbox: Sandbox) -> None:
    sandbox.set_clock(TUESDAY_NOON, speed=1)
    sandbox.open_round(number=2002, closes=TUESDAY_NOON + dt.timedelta(hours=1))
    ends = TUESDAY_NOON + dt.timedelta(minutes=20)
    sandbox.inject(Fault("http_status", status=503, until=ends))
    numerai = client(sandbox)
    for _ in range(3):  # every call fails, however many
        with pytest.raises(NumeraiUnavailable, match="503"):
            numerai.current_round()
    sandbox.advance(dt.timedelta(minutes=20))
    current = numerai.current_round()
    assert current is not None and current.number == 2002
