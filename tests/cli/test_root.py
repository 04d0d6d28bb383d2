"""The CLI's root without a server: its version and its shell completion."""

from __future__ import annotations

import importlib.metadata
import tomllib
from importlib.metadata import version

import pytest
from typer.testing import CliRunner

from deployments.cli import app
from deployments.local import ROOT


@pytest.mark.parametrize("installed", [True, False])
def test_version_is_the_projects_installed_or_not(
    installed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    prefect_version = version("prefect")
    if not installed:  # a checkout run as `python -m deployments.cli`, never pip-installed
        real = importlib.metadata.distribution

        def distribution(name: str) -> importlib.metadata.Distribution:
            if name == "numerai-prefect":
                raise importlib.metadata.PackageNotFoundError(name)
            return real(name)

        monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"numerai-prefect {expected} (prefect {prefect_version})"


def test_bash_completion_completes_commands_and_options() -> None:
    runner = CliRunner()
    script = runner.invoke(app, ["--show-completion", "bash"], prog_name="numerai-prefect")
    assert script.exit_code == 0
    assert "complete -o default -F _numerai_prefect_completion numerai-prefect" in script.output

    def complete(words: str) -> list[str]:
        env = {
            "_NUMERAI_PREFECT_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - 1),
        }
        return runner.invoke(app, [], prog_name="numerai-prefect", env=env).output.split()

    assert complete("numerai-prefect st") == ["status"]
    assert "--webhook-url" in complete("numerai-prefect doctor --w")
