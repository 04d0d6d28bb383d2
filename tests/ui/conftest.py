"""A real browser on the Prefect UI: headless Debian chromium driven by selenium.

The session's `prefect_server` (prefect_test_harness) starts its server with the UI turned off, so
these tests start their own `prefect server start` with the UI on, in a temporary PREFECT_HOME, and
run one round against the sandbox on it.

Without /usr/bin/chromium the tests skip, unless NUMERAI_UI_TESTS=1 (CI), where that fails.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support import background, free_port, wait_healthy

if TYPE_CHECKING:
    import pandas as pd
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# The flags known to work here: as root, on a machine whose network is closed.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1600,1200",
)
SERVER_STARTUP_SECONDS = 90
# The second model: a name found nowhere else on the page, and predictions skewed towards 0 so
# that its chart line has bars of different heights.
DISTINCT_MODEL = "quokka_ui_7"


def _required() -> bool:
    return os.environ.get("NUMERAI_UI_TESTS") == "1"


@pytest.fixture(scope="session")
def chromium() -> Path:
    """The browser, or a skip (a failure with NUMERAI_UI_TESTS=1) when it is missing."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        reason = (
            f"{' and '.join(missing)} not installed "
            "(apt-get install chromium chromium-driver; pip install selenium)"
        )
        if _required():
            pytest.fail(f"NUMERAI_UI_TESTS=1 but {reason}")
        pytest.skip(f"{reason}; set NUMERAI_UI_TESTS=1 to require it")
    return CHROMIUM


@dataclass
class UIServer:
    """A `prefect server start` with the UI on, still booting until `wait_healthy` returns."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def wait_healthy(self) -> None:
        wait_healthy(f"{self.url}/api/health", self.process, self.log, SERVER_STARTUP_SECONDS)


@pytest.fixture(scope="module")
def ui_server(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIServer]:
    """A real Prefect server with its UI on loopback, in a fresh PREFECT_HOME.

    Started without waiting for it (it takes ~20 s to boot here) so that the round's imports and
    the sandbox overlap with the boot; `finished_round` waits for it.
    """
    home = tmp_path_factory.mktemp("prefect-ui-home")
    url = f"http://127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="true",
        PREFECT_SERVER_UI_API_URL=f"{url}/api",
        PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT="false",
        PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false",
        PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED="false",
        DO_NOT_TRACK="1",
    )
    log = home / "server.log"
    host, port = url.removeprefix("http://").split(":")
    args = ["-m", "prefect", "server", "start", "--host", host, "--port", port]
    with background([*args, "--ui", "--analytics-off"], env, log) as process:
        yield UIServer(url, process, log)


@dataclass
class FinishedRound:
    """A submit-round run that finished on the UI server."""

    url: str
    flow_run_id: str
    models: list[str]
    artifact_keys: list[str]


def skewed(live_features: pd.DataFrame, live_benchmark_models: pd.DataFrame) -> pd.DataFrame:
    """A Model Uploads style predict function whose predictions pile up near 0."""
    feature = next(c for c in live_features.columns if c.startswith("feature_"))
    ranks = live_features[feature].rank(pct=True, method="first")
    return (ranks**3).to_frame("prediction")


@pytest.fixture(scope="module")
def finished_round(ui_server: UIServer, tmp_path_factory: pytest.TempPathFactory) -> FinishedRound:
    """One sandbox round submitted for two models (one with a distinctive name) on `ui_server`."""
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from pydantic import SecretStr

    # Imported (~8 s) while the server boots; Round.run imports the flow from here.
    import flows  # noqa: F401
    from blocks import NumeraiCredentials
    from model.names import history_key
    from sandbox import Sandbox
    from tests.flows.conftest import Round

    tmp = tmp_path_factory.mktemp("ui-round")
    models = ["alpha", DISTINCT_MODEL]
    with (
        Sandbox(tmp / "sandbox", seed=1, size="tiny") as sandbox,
        temporary_settings(updates={PREFECT_API_URL: f"{ui_server.url}/api"}),
    ):
        sandbox.open_round()
        ui_server.wait_healthy()
        credentials = f"numerai-{uuid.uuid4().hex[:8]}"
        NumeraiCredentials(
            public_id=sandbox.public_id,
            secret_key=SecretStr(sandbox.secret_key),
            api_url=sandbox.api_url,
            timeout_seconds=2,
        ).save(credentials)
        r = Round(sandbox, tmp, credentials)
        blocks = [r.save_model("alpha"), r.save_model(DISTINCT_MODEL, skewed)]
        state = r.run(blocks)
        assert state.is_completed(), state.message
        flow_run_id = str(state.state_details.flow_run_id)
    keys = ["numerai-round-report", "numerai-round-summary"]
    keys += [history_key(m) for m in models]
    return FinishedRound(ui_server.url, flow_run_id, models, keys)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, so that `browser` knows whether the test failed."""
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report


REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.fixture
def browser(chromium: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[WebDriver]:
    """Headless chromium (Debian's, with Debian's chromedriver: nothing is downloaded).

    When the test fails, the page it was on is saved to tmp_path as failure.png and failure.html.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    options.add_argument(f"--user-data-dir={profile}")
    service = Service(
        executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log")
    )
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
        call = request.node.stash.get(REPORTS, {}).get("call")
        if call is not None and call.failed:
            driver.save_screenshot(str(tmp_path / "failure.png"))
            (tmp_path / "failure.html").write_text(driver.page_source)
            print(f"The browser's page at the failure: {tmp_path / 'failure.png'}")
    finally:
        driver.quit()
