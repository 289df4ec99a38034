"""The console in a real browser (headless Chromium) against a real payhook on loopback."""

from __future__ import annotations

import pytest
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from payhook.backends.sqlite.reader import SqliteReader
from tests.console.conftest import MARKUP, REFUNDED, log_in, screenshot
from tests.console.server import Payhook


def wait(
    driver: WebDriver, seconds: float, poll_frequency: float = 0.05
) -> WebDriverWait[WebDriver]:
    """A wait that looks again when the page changed under it (a navigation, an htmx swap)."""
    return WebDriverWait(
        driver, seconds, poll_frequency, ignored_exceptions=[StaleElementReferenceException]
    )


def heading(driver: WebDriver, text: str) -> None:
    """Wait for the page whose h1 starts with ``text`` (a click's navigation to finish)."""
    wait(driver, 10).until(
        lambda d: (
            d.execute_script("return document.readyState") == "complete"
            and str(
                d.execute_script("return document.querySelector('h1')?.innerText ?? ''")
            ).startswith(text)
        )
    )


def cells(driver: WebDriver, column: int) -> list[str]:
    return [
        td.text for td in driver.find_elements(By.CSS_SELECTOR, f"#rows tr td:nth-child({column})")
    ]


def test_logging_in_with_the_admin_token_opens_the_console(
    browser: WebDriver, payhook: Payhook
) -> None:
    browser.get(f"{payhook.console_url}/deliveries")
    assert "/console/login" in browser.current_url  # no session: the login form
    browser.find_element(By.ID, "token").send_keys("not-the-admin-token-at-all-0123456789")
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    alert = wait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "[role=alert]"))
    assert "not the admin token" in alert[0].text
    screenshot(browser, "login")

    log_in(browser, payhook, "/deliveries")
    assert browser.current_url.endswith("/console/deliveries")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Deliveries"
    assert browser.find_element(By.CSS_SELECTOR, "form.logout button").text == "Log out"


def test_a_signed_stripe_delivery_appears_in_the_live_view_within_2_s(
    browser: WebDriver, payhook: Payhook
) -> None:
    log_in(browser, payhook, "/deliveries")
    browser.find_element(By.ID, "live-toggle").click()
    wait(browser, 5).until(lambda d: d.find_elements(By.ID, "live-poller"))
    # A mark on this page: a reload would lose it.
    browser.execute_script("document.body.dataset.mark = 'same-page'")

    event_id = payhook.deliver_stripe("payment_intent.succeeded", "pi_console_live")
    wait(browser, 2).until(lambda d: event_id in cells(d, 4))

    assert browser.execute_script("return document.body.dataset.mark") == "same-page"
    assert cells(browser, 4)[0] == event_id  # newest first
    assert cells(browser, 2)[0] == "stripe"
    screenshot(browser, "deliveries-live")


def test_filtering_deliveries_by_provider(browser: WebDriver, payhook: Payhook) -> None:
    log_in(browser, payhook, "/deliveries")
    assert set(cells(browser, 2)) == {"stripe", "standard"}

    Select(browser.find_element(By.ID, "f-provider")).select_by_value("standard")
    browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()

    wait(browser, 5).until(lambda d: "provider=standard" in d.current_url)
    wait(browser, 5).until(lambda d: set(cells(d, 2)) == {"standard"})
    counts = browser.find_element(By.CSS_SELECTOR, ".counts").text
    assert "processed 1" in counts.replace("\n", " ")
    screenshot(browser, "deliveries")


def test_a_payment_shows_its_timeline_in_major_units(browser: WebDriver, payhook: Payhook) -> None:
    log_in(browser, payhook, "/payments")
    screenshot(browser, "payments")
    browser.find_element(By.LINK_TEXT, REFUNDED).click()
    heading(browser, "Payment")

    assert browser.find_element(By.TAG_NAME, "h1").text == f"Payment {REFUNDED}"
    rows = browser.find_elements(By.CSS_SELECTOR, "#timeline tbody tr")
    kinds = [r.find_element(By.CSS_SELECTOR, "td:nth-child(2)").text for r in rows]
    amounts = [r.find_element(By.CSS_SELECTOR, "td:nth-child(5)").text for r in rows]
    assert kinds == ["succeeded", "refunded"]
    assert amounts[0] == "123.45 USD"
    assert amounts[1] == "refunded in all: 123.45 USD"
    facts = browser.find_element(By.CSS_SELECTOR, "dl.facts").text
    assert "refunded" in facts
    screenshot(browser, "payment")


def test_a_delivery_shows_its_verification_payment_and_payload_on_request(
    browser: WebDriver, payhook: Payhook
) -> None:
    log_in(browser, payhook, f"/payments/stripe/{REFUNDED}")
    browser.find_element(By.CSS_SELECTOR, "#timeline tbody tr td:nth-child(4) a").click()
    heading(browser, "Deliveries")
    browser.find_element(By.CSS_SELECTOR, "#rows tr td:nth-child(4) a").click()
    heading(browser, "Delivery")

    assert "verified" in browser.find_element(By.CSS_SELECTOR, "ul.checks").text
    assert browser.find_element(By.LINK_TEXT, REFUNDED)  # the payment it touched
    assert browser.find_element(By.ID, "payload").text == ""  # not until asked for
    browser.find_element(By.ID, "show-payload").click()
    wait(browser, 5).until(lambda d: REFUNDED in d.find_element(By.ID, "payload").text)
    screenshot(browser, "delivery")


def test_redriving_a_dead_letter_gets_it_processed(browser: WebDriver, payhook: Payhook) -> None:
    target = payhook.dead_letter_ids[0]
    log_in(browser, payhook, "/dead-letters")
    screenshot(browser, "dead-letters")
    browser.find_element(By.CSS_SELECTOR, f"input[name=ids][value='{target}']").click()
    browser.find_element(By.ID, "redrive-selected").click()
    heading(browser, "Redrive")

    assert browser.find_element(By.TAG_NAME, "h1").text == "Redrive 1 dead letter?"
    assert [e.text for e in browser.find_elements(By.CSS_SELECTOR, "ul.ids li")] == [target]
    browser.find_element(By.ID, "confirm").click()
    heading(browser, "Redrive: done")
    assert browser.find_element(By.ID, "result").text.startswith("1 queued again")

    browser.find_element(By.LINK_TEXT, target).click()
    heading(browser, "Delivery")

    def processed(driver: WebDriver) -> bool:
        driver.refresh()
        return "processed" in driver.find_element(By.CSS_SELECTOR, "dl.facts").text

    wait(browser, 20, poll_frequency=0.2).until(processed)
    reader = SqliteReader(payhook.settings.storage.path)
    try:
        assert target not in [d.webhook_id for d in reader.dead_letters()]
    finally:
        reader.close()


def test_provider_supplied_markup_is_shown_escaped(browser: WebDriver, payhook: Payhook) -> None:
    log_in(browser, payhook, "/payments")
    link = browser.find_element(By.PARTIAL_LINK_TEXT, "pi_<script>")
    assert link.text == MARKUP  # shown as text, not run or rendered
    link.click()
    heading(browser, "Payment")
    assert browser.find_element(By.TAG_NAME, "h1").text == f"Payment {MARKUP}"
    assert not browser.find_elements(By.CSS_SELECTOR, "main b")
    scripts = browser.find_elements(By.TAG_NAME, "script")
    assert [(s.get_attribute("src") or "").rsplit("/", 1)[-1] for s in scripts] == ["htmx.min.js"]
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - raises when no alert was opened


def test_the_overview_shows_health_charts_and_runs_audit_verify(
    browser: WebDriver, payhook: Payhook
) -> None:
    log_in(browser, payhook, "/")
    heading(browser, "Overview")
    assert len(browser.find_elements(By.CSS_SELECTOR, ".charts svg[role=img]")) == 6
    assert "Not verified" in browser.find_element(By.ID, "audit-result").text

    browser.find_element(By.ID, "run-verify").click()

    wait(browser, 20).until(lambda d: "Last verified" in d.find_element(By.ID, "audit-result").text)
    assert "pass" in browser.find_element(By.ID, "audit-result").text
    assert browser.find_elements(By.CSS_SELECTOR, ".charts svg polyline")  # samples drawn
    browser.execute_script("window.scrollTo(0, 0)")
    screenshot(browser, "overview")
