"""Headless Chromium through Selenium for the tests of web pages (the viewer, the label app); skips the
calling test with a reason where selenium, chromium or chromedriver is absent."""

from __future__ import annotations

import shutil

import pytest


def headless_chromium(width: int, height: int):
    """A Selenium Chrome driver on Debian's chromium, headless, with a ``width``×``height`` window."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("Debian packages chromium and chromium-driver are not installed (.ci/run installs them)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.binary_location = chromium
    return webdriver.Chrome(service=Service(driver), options=options)
