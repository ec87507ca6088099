"""The IdP's login completion and its state-changing forms, attacked with two HTTP clients.

Session fixation: a copy of the browser's pre-login cookie, taken before the person approves on the phone,
must not complete the login for its holder; the login completes once, in the page that started it, and
the browser leaves with fresh cookies. Cross-site forms (``Origin``, ``Sec-Fetch-Site``) are refused."""

import html
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.flows import PIN, enrol
from tests.fixtures.idp_browser import QR_PATTERN, Browser, login_form
from tests.fixtures.system import RunningSystem, run_app

USER = "fiona"
PRE_LOGIN_COOKIE = "nextauth_idp"
SESSION_COOKIE = "nextauth_session"
JSON = {"Accept": "application/json"}


@pytest.fixture(scope="module")
def phone(system: RunningSystem, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("fixation-phone")
    assert run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))[0] == 0
    assert run_app(home, "register", "--pin", PIN)[0] == 0
    enrol(system, home, USER)
    return home


@pytest.fixture
def victim(system: RunningSystem) -> Iterator[Browser]:
    browser = Browser(system)
    yield browser
    browser.close()


def copy_of(browser: Browser) -> httpx.Client:
    """Another client holding a copy of every cookie the browser has now."""
    thief = httpx.Client(base_url=browser.base, follow_redirects=False, timeout=15)
    for cookie in browser.http.cookies.jar:
        thief.cookies.set(cookie.name, cookie.value or "", domain=cookie.domain, path=cookie.path)
    return thief


def approve(page: httpx.Response, phone: Path) -> None:
    found = QR_PATTERN.search(page.text)
    assert found, "no QR on the page"
    code, answer = run_app(phone, "scan", html.unescape(found.group(1)), "--pin", PIN)
    assert code == 0, answer


def test_a_copied_pre_login_cookie_does_not_get_the_victims_session(
    system: RunningSystem, phone: Path, victim: Browser
) -> None:
    page = victim.get("/login?next=/whoami")
    assert page.status_code == 200 and PRE_LOGIN_COOKIE in victim.http.cookies
    pre_login = victim.http.cookies[PRE_LOGIN_COOKIE]
    thief, late = copy_of(victim), copy_of(victim)  # taken before the phone confirms
    approve(page, phone)

    # The thief tries every way in before the victim's page completes: the form without the page's key,
    # with a made-up key, the login page itself (which completed an approved login before).
    for attempt in (
        thief.post("/login/complete", data={"next": "/whoami"}),
        thief.post("/login/complete", data={"next": "/whoami", "login_key": "guessed"}),
        thief.get("/login?next=/whoami"),
        thief.get("/login/qr", headers=JSON),
    ):
        assert SESSION_COOKIE not in attempt.cookies, attempt.status_code
        assert attempt.status_code in (200, 403), attempt.status_code
    assert thief.get("/whoami", headers=JSON).status_code == 401

    # The victim's page completes and gets the session, with a fresh pre-login cookie.
    done = victim.post("/login/complete", data=login_form(page.text))
    assert done.status_code == 302 and done.headers["Location"] == "/whoami", done.text[:300]
    assert SESSION_COOKIE in done.cookies
    assert victim.http.cookies.get(PRE_LOGIN_COOKIE) != pre_login
    me = victim.get("/whoami", headers=JSON)
    assert me.status_code == 200 and me.json()["sub"] == USER

    # Afterwards even the page's own key, with the copied cookie, completes nothing: the login is used.
    for client in (thief, late):
        again = client.post("/login/complete", data=login_form(page.text))
        assert again.status_code == 403 and SESSION_COOKIE not in again.cookies
        assert "Log in again" in again.text
    assert thief.get("/whoami", headers=JSON).status_code == 401
    thief.close()
    late.close()


def test_a_login_completes_once(system: RunningSystem, phone: Path, victim: Browser) -> None:
    page = victim.get("/login?next=/whoami")
    approve(page, phone)
    replay = copy_of(victim)  # the same browser's cookies, replayed after the first completion
    first = victim.post("/login/complete", data=login_form(page.text))
    assert first.status_code == 302 and SESSION_COOKIE in first.cookies
    second = replay.post("/login/complete", data=login_form(page.text))
    assert second.status_code == 403 and SESSION_COOKIE not in second.cookies
    replay.close()


def test_a_second_page_for_the_same_cookie_is_a_new_login(
    system: RunningSystem, phone: Path, victim: Browser
) -> None:
    """Whoever loads the login page with a copied cookie gets a login of their own, not the victim's."""
    page = victim.get("/login?next=/whoami")
    thief = copy_of(victim)
    their_page = thief.get("/login?next=/whoami")
    assert their_page.status_code == 200
    assert QR_PATTERN.search(their_page.text).group(1) != QR_PATTERN.search(page.text).group(1)  # type: ignore[union-attr]
    assert thief.cookies[PRE_LOGIN_COOKIE] != victim.http.cookies[PRE_LOGIN_COOKIE]
    approve(page, phone)
    # The thief's key belongs to the thief's new login (not approved), and not to the victim's.
    theirs = thief.post("/login/complete", data=login_form(their_page.text))
    assert theirs.status_code in (302, 403) and SESSION_COOKIE not in theirs.cookies
    mixed = copy_of(victim).post("/login/complete", data=login_form(their_page.text))
    assert mixed.status_code == 403 and SESSION_COOKIE not in mixed.cookies
    done = victim.post("/login/complete", data=login_form(page.text))
    assert done.status_code == 302 and SESSION_COOKIE in done.cookies
    thief.close()


# -- cross-site forms --------------------------------------------------------------------------------------


def logged_in_browser(system: RunningSystem, phone: Path) -> Browser:
    browser = Browser(system)
    answer = browser.approve_on_phone(browser.get("/login?next=/whoami"), phone)
    assert answer.status_code == 200 and answer.json()["sub"] == USER
    return browser


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},  # a browser without fetch metadata
        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # a sibling subdomain is another origin
    ],
    ids=["other-origin", "null-origin-cross-site", "cross-site", "same-site"],
)
def test_logout_from_another_site_is_refused(
    system: RunningSystem, phone: Path, headers: dict[str, str]
) -> None:
    browser = logged_in_browser(system, phone)
    refused = browser.post("/logout", headers=headers)
    assert refused.status_code == 403 and "another website" in refused.text
    assert browser.get("/whoami", headers=JSON).status_code == 200  # still logged in
    # The IdP's own form, as Chromium sends it under the IdP's Referrer-Policy: no-referrer.
    own = browser.post("/logout", headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"})
    assert own.status_code == 302
    assert browser.get("/whoami", headers=JSON).status_code == 401
    browser.close()


def test_login_completion_and_push_from_another_site_are_refused(
    system: RunningSystem, phone: Path, victim: Browser
) -> None:
    page = victim.get("/login?next=/whoami")
    approve(page, phone)
    cross = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    refused = victim.post("/login/complete", data=login_form(page.text), headers=cross)
    assert refused.status_code == 403 and SESSION_COOKIE not in refused.cookies
    push = victim.post("/login/push", data={"username": USER, **login_form(page.text)}, headers=cross)
    assert push.status_code == 403
    # The refusal did not use the login up: the page itself still completes it.
    done = victim.post(
        "/login/complete", data=login_form(page.text), headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert done.status_code == 302 and SESSION_COOKIE in done.cookies


def test_the_push_form_without_script_keeps_the_pages_login(
    system: RunningSystem, phone: Path, victim: Browser
) -> None:
    """The push form re-renders the page (no JavaScript): same login, same key, so it still completes."""
    page = victim.get("/login?next=/whoami")
    form = login_form(page.text)
    pushed = victim.post("/login/push", data={"username": "nobody-here", **form})
    assert pushed.status_code == 200 and "pick this number" in pushed.text
    assert login_form(pushed.text)["login_key"] == form["login_key"]
    assert QR_PATTERN.search(pushed.text) is not None
    approve(page, phone)
    done = victim.post("/login/complete", data=form)
    assert done.status_code == 302 and SESSION_COOKIE in done.cookies


def test_a_copied_pre_login_cookie_cannot_log_the_victim_out(
    system: RunningSystem, phone: Path, victim: Browser
) -> None:
    page = victim.get("/login?next=/whoami")
    thief = copy_of(victim)
    approve(page, phone)
    assert victim.post("/login/complete", data=login_form(page.text)).status_code == 302
    assert thief.post("/logout").status_code == 302  # nothing of the thief's to end
    time.sleep(2.5)  # the IdP asks ns about its sessions every second in these tests
    assert victim.get("/whoami", headers=JSON).status_code == 200
    thief.close()
