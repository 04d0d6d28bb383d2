"""Smoke test: every deployment in prefect.yaml points at a flow that loads."""

from pathlib import Path

import yaml
from prefect.flows import Flow, load_flow_from_entrypoint

ROOT = Path(__file__).resolve().parents[2]


def test_every_deployment_entrypoint_loads_a_flow() -> None:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert config["deployments"]
    for deployment in config["deployments"]:
        flow: Flow[..., object] = load_flow_from_entrypoint(str(ROOT / deployment["entrypoint"]))
        assert flow.name
        unknown = set(deployment.get("parameters", {})) - set(flow.parameters.properties)
        assert not unknown, f"{deployment['name']}: unknown parameters {unknown}"
