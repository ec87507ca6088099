""" "My account" (``/account/``) against the running system: an anonymous visitor goes to the login and
comes back; every change needs the session's form token; a person reaches only their own phones, sessions
and consents, whatever ids the form carries. Then the whole story in Chromium: log in, add a phone through
its invite, log in with it, remove the first phone, which can no longer log in; and axe finds nothing on
the pages on the way."""

import base64
import hashlib
import html
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from tests.fixtures.flows import PIN, enrol, new_nonce, start_login
from tests.fixtures.idp_browser import Browser, idp_cli
from tests.fixtures.system import RunningSystem, free_port, ns_api, run_app

USERS = "/v1/servers/default/users"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def new_phone(system: RunningSystem, home: Path, user: str | None = None) -> Path:
    assert run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))[0] == 0
    assert run_app(home, "register", "--pin", PIN)[0] == 0
    if user is not None:
        enrol(system, home, user)
    return home


def accounts_of(system: RunningSystem, user: str) -> list[str]:
    status, answer = ns_api(system).call("GET", f"{USERS}/{user}")
    return [a["accountid"] for a in answer["accounts"]] if status == 200 else []


def sessions_of(system: RunningSystem, user: str) -> list[str]:
    status, answer = ns_api(system).call("GET", f"{USERS}/{user}/sessions")
    assert status == 200, answer
    return [s["hsid"] for s in answer["sessions"]]


def signed_in(system: RunningSystem, phone: Path) -> tuple[Browser, str]:
    """A browser logged in with ``phone`` through the QR page, on My account; the page's form token."""
    browser = Browser(system)
    sent = browser.get("/account/")
    assert sent.status_code == 302
    target = urlsplit(sent.headers["Location"])
    assert target.path == "/login" and "next=%2Faccount%2F" in target.query
    landed = browser.approve_on_phone(browser.follow(sent), phone)
    assert landed.status_code == 200 and 'id="devices"' in landed.text, landed.text[:500]
    found = CSRF.search(landed.text)
    assert found is not None
    return browser, html.unescape(found.group(1))


@pytest.fixture(scope="module")
def ann(system: RunningSystem, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return new_phone(system, tmp_path_factory.mktemp("ann-phone"), "ann")


@pytest.fixture(scope="module")
def bob(system: RunningSystem, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return new_phone(system, tmp_path_factory.mktemp("bob-phone"), "bob")


def test_an_anonymous_visitor_logs_in_and_comes_back(system: RunningSystem, ann: Path) -> None:
    browser, _ = signed_in(system, ann)
    page = browser.get("/account/")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert "ann" in page.text and accounts_of(system, "ann")[0] in page.text
    assert 'id="current-session"' in page.text and 'id="current-device"' in page.text
    # Nothing of the page is for a browser without the session: a POST goes to the login as well.
    anonymous = Browser(system)
    assert anonymous.post("/account/sessions/end-others", data={"csrf": "x"}).status_code == 302
    anonymous.close()
    browser.close()


def test_a_change_without_the_sessions_token_is_refused(system: RunningSystem, ann: Path, bob: Path) -> None:
    first, _ = signed_in(system, ann)
    second, token = signed_in(system, ann)
    bobs, bobs_token = signed_in(system, bob)
    before = sessions_of(system, "ann")
    assert len(before) >= 2
    for sent in (
        {},
        {"csrf": ""},
        {"csrf": token[:-1] + ("A" if token[-1] != "A" else "B")},
        {"csrf": bobs_token},
    ):
        refused = second.post("/account/sessions/end-others", data=sent)
        assert refused.status_code == 400 and "expired" in refused.text, sent
        added = second.post("/account/devices/add", data=sent)
        assert added.status_code == 400 and "Location" not in added.headers
    assert set(before) <= set(sessions_of(system, "ann"))
    assert first.get("/whoami").status_code == 200
    # With its own token the same form works: the first browser's session ends, this one's stays.
    done = second.post("/account/sessions/end-others", data={"csrf": token})
    assert done.status_code == 303 and done.headers["Location"].endswith("done=sessions_ended")
    assert len(sessions_of(system, "ann")) == 1
    assert second.get("/whoami").status_code == 200
    for each in (first, second, bobs):
        each.close()


def allow_client(system: RunningSystem, browser: Browser, client: dict[str, Any]) -> None:
    """The consent page of ``client`` for ``groups``, allowed."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = {
        "response_type": "code",
        "client_id": client["client_id"],
        "redirect_uri": client["redirect_uris"][0],
        "scope": "openid groups",
        "state": "s",
        "nonce": "n",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    url = f"/oidc/authorize?{urlencode(query)}"
    page = browser.get(url)
    assert page.status_code == 200 and client["client_name"] in page.text
    found = CSRF.search(page.text)
    assert found is not None
    assert (
        browser.post(url, data={"decision": "allow", "csrf": html.unescape(found.group(1))}).status_code
        == 302
    )


def consents_of(system: RunningSystem, user: str) -> list[str]:
    return [c["client_id"] for c in idp_cli(system, "oidc-consent", "list", "--user", user)]


def test_nobody_reaches_another_persons_phones_sessions_or_consents(
    system: RunningSystem, ann: Path, bob: Path
) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    printer = idp_cli(system, "oidc-client", "add", "--name", "Photo Printer", "--redirect-uri", redirect)
    printer["client_name"] = "Photo Printer"
    anns, token = signed_in(system, ann)
    bobs, _ = signed_in(system, bob)
    allow_client(system, bobs, printer)
    assert printer["client_id"] in consents_of(system, "bob")
    bob_account, bob_session = accounts_of(system, "bob")[0], sessions_of(system, "bob")[0]

    removal = anns.get(f"/account/devices/remove?account={bob_account}")
    assert removal.status_code == 404
    removed = anns.post("/account/devices/remove", data={"csrf": token, "account": bob_account})
    assert removed.status_code == 404 and "not one of yours" in removed.text
    ended = anns.post("/account/sessions/end", data={"csrf": token, "session": bob_session})
    assert ended.status_code == 303 and ended.headers["Location"].endswith("done=session_gone")
    revoked = anns.post("/account/applications/revoke", data={"csrf": token, "client": printer["client_id"]})
    assert revoked.status_code == 404

    assert accounts_of(system, "bob") == [bob_account]
    assert bob_session in sessions_of(system, "bob")
    assert printer["client_id"] in consents_of(system, "bob")
    assert bobs.get("/whoami").status_code == 200
    # Bob's own page lists the consent and revokes it.
    page = bobs.get("/account/")
    assert "Photo Printer" in page.text
    bobs_token = html.unescape(CSRF.search(page.text).group(1))  # type: ignore[union-attr]
    mine = bobs.post(
        "/account/applications/revoke", data={"csrf": bobs_token, "client": printer["client_id"]}
    )
    assert mine.status_code == 303 and printer["client_id"] not in consents_of(system, "bob")
    anns.close()
    bobs.close()


def test_the_phone_of_this_session_is_not_removed(system: RunningSystem, ann: Path) -> None:
    browser, token = signed_in(system, ann)
    mine = accounts_of(system, "ann")[0]
    assert browser.get(f"/account/devices/remove?account={mine}").status_code == 409
    refused = browser.post("/account/devices/remove", data={"csrf": token, "account": mine})
    assert refused.status_code == 409 and "logged in with" in refused.text
    assert accounts_of(system, "ann") == [mine]
    browser.close()


def test_recent_activity_shows_logins_and_a_wrong_pin(system: RunningSystem, bob: Path) -> None:
    nonce = new_nonce()
    view = start_login(system, nonce)
    code, answer = run_app(bob, "scan", view["loginqrdata"], "--pin", "0000")
    assert code != 0 and answer["code"] == "wrong_pin", answer
    browser, _ = signed_in(system, bob)
    page = browser.get("/account/").text
    activity = page[page.index('id="activity"') :]
    assert "Login refused" in activity and "wrong PIN" in activity and "Logged in" in activity
    assert activity.index("Logged in") < activity.index("Login refused")  # the newest first
    browser.close()


def test_the_page_speaks_german_and_french(system: RunningSystem, ann: Path) -> None:
    browser, _ = signed_in(system, ann)
    for lang, heading in (("de", "Mein Konto"), ("fr", "Mon compte")):
        page = browser.get("/account/", headers={"Accept-Language": lang})
        assert f'<html lang="{lang}">' in page.text and heading in page.text
    browser.close()


# -- in Chromium --------------------------------------------------------------------------------------------

playwright_api = pytest.importorskip("playwright.sync_api")


def at(path: str) -> Any:
    return lambda url: urlsplit(url).path == path


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    opened = browser.new_context()
    yield opened
    opened.close()


def log_in(page: Any, idp: str, phone: Path) -> dict[str, Any]:
    """From My account to the login page; the phone scans; back on My account if it could log in."""
    page.goto(f"{idp}/account/")
    page.wait_for_selector("#qr svg")
    code, answer = run_app(phone, "scan", page.get_attribute("#qr", "data-qrdata"), "--pin", PIN)
    if code == 0:
        page.wait_for_url(at("/account/"), timeout=15000)
    return {"code": code, **answer}


def no_violations(axe: Any, page: Any) -> None:
    found = axe(page)
    assert found == [], "\n".join(found)


def test_a_second_phone_replaces_the_first_in_the_browser(
    system: RunningSystem, context: Any, axe: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    idp = f"http://127.0.0.1:{system.port('idp', 'http')}"
    first = new_phone(system, tmp_path_factory.mktemp("cleo-first"), "cleo")
    second = new_phone(system, tmp_path_factory.mktemp("cleo-second"))
    page = context.new_page()
    assert log_in(page, idp, first)["code"] == 0
    assert page.locator("#devices .item").count() == 1
    assert page.locator("#current-device").count() == 1 and page.locator("#current-session").count() == 1
    no_violations(axe, page)

    # Add a phone: the invite page for cleo herself, then the enrolment with its QR and code.
    page.click("#add-device button")
    page.wait_for_selector("form#start")
    assert "cleo" in page.inner_text("#userid")
    invite_link = page.url
    assert urlsplit(invite_link).path.startswith("/enrol/")
    no_violations(axe, page)
    page.click("form#start button")
    page.wait_for_selector("#qr svg")
    no_violations(axe, page)
    code, scanned = run_app(second, "scan", page.get_attribute("#qr", "data-qrdata"), "--pin", PIN)
    assert code == 0 and scanned["userid"] == "cleo", scanned
    assert page.get_attribute("#visual-hash", "data-words") == " ".join(scanned["visual_hash"]["words"])
    page.fill("#code", scanned["confirmation_code"])
    page.click("#confirm button")
    page.wait_for_selector("#done")
    no_violations(axe, page)
    assert len(accounts_of(system, "cleo")) == 2
    # The invite is used up: the same link now says so.
    page.goto(invite_link)
    page.wait_for_selector("#refused")
    assert "used already" in page.inner_text("#refused")
    no_violations(axe, page)

    # Log out, log in with the new phone, remove the first one.
    page.goto(f"{idp}/logout")
    page.click("button[type=submit]")
    page.wait_for_url(at("/login"), timeout=15000)
    assert log_in(page, idp, second)["code"] == 0
    assert page.locator("#devices .item").count() == 2
    old = next(
        a for a in accounts_of(system, "cleo") if page.locator(f'[data-account="{a}"] a.button').count()
    )
    page.click(f'[data-account="{old}"] a.button')
    page.wait_for_selector("#confirm-remove")
    no_violations(axe, page)
    page.click("#confirm-remove")
    page.wait_for_selector("#done")
    assert page.locator("#devices .item").count() == 1
    no_violations(axe, page)
    assert accounts_of(system, "cleo") != [] and old not in accounts_of(system, "cleo")

    # The first phone cannot log in any more; the second one can.
    other = context.browser.new_context()
    fresh = other.new_page()
    assert log_in(fresh, idp, first)["code"] != 0
    other.close()
    page.goto(f"{idp}/logout")
    page.click("button[type=submit]")
    page.wait_for_url(at("/login"), timeout=15000)
    assert log_in(page, idp, second)["code"] == 0
    assert page.locator("#current-device").count() == 1
    assert page.request.get(f"{idp}/whoami").json()["sub"] == "cleo"
