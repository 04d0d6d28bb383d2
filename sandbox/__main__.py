"""Run the sandbox from the command line: `python -m sandbox --port 8765 --models a,b`.

With `--webhook URL` every model's webhook is set to URL ("{model}" in it is replaced by the
model's name) before the round opens, so opening the round POSTs a trigger to each of them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
from pathlib import Path

from sandbox.core import Sandbox


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--data-dir", type=Path, default=Path(".sandbox"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", default="tiny", help="tiny or v5.3")
    p.add_argument("--data-version", default="v5.3")
    p.add_argument("--models", default="model_a", help="comma-separated model names")
    p.add_argument("--public-id")
    p.add_argument("--secret-key")
    p.add_argument(
        "--webhook",
        help="webhook URL for every model ({model} = the model's name); "
        "default: $SANDBOX_WEBHOOK_URL (keeps a secret in it out of `ps`)",
    )
    return p.parse_args(argv)


def _write_credentials(path: Path, public_id: str, secret_key: str) -> None:
    """Write the generated keys to a 0600 file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"public_id": public_id, "secret_key": secret_key}, f)
    os.chmod(path, 0o600)


def main(argv: list[str] | None = None) -> None:
    """Start the sandbox, open a round, print a banner, serve until SIGINT/SIGTERM."""
    args = _parse(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    generated = not (args.public_id and args.secret_key)
    sb = Sandbox(
        args.data_dir,
        seed=args.seed,
        size=args.size,
        data_version=args.data_version,
        public_id=args.public_id,
        secret_key=args.secret_key,
    )
    creds = args.data_dir / "credentials.json"
    if generated:
        _write_credentials(creds, sb.public_id, sb.secret_key)
    ids = {name: sb.add_model(name) for name in args.models.split(",") if name}
    webhook = args.webhook or os.environ.get("SANDBOX_WEBHOOK_URL")
    if webhook:
        for name, mid in ids.items():
            sb.set_webhook(mid, webhook.replace("{model}", name))
    rnd = sb.open_round()
    sb.start(args.host, args.port)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    print(f"Numerai sandbox: {sb.api_url}")
    print(f"  set numerapi.base_api.API_TOURNAMENT_URL = {sb.api_url!r}")
    print(f"  public id: {sb.public_id}")
    print(f"  secret key: {'written to ' + str(creds) if generated else '(as given)'}")
    print(
        f"  round {rnd.number} open {rnd.opens.isoformat()} - {rnd.closes.isoformat()}", flush=True
    )
    for name, mid in ids.items():
        print(f"  model {name}: {mid}", flush=True)
    if webhook:
        print(f"  webhooks: {len(ids)} trigger(s) POSTed for round {rnd.number}", flush=True)
    try:
        done.wait()
    finally:
        sb.stop()


if __name__ == "__main__":
    main()
