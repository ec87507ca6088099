"""Rate limits and growth limits (docs/security.md, "Rate limits and growth limits").

Each limit is flooded until it refuses (429 with Retry-After, ``rate_limited`` with ``retry_after`` on
sigmai, ``TOOMANY`` on the browser WebSocket) while a legitimate request from another client, browser or
user still passes. The unit tests come first; then the services built in-process (sigmai operations
dispatched with chosen client addresses); then the whole system with low limits, the clients told apart
by X-Forwarded-For from the trusted loopback proxy.
"""

import logging
import re
import secrets
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from prometheus_client import REGISTRY
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from authserver.config import ConfigError, load_config, parse_networks
from authserver.mc.mailboxes import MailboxService
from authserver.operations import ChannelContext
from authserver.ratelimit import RateLimited, RateLimiter, client_ip, client_key, parse_rule, rule_setting
from authserver.services import mc as mc_service
from authserver.services import sfs as sfs_service
from authserver.services.runtime import Component
from authserver.sfs.purge import purge_unfinished
from authserver.storage.flow_models import AppInstance, Mailbox
from authserver.storage.models import utcnow
from idp.server import build_app, build_services, load_settings
from nextauth_core import pin
from nextauth_core.encoding import b64url
from sigmai import PeerKey
from sigmai.constants import KEY_TYPE_ED25519
from tests.fixtures.flows import PIN, BrowserPage, logged_in_once
from tests.fixtures.idp_browser import Browser, run_nextauth
from tests.fixtures.saml import post_request
from tests.fixtures.system import RunningSystem, free_port, ns_api, run_app, start_system, stop_system
from tests.saml_sp import ServiceProvider

TRUSTED = parse_networks("test", "127.0.0.1, 10.0.0.0/8")


def refused_count(component: str, limit: str) -> float:
    value = REGISTRY.get_sample_value("nextauth_rate_limited_total", {"component": component, "limit": limit})
    return value or 0.0


# -- the pieces ---------------------------------------------------------------------------------------


def test_client_ip_believes_forwarded_for_only_from_trusted_proxies() -> None:
    # A direct client cannot choose its address by sending the header.
    assert client_ip("198.51.100.7", "203.0.113.1", TRUSTED) == "198.51.100.7"
    assert client_ip("127.0.0.1", "203.0.113.1", ()) == "127.0.0.1"
    # Through a trusted proxy: the right-most hop that is not a trusted proxy, whatever is left of it.
    assert client_ip("127.0.0.1", "203.0.113.1", TRUSTED) == "203.0.113.1"
    assert client_ip("127.0.0.1", "6.6.6.6, 203.0.113.1, 10.1.2.3", TRUSTED) == "203.0.113.1"
    assert client_ip("127.0.0.1", "garbage, 203.0.113.1", TRUSTED) == "203.0.113.1"
    assert client_ip("127.0.0.1", "203.0.113.1, not-an-ip", TRUSTED) == "127.0.0.1"
    assert client_ip("::ffff:127.0.0.1", "203.0.113.1", TRUSTED) == "203.0.113.1"
    # IPv6 clients count per /64.
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")


def test_limit_settings_are_checked() -> None:
    assert rule_setting({}, "NEXTAUTH_X", "x", "3/minute").items[0].amount == 3
    assert not rule_setting({"NEXTAUTH_X": "off"}, "NEXTAUTH_X", "x", "3/minute").enabled
    two = rule_setting({"NEXTAUTH_X": "2/second; 10 per 5 minutes"}, "NEXTAUTH_X", "x", "1/minute")
    assert [item.amount for item in two.items] == [2, 10]
    with pytest.raises(ConfigError, match="NEXTAUTH_X: expected a limit"):
        rule_setting({"NEXTAUTH_X": "lots"}, "NEXTAUTH_X", "x", "3/minute")
    with pytest.raises(ConfigError, match="NEXTAUTH_TRUSTED_PROXIES"):
        load_config("ns", {"NEXTAUTH_TRUSTED_PROXIES": "10.0.0.0/8, proxy.example"})
    config = load_config(
        "sfs", {"NEXTAUTH_TRUSTED_PROXIES": "10.0.0.0/8", "NEXTAUTH_SFS_TRUSTED_PROXIES": "::1"}
    )
    assert [str(n) for n in config.trusted_proxies] == ["::1/128"]


def test_limiter_refuses_with_retry_after_counts_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    limiter = RateLimiter.for_store("test", None)
    rule = parse_rule("unit", "TEST", "2/minute")
    before = refused_count("test", "unit")
    limiter.hit(rule, "203.0.113.1")
    limiter.hit(rule, "203.0.113.1")
    with caplog.at_level(logging.DEBUG, logger="nextauth.security"):
        for _ in range(3):
            with pytest.raises(RateLimited) as refused:
                limiter.hit(rule, "203.0.113.1", client="203.0.113.1")
            assert 1 <= refused.value.retry_after <= 60
        limiter.hit(rule, "203.0.113.2")  # another client has its own budget
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert (
        len(warnings) == 1
        and "unit" in warnings[0].getMessage()
        and "203.0.113.1" in warnings[0].getMessage()
    )
    assert refused_count("test", "unit") == before + 3


def test_failure_budget_checks_before_and_counts_only_failures() -> None:
    limiter = RateLimiter.for_store("test", None)
    rule = parse_rule("failures", "TEST", "2/minute")
    for _ in range(5):
        limiter.check(rule, "c")  # looking does not use the budget
    limiter.count(rule, "c")
    limiter.count(rule, "c")
    with pytest.raises(RateLimited):
        limiter.check(rule, "c")


def test_redis_limit_is_shared_between_two_instances(redis_uri: str, redis_prefix: str) -> None:
    first = RateLimiter.for_store("sfs", redis_uri, prefix=redis_prefix)
    second = RateLimiter.for_store("sfs", redis_uri, prefix=redis_prefix)
    rule = parse_rule("shared", "TEST", "3/minute")
    first.hit(rule, "203.0.113.5")
    second.hit(rule, "203.0.113.5")
    first.hit(rule, "203.0.113.5")
    with pytest.raises(RateLimited):
        second.hit(rule, "203.0.113.5")  # the other instance saw the first three
    second.hit(rule, "203.0.113.6")


# -- sigmai operations, dispatched in-process with chosen client addresses ------------------------------


def _context(ip: str) -> ChannelContext:
    raw = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw()

    def no_export(_label: bytes, _context: bytes, _length: int) -> bytes:
        raise AssertionError("not used here")

    return ChannelContext(
        component="test",
        peer=PeerKey.parse(KEY_TYPE_ED25519, raw),
        server_key_hash=b"\0" * 32,
        transcript_hash=b"\0" * 32,
        export=no_export,
        client_ip=ip,
    )


def _blinded() -> str:
    return b64url(pin.start("1234").blinded_element)


def _built(component: str, tmp_path: Path, env: dict[str, str]) -> Component:
    env = {"NEXTAUTH_DATA_DIR": str(tmp_path), "NEXTAUTH_MC_GRPC_LISTEN": f"127.0.0.1:{free_port()}", **env}
    config = load_config(component, env)
    module = sfs_service if component == "sfs" else mc_service
    return module.build(config, environ=env)


def _dispose(built: Component) -> None:
    """Built, never started: only the gRPC port (bound at build) and the storage to let go."""
    grpc_server = built.listeners.get("grpc")
    if grpc_server is not None:
        grpc_server.server.stop(None)  # type: ignore[attr-defined]
    built.kv.close()
    built.engine.dispose()


REGISTRATIONS = {
    "sfs": ("register.start", lambda: {"blinded_element": _blinded()}, AppInstance),
    "mc": ("mailbox.register", lambda: {"push_provider": "none"}, Mailbox),
}
LIMIT_NAMES = {"sfs": "REGISTER", "mc": "MAILBOX"}


@pytest.mark.parametrize("component", ["sfs", "mc"])
def test_registrations_are_limited_per_client(component: str, tmp_path: Path) -> None:
    op, params, model = REGISTRATIONS[component]
    name = LIMIT_NAMES[component]
    built = _built(component, tmp_path, {f"NEXTAUTH_{component.upper()}_RATE_LIMIT_{name}": "3/minute"})
    try:
        answers = [
            built.operations.dispatch(_context("198.51.100.7"), {"id": i, "op": op, "params": params()})
            for i in range(5)
        ]
        assert all("result" in a for a in answers[:3]), answers
        for refused in answers[3:]:
            assert refused["error"]["code"] == "rate_limited", refused
            assert 1 <= refused["error"]["retry_after"] <= 60
        other = built.operations.dispatch(_context("198.51.100.8"), {"id": 9, "op": op, "params": params()})
        assert "result" in other, other
        with Session(built.engine) as db:
            assert db.scalar(select(func.count()).select_from(model)) == 4  # refused ones added no row
    finally:
        _dispose(built)


@pytest.mark.parametrize("component", ["sfs", "mc"])
def test_registrations_are_limited_for_all_clients_together(component: str, tmp_path: Path) -> None:
    op, params, _model = REGISTRATIONS[component]
    name = LIMIT_NAMES[component]
    built = _built(component, tmp_path, {f"NEXTAUTH_{component.upper()}_RATE_LIMIT_{name}_ALL": "4/minute"})
    try:
        answers = [
            built.operations.dispatch(_context(f"198.51.100.{i}"), {"id": i, "op": op, "params": params()})
            for i in range(1, 7)
        ]
        assert ["result" in a for a in answers] == [True] * 4 + [False] * 2, answers
        assert answers[-1]["error"]["code"] == "rate_limited"
        # Other operations are not limited by it.
        hello = built.operations.dispatch(_context("198.51.100.99"), {"id": 1, "op": "hello", "params": {}})
        assert "result" in hello
    finally:
        _dispose(built)


def test_unfinished_sfs_registrations_are_purged(tmp_path: Path) -> None:
    built = _built("sfs", tmp_path, {})
    try:
        for i in range(3):
            answer = built.operations.dispatch(
                _context(f"198.51.100.{i}"),
                {"id": i, "op": "register.start", "params": {"blinded_element": _blinded()}},
            )
            assert "result" in answer
        with Session(built.engine) as db:
            rows = db.scalars(select(AppInstance).order_by(AppInstance.id)).all()
            old = utcnow() - timedelta(hours=2)
            # One old and unfinished, one old but finished, one unfinished but recent.
            db.execute(update(AppInstance).where(AppInstance.id == rows[0].id).values(created_at=old))
            db.execute(
                update(AppInstance)
                .where(AppInstance.id == rows[1].id)
                .values(created_at=old, pin_verifier=b"\1" * 32)
            )
            db.commit()
            keep = {rows[1].id, rows[2].id}
        purge = built.listeners["purge"]
        assert purge.run_once() == 1  # type: ignore[attr-defined]
        assert purge_unfinished(built.engine, timedelta(hours=1)) == 0
        with Session(built.engine) as db:
            assert set(db.scalars(select(AppInstance.id)).all()) == keep
    finally:
        _dispose(built)


def test_unused_mailboxes_are_purged_and_used_ones_kept(tmp_path: Path) -> None:
    built = _built("mc", tmp_path, {"NEXTAUTH_MC_UNUSED_MAILBOX_DAYS": "7"})
    try:
        contexts = [_context(f"198.51.100.{i}") for i in range(4)]
        ids = []
        for i, context in enumerate(contexts):
            answer = built.operations.dispatch(
                context, {"id": i, "op": "mailbox.register", "params": {"push_provider": "none"}}
            )
            ids.append(answer["result"]["mailbox"])
            if i == 1:  # fetched by its app
                assert "result" in built.operations.dispatch(context, {"id": 9, "op": "mailbox.fetch"})
        service = MailboxService(built.engine, {})
        token = built.operations.dispatch(
            contexts[2], {"id": 3, "op": "mailbox.register", "params": {"push_provider": "none"}}
        )["result"]["token"]
        service.send(ids[2], token, b"sealed", sender="ns", collapse_id="", ttl=60)  # written to by ns
        with Session(built.engine) as db:
            db.execute(update(Mailbox).values(created_at=utcnow() - timedelta(days=8)))
            db.execute(
                update(Mailbox).where(Mailbox.id == ids[3]).values(created_at=utcnow() - timedelta(days=6))
            )
            db.commit()
        assert built.listeners["purge"].run_once() == 1  # type: ignore[attr-defined]
        with Session(built.engine) as db:
            assert set(db.scalars(select(Mailbox.id)).all()) == {ids[1], ids[2], ids[3]}
    finally:
        _dispose(built)


# -- the whole system with low limits -------------------------------------------------------------------


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    env = {
        "NEXTAUTH_TRUSTED_PROXIES": "127.0.0.1",  # tests tell clients apart by X-Forwarded-For
        "NEXTAUTH_IDP_RATE_LIMIT_LOGIN": "5/minute",
        "NEXTAUTH_IDP_RATE_LIMIT_SAML_SIGNATURES": "3/minute",
        "NEXTAUTH_NS_RATE_LIMIT_API_KEY_FAILURES": "4/minute",
        "NEXTAUTH_NS_RATE_LIMIT_PROVOKE": "3/minute",
        "NEXTAUTH_SFS_RATE_LIMIT_REGISTER": "6/minute",
    }
    running = start_system(tmp_path_factory.mktemp("limits-system"), extra_env=env)
    yield running
    stop_system(running)
    assert running.process.returncode == 0, running.log()


def metric(system: RunningSystem, component: str, limit: str) -> float:
    status, text = system.get("ns", "admin", "/metrics")
    assert status == 200
    found = re.search(
        rf'nextauth_rate_limited_total\{{component="{component}",limit="{limit}"\}} ([0-9.e+]+)', text
    )
    return float(found.group(1)) if found else 0.0


def test_login_page_flood_gets_429_while_another_client_passes(system: RunningSystem) -> None:
    web = Browser(system)
    try:
        flood = "203.0.113.10"
        before = metric(system, "idp", "login")
        for _ in range(5):
            assert web.get("/login", headers={"X-Forwarded-For": flood}).status_code == 200
        # What a client writes left of the proxy's entry does not give it a new budget.
        refused = web.get("/login", headers={"X-Forwarded-For": f"6.6.6.6, {flood}"})
        assert refused.status_code == 429, refused.text[:500]
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert "Too many login pages" in refused.text and "Traceback" not in refused.text
        assert web.get("/login", headers={"X-Forwarded-For": "203.0.113.11"}).status_code == 200
        assert metric(system, "idp", "login") >= before + 1
        assert re.search(r"WARNING .*rate limit login .* by client 203\.0\.113\.10", system.log())
        # Renewing the QR draws a QR too: the same budget, so it is no way around the limit.
        renewed = web.get("/login/qr", headers={"X-Forwarded-For": flood})
        assert renewed.status_code == 429 and "Too many login pages" in renewed.text
    finally:
        web.close()


def _push(web: Browser, user: str, ip: str) -> Any:
    headers = {"Accept": "application/json", "X-Forwarded-For": ip}
    return web.post("/login/push", data={"username": user}, headers=headers)


def _browser(system: RunningSystem, _ip: str) -> Browser:
    return Browser(system)  # its first push gives it the cookie that makes it one browser


def test_login_push_is_limited_per_browser_user_and_client(system: RunningSystem) -> None:
    browsers: list[Browser] = []
    try:
        # Per browser (default 3 a minute), whatever users it names.
        browsers.append(web := _browser(system, "203.0.113.20"))
        assert [_push(web, f"nobody{i}", "203.0.113.20").status_code for i in range(3)] == [200] * 3
        refused = _push(web, "nobody9", "203.0.113.20")
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert "Too many requests" in refused.json()["message"]
        browsers.append(other := _browser(system, "203.0.113.21"))
        assert _push(other, "nobody9", "203.0.113.21").status_code == 200
        # Per user (default 5 in 5 minutes), across browsers and addresses.
        for i in range(5):
            browsers.append(fresh := _browser(system, f"203.0.113.{30 + i}"))
            assert _push(fresh, "victim", f"203.0.113.{30 + i}").status_code == 200
        browsers.append(last := _browser(system, "203.0.113.40"))
        assert _push(last, "victim", "203.0.113.40").status_code == 429
        assert _push(last, "someone", "203.0.113.40").status_code == 200
        # Per client address (default 30 a minute), across browsers.
        statuses = []
        for _ in range(11):
            browsers.append(fresh := _browser(system, "203.0.113.41"))
            statuses += [_push(fresh, f"user{len(statuses)}", "203.0.113.41").status_code for _ in range(3)]
        assert statuses[:30] == [200] * 30 and statuses[30:] == [429] * 3
    finally:
        for each in browsers:
            each.close()


def test_wrong_api_keys_are_limited_per_client_and_logged_without_the_key(system: RunningSystem) -> None:
    wrong = ns_api(system, api_key="na_" + secrets.token_urlsafe(32))
    right = ns_api(system)
    flood = {"X-Forwarded-For": "203.0.113.50"}
    for _ in range(4):
        status, answer = wrong.call("GET", "/v1/servers", headers=flood)
        assert status == 401, answer
    status, answer = wrong.call("GET", "/v1/servers", headers=flood)
    assert (status, answer["error"]) == (429, "rate_limited")
    assert 1 <= answer["retry_after"] <= 60
    # Refused before any lookup, even with the right key: otherwise guessing could go on.
    assert right.call("GET", "/v1/servers", headers=flood)[0] == 429
    assert right.call("GET", "/v1/servers", headers={"X-Forwarded-For": "203.0.113.51"})[0] == 200
    log = system.log()
    assert re.search(r"WARNING .*API key refused .* from client 203\.0\.113\.50", log)
    assert wrong.api_key not in log
    assert metric(system, "ns", "api_key_failures") >= 2


def test_provoke_flood_reaches_the_phone_at_most_three_times(
    system: RunningSystem, tmp_path_factory: pytest.TempPathFactory
) -> None:
    phone = tmp_path_factory.mktemp("provoke-phone")
    assert run_app(phone, "init", "--config", str(system.data_dir / "app-config.json"))[0] == 0
    assert run_app(phone, "register", "--pin", PIN)[0] == 0
    nonce, account = logged_in_once(system, phone, "petra")
    _, view = ns_api(system).call("GET", "/v1/servers/default/sessions/", headers={"X-nonce": nonce})
    assert view["canprovoke"] is True
    page = BrowserPage(system, view["hsid"], "default")
    try:
        page.wait_for("CANPROVOKE")
        for _ in range(20):
            page._ws.send("PROVOKE")
        deadline = time.monotonic() + 15
        while len([e for e in page.events if e.split()[0] in ("NUMBER", "TOOMANY")]) < 20:
            assert time.monotonic() < deadline, page.events
            time.sleep(0.05)
    finally:
        page.close()
    numbers = [e for e in page.events if e.startswith("NUMBER ")]
    toomany = [e for e in page.events if e.startswith("TOOMANY ")]
    assert len(numbers) == 3 and len(toomany) == 17, page.events
    assert 1 <= int(toomany[0].split()[1]) <= 60
    code, inbox = run_app(phone, "inbox")
    assert code == 0, inbox
    assert len([m for m in inbox["messages"] if m["account"] == account and m["type"] == "login"]) <= 3
    assert metric(system, "ns", "provoke") >= 17
    # The page of another session still may push.
    other_nonce, _ = logged_in_once(system, phone, "quentin")
    _, other = ns_api(system).call("GET", "/v1/servers/default/sessions/", headers={"X-nonce": other_nonce})
    other_page = BrowserPage(system, other["hsid"], "default")
    try:
        other_page.wait_for("CANPROVOKE")
        other_page._ws.send("PROVOKE")
        deadline = time.monotonic() + 10
        while not any(e.startswith("NUMBER ") for e in other_page.events):
            assert time.monotonic() < deadline, other_page.events
            time.sleep(0.05)
    finally:
        other_page.close()


def test_sigmai_registration_flood_is_refused_with_rate_limited(
    system: RunningSystem, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The SFS sees the phone's own address (loopback here): registrations from it stop at the limit."""
    results = []
    for _ in range(8):
        home = tmp_path_factory.mktemp("flood-phone")
        assert run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))[0] == 0
        results.append(run_app(home, "register", "--pin", PIN))
        if results[-1][0] != 0:
            break
    code, answer = results[-1]
    assert code != 0 and "rate_limited" in str(answer), results
    assert re.search(r"WARNING .*rate limit register .* by client 127\.0\.0\.1", system.log())


def test_forged_saml_signatures_are_limited_before_the_check(system: RunningSystem) -> None:
    web = Browser(system)
    idp = OneLogin_Saml2_IdPMetadataParser.parse(web.get("/saml/metadata").text)["idp"]
    sp = ServiceProvider("limits-sp.example", idp)
    code, _answer, error = run_nextauth(system, "saml-sp", "add", "--metadata", "-", stdin=sp.metadata())
    assert code == 0, error
    try:
        web.http.headers["X-Forwarded-For"] = "203.0.113.60"
        for _ in range(3):
            response, _ = post_request(web, sp, tamper=True)
            assert response.status_code == 403 and "does not verify" in response.text
        before = system.log().count("does not verify")
        response, _ = post_request(web, sp, tamper=True)
        assert response.status_code == 429, response.text[:500]
        assert int(response.headers["Retry-After"]) >= 1
        assert "signatures that did not verify" in response.text
        # Refused before the check: even a good signature from there waits, and nothing was verified.
        assert post_request(web, sp)[0].status_code == 429
        assert system.log().count("does not verify") == before
        web.http.headers["X-Forwarded-For"] = "203.0.113.61"
        good, _ = post_request(web, sp)
        assert good.status_code == 303, good.text[:500]
    finally:
        web.close()


def test_limits_are_logged_at_start(system: RunningSystem) -> None:
    log = system.log()
    assert "ns rate limits: api_key_failures=4 per 1 minute, provoke=3 per 1 minute" in log
    assert "sfs rate limits: register=6 per 1 minute, register_all=600 per 1 minute" in log


class _StubNs:
    """Just enough of ns for the login page to render: the limit is looked at before ns is asked."""

    server_id = "default"

    def session(self, nonce: str, **_browser: str) -> dict[str, Any]:
        return {"loggedin": False, "loginqrdata": f"NA1-test-{nonce[:8]}", "hsid": "h" * 43}


def test_redis_login_limit_is_shared_between_two_idp_instances(tmp_path: Path, redis_uri: str) -> None:
    """Two IdP instances behind one load balancer, on one Redis: a client's budget is spent on either."""
    env = {
        "NEXTAUTH_IDP_SECRET_KEY": secrets.token_urlsafe(32),
        "NEXTAUTH_IDP_NS_API_URL": "http://127.0.0.1:9/",
        "NEXTAUTH_IDP_NS_API_KEY": "unused",
        "NEXTAUTH_IDP_NS_WEBSOCKET_URL": "ws://127.0.0.1:9/ns/websocket",
        "NEXTAUTH_IDP_DB_URI": f"sqlite:///{tmp_path / 'idp.db'}",
        "NEXTAUTH_IDP_KV_URI": redis_uri,
        "NEXTAUTH_IDP_TRUSTED_PROXIES": "127.0.0.1",
        "NEXTAUTH_IDP_RATE_LIMIT_LOGIN": "4/minute",
    }
    clients = []
    for _ in range(2):
        settings = load_settings(env, data_dir=tmp_path)
        services = build_services(settings)
        services.ns = _StubNs()  # type: ignore[assignment]
        clients.append(build_app(settings, services).test_client())
    # A fresh address of the benchmarking range for each run: the counts live on in Redis for a minute.
    flood = f"198.18.{secrets.randbelow(256)}.{secrets.randbelow(256)}"
    other = f"198.19.{secrets.randbelow(256)}.{secrets.randbelow(256)}"
    statuses = [
        clients[i % 2].get("/login", headers={"X-Forwarded-For": flood}).status_code for i in range(6)
    ]
    assert statuses == [200, 200, 200, 200, 429, 429]
    assert clients[1].get("/login", headers={"X-Forwarded-For": other}).status_code == 200
