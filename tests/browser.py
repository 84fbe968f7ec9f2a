"""A real browser for page tests: Debian's Chromium driven headless by selenium.

The driver and the browser are the system's (`apt-get install chromium
chromium-driver`; .ci/run installs them), given by path, so selenium never looks
for or downloads either.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def start_browser():
    os.environ["SE_OFFLINE"] = "true"  # selenium's manager must never fetch a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@dataclass(frozen=True)
class LoadedPage:
    """What the browser saw: `values` maps each data-key to its text."""

    values: dict[str, str]
    text: str
    console: list[dict]
    requests: list[str]          # every resource the page asked for (none may leave it)
    images: list[tuple[str, int, int]]  # (alt, natural width, natural height)
    screenshot: Path

    def number(self, key: str) -> int:
        return int(self.values[key].replace(",", ""))


def load_page(driver, page: Path, screenshot: Path) -> LoadedPage:
    """Open `page` from disk, wait for it, and read it back."""
    driver.get(page.resolve().as_uri())
    driver.execute_script("return document.readyState")
    values = driver.execute_script(
        "const o = {}; document.querySelectorAll('[data-key]').forEach("
        "e => { o[e.dataset.key] = e.textContent.trim(); }); return o;")
    images = driver.execute_script(
        "return Array.from(document.images).map(i => [i.alt, i.complete ? i.naturalWidth : 0,"
        " i.complete ? i.naturalHeight : 0]);")
    requests = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name);")
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1280, min(int(height) + 120, 12000))
    driver.save_screenshot(str(screenshot))
    return LoadedPage(values, driver.find_element("tag name", "body").text,
                      driver.get_log("browser"), requests,
                      [tuple(i) for i in images], screenshot)
