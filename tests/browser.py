"""Debian's Chromium, headless, driven by Selenium through Debian's ChromeDriver: one
way to start it for the browser test, the benchmark and the screenshot script."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

# Without the background-networking flags Chromium keeps calling out to Google's hosts,
# which this machine's closed network refuses, many at a time.
_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def installed() -> bool:
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


def headless_chromium(width: int = 1400, height: int = 1600) -> Any:
    """A new headless Chromium window of that size (the caller quits it)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (*_FLAGS, f"--window-size={width},{height}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
