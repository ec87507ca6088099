"""The OAuth 2.0 Device Authorization Grant (RFC 8628) against the real system: a device asks for codes,
the person opens the verification page in headless Chromium, enters the code, logs in with the phone
simulator (which shows the device's code), allows, and the device's polls get the tokens.

Requests of the device are written from the RFC with httpx, as a device would send them (no independent
device-flow client is among our dependencies). Each rule has its negative case."""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.fixtures.flows import PIN, enrol
from tests.fixtures.idp_browser import Browser
from tests.fixtures.idp_browser import idp_cli as cli
from tests.fixtures.system import RunningSystem, run_app, start_system, stop_system

pytestmark = pytest.mark.e2e

GRANT = "urn:ietf:params:oauth:grant-type:device_code"
USER = "dora"
LIFETIME = 10  # NEXTAUTH_IDP_DEVICE_CODE_SECONDS for these tests (the least allowed), so expiry can be seen
INTERVAL = 1  # NEXTAUTH_IDP_OIDC_POLL_SECONDS (default 5)


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    """The embedded system with short-lived device codes and quick polls (the shared fixture keeps the
    defaults)."""
    running = start_system(
        tmp_path_factory.mktemp("device-system"),
        extra_env={
            "NEXTAUTH_IDP_DEVICE_CODE_SECONDS": str(LIFETIME),
            "NEXTAUTH_IDP_OIDC_POLL_SECONDS": str(INTERVAL),
        },
    )
    yield running
    stop_system(running)
    assert running.process.returncode == 0, running.log()


@pytest.fixture(scope="module")
def phone(system: RunningSystem, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("device-phone")
    assert run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))[0] == 0
    assert run_app(home, "register", "--pin", PIN)[0] == 0
    enrol(system, home, USER)
    return home


@pytest.fixture(scope="module")
def tv(system: RunningSystem) -> dict[str, Any]:
    """A public client (a TV app holds no secret)."""
    return cli(system, "oidc-client", "add", "--name", "Example TV", "--public", "--grant", GRANT)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def console(system: RunningSystem) -> dict[str, Any]:
    return cli(system, "oidc-client", "add", "--name", "Game Console", "--grant", GRANT)  # type: ignore[no-any-return]


def idp(system: RunningSystem) -> str:
    return f"http://127.0.0.1:{system.port('idp', 'http')}"


def device_codes(
    system: RunningSystem, client: dict[str, Any], scope: str = "openid profile"
) -> dict[str, Any]:
    data = {"scope": scope}
    auth = None
    if client.get("client_secret"):
        auth = (client["client_id"], client["client_secret"])
    else:
        data["client_id"] = client["client_id"]
    answer = httpx.post(f"{idp(system)}/oidc/device-authorization", data=data, auth=auth, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Cache-Control"] == "no-store"
    return answer.json()  # type: ignore[no-any-return]


def poll(system: RunningSystem, client: dict[str, Any], device_code: str) -> httpx.Response:
    data = {"grant_type": GRANT, "device_code": device_code}
    auth = None
    if client.get("client_secret"):
        auth = (client["client_id"], client["client_secret"])
    else:
        data["client_id"] = client["client_id"]
    return httpx.post(f"{idp(system)}/oidc/token", data=data, auth=auth, timeout=10)


def test_discovery_names_the_device_endpoint(system: RunningSystem) -> None:
    config = httpx.get(f"{idp(system)}/.well-known/openid-configuration", timeout=10).json()
    assert config["device_authorization_endpoint"] == f"{idp(system)}/oidc/device-authorization"
    assert GRANT in config["grant_types_supported"]


def test_device_flow_in_chromium_with_the_code_on_the_phone(
    system: RunningSystem, browser: object, phone: Path, tv: dict[str, Any]
) -> None:
    codes = device_codes(system, tv)
    assert set(codes) == {
        "device_code",
        "user_code",
        "verification_uri",
        "verification_uri_complete",
        "expires_in",
        "interval",
    }
    user_code = codes["user_code"]
    assert len(user_code) == 9 and user_code[4] == "-"
    assert set(user_code.replace("-", "")) <= set("BCDFGHJKLMNPQRSTVWXZ")
    assert codes["verification_uri"] == f"{idp(system)}/device"
    assert codes["expires_in"] == LIFETIME and codes["interval"] == INTERVAL
    pending = poll(system, tv, codes["device_code"])
    assert pending.status_code == 400 and pending.json()["error"] == "authorization_pending"
    too_fast = poll(system, tv, codes["device_code"])
    assert too_fast.status_code == 400 and too_fast.json()["error"] == "slow_down"

    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(f"{idp(system)}/device")
    # Typed the way people type: lower case, without the dash.
    page.fill("#user_code", user_code.replace("-", "").lower())
    page.click("button[type=submit]")
    page.wait_for_selector("#qr svg")  # the normal QR login page
    code, answer = run_app(phone, "scan", page.get_attribute("#qr", "data-qrdata"), "--pin", PIN)
    assert code == 0, answer
    # The phone shows the device's code next to the application's name.
    assert answer["context"] == {"client_name": "Example TV", "user_code": user_code}
    assert f"Code on the device: {user_code}" in answer["shows"]
    page.wait_for_selector("#user-code", timeout=15000)
    assert page.inner_text("#user-code").strip() == user_code
    assert "Example TV" in page.inner_text("main")
    page.click("button[value=allow]")
    page.wait_for_selector("#device-done", timeout=15000)
    assert "Device connected" in page.inner_text("#device-done")
    page.close()

    time.sleep(INTERVAL + 0.2)
    tokens = poll(system, tv, codes["device_code"])
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    keys = KeySet.import_key_set(httpx.get(f"{idp(system)}/oidc/jwks", timeout=10).json())
    claims = jwt.decode(body["id_token"], keys, algorithms=["ES256", "RS256"]).claims
    assert claims["sub"] == USER and claims["aud"] == [tv["client_id"]] and "pin" in claims["amr"]
    info = httpx.get(
        f"{idp(system)}/oidc/userinfo",
        headers={"Authorization": f"Bearer {body['access_token']}"},
        timeout=10,
    )
    assert info.status_code == 200 and info.json()["preferred_username"] == USER
    # The device code works once.
    time.sleep(INTERVAL + 0.2)
    again = poll(system, tv, codes["device_code"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    # So does the user code: the page no longer knows it.
    used = httpx.post(f"{idp(system)}/device", data={"user_code": user_code}, timeout=10)
    assert used.status_code == 400 and "not valid or has expired" in used.text


def test_denied_on_the_page_is_access_denied(
    system: RunningSystem, phone: Path, console: dict[str, Any]
) -> None:
    codes = device_codes(system, console)
    browser = Browser(system)
    login_page = browser.follow(browser.post("/device", data={"user_code": codes["user_code"]}))
    confirm = browser.approve_on_phone(login_page, phone)
    assert confirm.status_code == 200 and "Game Console" in confirm.text
    csrf = confirm.text.split('name="csrf" value="')[1].split('"')[0]
    action = confirm.text.split('method="post" action="')[1].split('"')[0].replace("&amp;", "&")
    done = browser.post(action, data={"csrf": csrf, "decision": "deny"})
    assert done.status_code == 200 and "not given access" in done.text
    denied = poll(system, console, codes["device_code"])
    assert denied.status_code == 400 and denied.json()["error"] == "access_denied"
    browser.close()


def test_another_clients_device_code_is_refused(
    system: RunningSystem, tv: dict[str, Any], console: dict[str, Any]
) -> None:
    codes = device_codes(system, tv)
    stolen = poll(system, console, codes["device_code"])
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    made_up = poll(system, tv, "x" * 43)
    assert made_up.status_code == 400 and made_up.json()["error"] == "invalid_grant"


def test_an_unused_device_code_expires(system: RunningSystem, console: dict[str, Any]) -> None:
    codes = device_codes(system, console)
    time.sleep(LIFETIME + 0.5)
    expired = poll(system, console, codes["device_code"])
    assert expired.status_code == 400 and expired.json()["error"] == "expired_token"
    late = httpx.post(f"{idp(system)}/device", data={"user_code": codes["user_code"]}, timeout=10)
    assert late.status_code == 400 and "not valid or has expired" in late.text


def test_clients_without_the_grant_are_refused(system: RunningSystem) -> None:
    web = cli(system, "oidc-client", "add", "--name", "Web", "--redirect-uri", "http://127.0.0.1/cb")
    answer = httpx.post(
        f"{idp(system)}/oidc/device-authorization",
        data={"scope": "openid"},
        auth=(web["client_id"], web["client_secret"]),
        timeout=10,
    )
    assert answer.status_code == 400 and answer.json()["error"] == "unauthorized_client"
    anonymous = httpx.post(f"{idp(system)}/oidc/device-authorization", data={"scope": "openid"}, timeout=10)
    assert anonymous.status_code in (400, 401) and anonymous.json()["error"] == "invalid_client"


def test_a_logged_in_browser_cannot_skip_the_phone(
    system: RunningSystem, phone: Path, console: dict[str, Any]
) -> None:
    """The confirm page needs a phone login made after this browser entered this code: neither an old
    login nor an edited URL (the moment used to travel in the query) gets past it."""
    first = device_codes(system, console)
    browser = Browser(system)
    entered_first = browser.post("/device", data={"user_code": first["user_code"]})
    first_started = entered_first.headers["Location"].split("started%3D")[1].split("&")[0].split("%26")[0]
    login_page = browser.follow(entered_first)
    assert browser.approve_on_phone(login_page, phone).status_code == 200
    second = device_codes(system, console)
    code = second["user_code"].replace("-", "")
    # Straight to the confirm page: without the signed moment, with a forged one, or with the first code's,
    # the browser is sent back to enter the code.
    for started in ("", "&started=forged", f"&started={first_started}"):
        query = f"user_code={code}{started}"
        skipped = browser.get(f"/device/confirm?{query}")
        assert skipped.status_code == 302 and "/device?" in skipped.headers["Location"]
    # Entering the code asks for a fresh phone login, not the confirm page.
    entered = browser.post("/device", data={"user_code": second["user_code"]})
    assert entered.status_code == 302 and "/login" in entered.headers["Location"]
    pending = poll(system, console, second["device_code"])
    assert pending.status_code == 400 and pending.json()["error"] == "authorization_pending"
    browser.close()


def test_a_login_of_the_same_second_does_not_pass_for_the_fresh_one(
    system: RunningSystem, phone: Path, console: dict[str, Any]
) -> None:
    """A code entered right after a phone login (within the same second) still needs a new approval:
    the moments are compared to the millisecond."""
    first = device_codes(system, console)
    browser = Browser(system)
    # From a loopback address of its own: /device takes ten tries a minute per address, and the rate-limit
    # test below counts on what the other tests leave of 127.0.0.1's.
    browser.http = httpx.Client(
        follow_redirects=False,
        timeout=15,
        headers={"Accept": "text/html"},
        transport=httpx.HTTPTransport(local_address="127.0.0.2"),
    )
    login_page = browser.follow(browser.post("/device", data={"user_code": first["user_code"]}))
    assert browser.approve_on_phone(login_page, phone).status_code == 200  # a login approved just now
    second = device_codes(system, console)
    entered = browser.post("/device", data={"user_code": second["user_code"]})
    assert entered.status_code == 302
    target = parse_qs(urlsplit(entered.headers["Location"]).query)["next"][0]
    skipped = browser.get(target)  # the signed moment, but no new approval
    assert skipped.status_code == 302 and "/device?" in skipped.headers["Location"]
    browser.close()


def test_wrong_user_codes_are_refused_and_limited(system: RunningSystem, tv: dict[str, Any]) -> None:
    device_codes(system, tv)  # a code exists, but not the one typed
    for typed in ("BCDF-GHJK", "hello", "AEIO-UAEI"):
        wrong = httpx.post(f"{idp(system)}/device", data={"user_code": typed}, timeout=10)
        assert wrong.status_code == 400 and "not valid or has expired" in wrong.text
    # Ten tries a minute from one address; then a wait, whatever is typed.
    statuses = [
        httpx.post(f"{idp(system)}/device", data={"user_code": "BCDF-GHJK"}, timeout=10).status_code
        for _ in range(10)
    ]
    assert statuses[-1] == 429 and set(statuses) <= {400, 429}
