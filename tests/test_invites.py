"""Self-service enrolment through invites, end to end: an invite made over REST (or the command line),
its link opened at the IdP, the phone simulator enrolling with the page's QR and comparing the visual hash,
the code typed into the page, then a login. And every way an invite must not work."""

import html
import itertools
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import httpx

from tests.fixtures import forked_commands
from tests.fixtures.flows import PIN, new_nonce, start_login
from tests.fixtures.system import RunningSystem, ns_api, run_app

USERS = "/v1/servers/default/users"
INVITES = "/v1/servers/default/invites"
UNKNOWN_TEXT = "This invite link is not valid."
# Each browser comes from a loopback address of its own: the invite pages are rate limited per client
# address, and one test's visits must not use up the next one's budget.
_addresses = itertools.count(2)


def new_browser() -> httpx.Client:
    n = next(_addresses)
    address = f"127.0.{n // 250}.{n % 250 + 2}"
    return httpx.Client(timeout=15, transport=httpx.HTTPTransport(local_address=address))


def new_phone(system: RunningSystem, home: Path) -> Path:
    code, answer = run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))
    assert code == 0, answer
    code, answer = run_app(home, "register", "--pin", PIN)
    assert code == 0, answer
    return home


def idp_url(system: RunningSystem) -> str:
    return f"http://127.0.0.1:{system.port('idp', 'http')}"


def invite(system: RunningSystem, user: str, **body: Any) -> dict[str, Any]:
    status, created = ns_api(system).call("POST", f"{USERS}/{user}/invites", body or None)
    assert status == 201, created
    return dict(created)


def attribute(page: str, name: str) -> str:
    found = re.search(rf'{name}="([^"]*)"', page)
    assert found is not None, f"no {name} in {page[:2000]}"
    return html.unescape(found.group(1))


def open_invite(browser: httpx.Client, link: str) -> str:
    """Open the link, press Start; the enrolment page (QR, visual hash, code form)."""
    landing = browser.get(link)
    assert landing.status_code == 200, landing.text
    started = browser.post(link, follow_redirects=True)
    assert started.status_code == 200, started.text
    assert 'id="confirm"' in started.text
    return started.text


def enrol_through(browser: httpx.Client, link: str, phone: Path, user: str) -> dict[str, Any]:
    page = open_invite(browser, link)
    code, scanned = run_app(phone, "scan", attribute(page, "data-qrdata"), "--pin", PIN)
    assert code == 0, scanned
    assert scanned["action"] == "enrol" and scanned["userid"] == user
    # What the page shows of the server's key is what the phone computed from the key it reached.
    assert attribute(page, "data-words") == " ".join(scanned["visual_hash"]["words"])
    assert attribute(page, "data-colour") == scanned["visual_hash"]["colour"]
    done = browser.post(f"{idp_url_of(link)}/enrol/", data={"code": scanned["confirmation_code"]})
    assert done.status_code == 200, done.text
    assert 'id="done"' in done.text and user in done.text
    return dict(scanned)


def idp_url_of(link: str) -> str:
    return link.split("/enrol/")[0]


def log_in(system: RunningSystem, phone: Path, account: str | None = None) -> dict[str, Any]:
    nonce = new_nonce()
    view = start_login(system, nonce)
    args = ["scan", view["loginqrdata"], "--pin", PIN] + ([f"--account={account}"] if account else [])
    code, answer = run_app(phone, *args)
    assert code == 0 and answer["result"] == "logged_in", answer
    status, session = ns_api(system).call("GET", "/v1/servers/default/sessions/", headers={"X-nonce": nonce})
    assert status == 200 and session["loggedin"] is True, session
    return dict(session)


def test_invite_link_enrols_the_user_who_then_logs_in(system: RunningSystem, tmp_path: Path) -> None:
    phone = new_phone(system, tmp_path / "phone")
    created = invite(system, "ivy")
    assert created["userid"] == "ivy" and created["link"] == f"{idp_url(system)}/enrol/{created['token']}"
    invite_id, _, secret = created["token"].partition(".")
    assert invite_id == created["invite"] and len(secret) == 43  # 32 random bytes, base64url
    with new_browser() as browser:
        landing = browser.get(created["link"])
        assert landing.status_code == 200 and "ivy" in landing.text
        page = open_invite(browser, created["link"])
        code, scanned = run_app(phone, "scan", attribute(page, "data-qrdata"), "--pin", PIN)
        assert code == 0, scanned
        assert attribute(page, "data-words") == " ".join(scanned["visual_hash"]["words"])
        assert "<svg" in page and scanned["visual_hash"]["colour_hex"] in page
        right = scanned["confirmation_code"]
        wrong = f"{(int(right) + 1) % 1_000_000:06d}"
        refused = browser.post(f"{idp_url(system)}/enrol/", data={"code": wrong})
        assert refused.status_code == 400 and "not the code your phone shows" in refused.text
        done = browser.post(f"{idp_url(system)}/enrol/", data={"code": right})
        assert done.status_code == 200 and 'id="done"' in done.text
        # The page's enrolment is over: nothing more to confirm from this browser.
        assert browser.get(f"{idp_url(system)}/enrol/").status_code == 404
    session = log_in(system, phone)
    assert session["userid"] == "ivy" and session["accountid"] == scanned["account"]


def test_code_before_scanning_is_asked_again_not_lost(system: RunningSystem) -> None:
    created = invite(system, "kim")
    with new_browser() as browser:
        open_invite(browser, created["link"])
        early = browser.post(f"{idp_url(system)}/enrol/", data={"code": "123456"})
        assert early.status_code == 409 and "first" in early.text
        assert browser.get(f"{idp_url(system)}/enrol/").status_code == 200


def test_a_used_invite_does_not_work_again(system: RunningSystem) -> None:
    created = invite(system, "uma")
    with new_browser() as browser:
        open_invite(browser, created["link"])
    with new_browser() as other:
        again = other.get(created["link"])
        assert again.status_code == 410 and "used already" in again.text
        assert 'id="start"' not in again.text
        assert other.post(created["link"]).status_code == 410
    status, answer = ns_api(system).call("POST", f"{INVITES}/redeem", {"token": created["token"]})
    assert status == 409 and answer["error"] == "invite_used"
    status, answer = ns_api(system).call("DELETE", f"{INVITES}/{created['invite']}")
    assert status == 409 and answer["error"] == "not_revocable"


def test_an_expired_invite_does_not_work(system: RunningSystem) -> None:
    created = invite(system, "eve", ttl=1)
    time.sleep(1.5)
    with new_browser() as browser:
        page = browser.get(created["link"])
        assert page.status_code == 410 and "expired" in page.text
        assert browser.post(created["link"]).status_code == 410
    status, answer = ns_api(system).call("POST", f"{INVITES}/redeem", {"token": created["token"]})
    assert status == 410 and answer["error"] == "invite_expired"


def test_revoked_unknown_and_forged_tokens_get_the_same_page(system: RunningSystem) -> None:
    api = ns_api(system)
    revoked = invite(system, "rob")
    status, answer = api.call("DELETE", f"{INVITES}/{revoked['invite']}")
    assert (status, answer) == (200, {"invite": revoked["invite"], "state": "revoked"})
    assert api.call("DELETE", f"{INVITES}/{revoked['invite']}")[0] == 409
    assert api.call("DELETE", f"{INVITES}/no-such-invite")[0] == 404
    live = invite(system, "rob")
    invite_id, _, secret = live["token"].partition(".")
    flipped = ("A" if secret[0] != "A" else "B") + secret[1:]
    tokens = {
        "revoked": revoked["token"],
        "forged secret for a live invite": f"{invite_id}.{flipped}",
        "unknown id": f"{'0' * 32}.{secret}",
        "no token at all": "hello",
        "far too long": "x" * 500,
    }
    pages = {}
    with new_browser() as browser:
        for name, token in tokens.items():
            for method in ("GET", "POST"):
                answer = browser.request(method, f"{idp_url(system)}/enrol/{token}")
                assert answer.status_code == 404, (name, method, answer.text)
                # The language links lead back to the same address, token and all: that is the one
                # difference allowed, it tells the holder nothing they did not send.
                pages[(name, method)] = re.sub(r"\s+", " ", answer.text).replace(token, "TOKEN")
    assert len(set(pages.values())) == 1 and UNKNOWN_TEXT in next(iter(pages.values()))
    for name, token in tokens.items():
        assert api.call("POST", f"{INVITES}/status", {"token": token})[1] == {"state": "unknown"}, name
        status, answer = api.call("POST", f"{INVITES}/redeem", {"token": token})
        assert (status, answer["error"]) == (404, "not_found"), name
    # The forged attempts did not use the live invite up.
    status, answer = api.call("POST", f"{INVITES}/status", {"token": live["token"]})
    assert answer["state"] == "valid" and answer["userid"] == "rob"


def test_an_invite_enrols_only_its_own_user(system: RunningSystem, tmp_path: Path) -> None:
    phone = new_phone(system, tmp_path / "phone")
    api = ns_api(system)
    created = invite(system, "carol")
    with new_browser() as browser:
        # Nothing in the request names the user: a user id slipped into the form or query is ignored.
        assert browser.get(created["link"], params={"user": "mallory"}).status_code == 200
        started = browser.post(
            created["link"], params={"userid": "mallory"}, data={"userid": "mallory"}, follow_redirects=True
        )
        assert started.status_code == 200 and "carol" in started.text and "mallory" not in started.text
        code, scanned = run_app(phone, "scan", attribute(started.text, "data-qrdata"), "--pin", PIN)
        assert code == 0 and scanned["userid"] == "carol", scanned
        done = browser.post(f"{idp_url(system)}/enrol/", data={"code": scanned["confirmation_code"]})
        assert done.status_code == 200
    assert api.call("GET", f"{USERS}/mallory")[0] == 404
    status, carol = api.call("GET", f"{USERS}/carol")
    assert status == 200 and [a["accountid"] for a in carol["accounts"]] == [scanned["account"]]
    # Another server's REST API does not open this server's invites.
    status, other = api.call("POST", "/v1/servers", {"name": "Other tenant"})
    assert status == 201, other
    second = invite(system, "carol")
    status, answer = api.call("POST", f"/v1/servers/{other['id']}/invites/redeem", {"token": second["token"]})
    assert (status, answer["error"]) == (404, "not_found")
    assert api.call("POST", f"{INVITES}/status", {"token": second["token"]})[1]["state"] == "valid"


def _api_key(system: RunningSystem, roles: str) -> str:
    args = ["apikey", "--name", f"invites-{roles}", "--roles", roles]
    done = forked_commands.run("nextauth.cli", args, env=system.env, check=True)
    return str(json.loads(done.stdout)["api_key"])


def test_rest_without_the_users_role_is_refused(system: RunningSystem) -> None:
    created = invite(system, "dan")
    for role in ("sessions", "accounts"):
        api = ns_api(system, _api_key(system, role))
        for method, path, body in (
            ("POST", f"{USERS}/dan/invites", None),
            ("POST", f"{INVITES}/status", {"token": created["token"]}),
            ("POST", f"{INVITES}/redeem", {"token": created["token"]}),
            ("DELETE", f"{INVITES}/{created['invite']}", None),
        ):
            status, answer = api.call(method, path, body)
            assert (status, answer["error"]) == (403, "forbidden"), (role, method, path)
    users = ns_api(system, _api_key(system, "users"))
    assert users.call("POST", f"{INVITES}/status", {"token": created["token"]})[1]["state"] == "valid"
    status, answer = users.call("POST", f"{USERS}/dan/invites", {"ttl": 0})
    assert (status, answer["error"]) == (400, "bad_request")
    status, answer = users.call("POST", f"{USERS}/{'u' * 256}/invites")
    assert (status, answer["error"]) == (400, "bad_request")


def test_operator_command_makes_a_working_invite(system: RunningSystem, tmp_path: Path) -> None:
    env = {**system.env, "NEXTAUTH_IDP_PUBLIC_URL": idp_url(system)}
    done = forked_commands.run(
        "nextauth.cli", ["invite", "create", "olivia", "--ttl", "600"], env=env, check=True
    )
    created = json.loads(done.stdout)
    assert created["userid"] == "olivia" and created["link"].startswith(f"{idp_url(system)}/enrol/")
    phone = new_phone(system, tmp_path / "phone")
    with new_browser() as browser:
        enrol_through(browser, created["link"], phone, "olivia")
    assert log_in(system, phone)["userid"] == "olivia"
    refused = forked_commands.run(
        "nextauth.cli", ["invite", "create", "olivia", "--ttl", "99999999"], env=env
    )
    assert refused.returncode == 2 and b"ttl" in refused.stderr
    revoke = ["invite", "revoke"]
    other = invite(system, "olivia")
    done = forked_commands.run("nextauth.cli", [*revoke, other["invite"]], env=env)
    assert done.returncode == 0 and json.loads(done.stdout) == {"invite": other["invite"], "state": "revoked"}
    with new_browser() as browser:
        assert browser.get(other["link"]).status_code == 404
    again = forked_commands.run("nextauth.cli", [*revoke, other["invite"]], env=env)
    assert again.returncode == 2 and b"revoked already" in again.stderr


def test_help_desk_replaces_a_lost_phone(system: RunningSystem, tmp_path: Path) -> None:
    api = ns_api(system)
    lost = new_phone(system, tmp_path / "lost")
    with new_browser() as browser:
        first = enrol_through(browser, invite(system, "henk")["link"], lost, "henk")
    assert log_in(system, lost)["userid"] == "henk"
    # The phone is lost: the help desk removes its account and sends a new invite.
    status, answer = api.call("DELETE", f"/v1/servers/default/accounts/{first['account']}")
    assert status == 200, answer
    new = new_phone(system, tmp_path / "new")
    with new_browser() as browser:
        second = enrol_through(browser, invite(system, "henk")["link"], new, "henk")
    session = log_in(system, new)
    assert session["userid"] == "henk" and session["accountid"] == second["account"]
    status, henk = api.call("GET", f"{USERS}/henk")
    assert [a["accountid"] for a in henk["accounts"]] == [second["account"]]
    view = start_login(system, new_nonce())
    code, answer = run_app(lost, "scan", view["loginqrdata"], "--pin", PIN)
    assert code != 0, answer


def test_invite_page_in_chromium(system: RunningSystem, browser: object, tmp_path: Path) -> None:
    """The pages in a real browser: the form posts pass the IdP's cross-site check, the inline SVGs its
    Content-Security-Policy (a refusal would be a console error), and the person ends on the success page."""
    phone = new_phone(system, tmp_path / "phone")
    created = invite(system, "bea")
    page = browser.new_page()  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(created["link"])
    assert page.inner_text("#userid") == "bea"
    page.click("#start button")
    page.wait_for_selector("#visual-hash svg")
    assert page.is_visible("#qr svg")
    shots = os.environ.get("NEXTAUTH_SCREENSHOT_DIR")  # as tests/test_login_page.py: for the docs
    if shots and system.env.get("NEXTAUTH_DB_URI") is None:
        page.screenshot(path=str(Path(shots) / "enrol-page.png"), full_page=True)
    code, scanned = run_app(phone, "scan", page.get_attribute("#qr", "data-qrdata"), "--pin", PIN)
    assert code == 0, scanned
    assert page.inner_text("#visual-words") == " ".join(scanned["visual_hash"]["words"])
    filled = page.locator("#visual-hash svg rect").count() - 1  # less the background
    assert filled == sum(row.count("#") for row in scanned["visual_hash"]["grid"])
    page.fill("#code", "000000" if scanned["confirmation_code"] != "000000" else "111111")
    page.click("#confirm button")
    page.wait_for_selector("#error")
    page.fill("#code", scanned["confirmation_code"])
    page.click("#confirm button")
    page.wait_for_selector("#done")
    # Failed loads are expected (the favicon, the 400 of the wrong code); a CSP refusal is not.
    assert [e for e in errors if "Content Security Policy" in e or "Refused" in e] == []
    page.close()
    assert log_in(system, phone)["userid"] == "bea"


def test_invite_pages_are_rate_limited(system: RunningSystem) -> None:
    """30 a minute by default (NEXTAUTH_IDP_RATE_LIMIT_ENROL); then 429, whatever the token."""
    with new_browser() as browser:
        guesses = [f"{idp_url(system)}/enrol/{'0' * 32}.guess{i}" for i in range(40)]
        statuses = [browser.get(guess).status_code for guess in guesses]
    assert statuses[0] == 404 and statuses[-1] == 429
    assert set(statuses) == {404, 429}
