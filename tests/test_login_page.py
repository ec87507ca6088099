"""The IdP's QR login page in a real browser (headless Chromium driven by Playwright): the page shows a
QR, the phone simulator approves it, and the browser lands where it was going, logged in."""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.system import RunningSystem, run_app
from tests.test_flows import PIN, enrol

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Set to a folder to keep a screenshot of the page (the README's comes from here).
SCREENSHOT_DIR = os.environ.get("NEXTAUTH_SCREENSHOT_DIR")

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        message = "Chromium is not installed (Debian package 'chromium'; .ci/run installs it)"
        if os.environ.get("NEXTAUTH_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page_phone(system: RunningSystem, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("browser-phone")
    run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))
    assert run_app(home, "register", "--pin", PIN)[0] == 0
    enrol(system, home, "paula")
    return home


def _login_page(system: RunningSystem, browser: object) -> object:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(f"http://127.0.0.1:{system.port('idp', 'http')}/login?next=/whoami")
    page.wait_for_selector("#qr svg")
    return page


def test_qr_login_in_the_browser(system: RunningSystem, browser: object, page_phone: Path) -> None:
    page = _login_page(system, browser)
    if SCREENSHOT_DIR and system.env.get("NEXTAUTH_DB_URI") is None:
        page.screenshot(path=str(Path(SCREENSHOT_DIR) / "login-page.png"))
    payload = page.get_attribute("#qr", "data-qrdata")
    code, answer = run_app(page_phone, "scan", payload, "--pin", PIN)
    assert code == 0, answer
    assert answer["requester"]["user_agent"].startswith("Mozilla/")  # the phone saw who was asking
    page.wait_for_url("**/whoami", timeout=15000)
    # Ask again with the browser's cookies, rather than read whatever the page has rendered so far.
    answer = page.request.get(page.url)
    assert answer.status == 200
    user = answer.json()
    assert user["sub"] == "paula" and "pin" in user["amr"]
    page.close()


def test_declined_login_shows_why(system: RunningSystem, browser: object, page_phone: Path) -> None:
    page = _login_page(system, browser)
    code, _ = run_app(page_phone, "scan", page.get_attribute("#qr", "data-qrdata"), "--decline")
    assert code == 0
    playwright_api.expect(page.locator("#status")).to_contain_text("declined", timeout=15000)
    assert "/login" in page.url
    page.close()


def test_open_redirects_are_refused(system: RunningSystem, browser: object, page_phone: Path) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    base = f"http://127.0.0.1:{system.port('idp', 'http')}"
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"):
        page.goto(f"{base}/login?next={target}")
        assert page.get_attribute("input[name=next]", "value") == "/"
    page.close()
