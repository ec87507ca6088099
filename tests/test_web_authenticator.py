"""The web authenticator (``/app/``) in headless Chromium at a phone's viewport, against the real services
of ``nextauth all``: the app starts without a CSP violation, registers its service worker for ``/app/``,
starts again offline from its cache, is installable, reads ns's own codes, the login page's
"Open in app" link carries the page's current code, and a push login reaches the app by Web Push through
a local RFC 8030 push service."""

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from nextauth_core.qr import QRPayload
from nextauth_core.visualhash import visual_hash
from tests.fixtures import fake_camera
from tests.fixtures.flows import PIN, new_nonce, start_login
from tests.fixtures.system import REPO, RunningSystem, ns_api, start_system, stop_system
from tests.pushservers import TestCA
from tests.pushservers.webpush_server import ReceivedPush, WebPushServer, WebPushSubscription

playwright_api = pytest.importorskip("playwright.sync_api")

PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,
    "has_touch": True,
    "user_agent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36",
}


@pytest.fixture(scope="module")
def push_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebPushServer, TestCA]]:
    """The browser vendor's push service, played on loopback (RFC 8030 over TLS, checking VAPID)."""
    ca = TestCA(tmp_path_factory.mktemp("webpush-ca"))
    server = WebPushServer(ca.issue())
    yield server, ca
    server.stop()


@pytest.fixture(scope="module")
def running(
    tmp_path_factory: pytest.TempPathFactory, push_service: tuple[WebPushServer, TestCA]
) -> Iterator[RunningSystem]:
    """One system on embedded defaults: the app's serving does not depend on the storage backend. Its MC
    trusts the local push service's CA and, as only tests should, pushes to a loopback endpoint."""
    env = {f"NEXTAUTH_{name}_SIGMAI_HANDSHAKE_TIMEOUT": "5" for name in ("NS", "SFS", "MC")}
    env["NEXTAUTH_MC_PUSH_CA_FILE"] = str(push_service[1].ca_file)
    env["NEXTAUTH_MC_WEBPUSH_SUBJECT"] = "mailto:operators@example.org"
    env["NEXTAUTH_MC_WEBPUSH_ALLOW_PRIVATE_ENDPOINTS"] = "true"
    system = start_system(tmp_path_factory.mktemp("authenticator"), extra_env=env)
    yield system
    stop_system(system)


def base(system: RunningSystem) -> str:
    return f"http://127.0.0.1:{system.port('idp', 'http')}"


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    context = browser.new_context(**PHONE)
    yield context
    context.close()


class Watch:
    """What a page reports that would mean a broken app: console errors and CSP violations."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        page.on("pageerror", lambda error: self.errors.append(str(error)))


def open_app(context: Any, url: str) -> tuple[Any, Watch]:
    page = context.new_page()
    watch = Watch(page)
    page.goto(url)
    page.wait_for_selector("html[data-ready=yes]", state="attached", timeout=15000)
    return page, watch


def visible_screen(page: Any) -> str:
    return str(page.eval_on_selector("section[data-screen]:not([hidden])", "s => s.dataset.screen"))


def test_the_app_starts_at_onboarding_without_a_policy_violation(running: RunningSystem, phone: Any) -> None:
    page, watch = open_app(phone, base(running) + "/app/")
    assert visible_screen(page) == "welcome"
    assert page.is_visible("#new-pin") and page.is_visible("#new-pin-again")
    # The strict CSP holds and the app still runs: no violation, no error.
    assert watch.errors == []
    # config.json told the app where the services are: the same keys the phone simulator is given.
    config = page.evaluate("fetch('config.json').then(r => r.json())")
    app_config = json.loads((running.data_dir / "app-config.json").read_text())
    assert config["sfs"] == app_config["sfs"] and config["mc"] == app_config["mc"]
    assert config["ns"]["uri"] == f"ws://127.0.0.1:{running.port('ns', 'sigmai')}/"
    # A phone's width: nothing is wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_a_script_from_elsewhere_is_refused(running: RunningSystem, phone: Any) -> None:
    """The CSP is what keeps an injected script from the keys: an inline script does not run."""
    page, _ = open_app(phone, base(running) + "/app/")
    ran = page.evaluate(
        """() => new Promise((resolve) => {
            document.addEventListener(
                'securitypolicyviolation', (e) => resolve('refused ' + e.violatedDirective));
            const s = document.createElement('script');
            s.textContent = 'window.__injected = true';
            document.body.append(s);
            setTimeout(() => resolve(window.__injected ? 'ran' : 'silent'), 2000);
        })"""
    )
    assert ran.startswith("refused script-src")


def test_service_worker_serves_the_shell_offline(running: RunningSystem, phone: Any) -> None:
    url = base(running) + "/app/"
    page, _ = open_app(phone, url)
    scope = page.evaluate("navigator.serviceWorker.ready.then(r => r.scope)")
    assert scope == url
    page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=15000)
    cached = page.evaluate(
        "caches.keys().then(names => caches.open(names.find(n => n.startsWith('nextauth-shell-'))))"
        ".then(cache => cache.keys()).then(keys => keys.map(k => new URL(k.url).pathname))"
    )
    assert {"/app/", "/app/app.js", "/app/storage.js", "/app/app.css", "/app/manifest.webmanifest"} <= set(
        cached
    )
    assert "/app/config.json" not in cached  # never an answer of the server's, only the shell
    phone.set_offline(True)
    try:
        page.reload()
        page.wait_for_selector("html[data-ready=yes]", state="attached", timeout=15000)
        # The shell came from the cache; without settings stored yet the app says what it needs.
        assert visible_screen(page) == "unsupported"
        assert "Connect to the internet" in page.inner_text("#unsupported-why")
        assert page.evaluate("fetch('config.json').then(() => 'fetched', () => 'offline')") == "offline"
    finally:
        phone.set_offline(False)


def test_the_manifest_is_installable(running: RunningSystem, phone: Any) -> None:
    page, _ = open_app(phone, base(running) + "/app/")
    page.evaluate("navigator.serviceWorker.ready")
    cdp = phone.new_cdp_session(page)
    manifest = cdp.send("Page.getAppManifest")
    assert manifest["errors"] == [], manifest["errors"]
    assert manifest["url"] == base(running) + "/app/manifest.webmanifest"
    errors = cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
    # Playwright's contexts are incognito, where Chromium installs nothing; every check of the app passed.
    assert [error for error in errors if error["errorId"] != "in-incognito"] == [], errors


def test_the_app_reads_the_codes_ns_makes(running: RunningSystem, phone: Any) -> None:
    page, _ = open_app(phone, base(running) + "/app/")
    status, created = ns_api(running).call("POST", "/v1/servers/default/users/olga/enrolments")
    assert status == 201, created
    read = page.evaluate(
        "code => import('./codes.js').then(m => m.readCode(code))", "nextauth:" + created["qrdata"]
    )
    # The same reading as the Python SDK's, byte for byte.
    expected = QRPayload.decode(created["qrdata"])
    assert read["kind"] == "enrol" and read["serverId"] == expected.server_id == "default"
    assert read["sigmaiUri"] == expected.sigmai_uri == f"ws://127.0.0.1:{running.port('ns', 'sigmai')}/"
    assert read["serverKeyHash"] == expected.server_key_hash.hex() and read["itemId"] == expected.item_id
    damaged = page.evaluate(
        "code => import('./codes.js').then(m => { try { m.readCode(code); return 'read'; }"
        " catch (e) { return e.name + ': ' + e.message; } })",
        created["qrdata"][:-6] + "%%%%%%",
    )
    assert damaged == "CodeError: This nextAuth code is damaged."


def test_open_in_app_carries_the_login_code(running: RunningSystem, phone: Any, browser: Any) -> None:
    page = phone.new_page()
    page.goto(base(running) + "/login")
    page.wait_for_selector("#qr svg")
    link = page.locator("#open-in-app")
    playwright_api.expect(link).to_be_visible()
    code = page.get_attribute("#qr", "data-qrdata")
    assert link.get_attribute("href") == f"/app/#login={code}"
    # The link opens the app beside the login page, which keeps waiting for the phone's approval.
    with phone.expect_page() as opened:
        link.click()
    app = opened.value
    app.wait_for_selector("html[data-ready=yes]", state="attached", timeout=15000)
    assert app.url == base(running) + "/app/"  # the single-use code left the address bar at once
    assert visible_screen(app) == "welcome"
    assert "Set up this phone first" in app.inner_text("#notice")
    assert page.url.startswith(base(running) + "/login")
    # On a computer the page offers no such link: the phone there is another device.
    desktop = browser.new_page()
    desktop.goto(base(running) + "/login")
    desktop.wait_for_selector("#qr svg")
    assert not desktop.is_visible("#open-in-app")
    desktop.close()


def test_a_renewed_code_renews_the_link(running: RunningSystem, phone: Any) -> None:
    page = phone.new_page()
    page.clock.install()
    page.goto(base(running) + "/login")
    page.wait_for_selector("#qr svg")
    # ns answers the same code while it is valid: mark the page's copies stale to see them renewed.
    page.evaluate(
        "document.getElementById('open-in-app').setAttribute('href', '/app/#login=stale');"
        "document.getElementById('qr').dataset.qrdata = 'stale'"
    )
    page.clock.run_for(41000)  # the page renews its code every 40 seconds
    page.wait_for_function("() => document.getElementById('qr').dataset.qrdata !== 'stale'")
    renewed = page.get_attribute("#qr", "data-qrdata")
    assert renewed.startswith("NA1.")
    assert page.get_attribute("#open-in-app", "href") == f"/app/#login={renewed}"


# -- the whole way: onboarding, enrolment and logins with the app in the browser --------------------------


def wait_screen(page: Any, name: str, timeout: float = 30000) -> None:
    page.wait_for_selector(f'section[data-screen="{name}"]:not([hidden])', timeout=timeout)


def set_up(page: Any) -> None:
    wait_screen(page, "welcome")
    page.fill("#new-pin", PIN)
    page.fill("#new-pin-again", PIN)
    page.click("#register-form button[type=submit]")
    wait_screen(page, "accounts")


def paste(page: Any, code: str) -> None:
    page.click("#to-paste")
    page.fill("#code", code)
    page.click("#paste-form button[type=submit]")


def enrol_in_app(system: RunningSystem, page: Any, user: str) -> str:
    api = ns_api(system)
    status, created = api.call("POST", f"/v1/servers/default/users/{user}/enrolments")
    assert status == 201, created
    paste(page, created["qrdata"])
    wait_screen(page, "enrol")
    page.fill("#enrol-pin", PIN)
    page.click("#enrol-form button[type=submit]")
    wait_screen(page, "enrolled")
    code = page.inner_text("#confirmation-code").strip()
    assert len(code) == 6 and code.isdigit()
    # The picture and words of the key the server proved: what the enrolment page shows for it.
    status, server = api.call("GET", "/v1/servers/default")
    assert status == 200, server
    expected = visual_hash(bytes.fromhex(server["public_key"]))
    assert page.inner_text("#visual-hash figcaption") == f"{expected.colour}: {' '.join(expected.words)}"
    assert page.locator("#visual-hash rect").count() == 1 + sum(row.count("#") for row in expected.rows())
    # The person types the six digits into the application, which confirms them at ns.
    status, done = api.call(
        "POST", f"/v1/servers/default/enrolments/{created['enrolment']}/confirm", {"code": code}
    )
    assert status == 200 and done["state"] == "completed", done
    page.click('section[data-screen="enrolled"] button[data-home]')
    wait_screen(page, "accounts")
    return code


@pytest.fixture(scope="module")
def enrolled_phone(running: RunningSystem, browser: Any) -> Iterator[Any]:
    """One phone with the web authenticator set up and "wanda" enrolled, shared by the tests below."""
    context = browser.new_context(**PHONE)
    page, watch = open_app(context, base(running) + "/app/")
    set_up(page)
    enrol_in_app(running, page, "wanda")
    assert "wanda" in page.inner_text("#account-list")
    assert watch.errors == []
    page.close()
    yield context
    context.close()


def test_qr_login_with_the_app(running: RunningSystem, browser: Any, enrolled_phone: Any) -> None:
    desktop = browser.new_page()
    desktop.goto(base(running) + "/login?next=/whoami")
    desktop.wait_for_selector("#qr svg")
    app, watch = open_app(enrolled_phone, base(running) + "/app/")
    wait_screen(app, "accounts")
    paste(app, desktop.get_attribute("#qr", "data-qrdata"))
    wait_screen(app, "approve")
    # Who asks, before anything is approved: the service, the account, the browser.
    assert app.inner_text("#approve-user") == "wanda"
    assert app.inner_text("#approve-browser") == "Chrome on Linux"  # headless Chromium on the desktop
    assert app.get_attribute("#approve-browser", "title").startswith("Mozilla/")
    playwright_api.expect(desktop.locator("#status")).to_contain_text("Confirm on your phone", timeout=15000)
    app.fill("#approve-pin", PIN)
    app.click("#approve-button")
    wait_screen(app, "result")
    assert app.inner_text("#result-title") == "Logged in"
    desktop.wait_for_url(lambda url: urlsplit(url).path == "/whoami", timeout=15000)
    user = desktop.request.get(desktop.url).json()
    assert user["sub"] == "wanda" and "pin" in user["amr"]
    assert watch.errors == []
    desktop.close()
    app.close()


def test_open_in_app_logs_in_on_the_same_phone(running: RunningSystem, enrolled_phone: Any) -> None:
    page = enrolled_phone.new_page()
    page.goto(base(running) + "/login?next=/whoami")
    page.wait_for_selector("#qr svg")
    with enrolled_phone.expect_page() as opened:
        page.click("#open-in-app")
    app = opened.value
    wait_screen(app, "approve")
    app.fill("#approve-pin", PIN)
    app.click("#approve-button")
    wait_screen(app, "result")
    # The login page waited beside the app and now goes on, logged in.
    page.wait_for_url(lambda url: urlsplit(url).path == "/whoami", timeout=15000)
    assert page.request.get(page.url).json()["sub"] == "wanda"
    app.close()
    page.close()


def test_declined_and_wrong_pin_are_explained(
    running: RunningSystem, browser: Any, enrolled_phone: Any
) -> None:
    desktop = browser.new_page()
    desktop.goto(base(running) + "/login?next=/whoami")
    desktop.wait_for_selector("#qr svg")
    app, _ = open_app(enrolled_phone, base(running) + "/app/")
    wait_screen(app, "accounts")
    paste(app, desktop.get_attribute("#qr", "data-qrdata"))
    wait_screen(app, "approve")
    app.click("#decline-button")
    wait_screen(app, "result")
    assert app.inner_text("#result-title") == "Declined"
    playwright_api.expect(desktop.locator("#status")).to_contain_text("declined", timeout=15000)
    # A wrong PIN: the app says so with the attempts left, and the page hears why.
    desktop.reload()
    desktop.wait_for_selector("#qr svg")
    app.click('section[data-screen="result"] button[data-home]')
    used = desktop.get_attribute("#qr", "data-qrdata")
    paste(app, used)
    wait_screen(app, "approve")
    app.fill("#approve-pin", "0000")
    app.click("#approve-button")
    wait_screen(app, "result")
    assert app.inner_text("#result-title") == "Wrong PIN"
    assert "attempts left" in app.inner_text("#result-text")
    playwright_api.expect(desktop.locator("#status")).to_contain_text("Wrong PIN", timeout=15000)
    # A used code is refused with a clear word.
    app.click('section[data-screen="result"] button[data-home]')
    paste(app, used)
    wait_screen(app, "result")
    assert app.inner_text("#result-title") == "The code has expired"
    desktop.close()
    app.close()


def test_logout_from_the_app_ends_the_session(
    running: RunningSystem, browser: Any, enrolled_phone: Any
) -> None:
    desktop = browser.new_page()
    desktop.goto(base(running) + "/login?next=/whoami")
    desktop.wait_for_selector("#qr svg")
    app, _ = open_app(enrolled_phone, base(running) + "/app/")
    wait_screen(app, "accounts")
    paste(app, desktop.get_attribute("#qr", "data-qrdata"))
    wait_screen(app, "approve")
    app.fill("#approve-pin", PIN)
    app.click("#approve-button")
    desktop.wait_for_url(lambda url: urlsplit(url).path == "/whoami", timeout=15000)
    app.click('section[data-screen="result"] button[data-home]')
    app.click("#account-list button")
    playwright_api.expect(app.locator("#notice")).to_contain_text("Logged out of", timeout=15000)
    # ns ended the session, and with it the IdP's.
    assert desktop.request.get(desktop.url).status == 401
    desktop.close()
    app.close()


def approve_in_app(app: Any, code: str) -> None:
    wait_screen(app, "accounts")
    paste(app, code)
    wait_screen(app, "approve")
    app.fill("#approve-pin", PIN)
    app.click("#approve-button")
    wait_screen(app, "result")
    assert app.inner_text("#result-title") == "Logged in", app.inner_text("#result-text")
    app.click('section[data-screen="result"] button[data-home]')


def test_push_login_with_number_matching(running: RunningSystem, enrolled_phone: Any) -> None:
    api = ns_api(running)
    nonce = new_nonce()
    app, watch = open_app(enrolled_phone, base(running) + "/app/")
    approve_in_app(app, start_login(running, nonce)["loginqrdata"])
    # Logged in once on this session, logged out: now the application may push to this account.
    assert api.call("POST", "/v1/servers/default/sessions/logout", headers={"X-nonce": nonce})[0] == 200
    for right in (False, True):
        status, provoked = api.call(
            "POST",
            "/v1/servers/default/sessions/provokelogin",
            headers={"X-nonce": nonce, "X-client-ip": "198.51.100.4"},
        )
        assert status == 200, provoked
        app.click("#check-inbox")
        wait_screen(app, "inbox")
        app.click("#inbox-list li:last-child button")
        wait_screen(app, "approve")
        assert app.inner_text("#approve-place") == "198.51.100.4"
        choices = app.locator("#number-choices input")
        assert choices.count() == 3
        numbers = [int(choices.nth(i).get_attribute("value")) for i in range(3)]
        assert provoked["number"] in numbers
        pick = provoked["number"] if right else next(n for n in numbers if n != provoked["number"])
        app.check(f'#number-choices input[value="{pick}"]', force=True)
        app.fill("#approve-pin", PIN)
        app.click("#approve-button")
        wait_screen(app, "result")
        if not right:
            assert app.inner_text("#result-title") == "Wrong number"
            app.click('section[data-screen="result"] button[data-home]')
    assert app.inner_text("#result-title") == "Logged in"
    _, session = api.call("GET", "/v1/servers/default/sessions/", headers={"X-nonce": nonce})
    assert session["loggedin"] is True and session["method"] == "push"
    assert watch.errors == []
    app.close()


def test_transaction_review_and_signature(running: RunningSystem, enrolled_phone: Any) -> None:
    api = ns_api(running)
    nonce = new_nonce()
    app, _ = open_app(enrolled_phone, base(running) + "/app/")
    approve_in_app(app, start_login(running, nonce)["loginqrdata"])
    fields = {"amount": "EUR 1,250.00", "beneficiary": "BE71 0961 2345 6769", "description": "Invoice 42"}
    for decision in ("declined", "approved"):
        status, submitted = api.call(
            "POST", "/v1/servers/default/sessions/transactions", fields, {"X-nonce": nonce}
        )
        assert status == 201, submitted
        paste(app, submitted["qrdata"])
        wait_screen(app, "transaction")
        # What you see is what you sign: every field, as the application sent it.
        shown = app.inner_text("#transaction-fields")
        assert all(value in shown for value in fields.values())
        if decision == "declined":
            app.click("#transaction-decline")
        else:
            app.fill("#transaction-pin", PIN)
            app.click("#transaction-form button[type=submit]")
        wait_screen(app, "result")
        assert app.inner_text("#result-title") == ("Signed" if decision == "approved" else "Declined")
        app.click('section[data-screen="result"] button[data-home]')
        status, record = api.call("GET", f"/v1/servers/default/transactions/{submitted['tid']}")
        assert record["status"] == decision
    assert record["evidence"]["attestation"]
    status, check = api.call("POST", "/v1/evidence/verify", {"evidence": record["evidence"]})
    assert check["valid"] is True and check["content"]["fields"] == fields
    app.close()


def test_a_set_up_app_starts_offline(running: RunningSystem, enrolled_phone: Any) -> None:
    app, _ = open_app(enrolled_phone, base(running) + "/app/")
    app.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=15000)
    enrolled_phone.set_offline(True)
    try:
        app.reload()
        app.wait_for_selector("html[data-ready=yes]", state="attached", timeout=15000)
        wait_screen(app, "accounts")
        assert "wanda" in app.inner_text("#account-list")
    finally:
        enrolled_phone.set_offline(False)
    app.close()


def test_change_pin_then_lock(running: RunningSystem, browser: Any) -> None:
    """A phone of its own: its PIN changes, then wrong PINs lock it, and the app says what to do."""
    context = browser.new_context(**PHONE)
    app, _ = open_app(context, base(running) + "/app/")
    set_up(app)
    enrol_in_app(running, app, "xavier")
    app.click("#to-settings")
    app.click("#to-change-pin")
    app.fill("#old-pin", PIN)
    app.fill("#changed-pin", "97531")
    app.fill("#changed-pin-again", "97531")
    app.click("#changepin-form button[type=submit]")
    wait_screen(app, "result")
    assert app.inner_text("#result-title") == "PIN changed"
    app.click('section[data-screen="result"] button[data-home]')
    # The old PIN is wrong now; wrong PINs count down to the lock.
    titles = []
    for _ in range(5):
        nonce = new_nonce()
        paste(app, start_login(running, nonce)["loginqrdata"])
        wait_screen(app, "approve")
        app.fill("#approve-pin", PIN)
        app.click("#approve-button")
        wait_screen(app, "result")
        titles.append(app.inner_text("#result-title"))
        app.click('section[data-screen="result"] button[data-home]')
    assert titles[0] == "Wrong PIN" and titles[-1] == "This app is locked", titles
    wait_screen(app, "accounts")
    playwright_api.expect(app.locator("#notice")).to_contain_text("set the app up again")
    context.close()


def test_the_keys_cannot_be_read_out(running: RunningSystem, enrolled_phone: Any) -> None:
    """The device key and the account key are non-extractable WebCrypto keys: the app's storage holds no
    key bytes for them, and the browser refuses to export them, to a script of the app's own origin too.
    (The logins of the tests above signed with them.)"""
    app, _ = open_app(enrolled_phone, base(running) + "/app/")
    found = app.evaluate(
        """() => import('./storage.js').then(async ({ Storage }) => {
            const storage = await Storage.open();
            const device = await storage.get('device');
            const accounts = (await storage.get('accounts')) || [];
            const records = [device, ...Object.values(accounts).map((a) => a.key)];
            const results = [];
            for (const record of records) {
                const held = await storage.getKey(record.id);
                const tries = [];
                for (const format of ['pkcs8', 'jwk']) {
                    tries.push(await crypto.subtle.exportKey(format, held.privateKey)
                        .then(() => 'exported', (e) => e.name));
                }
                results.push({ record, extractable: held.privateKey.extractable,
                    algorithm: held.privateKey.algorithm, tries });
            }
            storage.close();
            return results;
        })"""
    )
    assert len(found) >= 2  # the device key and wanda's account key at least
    for key in found:
        assert key["record"]["keyring"] == "webcrypto" and "secret" not in key["record"], key
        assert key["extractable"] is False
        assert key["algorithm"] == {"name": "ECDSA", "namedCurve": "P-256"}
        assert key["tries"] == ["InvalidAccessError", "InvalidAccessError"], key
    app.close()


def test_scanning_falls_back_to_pasting_without_a_camera(running: RunningSystem, enrolled_phone: Any) -> None:
    """Headless Chromium has no camera unless given a fake one: the app says so and offers paste."""
    app, watch = open_app(enrolled_phone, base(running) + "/app/")
    wait_screen(app, "accounts")
    app.click("#to-scan")
    wait_screen(app, "scan")
    playwright_api.expect(app.locator("#scan-status")).to_contain_text("Paste the code instead")
    assert watch.errors == []
    app.close()


@pytest.fixture(scope="module")
def camera(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:
    """A second Chromium (same Playwright) with a camera that films the QR code the test last wrote."""
    from tests.fixtures.chromium import CHROMIUM

    clip = tmp_path_factory.mktemp("camera") / "camera.y4m"
    fake_camera.film(clip, "nothing to see yet")
    chromium = browser.browser_type.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--disable-gpu", "--no-first-run", *fake_camera.chromium_args(clip)],
    )
    yield chromium, clip
    chromium.close()


def test_the_camera_reads_the_codes_to_enrol_and_log_in(
    running: RunningSystem, browser: Any, camera: tuple[Any, Path]
) -> None:
    """The camera path end to end: the app has no BarcodeDetector here (Chromium on Linux), so it loads its
    vendored decoder and reads the frames of the fake camera, which films an enrolment code and then the
    login page's code."""
    camera_browser, clip = camera
    context = camera_browser.new_context(**PHONE)
    context.grant_permissions(["camera"], origin=base(running))
    app, watch = open_app(context, base(running) + "/app/")
    set_up(app)
    assert app.evaluate("'BarcodeDetector' in window") is False  # so this is the decoder's path
    api = ns_api(running)
    status, created = api.call("POST", "/v1/servers/default/users/cleo/enrolments")
    assert status == 201, created
    fake_camera.film(clip, created["qrdata"])
    app.click("#to-scan")
    wait_screen(app, "enrol")
    app.fill("#enrol-pin", PIN)
    app.click("#enrol-form button[type=submit]")
    wait_screen(app, "enrolled")
    status, done = api.call(
        "POST",
        f"/v1/servers/default/enrolments/{created['enrolment']}/confirm",
        {"code": app.inner_text("#confirmation-code").strip()},
    )
    assert status == 200 and done["state"] == "completed", done
    app.click('section[data-screen="enrolled"] button[data-home]')
    wait_screen(app, "accounts")
    # The camera is off between scans: the app stopped its tracks.
    assert app.evaluate("document.getElementById('camera').srcObject") is None

    desktop = browser.new_page()
    desktop.goto(base(running) + "/login?next=/whoami")
    desktop.wait_for_selector("#qr svg")
    fake_camera.film(clip, desktop.get_attribute("#qr", "data-qrdata"))
    app.click("#to-scan")
    wait_screen(app, "approve")
    assert app.inner_text("#approve-user") == "cleo"
    app.fill("#approve-pin", PIN)
    app.click("#approve-button")
    wait_screen(app, "result")
    desktop.wait_for_url(lambda url: urlsplit(url).path == "/whoami", timeout=15000)
    assert desktop.request.get(desktop.url).json()["sub"] == "cleo"
    assert watch.errors == []
    desktop.close()
    context.close()


def test_codes_it_cannot_use_are_refused_before_any_connection(
    running: RunningSystem, enrolled_phone: Any
) -> None:
    """A code for another ns (its CSP would not let the app connect there anyway) and a damaged code."""
    app, _ = open_app(enrolled_phone, base(running) + "/app/")
    wait_screen(app, "accounts")
    elsewhere = QRPayload(
        kind="login",
        server_id="default",
        sigmai_uri="wss://ns.elsewhere.example/ns/sigmai",
        server_key_hash=bytes(32),
        item_id="q1",
        secret=bytes(32),
    ).encode()
    paste(app, elsewhere)
    wait_screen(app, "result")
    assert app.inner_text("#result-title") == "Not for this authenticator"
    app.click('section[data-screen="result"] button[data-home]')
    paste(app, "NA1.this-is-not-base64url!")
    wait_screen(app, "result")
    assert app.inner_text("#result-title") == "Not a usable code"
    assert "damaged" in app.inner_text("#result-text")
    app.close()


def test_an_interrupted_set_up_starts_anew(running: RunningSystem, browser: Any) -> None:
    """The SFS registered the PIN but the phone never stored its secret (a lost answer): that device key
    can never register again, so the app starts over with a new one instead of being stuck."""
    context = browser.new_context(**PHONE)
    app, _ = open_app(context, base(running) + "/app/")
    set_up(app)
    first = app.evaluate(
        """() => import('./storage.js').then(async ({ Storage }) => {
            const storage = await Storage.open();
            const device = await storage.get('device');
            await storage.delete('secondFactor');
            storage.close();
            return device.public;
        })"""
    )
    app.reload()
    app.wait_for_selector("html[data-ready=yes]", state="attached", timeout=15000)
    wait_screen(app, "welcome")
    app.fill("#new-pin", PIN)
    app.fill("#new-pin-again", PIN)
    app.click("#register-form button[type=submit]")
    playwright_api.expect(app.locator("#notice")).to_contain_text("set up this phone anew", timeout=15000)
    set_up(app)
    second = app.evaluate(
        "() => import('./storage.js').then(({ Storage }) => Storage.open()).then((s) => s.get('device'))"
    )
    assert second["public"] != first
    context.close()


def test_the_screens_meet_wcag_aa(running: RunningSystem, browser: Any, axe: Any) -> None:
    """axe-core finds nothing on the app's main screens, in light and dark, at each size it checks."""
    context = browser.new_context(**PHONE)
    app, _ = open_app(context, base(running) + "/app/")
    found = axe(app)
    set_up(app)
    found += axe(app)
    enrol_in_app(running, app, "yara")
    found += axe(app)
    desktop = browser.new_page()
    desktop.goto(base(running) + "/login")
    desktop.wait_for_selector("#qr svg")
    paste(app, desktop.get_attribute("#qr", "data-qrdata"))
    wait_screen(app, "approve")
    found += axe(app)
    app.click("#decline-button")
    wait_screen(app, "result")
    found += axe(app)
    # The login page as a phone shows it, with its "Open in app" link.
    login = context.new_page()
    login.goto(base(running) + "/login")
    login.wait_for_selector("#qr svg")
    playwright_api.expect(login.locator("#open-in-app")).to_be_visible()
    found += axe(login)
    assert found == [], "\n".join(found)
    desktop.close()
    context.close()


def test_the_visual_hash_follows_the_vectors(running: RunningSystem, phone: Any) -> None:
    """visualhash.js gives what docs/visual-hash-vectors.json (and nextauth_core.visualhash) give."""
    page, _ = open_app(phone, base(running) + "/app/")
    vectors = json.loads((REPO / "docs" / "visual-hash-vectors.json").read_text())["vectors"]
    for vector in vectors:
        shown = page.evaluate(
            "key => import('./visualhash.js').then(m => m.visualHash(key))", vector["public_key"]
        )
        expected = {key: vector[key] for key in ("digest", "grid", "colour", "colour_hex", "words")}
        assert shown == {"version": 1, **expected}, vector["name"]


def test_an_invite_enrols_the_app_on_the_same_phone(running: RunningSystem, enrolled_phone: Any) -> None:
    """The invite page on the phone opens the app with its enrolment code; the person compares the
    picture, and types the six digits back into the page."""
    status, created = ns_api(running).call("POST", "/v1/servers/default/users/zoe/invites")
    assert status == 201, created
    page = enrolled_phone.new_page()
    page.goto(created["link"])
    page.click("#start button[type=submit]")
    page.wait_for_selector("#confirm")
    link = page.locator("#open-in-app")
    playwright_api.expect(link).to_be_visible()
    assert link.get_attribute("href") == "/app/#code=" + page.get_attribute("#qr", "data-qrdata")
    with enrolled_phone.expect_page() as opened:
        link.click()
    app = opened.value
    wait_screen(app, "enrol")
    app.fill("#enrol-pin", PIN)
    app.click("#enrol-form button[type=submit]")
    wait_screen(app, "enrolled")
    assert app.inner_text("#enrolled-user") == "zoe"
    colour, words = (page.get_attribute("#visual-hash", f"data-{name}") for name in ("colour", "words"))
    assert app.inner_text("#visual-hash figcaption") == f"{colour}: {words}"
    page.fill("#code", app.inner_text("#confirmation-code").strip())
    page.click("#confirm button[type=submit]")
    page.wait_for_selector("#done")
    app.click('section[data-screen="enrolled"] button[data-home]')
    wait_screen(app, "accounts")
    assert "zoe" in app.inner_text("#account-list")
    app.close()
    page.close()


# -- Web Push: the login page asks, the MC pushes, the app shows the request ---------------------------

# What stands in for the browser's own push service. Chromium makes a subscription only through its
# vendor's service (Google's FCM, over its own protocols, not RFC 8030): in Playwright's contexts, which
# are incognito, pushManager.subscribe() refuses ("Registration failed - permission denied"), and in a
# persistent profile it waits forever for a service this machine cannot reach. No switch points Chromium
# at an RFC 8030 service. So subscribe() here asks the local push service for the subscription a browser
# would get (endpoint, p256dh, auth), bound to the applicationServerKey the app passed, and the test
# hands the worker the decrypted push as the browser would (CDP ServiceWorker.deliverPushMessage).
LOCAL_PUSH_SERVICE = """
(() => {
  if (!self.PushManager) return;
  let current = null;
  const base64url = (key) => typeof key === 'string' ? key
    : btoa(String.fromCharCode(...new Uint8Array(ArrayBuffer.isView(key) ? key.buffer.slice(
        key.byteOffset, key.byteOffset + key.byteLength) : key)))
      .replace(/[+]/g, '-').replace(/[/]/g, '_').replace(/=+$/, '');
  PushManager.prototype.subscribe = async function (options) {
    if (!options || options.userVisibleOnly !== true || !options.applicationServerKey) {
      throw new DOMException('userVisibleOnly and applicationServerKey are required', 'NotAllowedError');
    }
    const json = await window.localPushSubscribe(base64url(options.applicationServerKey));
    current = { endpoint: json.endpoint, expirationTime: null, toJSON: () => json,
      unsubscribe: async () => { current = null; return true; } };
    return current;
  };
  PushManager.prototype.getSubscription = async function () { return current; };
})();
"""


def pushes_to(service: WebPushServer, subscription: WebPushSubscription, count: int) -> list[ReceivedPush]:
    """The pushes the local service accepted (VAPID checked, body decrypted per RFC 8291 with the
    subscription's keys) for this subscription, once there are ``count``."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [push for push in service.received if push.subscription == subscription.id]
        if len(found) >= count:
            return found
        time.sleep(0.02)
    raise AssertionError(f"no push for the subscription; refused: {service.refused}")


def ask_for_a_push(browser: Any, system: RunningSystem, user: str) -> tuple[Any, int]:
    """The login page on a computer (a context of its own), asking for a push login: the page and the
    number it shows."""
    desktop = browser.new_page()
    desktop.goto(base(system) + "/login?next=/whoami")
    desktop.click("#push-option summary")
    desktop.fill("#username", user)
    desktop.click("#push button[type=submit]")
    number = desktop.locator("#push-number")
    playwright_api.expect(number).to_be_visible(timeout=15000)
    return desktop, int(number.inner_text())


def approve_shown_login(app: Any, desktop: Any, number: int, user: str) -> None:
    wait_screen(app, "approve")
    assert app.inner_text("#approve-user") == user
    numbers = [int(n) for n in app.locator("#number-choices input").evaluate_all("l => l.map(i => i.value)")]
    assert number in numbers and len(numbers) == 3
    app.check(f'#number-choices input[value="{number}"]', force=True)
    app.fill("#approve-pin", PIN)
    app.click("#approve-button")
    wait_screen(app, "result")
    assert app.inner_text("#result-title") == "Logged in", app.inner_text("#result-text")
    desktop.wait_for_url(lambda url: urlsplit(url).path == "/whoami", timeout=15000)
    assert desktop.request.get(desktop.url).json()["sub"] == user
    desktop.close()


class WorkerControl:
    """The app's service worker as DevTools sees it: its versions' running state, the errors it reported,
    and a push handed to it as the browser hands one it decrypted. DevTools' deliverPushMessage answers
    before the push event runs and discards how the delivery went, so a push handed to a worker Chromium
    is stopping (the app was just closed) could be lost unseen, where a real push service delivers again:
    the push goes to a worker that was started and reported running."""

    def __init__(self, page: Any, origin: str) -> None:
        self.page = page
        self.origin = origin
        self.scope = origin + "/app/"
        self.cdp = page.context.new_cdp_session(page)
        self.registrations: list[dict[str, Any]] = []
        self.versions: dict[str, dict[str, Any]] = {}
        self.errors: list[str] = []
        self.cdp.on(
            "ServiceWorker.workerRegistrationUpdated", lambda e: self.registrations.extend(e["registrations"])
        )
        self.cdp.on("ServiceWorker.workerVersionUpdated", self._versions_updated)
        self.cdp.on(
            "ServiceWorker.workerErrorReported",
            lambda e: self.errors.append(e["errorMessage"]["errorMessage"]),
        )
        self.cdp.send("ServiceWorker.enable")

    def _versions_updated(self, event: dict[str, Any]) -> None:
        for version in event["versions"]:
            self.versions[version["versionId"]] = version

    def registration_id(self) -> str:
        (registration,) = [
            r for r in self.registrations if r["scopeURL"] == self.scope and not r["isDeleted"]
        ]
        return str(registration["registrationId"])

    def _running(self, registration: str) -> bool:
        return any(
            v["registrationId"] == registration
            and v["status"] == "activated"
            and v["runningStatus"] == "running"
            for v in self.versions.values()
        )

    def deliver(self, plaintext: bytes) -> None:
        registration = self.registration_id()
        self.cdp.send("ServiceWorker.startWorker", {"scopeURL": self.scope})
        deadline = time.monotonic() + 15
        while not self._running(registration) and time.monotonic() < deadline:
            self.page.wait_for_timeout(50)
        assert self._running(registration), f"the worker did not start: {self.versions}, {self.errors}"
        self.cdp.send(
            "ServiceWorker.deliverPushMessage",
            {
                "origin": self.origin,
                "registrationId": registration,
                "data": plaintext.decode(),
            },
        )


def notifications_once(
    app: Any, wanted: Callable[[list[dict[str, Any]]], bool], seconds: float = 15
) -> list[dict[str, Any]]:
    """The worker's notifications as soon as ``wanted`` holds for them (``seconds`` at most), else the last
    seen. Read in the page with its own loop: getNotifications answers a promise, which Playwright's
    wait_for_function takes for a truthy answer at once instead of awaiting it."""
    read = (
        "() => navigator.serviceWorker.getRegistration('/app/').then(r => r.getNotifications())"
        ".then(n => n.map(({title, body, data}) => ({title, body, data})))"
    )
    deadline = time.monotonic() + seconds
    shown: list[dict[str, Any]] = app.evaluate(read)
    while not wanted(shown) and time.monotonic() < deadline:
        app.wait_for_timeout(100)
        shown = app.evaluate(read)
    return shown


def test_push_login_by_web_push(
    running: RunningSystem, push_service: tuple[WebPushServer, TestCA], browser: Any
) -> None:
    """The whole chain but the browser vendor's push service (see LOCAL_PUSH_SERVICE for why that part is
    played locally): the app subscribes with the MC's VAPID key and hands the subscription to the MC; the
    login page asks for a push; the MC sends the encrypted Web Push to the local push service, which checks
    its VAPID token and decrypts it with the subscription's keys; the worker gets it, shows a notification
    and wakes the open app, which pulls the request and shows it with number matching; approved with the
    PIN, the login page is logged in. Then the push service says the subscription is gone (410): the MC
    drops it, and the app, opened, pulls the next request instead, until the person turns notifications
    on again in Settings."""
    service, _ = push_service
    phone = browser.new_context(**PHONE)
    phone.grant_permissions(["notifications"], origin=base(running))
    made: list[WebPushSubscription] = []

    def subscribe(key: str) -> dict[str, Any]:
        made.append(service.subscribe(key))
        return made[-1].to_json()

    phone.expose_function("localPushSubscribe", subscribe)
    phone.add_init_script(script=LOCAL_PUSH_SERVICE)
    app, watch = open_app(phone, base(running) + "/app/")
    set_up(app)
    assert "not pushed" not in app.inner_text("#notice")
    (subscription,) = made
    # The app subscribed with the key the pinned MC named: the push service takes no push signed otherwise.
    status, key = running.get("mc", "http", "/v1/webpush/vapid-public-key")
    assert status == 200 and subscription.application_server_key == key["vapid_public_key"]
    enrol_in_app(running, app, "walter")
    worker = WorkerControl(app, base(running))
    app.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=15000)

    desktop, number = ask_for_a_push(browser, running, "walter")
    (push,) = pushes_to(service, subscription, 1)
    # Only a wake-up crossed the push service: which message to pull, nothing of who asks or for whom.
    wake_up = json.loads(push.plaintext)
    assert set(wake_up) == {"mailbox", "message"}
    assert push.headers["content-encoding"] == "aes128gcm" and push.headers["urgency"] == "high"
    assert push.claims["aud"] == service.origin and push.claims["sub"] == "mailto:operators@example.org"
    # What the browser does with a push it decrypted: the worker's push event, with the app open.
    worker.deliver(push.plaintext)
    approve_shown_login(app, desktop, number, "walter")
    # The open app showed the request, so it closed the notification the worker put up for it.
    assert notifications_once(app, lambda shown: shown == []) == []

    # The next push with the app closed: the worker shows a notification whose tap opens the request.
    app.goto(base(running) + "/login")  # the phone's browser elsewhere; the page keeps the CDP session
    desktop, number = ask_for_a_push(browser, running, "walter")
    second = pushes_to(service, subscription, 2)[-1]
    message = json.loads(second.plaintext)["message"]

    # Right after the app closed, Chromium may still be stopping the worker it reported running, and a push
    # handed over then is dropped unseen (WorkerControl). A push service delivers again what the browser
    # did not take, so the test does too, at most 3 times; the notification's one tag keeps a push that
    # lands twice to one notification.
    def this_request(shown: list[dict[str, Any]]) -> bool:
        return [n["data"] for n in shown] == [{"message": message}]

    for _ in range(3):
        worker.deliver(second.plaintext)
        notified = notifications_once(app, this_request, seconds=5)
        if this_request(notified):
            break
    assert len(notified) == 1, f"the worker showed {notified}; it reported {worker.errors}"
    (shown,) = notified
    assert shown["data"] == {"message": json.loads(second.plaintext)["message"]}
    assert "walter" not in shown["title"] + shown["body"]  # nothing of the request on a locked screen
    # notificationclick opens ./#push=<message>: no browser API clicks a notification, so the test opens it.
    app.goto(base(running) + "/app/#push=" + shown["data"]["message"])
    approve_shown_login(app, desktop, number, "walter")
    assert app.url == base(running) + "/app/"
    assert notifications_once(app, lambda shown: shown == []) == []

    # The browser unsubscribed (or the subscription expired): the push service answers 410.
    service.drop(subscription)
    refused = len(service.refused)
    desktop, number = ask_for_a_push(browser, running, "walter")
    assert service.refused[refused:] == [(410, "the subscription has expired or was unsubscribed")]
    # The MC forgot the subscription: the app, opened, pulls and finds the request waiting.
    app.goto(base(running) + "/app/")
    app.wait_for_selector("html[data-ready=yes]", state="attached", timeout=15000)
    playwright_api.expect(app.locator("#check-inbox")).to_contain_text("1 waiting", timeout=15000)
    app.click("#check-inbox")
    wait_screen(app, "inbox")
    app.click("#inbox-list li:last-child button")
    approve_shown_login(app, desktop, number, "walter")
    # Settings offers notifications again: a new subscription, handed over with mailbox.push (the
    # mailbox and its token at ns stay). The next push goes to it; the dropped one is never tried again.
    app.click('section[data-screen="result"] button[data-home]')
    app.click("#to-settings")
    app.click("#push-on")
    playwright_api.expect(app.locator("#notice")).to_contain_text("arrive as notifications", timeout=15000)
    assert len(made) == 2
    desktop, _ = ask_for_a_push(browser, running, "walter")
    (renewed,) = pushes_to(service, made[1], 1)
    assert json.loads(renewed.plaintext)["mailbox"] == wake_up["mailbox"]
    assert len(service.refused) == refused + 1 and len(pushes_to(service, subscription, 2)) == 2
    desktop.close()
    assert watch.errors == []
    phone.close()
