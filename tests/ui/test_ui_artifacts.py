"""The Prefect UI, in a real browser, shows a finished round's report table and chart.

From the flow run page: the Artifacts tab lists the round's artifacts; the Markdown report opens
as a rendered <table> with a row per model and the "Prediction distribution" chart (an SVG image
the browser loads, one line per model); the table artifact opens as a table with a row per model.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import pytest

from tests.charts import parse_svg, series_names

from .conftest import FinishedRound

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

pytestmark = pytest.mark.integration

WAIT_SECONDS = 30
T = TypeVar("T")


def wait_for(browser: WebDriver, what: str, find: Callable[[WebDriver], T | None]) -> T:
    """Wait (the UI is a JS app that renders after its API calls) until `find` returns something."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # Elements found mid-render may be replaced before they are read: look again.
    wait = WebDriverWait(browser, WAIT_SECONDS, ignored_exceptions=[StaleElementReferenceException])
    result: T = wait.until(
        lambda b: find(b) or False,
        message=f"{what} (after {WAIT_SECONDS} s at {browser.current_url})",
    )
    return result


def rendered_table(browser: WebDriver, models: list[str]) -> WebElement | None:
    """A rendered <table> with a visible row per model whose status is "verified"."""
    from selenium.webdriver.common.by import By

    for table in browser.find_elements(By.TAG_NAME, "table"):
        rows = [
            [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
            for row in table.find_elements(By.TAG_NAME, "tr")
        ]
        verified = {cells[0] for cells in rows if cells and "verified" in cells}
        if verified >= set(models):
            return table
    return None


def chart_image(browser: WebDriver) -> WebElement | None:
    """A rendered <img> of an inline SVG that the browser has loaded and laid out."""
    from selenium.webdriver.common.by import By

    for image in browser.find_elements(By.CSS_SELECTOR, "img[src^='data:image/svg+xml']"):
        loaded = browser.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth", image
        )
        if loaded and image.is_displayed() and image.size["width"] > 100:
            return image
    return None


def artifact_links(browser: WebDriver, finished: FinishedRound) -> dict[str, str]:
    """Open the flow run page and its Artifacts tab; the artifact cards' links by artifact key."""
    from selenium.webdriver.common.by import By

    browser.get(f"{finished.url}/runs/flow-run/{finished.flow_run_id}")
    tab = wait_for(
        browser,
        "the flow run page's Artifacts tab",
        lambda b: next(
            (e for e in b.find_elements(By.CSS_SELECTOR, "li.p-tab#artifacts") if e.is_displayed()),
            None,
        ),
    )
    tab.click()

    def cards(b: WebDriver) -> dict[str, str] | None:
        links = {
            a.find_element(By.CSS_SELECTOR, ".artifact-card__title").text: a.get_attribute("href")
            for a in b.find_elements(
                By.XPATH, "//a[.//*[contains(@class, 'artifact-card__title')]]"
            )
        }
        found = {k: v for k, v in links.items() if v}
        return found if set(found) >= set(finished.artifact_keys) else None

    return wait_for(browser, f"the artifact cards {finished.artifact_keys}", cards)


def test_flow_run_artifacts_show_the_round_table_and_chart(
    finished_round: FinishedRound, browser: WebDriver
) -> None:
    models = finished_round.models
    links = artifact_links(browser, finished_round)

    # The Markdown report: its table and the prediction distribution chart, rendered.
    browser.get(links["numerai-round-summary"])
    table = wait_for(
        browser, f"a rendered table naming {models}", lambda b: rendered_table(b, models)
    )
    assert "status" in table.text and "submission" in table.text
    # The table fits its column and the window (1600 px, the UI's sidebar beside it).
    fits = "const t = arguments[0]; return t.scrollWidth <= t.parentElement.clientWidth"
    fits += " && t.getBoundingClientRect().right <= document.documentElement.clientWidth"
    assert browser.execute_script(fits, table), table.size
    image = wait_for(browser, "the chart, an SVG image, loaded", chart_image)
    src = image.get_attribute("src") or ""
    svg = parse_svg(base64.b64decode(src.split("base64,", 1)[1]))
    assert series_names(svg) == ["example", *models]

    # The table artifact: a row per model.
    browser.get(links["numerai-round-report"])
    wait_for(browser, f"the report table naming {models}", lambda b: rendered_table(b, models))
