"""The admin console in a real browser (headless Chromium) against the real system: people log in to it
with the phone like anywhere else, and the directory's groups decide what they may do.

An admin finds a user, blocks the phone (its next login is refused), ends the user's sessions, creates an
API key (shown once, working at ns) and revokes it; a help-desk member runs the lost-phone runbook and is
refused key management, on the page and on the POST."""

import argparse
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from authserver.audit import AuditTrail
from authserver.storage import db
from authserver.storage.kv import open_kv
from idp.context import IdpServices
from idp.directory import Directory, Profile
from idp.keys import KeyRing
from idp.ns_client import NsClient
from idp.oidc import commands as oidc_commands
from idp.sessions import SessionManager
from idp.web import create_app
from tests.fixtures.flows import PIN, enrol
from tests.fixtures.idp_browser import Browser, idp_cli
from tests.fixtures.system import RunningSystem, ns_api, run_app
from tests.fixtures.tls import issue, make_ca

playwright_api = pytest.importorskip("playwright.sync_api")
# Set to a folder to keep screenshots of the console's pages.
SCREENSHOT_DIR = os.environ.get("NEXTAUTH_SCREENSHOT_DIR")
expect = playwright_api.expect


def phone_of(system: RunningSystem, home: Path, user_id: str) -> Path:
    run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))
    assert run_app(home, "register", "--pin", PIN)[0] == 0
    enrol(system, home, user_id)
    return home


@pytest.fixture(scope="module")
def phones(system: RunningSystem, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    found = {user: phone_of(system, tmp_path_factory.mktemp(f"phone-{user}"), user) for user in PEOPLE}
    idp_cli(system, "user", "set", "ada", "--name", "Ada Admin", "--groups", "staff,nextauth-admins")
    idp_cli(system, "user", "set", "hal", "--groups", "nextauth-helpdesk")
    return found


PEOPLE = ("ada", "hal", "tom", "tina", "olga")  # olga is in no console group


@pytest.fixture
def user_session(system: RunningSystem, phones: dict[str, Path]) -> Iterator[Browser]:
    """Another browser, where the user the console acts on is logged in to the IdP."""
    browser = Browser(system)
    yield browser
    browser.close()


def log_in(browser: Browser, phone: Path) -> None:
    landed = browser.approve_on_phone(browser.get("/login?next=/whoami"), phone)
    assert landed.status_code == 200, landed.text[:300]


def console_login(system: RunningSystem, chromium: object, phone: Path) -> object:
    page = chromium.new_page()  # type: ignore[attr-defined]
    page.goto(f"http://127.0.0.1:{system.port('idp', 'http')}/admin/")
    assert urlsplit(page.url).path == "/login"  # not signed in: the IdP's normal login
    page.wait_for_selector("#qr svg")
    code, answer = run_app(phone, "scan", page.get_attribute("#qr", "data-qrdata"), "--pin", PIN)
    assert code == 0, answer
    page.wait_for_url(lambda url: urlsplit(url).path == "/admin/", timeout=15000)
    return page


def find_user(page: object, user_id: str) -> None:
    page.fill("#q", user_id)  # type: ignore[attr-defined]
    page.click("form[role=search] button")  # type: ignore[attr-defined]
    page.click(f"a:text-is('{user_id}')")  # type: ignore[attr-defined]
    expect(page.locator("h1")).to_have_text(f"User {user_id}")  # type: ignore[attr-defined]


def login_refused(system: RunningSystem, phone: Path) -> bool:
    browser = Browser(system)
    try:
        page = browser.get("/login?next=/whoami")
        qr = re.search(r'data-qrdata="([^"]+)"', page.text)
        assert qr is not None
        code, _ = run_app(phone, "scan", qr.group(1).replace("&amp;", "&"), "--pin", PIN)
        return code != 0
    finally:
        browser.close()


def runbook(system: RunningSystem, page: object, user_id: str, tom: Browser) -> None:
    """The lost-phone runbook of docs/operations.md: find, block, end sessions."""
    find_user(page, user_id)
    row = page.locator("#accounts tbody tr")  # type: ignore[attr-defined]
    expect(row).to_have_count(1)
    expect(row.locator(".state")).to_have_text("active")
    row.locator("button:text-is('Block')").click()
    expect(page.locator("#accounts .state")).to_have_text("blocked")  # type: ignore[attr-defined]
    if SCREENSHOT_DIR:
        page.screenshot(path=str(Path(SCREENSHOT_DIR) / f"console-user-{user_id}.png"), full_page=True)  # type: ignore[attr-defined]
    expect(page.locator("#sessions tbody tr")).to_have_count(1)  # type: ignore[attr-defined]
    page.click("#end-all")  # type: ignore[attr-defined]
    expect(page.locator("#no-sessions")).to_be_visible()  # type: ignore[attr-defined]
    # The IdP's own session for that login follows ns (the watch checks every second here).
    for _ in range(50):
        if tom.get("/whoami").status_code == 401:
            break
        page.wait_for_timeout(200)  # type: ignore[attr-defined]
    assert tom.get("/whoami").status_code == 401


def test_an_admin_blocks_a_phone_ends_sessions_and_manages_keys(
    system: RunningSystem, browser: object, phones: dict[str, Path], user_session: Browser
) -> None:
    log_in(user_session, phones["tom"])
    page = console_login(system, browser, phones["ada"])
    expect(page.locator(".who")).to_contain_text("Ada Admin")  # type: ignore[attr-defined]
    runbook(system, page, "tom", user_session)
    assert login_refused(system, phones["tom"])

    base = page.url.split("/admin/")[0]  # type: ignore[attr-defined]
    page.goto(base + "/admin/servers")  # type: ignore[attr-defined]
    page.fill("#announce-1", "Support: +32 2 555 01 00")  # type: ignore[attr-defined]
    page.fill("#login-pin-1", "300")  # type: ignore[attr-defined]
    page.click("text=Save default")  # type: ignore[attr-defined]
    expect(page.locator(".status.ok")).to_contain_text("default")  # type: ignore[attr-defined]
    server = ns_api(system).call("GET", "/v1/servers/default")[1]
    assert server["announce"] == {"Support": "+32 2 555 01 00"} and server["login_pin_timeout"] == 300
    page.goto(base + "/admin/keys")  # type: ignore[attr-defined]
    page.fill("#key-name", "console-made")  # type: ignore[attr-defined]
    page.check("input[name=roles][value=sessions]")  # type: ignore[attr-defined]
    page.click("text=Create key")  # type: ignore[attr-defined]
    secret = page.text_content("#secret").strip()  # type: ignore[attr-defined]
    if SCREENSHOT_DIR:
        page.screenshot(path=str(Path(SCREENSHOT_DIR) / "console-key.png"))  # type: ignore[attr-defined]
    assert secret.startswith("na_")
    status, _ = ns_api(system, secret).call("GET", "/v1/servers/default/users/tom/sessions")
    assert status == 200  # a real key with the role asked for
    page.goto(page.url)  # type: ignore[attr-defined]  # the list again: the secret is never shown twice
    assert secret not in page.content()  # type: ignore[attr-defined]
    row = page.locator("#keys tr", has_text="console-made")  # type: ignore[attr-defined]
    row.locator("button:text-is('Revoke…')").click()
    expect(page.locator("h1")).to_contain_text("Revoke API key")  # type: ignore[attr-defined]
    page.click("text=Yes, do it")  # type: ignore[attr-defined]
    expect(page.locator("#keys tr", has_text="console-made")).to_contain_text("revoked")  # type: ignore[attr-defined]
    assert ns_api(system, secret).call("GET", "/v1/servers/default/users/tom/sessions")[0] == 401
    page.close()  # type: ignore[attr-defined]


def test_the_help_desk_runs_the_lost_phone_runbook_and_cannot_manage_keys(
    system: RunningSystem, browser: object, phones: dict[str, Path], user_session: Browser
) -> None:
    log_in(user_session, phones["tina"])
    page = console_login(system, browser, phones["hal"])
    expect(page.locator("nav")).not_to_contain_text("API keys")  # type: ignore[attr-defined]
    runbook(system, page, "tina", user_session)
    assert login_refused(system, phones["tina"])

    base = page.url.split("/admin/")[0]  # type: ignore[attr-defined]
    refused = page.goto(base + "/admin/keys")  # type: ignore[attr-defined]
    assert refused.status == 403
    expect(page.locator("h1")).to_have_text("Not allowed")  # type: ignore[attr-defined]
    # And the POST itself, with this session's own CSRF token from a form the help desk may use.
    page.goto(base + "/admin/user?id=tina")  # type: ignore[attr-defined]
    csrf = page.get_attribute("input[name=csrf] >> nth=0", "value")  # type: ignore[attr-defined]
    posted = page.request.post(  # type: ignore[attr-defined]
        base + "/admin/keys", form={"csrf": csrf, "name": "sneaky", "roles": "root"}
    )
    assert posted.status == 403
    keys = ns_api(system).call("GET", "/v1/apikeys")[1]["apikeys"]
    assert all(key["name"] != "sneaky" for key in keys)
    page.close()  # type: ignore[attr-defined]


def test_someone_outside_the_groups_gets_the_403_page(
    system: RunningSystem, browser: object, phones: dict[str, Path]
) -> None:
    page = console_login(system, browser, phones["olga"])
    expect(page.locator("h1")).to_have_text("Not allowed")  # type: ignore[attr-defined]
    assert page.request.get(page.url).status == 403  # type: ignore[attr-defined]
    page.close()  # type: ignore[attr-defined]


def test_a_role_the_idps_key_lacks_is_named(system: RunningSystem, tmp_path: Path) -> None:
    """An IdP in-process, its key at the real ns without the 'servers', 'accounts' and 'root' roles."""
    narrow = idp_cli(system, "apikey", "--name", "narrow-idp", "--roles", "sessions,users")["api_key"]
    engine = db.create_engine_for(f"sqlite:///{tmp_path / 'idp.db'}")
    db.upgrade(engine)
    kv, issuer = open_kv(None), "http://idp.example.test"
    keys = KeyRing(engine, issuer=issuer)
    services = IdpServices(
        ns=NsClient(f"http://127.0.0.1:{system.port('ns', 'http')}", narrow, "default"),
        engine=engine,
        kv=kv,
        keys=keys,
        directory=Directory(engine),
        sessions=SessionManager(engine, kv, keys, issuer=issuer),
        issuer=issuer,
    )
    app = create_app(services, secret_key=b"s" * 32, websocket_url="ws://127.0.0.1:1/ns/websocket")
    profile = services.directory.put(Profile(user_id="ada", groups=("nextauth-admins",)))
    token = services.sessions.start(ns_nonce="n" * 22, profile=profile, second_factor="pin", method="qr")
    client = app.test_client()
    client.set_cookie(services.cookie_name, token, domain="localhost")
    for path, role in (("/admin/servers", "servers"), ("/admin/keys", "root")):
        answer = client.get(path)
        assert answer.status_code == 403, path
        assert f"lacks the &#39;{role}&#39; role" in answer.get_data(as_text=True), path
    assert client.get("/admin/user?id=tom").status_code == 200  # users and sessions it may read
    engine.dispose()


CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def test_client_certificates_page_and_idp_changes_in_the_audit_trail(
    system: RunningSystem, tmp_path: Path
) -> None:
    """An IdP in-process with the root key at the real ns: an admin lists a certificate from pasted PEM with
    its roles and revokes it (CSRF-checked, confirmed); the help desk is refused both; ns records both
    changes, and the IdP records the OIDC client changes made on the console and on the command line."""
    root = (system.data_dir / "ns-root-api-key").read_text().strip()
    engine = db.create_engine_for(f"sqlite:///{tmp_path / 'idp.db'}")
    db.upgrade(engine)
    kv, issuer = open_kv(None), "http://idp.example.test"
    keys = KeyRing(engine, issuer=issuer)
    services = IdpServices(
        ns=NsClient(f"http://127.0.0.1:{system.port('ns', 'http')}", root, "default"),
        engine=engine,
        kv=kv,
        keys=keys,
        directory=Directory(engine),
        sessions=SessionManager(engine, kv, keys, issuer=issuer),
        issuer=issuer,
    )
    app = create_app(services, secret_key=b"s" * 32, websocket_url="ws://127.0.0.1:1/ns/websocket")

    def signed_in(user: str, group: str) -> Any:
        profile = services.directory.put(Profile(user_id=user, groups=(group,)))
        token = services.sessions.start(ns_nonce="n" * 22, profile=profile, second_factor="pin", method="qr")
        client = app.test_client()
        client.set_cookie(services.cookie_name, token, domain="localhost")
        return client

    admin, helpdesk = signed_in("ada", "nextauth-admins"), signed_in("hal", "nextauth-helpdesk")
    ca_key, ca_pem = make_ca()
    pem = issue(ca_key, ca_pem, "reports-client")[1]
    fingerprint = x509.load_pem_x509_certificate(pem.encode()).fingerprint(hashes.SHA256()).hex()
    form = {"name": "reports", "roles": ["sessions", "users"], "server": "default", "certificate": pem}

    # The help desk: neither the page nor its form, even with its own valid token.
    assert helpdesk.get("/admin/certificates").status_code == 403
    own_token = CSRF.search(helpdesk.get("/admin/user?id=ada").get_data(as_text=True))
    assert own_token is not None
    assert helpdesk.post("/admin/certificates", data={**form, "csrf": own_token.group(1)}).status_code == 403
    listed = admin.get("/admin/certificates")
    assert listed.status_code == 200 and fingerprint not in listed.get_data(as_text=True)
    token = CSRF.search(listed.get_data(as_text=True))
    assert token is not None
    assert admin.post("/admin/certificates", data=form).status_code == 400  # no CSRF token
    assert admin.post("/admin/certificates", data={**form, "csrf": "x" * 43}).status_code == 400
    bad = admin.post("/admin/certificates", data={**form, "certificate": "not a pem", "csrf": token.group(1)})
    assert bad.status_code == 400 and "PEM" in bad.get_data(as_text=True)
    assert fingerprint not in json.dumps(ns_api(system).call("GET", "/v1/clientcerts")[1])

    done = admin.post("/admin/certificates", data={**form, "csrf": token.group(1)})
    assert done.status_code == 303
    page = admin.get(done.headers["Location"]).get_data(as_text=True)
    row = re.search(r'<tr data-certificate="(\d+)">(.*?)</tr>', page, re.S)
    assert row is not None and fingerprint in row.group(2) and "sessions, users" in row.group(2)
    assert "reports" in row.group(2) and "default" in row.group(2)
    number = row.group(1)
    (at_ns,) = [
        c
        for c in ns_api(system).call("GET", "/v1/clientcerts")[1]["clientcerts"]
        if c["sha256"] == fingerprint
    ]
    assert at_ns["roles"] == ["sessions", "users"] and at_ns["revoked_at"] is None
    again = admin.post("/admin/certificates", data={**form, "csrf": token.group(1)})
    assert again.status_code == 409  # ns refuses a second listing; the page says so

    revoke = {"certificate": number, "name": "reports", "csrf": token.group(1)}
    refused = {**revoke, "confirm": "yes", "csrf": own_token.group(1)}
    assert helpdesk.post("/admin/certificates/revoke", data=refused).status_code == 403
    asked = admin.post("/admin/certificates/revoke", data=revoke)
    assert asked.status_code == 200 and "Revoke client certificate" in asked.get_data(as_text=True)
    assert ns_api(system).call("GET", "/v1/clientcerts")[1]["clientcerts"][-1]["revoked_at"] is None
    assert admin.post("/admin/certificates/revoke", data={**revoke, "confirm": "yes"}).status_code == 303
    row = re.search(
        rf'<tr data-certificate="{number}">(.*?)</tr>',
        admin.get("/admin/certificates").get_data(as_text=True),
        re.S,
    )
    assert row is not None and "revoked" in row.group(1) and "Revoke…" not in row.group(1)
    events = ns_api(system).call("GET", "/v1/audit-events?type=clientcert.created,clientcert.revoked")[1][
        "events"
    ]
    mine = [(e["type"], e["actor"]) for e in events if e["data"]["sha256"] == fingerprint]
    assert mine == [
        ("io.nextauth.clientcert.created", "root (configured)"),
        ("io.nextauth.clientcert.revoked", "root (configured)"),
    ]

    # IdP-side changes: an OIDC client added on the command line, disabled and removed on the console.
    parser = argparse.ArgumentParser()
    oidc_commands.client_arguments(parser)
    added = oidc_commands.client_command(
        parser.parse_args(["add", "--name", "Reports", "--redirect-uri", "https://reports.example/cb"]),
        engine,
    )
    client_id = added["client_id"]
    assert (
        admin.post(
            "/admin/client/state", data={"client": client_id, "disabled": "true", "csrf": token.group(1)}
        ).status_code
        == 303
    )
    assert (
        helpdesk.post(
            "/admin/client/remove", data={"client": client_id, "confirm": "yes", "csrf": own_token.group(1)}
        ).status_code
        == 403
    )
    removed = admin.post(
        "/admin/client/remove", data={"client": client_id, "confirm": "yes", "csrf": token.group(1)}
    )
    assert removed.status_code == 303
    trail, _ = AuditTrail(engine, "idp").query(
        types=["oidc_client.added", "oidc_client.disabled", "oidc_client.removed"]
    )
    assert [(e["type"], e["actor"], e["data"]["client"]) for e in trail] == [
        ("io.nextauth.oidc_client.added", "command line", client_id),
        ("io.nextauth.oidc_client.disabled", "ada (console)", client_id),
        ("io.nextauth.oidc_client.removed", "ada (console)", client_id),
    ]
    assert all(e["source"].startswith("/idp/") for e in trail)
    engine.dispose()
