"""axe-core (WCAG 2.1 AA) finds nothing on the IdP's pages in Chromium: as a desktop (1280 by 800) and a
phone (390 by 844) see them, each in light and dark mode. Each page is brought up for real
(tests/fixtures/page_tour)."""

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.page_tour import Tour, tour
from tests.fixtures.system import start_system, stop_system

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tour]:
    running = start_system(tmp_path_factory.mktemp("a11y-system"))
    try:
        with tour(running, tmp_path_factory.mktemp("a11y-phone")) as ready:
            yield ready
    finally:
        stop_system(running)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()  # no cookies from another test: no IdP session
    opened = context.new_page()
    yield opened
    context.close()


def no_violations(axe: Any, page: Any) -> None:
    found = axe(page)
    assert found == [], "\n".join(found)


def test_the_login_page(pages: Tour, page: Any, axe: Any) -> None:
    page.goto(f"{pages.idp}/login")
    page.wait_for_selector("#qr svg")
    no_violations(axe, page)
    # With the code as text and the push form open, a number shown.
    page.click(".as-text summary")
    page.click("#push-option summary")
    page.fill("#username", "nobody-here")
    page.click("#push button[type=submit]")
    playwright_api.expect(page.locator("#push-number")).to_be_visible(timeout=15000)
    no_violations(axe, page)


def test_the_login_page_in_german_and_french(pages: Tour, page: Any, axe: Any) -> None:
    for lang, heading in (("de", "Anmelden"), ("fr", "Se connecter")):
        page.goto(f"{pages.idp}/lang/{lang}?next=/login")
        page.wait_for_selector("#qr svg")
        assert page.inner_text("h1") == heading
        assert page.get_attribute("html", "lang") == lang
        no_violations(axe, page)


def test_the_consent_page_and_a_denial(pages: Tour, page: Any, axe: Any) -> None:
    pages.consent(page)
    assert "Example app" in page.inner_text("main")
    no_violations(axe, page)
    # Saying no lands on the example client's own page (not a server error).
    page.click("button[value=deny]")
    page.wait_for_selector("#refused", timeout=15000)
    assert "did not allow" in page.inner_text("body")


def test_the_logged_out_and_logout_pages(pages: Tour, page: Any, axe: Any) -> None:
    page.goto(f"{pages.idp}/oidc/logout")
    assert page.inner_text("h1") == "You are logged out"
    no_violations(axe, page)
    page.goto(f"{pages.idp}/logout")
    assert page.inner_text("h1") == "Log out"
    no_violations(axe, page)


def test_the_error_pages(pages: Tour, page: Any, axe: Any) -> None:
    answer = page.goto(f"{pages.idp}/no/such/page")
    assert answer.status == 404 and page.inner_text("h1") == "Page not found"
    no_violations(axe, page)
    # A method the address does not take (the browser is made to send DELETE).
    page.route(f"{pages.idp}/logout", lambda route: route.continue_(method="DELETE"))
    answer = page.goto(f"{pages.idp}/logout")
    assert answer.status == 405 and page.inner_text("h1") == "This page cannot be used this way"
    no_violations(axe, page)
    page.unroute(f"{pages.idp}/logout")
    answer = page.goto(f"{pages.idp}/saml/sso/redirect")
    assert answer.status == 400 and page.inner_text("h1") == "This sign-in cannot continue"
    no_violations(axe, page)
    answer = page.goto(f"{pages.idp}/auth/return?url=https://elsewhere.example/")
    if answer.status == 400:  # forward-auth's own refusal, on the shared error page
        no_violations(axe, page)


def test_the_device_pages(pages: Tour, page: Any, axe: Any) -> None:
    page.goto(f"{pages.idp}/device")
    no_violations(axe, page)
    page.fill("#user_code", "BCDF-GHJK")
    page.click("button[type=submit]")
    playwright_api.expect(page.locator(".status.error")).to_contain_text("not valid")
    no_violations(axe, page)
    user_code = pages.device_confirm(page)
    assert page.inner_text("#user-code").strip() == user_code
    no_violations(axe, page)
    page.click("button[value=allow]")
    page.wait_for_selector("#device-done", timeout=15000)
    no_violations(axe, page)


@pytest.mark.parametrize("lang", ["en", "de", "fr"])
def test_the_push_form_fits_a_phone(pages: Tour, page: Any, lang: str) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{pages.idp}/lang/{lang}?next=/login")
    page.click("#push-option summary")
    card = page.locator("main").bounding_box()
    for part in ("#username", "#push button[type=submit]"):
        box = page.locator(part).bounding_box()
        assert box["x"] >= card["x"] and box["x"] + box["width"] <= card["x"] + card["width"], part
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_no_developer_strings_on_the_login_page(pages: Tour, page: Any) -> None:
    page.goto(f"{pages.idp}/login")
    page.click(".as-text summary")
    assert "nextauth-app" not in page.inner_text("body")


def test_the_card_stands_out_in_dark_mode(pages: Tour, page: Any) -> None:
    page.emulate_media(color_scheme="dark")
    page.goto(f"{pages.idp}/login")
    colours = page.evaluate(
        """() => [getComputedStyle(document.body).backgroundColor,
                  getComputedStyle(document.querySelector("main")).backgroundColor,
                  getComputedStyle(document.querySelector("main")).color]"""
    )
    body, card, text = colours
    assert card != body and card not in ("rgba(0, 0, 0, 0)", "transparent")
    assert text != card
