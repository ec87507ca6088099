"""The IdP's QR login page in a real browser (headless Chromium driven by Playwright): the page shows a
QR, the phone simulator approves it, and the browser lands where it was going, logged in."""

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from werkzeug.serving import make_server

from examples import oidc_client, saml_sp
from tests.fixtures.flows import PIN, enrol
from tests.fixtures.idp_browser import idp_cli
from tests.fixtures.system import RunningSystem, free_port, run_app

# Set to a folder to keep a screenshot of the page (the README's comes from here).
SCREENSHOT_DIR = os.environ.get("NEXTAUTH_SCREENSHOT_DIR")

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def page_phone(system: RunningSystem, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("browser-phone")
    run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))
    assert run_app(home, "register", "--pin", PIN)[0] == 0
    enrol(system, home, "paula")
    return home


def at_whoami(url: str) -> bool:
    # Not the glob "**/whoami": it matches the login page's own URL (/login?next=/whoami).
    return urlsplit(url).path == "/whoami"


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
    page.wait_for_url(at_whoami, timeout=15000)
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


def test_push_from_the_page_with_number_matching(
    system: RunningSystem, browser: object, page_phone: Path
) -> None:
    page = _login_page(system, browser)
    page.click("#push-option summary")
    page.fill("#username", "paula")
    page.click("#push button[type=submit]")
    number = page.locator("#push-number")
    playwright_api.expect(number).to_be_visible(timeout=15000)
    shown = int(number.inner_text())
    code, inbox = run_app(page_phone, "inbox")
    assert code == 0, inbox
    request = inbox["messages"][-1]
    assert shown in request["numbers"]
    code, answer = run_app(page_phone, "approve", request["id"], "--number", str(shown), "--pin", PIN)
    assert code == 0, answer
    page.wait_for_url(at_whoami, timeout=15000)
    user = page.request.get(page.url).json()
    assert user["sub"] == "paula" and user["method"] == "push"
    page.close()


def test_push_for_an_unknown_user_looks_the_same(system: RunningSystem, browser: object) -> None:
    page = _login_page(system, browser)
    page.click("#push-option summary")
    page.fill("#username", "nobody-here")
    page.click("#push button[type=submit]")
    playwright_api.expect(page.locator("#push-number")).to_be_visible(timeout=15000)
    assert "pick this number" in page.inner_text("#push-status")
    page.close()


def test_a_code_that_cannot_be_renewed_says_so(system: RunningSystem, browser: object) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.clock.install()
    # The network is gone when the page tries to renew its code.
    page.route("**/login/qr", lambda route: route.fulfill(status=503, body="unavailable"))
    page.goto(f"http://127.0.0.1:{system.port('idp', 'http')}/login")
    page.wait_for_selector("#qr svg")
    # Renewal starts when ns would hand out a new code (45 s), retries, and the code ends at 60 s: the page
    # takes it off the screen and says why.
    page.clock.run_for(50_000)
    playwright_api.expect(page.locator("#qr")).to_be_visible()
    page.clock.run_for(12_000)
    playwright_api.expect(page.locator("#qr")).to_be_hidden(timeout=10000)
    playwright_api.expect(page.locator("#expiry")).to_contain_text("expired", timeout=10000)
    playwright_api.expect(page.locator("#status")).to_contain_text("could not be fetched yet", timeout=10000)
    assert page.inner_text("#qr-text") == ""
    # The network comes back: the page keeps asking by itself and shows a live code again.
    page.unroute("**/login/qr")
    page.clock.run_for(35_000)
    playwright_api.expect(page.locator("#qr svg")).to_be_visible(timeout=10000)
    playwright_api.expect(page.locator("#status")).to_contain_text("Waiting for your phone", timeout=10000)
    assert page.text_content("#qr-text") == page.get_attribute("#qr", "data-qrdata")
    page.close()


def test_the_page_comes_back_after_the_login_service_was_away(
    system: RunningSystem, browser: object, page_phone: Path
) -> None:
    """ns unreachable for a while (its WebSocket refused twice: the page says it is reconnecting from the
    second failure on, and waits longer after each), comes back by itself, and a login approved on the
    phone then goes through."""
    page = browser.new_page()  # type: ignore[attr-defined]
    refused = {"count": 0}

    def websocket(route: object) -> None:
        if refused["count"] < 2:
            refused["count"] += 1
            route.close()  # type: ignore[attr-defined]
        else:
            route.connect_to_server()  # type: ignore[attr-defined]

    page.route_web_socket(lambda _url: True, websocket)  # the page opens one socket: to ns
    page.goto(f"http://127.0.0.1:{system.port('idp', 'http')}/login?next=/whoami")
    page.wait_for_selector("#qr svg")
    playwright_api.expect(page.locator("#status")).to_contain_text("Reconnecting", timeout=15000)
    playwright_api.expect(page.locator("#status")).to_contain_text("Waiting for your phone", timeout=30000)
    assert refused["count"] == 2
    code, answer = run_app(page_phone, "scan", page.get_attribute("#qr", "data-qrdata"), "--pin", PIN)
    assert code == 0, answer
    page.wait_for_url(at_whoami, timeout=15000)
    assert page.request.get(page.url).json()["sub"] == "paula"
    page.close()


@pytest.fixture(scope="module")
def example_client(system: RunningSystem) -> Iterator[str]:
    """examples/oidc_client.py, registered at the IdP and served on loopback."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    registered = idp_cli(
        system,
        "oidc-client",
        "add",
        "--name",
        "Example app",
        "--redirect-uri",
        f"{base}/callback",
        "--post-logout-redirect-uri",
        f"{base}/",
        "--backchannel-logout-uri",
        f"{base}/backchannel-logout",
    )
    app = oidc_client.create_app(
        f"http://127.0.0.1:{system.port('idp', 'http')}", registered["client_id"], registered["client_secret"]
    )
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield base
    server.shutdown()


def test_oidc_login_lands_on_the_client_with_a_session(
    system: RunningSystem, browser: object, page_phone: Path, example_client: str
) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(example_client)
    page.click("#login")
    page.wait_for_selector("#qr svg")  # the IdP's login page
    code, answer = run_app(page_phone, "scan", page.get_attribute("#qr", "data-qrdata"), "--pin", PIN)
    assert code == 0, answer
    # First time this app asks for groups: the consent page, then back to the app, logged in.
    page.wait_for_selector("button[value=allow]", timeout=15000)
    assert "Example app" in page.inner_text("main")
    page.click("button[value=allow]")
    page.wait_for_selector("#hello", timeout=15000)
    assert page.url.startswith(example_client)
    assert "paula" in page.inner_text("#hello") and "pin" in page.inner_text("body")
    # Logging out at the IdP ends the app's session too (back-channel logout).
    idp = f"http://127.0.0.1:{system.port('idp', 'http')}"
    page.goto(f"{idp}/logout")
    page.click("button[type=submit]")
    # The logout page tells every application at once, then says which were reached.
    page.wait_for_url(f"{idp}/saml/logout/done**", timeout=20000)
    assert "Example app" in page.inner_text("#logout-reached")
    assert page.locator("#logout-missed").count() == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        page.goto(example_client)
        if page.locator("#login").count():
            break
        time.sleep(0.2)
    assert page.locator("#login").count() == 1
    page.close()


def test_wrong_pins_then_a_locked_app_are_explained(
    system: RunningSystem, browser: object, tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = tmp_path_factory.mktemp("locking-phone")
    run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))
    code, registered = run_app(home, "register", "--pin", PIN)
    assert code == 0, registered
    enrol(system, home, "lena")
    page = _login_page(system, browser)
    for attempt in range(registered["max_attempts"]):
        payload = page.get_attribute("#qr", "data-qrdata")
        code, answer = run_app(home, "scan", payload, "--pin", "0000")
        last = attempt == registered["max_attempts"] - 1
        assert code != 0 and answer["code"] == ("locked" if last else "wrong_pin"), answer
        expected = "locked" if last else "Wrong PIN"
        playwright_api.expect(page.locator("#status")).to_contain_text(expected, timeout=15000)
        # The page shows a fresh code for the next try.
        page.wait_for_function(
            "old => document.getElementById('qr').getAttribute('data-qrdata') !== old", arg=payload
        )
    page.close()


@pytest.fixture(scope="module")
def example_sp(system: RunningSystem, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """examples/saml_sp.py, registered at the IdP by its metadata (as the README does) and served."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = saml_sp.create_app(
        f"http://127.0.0.1:{system.port('idp', 'http')}", base, tmp_path_factory.mktemp("example-sp")
    )
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    metadata = app.test_client().get("/metadata").data.decode()
    registered = idp_cli(
        system, "saml-sp", "add", "--metadata", "-", "--attributes", "uid,name,email,groups", stdin=metadata
    )
    assert registered["entity_id"] == f"{base}/metadata", registered
    yield base
    server.shutdown()


def test_saml_login_and_single_logout_with_the_example_sp(
    system: RunningSystem, browser: object, page_phone: Path, example_sp: str
) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(example_sp)
    page.click("#login")
    page.wait_for_selector("#qr svg")
    code, answer = run_app(page_phone, "scan", page.get_attribute("#qr", "data-qrdata"), "--pin", PIN)
    assert code == 0, answer
    page.wait_for_selector("#hello", timeout=15000)  # the POST binding page submitted itself
    body = page.inner_text("body")
    assert page.url.startswith(example_sp) and "uid: paula" in body and "MobileTwoFactorContract" in body
    page.click("#logout")  # SP-initiated single logout, back to the SP
    page.wait_for_selector("#login", timeout=15000)
    assert page.url.startswith(example_sp)
    answer = page.request.get(f"http://127.0.0.1:{system.port('idp', 'http')}/whoami")
    assert answer.status == 401  # the IdP session ended too
    page.close()


def test_the_code_as_text_is_the_qr_payload(system: RunningSystem, browser: object) -> None:
    page = _login_page(system, browser)
    page.click(".as-text summary")
    assert page.inner_text("#qr-text").strip() == page.get_attribute("#qr", "data-qrdata")
    page.close()
