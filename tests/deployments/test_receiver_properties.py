"""Properties of the receiver's request handling, over HTTP against a real Prefect server.

The rules are restated here from the README, not imported, so that a change to the receiver's
rules shows up as a failing property rather than a moved target.
"""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deployments.receiver import log_fields, loggable_path

PROPERTY = settings(
    deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow], max_examples=60
)
TRIGGER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
MODEL = re.compile(r"[a-z0-9-]{1,100}")
SECRET = "Hq3-Zx_9.~" * 4  # 40 URL-safe characters, every kind the secret may hold


def chunks(secret: str, size: int = 10) -> set[str]:
    """Every `size` consecutive characters of the secret: none may reach a log."""
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


# -- pure parts ----------------------------------------------------------------------------


@PROPERTY
@given(key=st.sampled_from(["trigger", "model", "reason"]), value=st.text())
def test_a_log_field_is_one_printable_line_that_reads_back(key: str, value: str) -> None:
    line = log_fields(before="x", **{key: value}, after="y")
    assert all(32 <= ord(c) < 127 for c in line)  # no newline, escape, NUL, non-ASCII
    assert line.startswith("before=x ") and line.endswith(" after=y")
    shown = line.removeprefix(f"before=x {key}=").removesuffix(" after=y")
    assert (json.loads(shown) if shown.startswith('"') else shown) == value


def _near_miss_paths() -> st.SearchStrategy[str]:
    pieces = st.sampled_from(
        ["/", "//", "webhook", "WEBHOOK", "webhooks", SECRET, SECRET[:-1], SECRET[1:],
         SECRET + "x", SECRET.upper(), "alpha", "Alpha", "health", ".", "..", "%2F", "%2e",
         ";", "x", "%00", "%0A", "%20", "%C3%A9", "~"]
    )  # fmt: skip
    return st.lists(pieces, min_size=1, max_size=7).map(lambda parts: "/" + "".join(parts))


def _is_route(path: str, secret: str) -> bool:
    if path == "/health":
        return True
    parts = path.split("/")
    if len(parts) not in (3, 4) or parts[:2] != ["", "webhook"] or parts[2] != secret:
        return False
    return len(parts) == 3 or bool(parts[3])


@PROPERTY
@given(path=_near_miss_paths())
def test_loggable_path_never_shows_a_piece_of_a_wrong_secret(path: str) -> None:
    decoded = unquote(path)
    shown = loggable_path(decoded, frozenset({SECRET}))
    if not _is_route(decoded, SECRET):
        assert [c for c in chunks(SECRET) if c in shown] == []
    assert "\n" not in shown


# -- over HTTP -----------------------------------------------------------------------------


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage() + (record.exc_text or ""))


@pytest.fixture(scope="module")
def receiver_lines() -> Iterator[list[str]]:
    """Every line the receiver and uvicorn log during this module."""
    handler = _Lines()
    names = ("deployments.receiver", "uvicorn.error", "uvicorn.access")
    for name in names:
        logging.getLogger(name).addHandler(handler)
    yield handler.lines
    for name in names:
        logging.getLogger(name).removeHandler(handler)


def raw_request(base: str, method: str, target: str, body: bytes = b"") -> tuple[int, str]:
    """Send exactly this request target (no client-side normalisation); status and headers."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(
            f"{method} {target} HTTP/1.1\r\nHost: receiver\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head = answer.partition(b"\r\n\r\n")[0].decode("latin-1")
    return int(head.split(" ", 2)[1]), head.lower()


@PROPERTY
@given(path=_near_miss_paths(), method=st.sampled_from(["POST", "GET", "PUT", "HEAD"]))
def test_any_path_but_a_route_is_404_and_logged_without_the_secret(
    receiver: str, webhook_secret: str, receiver_lines: list[str], path: str, method: str
) -> None:
    target = path.replace(SECRET, webhook_secret)  # the served receiver's own secret
    decoded = unquote(target)
    if _is_route(decoded, webhook_secret):
        return  # the routes have their own tests
    status, head = raw_request(receiver, method, target, b'{"triggerId": "t"}')
    assert status == 404, (method, target)
    assert "location:" not in head
    logged = "\n".join(receiver_lines)
    assert [c for c in chunks(webhook_secret) if c in logged] == []


def _valid(body: dict[str, Any]) -> bool:
    trigger = body.get("triggerId")
    round_number = body.get("roundNumber")
    version = body.get("dataVersion")
    is_test = body.get("isTest")
    return (
        isinstance(trigger, str)
        and TRIGGER.fullmatch(trigger) is not None
        and (round_number is None or (type(round_number) is int and 1 <= round_number <= 10**6))
        and (
            version is None or (isinstance(version, str) and VERSION.fullmatch(version) is not None)
        )
        and (is_test is None or type(is_test) is bool)
    )


BODIES = st.fixed_dictionaries(
    {},
    optional={
        "triggerId": st.one_of(
            st.uuids().map(str),
            st.from_regex(TRIGGER, fullmatch=True),
            st.text(max_size=140),
            st.integers(),
            st.booleans(),
            st.none(),
        ),
        "roundNumber": st.one_of(
            st.none(),
            st.integers(-5, 2 * 10**6),
            st.integers(1, 10**6).map(str),
            st.floats(allow_nan=False, allow_infinity=False),
            st.booleans(),
        ),
        "dataVersion": st.one_of(
            st.none(), st.sampled_from(["v5.3", "v5.2"]), st.text(max_size=40), st.integers()
        ),
        "isTest": st.one_of(st.none(), st.booleans(), st.integers(0, 1), st.text(max_size=5)),
        "other": st.one_of(st.none(), st.text(max_size=10), st.lists(st.integers(), max_size=3)),
    },
)


@PROPERTY
@given(body=BODIES, model=st.sampled_from(["alpha", None]))
def test_a_body_is_accepted_exactly_when_every_field_keeps_the_rules(
    receiver: str,
    webhook_secret: str,
    receiver_lines: list[str],
    body: dict[str, Any],
    model: str | None,
) -> None:
    path = f"/webhook/{webhook_secret}" + (f"/{model}" if model else "")
    status, _ = raw_request(receiver, "POST", path, json.dumps(body).encode())
    if _valid(body):
        assert status == 200, body
    else:
        assert status == 422, body
    # Whatever the body held, every line the receiver logged is one printable line.
    assert all(all(32 <= ord(c) < 127 for c in line) for line in receiver_lines[-20:])
