"""Fixtures of the console's tests: one real payhook per module (runtime, providers' listener,
admin listener with the console) and headless Chromium from the OS packages, driven by
Selenium through the OS's chromedriver (``scripts/ensure-chromium`` installs both)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

from tests.console.server import ADMIN_TOKEN, Payhook, settings_for, start

CHROMIUM = os.environ.get("PAYHOOK_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PAYHOOK_CHROMEDRIVER", "/usr/bin/chromedriver")
#: Screenshots of each view go to docs/console/ when this is set (they are committed).
SCREENSHOTS = os.environ.get("PAYHOOK_SCREENSHOTS") == "1"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "console"
#: Payments the module's payhook starts with: one refunded (a timeline of two events), one
#: whose id carries markup, and two dead letters.
REFUNDED = "pi_console_refunded"
MARKUP = 'pi_<script>alert("pwned")</script><b>bold</b>'
DEAD = ["pi_console_dead_browser", "pi_console_dead_csrf"]


@pytest.fixture(scope="module")
def payhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Payhook]:
    # A sample every 0.2 s: the overview's charts have points by the time it is shown.
    running = start(
        settings_for(tmp_path_factory.mktemp("console")), dead_letters=DEAD, sample_seconds=0.2
    )
    try:
        running.deliver_stripe("payment_intent.succeeded", REFUNDED, amount=12_345)
        running.deliver_stripe("charge.refunded", REFUNDED, amount=12_345)
        running.deliver_stripe("payment_intent.succeeded", MARKUP, amount=500)
        running.deliver_sample("standard")
        running.wait_for(lambda: running.runtime.processed >= 4)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def chromium() -> Iterator[WebDriver]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail(f"{CHROMIUM} or {CHROMEDRIVER} missing: run scripts/ensure-chromium")
    options = Options()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in CI containers
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        "--disable-gpu",
        "--no-first-run",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(chromium: WebDriver, payhook: Payhook) -> WebDriver:
    """The module's browser, logged out at the start of each test."""
    chromium.get(f"{payhook.console_url}/login")
    chromium.delete_all_cookies()
    return chromium


def log_in(driver: WebDriver, payhook: Payhook, path: str = "/") -> None:
    driver.get(f"{payhook.console_url}{path}")
    driver.find_element(By.ID, "token").send_keys(ADMIN_TOKEN)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    patient = WebDriverWait(driver, 10, ignored_exceptions=[StaleElementReferenceException])
    patient.until(lambda d: "/login" not in d.current_url)
    patient.until(
        lambda d: (
            d.execute_script("return document.readyState") == "complete"
            and d.find_elements(By.CSS_SELECTOR, "form.logout")
        )
    )


def screenshot(driver: WebDriver, name: str) -> None:
    if SCREENSHOTS:
        DOCS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(DOCS / f"{name}.png"))


@pytest.fixture
def client(payhook: Payhook) -> Iterator[httpx.Client]:
    """An HTTP client logged in to the console (its session cookie set)."""
    with httpx.Client(base_url=payhook.admin.url) as session:
        answer = session.post("/console/login", data={"token": ADMIN_TOKEN, "next": "/console/"})
        assert answer.status_code == 303
        yield session
