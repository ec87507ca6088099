"""nextAuth Server: logins, enrolment and signing; the REST API for business applications."""

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from gevent.pywsgi import WSGIServer

from authserver.audit import settings as audit_settings
from authserver.config import ComponentConfig, ConfigError, read_setting, seconds_in_range
from authserver.metrics import instrument_flask
from authserver.ns import retention
from authserver.ns.access import AccessControl
from authserver.ns.api import make_api
from authserver.ns.browser import BrowserSocketHandler, make_browser_app
from authserver.ns.browser_hub import BrowserHub
from authserver.ns.common import parse_trusted_sfs_keys, unbound_accounts
from authserver.ns.enrolment import EnrolmentService
from authserver.ns.login import LoginService
from authserver.ns.mc_client import client_for, parse_message_centers
from authserver.ns.openapi import add_openapi_routes
from authserver.ns.push import PushLoginService
from authserver.ns.rest.context import EXTENSION
from authserver.ns.rest.fast_status import FastSessionStatus
from authserver.ns.servers import ServerRegistry
from authserver.ns.transactions import TransactionService
from authserver.purge import PeriodicPurge
from authserver.ratelimit import describe, rule_setting
from authserver.services.info_api import add_info_route
from authserver.services.runtime import Component, build_component
from authserver.storage.kv import KeyValueStore
from nextauth_core.secret_files import secret_file

log = logging.getLogger("nextauth.ns")

# The settings read here (authserver.config reads the rest); the typo check knows them from this list.
SETTINGS = (
    "NEXTAUTH_NS_ROOT_API_KEY",
    "NEXTAUTH_NS_TRUSTED_SFS_KEYS",
    "NEXTAUTH_NS_MESSAGE_CENTERS",
    "NEXTAUTH_NS_LOGIN_QR_TTL",
    "NEXTAUTH_NS_SESSION_TTL",
    "NEXTAUTH_NS_ENROLMENT_TTL",
    "NEXTAUTH_NS_INVITE_TTL",
    "NEXTAUTH_NS_INVITE_URL",
    "NEXTAUTH_NS_RATE_LIMIT_PROVOKE",
    "NEXTAUTH_NS_RATE_LIMIT_API_KEY_FAILURES",
    retention.SETTING,
    *audit_settings.setting_names("ns"),
)


def _trusted_sfs(config: ComponentConfig, environ: dict[str, str], extra: list[str]) -> list[str]:
    value = read_setting("NEXTAUTH_NS_TRUSTED_SFS_KEYS", environ) or ""
    keys = [item for item in value.replace(";", ",").split(",") if item.strip()] + extra
    try:
        parse_trusted_sfs_keys(keys)
    except ValueError as exc:
        raise ConfigError(
            f"NEXTAUTH_NS_TRUSTED_SFS_KEYS: {exc}; expected comma-separated SFS_KEY:ATTESTATION_KEY pairs"
        ) from exc
    return keys


def _seconds(environ: dict[str, str], name: str, default: float) -> float:
    return seconds_in_range(
        name,
        read_setting(name, environ),
        default,
        low=0,
        above_low=True,
        high=30 * 86400,
        expected="a number of seconds, more than 0 and at most 30 days",
    )


def invite_ttl(environ: Mapping[str, str]) -> float:
    """How long an invite stays usable unless its maker says otherwise (``NEXTAUTH_NS_INVITE_TTL``)."""
    return seconds_in_range(
        "NEXTAUTH_NS_INVITE_TTL",
        read_setting("NEXTAUTH_NS_INVITE_TTL", environ),
        86400,
        low=60,
        high=30 * 86400,
        expected="a number of seconds from 60 to 30 days",
    )


def invite_url(environ: Mapping[str, str]) -> str | None:
    """The start of every invite link, the IdP's enrolment page: ``https://idp.example/enrol/``."""
    value = read_setting("NEXTAUTH_NS_INVITE_URL", environ)
    if value is None:
        return None
    if not value.startswith(("https://", "http://")) or "?" in value or "#" in value:
        raise ConfigError("NEXTAUTH_NS_INVITE_URL: expected the http(s):// address of the IdP's /enrol/ page")
    return value if value.endswith("/") else value + "/"


def _root_api_key(config: ComponentConfig, environ: dict[str, str], *, generate: bool) -> str | None:
    configured = read_setting("NEXTAUTH_NS_ROOT_API_KEY", environ)
    if configured:
        if len(configured) < 24:
            raise ConfigError("NEXTAUTH_NS_ROOT_API_KEY: must be at least 24 characters")
        return configured
    if not generate:
        return None
    # Embedded mode only: a root key for the person trying things out, kept beside the SQLite files.
    return secret_file(Path(config.data_dir) / "ns-root-api-key", lambda: "na_root_" + os.urandom(24).hex())


def build(
    config: ComponentConfig,
    *,
    environ: dict[str, str] | None = None,
    trusted_sfs_keys: list[str] | None = None,
    message_centers: dict[str, str] | None = None,
    embedded: bool = False,
) -> Component:
    environ = dict(os.environ if environ is None else environ)
    trusted = parse_trusted_sfs_keys(_trusted_sfs(config, environ, trusted_sfs_keys or []))
    root_key = _root_api_key(config, environ, generate=embedded)

    holder: dict[str, ServerRegistry] = {}
    component = build_component(
        config, "nextAuth Server", key_lookup=lambda key_hash: holder["servers"].identity_for(key_hash)
    )
    servers = holder["servers"] = ServerRegistry(component.engine)
    default_server = servers.ensure_default()
    # ns answers for many keys; the one it shows as "its" key (info, hello) is the default server's.
    component.identity = default_server.identity
    sigmai_uri = config.public_sigmai_uri or component.urls["sigmai"]
    kv: KeyValueStore = component.kv
    audit = audit_settings.build_trail("ns", component.engine, environ)
    component.listeners["audit"] = audit
    component.listeners["audit-purge"] = audit_settings.retention_purge("ns", audit, environ)
    keep = retention.retention(environ)
    component.listeners["purge"] = PeriodicPurge(
        "ns", "sessions", lambda: retention.purge_sessions(component.engine, keep)
    )
    component.listeners["enrolment-purge"] = PeriodicPurge(
        "ns", "enrolments", lambda: retention.purge_enrolments(component.engine, keep)
    )
    login = LoginService(
        component.engine,
        kv,
        servers,
        trusted,
        sigmai_uri,
        qr_ttl=_seconds(environ, "NEXTAUTH_NS_LOGIN_QR_TTL", 60),
        session_ttl=_seconds(environ, "NEXTAUTH_NS_SESSION_TTL", 8 * 3600),
        audit=audit,
    )
    enrolment = EnrolmentService(
        component.engine,
        servers,
        login,
        sigmai_uri,
        ttl=_seconds(environ, "NEXTAUTH_NS_ENROLMENT_TTL", 600),
        invite_ttl=invite_ttl(environ),
        invite_url=invite_url(environ),
    )
    access = AccessControl(component.engine, "ns", root_key, audit)
    key_failures = rule_setting(
        environ, "NEXTAUTH_NS_RATE_LIMIT_API_KEY_FAILURES", "api_key_failures", "30/minute"
    )
    access.limit_failures(component.limiter, key_failures)
    provoke = rule_setting(environ, "NEXTAUTH_NS_RATE_LIMIT_PROVOKE", "provoke", "3/minute")
    log.info("ns rate limits: %s", describe([key_failures, provoke]))
    centers_setting = read_setting("NEXTAUTH_NS_MESSAGE_CENTERS", environ)
    centers = {**parse_message_centers(centers_setting), **(message_centers or {})}
    clients = {key_hash: client_for(address) for key_hash, address in centers.items()}
    component.on_stop.extend(client.close for client in clients.values())
    push = PushLoginService(component.engine, login, clients)
    transactions = TransactionService(component.engine, kv, servers, login, clients, sigmai_uri)

    operations = component.operations
    operations.register("login.start")(login.login_start)
    operations.register("login.finish")(login.login_finish)
    operations.register("login.cancel")(login.login_cancel)
    operations.register("session.logout")(login.logout_from_phone)
    operations.register("enrol.start")(enrolment.enrol_start)
    operations.register("enrol.finish")(enrolment.enrol_finish)
    operations.register("sign.start")(transactions.sign_start)
    operations.register("sign.finish")(transactions.sign_finish)

    api = make_api(
        component.engine,
        servers,
        access,
        login,
        enrolment,
        push,
        transactions,
        trusted_proxies=config.trusted_proxies,
        audit=audit,
    )
    add_info_route(api, component)
    add_openapi_routes(api)
    instrument_flask(api, "ns")
    # The status call every login page polls is answered before Flask when it is the usual one.
    component.add_wsgi("http", FastSessionStatus(api, api.extensions[EXTENSION]), api=True)
    hub = BrowserHub(kv)
    component.on_start.append(hub.start)
    # After the listeners have drained: a page still open during the drain must still hear its login.
    component.on_stop.insert(0, hub.stop)
    component.listeners["websocket"] = WSGIServer(
        component.address("websocket"),
        make_browser_app(
            hub,
            servers,
            login,
            push,
            limiter=component.limiter,
            provoke_rule=provoke,
            trusted_proxies=config.trusted_proxies,
        ),
        log=None,
        handler_class=BrowserSocketHandler,
        **component.tls_kwargs("websocket"),
    )
    component.urls["websocket"] = component.url("websocket", "ws")
    component.extras = {
        "default_server": default_server,
        "root_api_key": root_key,
        "access": access,
        "enrolment": enrolment,
    }
    if not trusted:
        log.warning("no trusted SFS keys (NEXTAUTH_NS_TRUSTED_SFS_KEYS): no app can enrol or log in")
    unbound = unbound_accounts(component.engine)
    if unbound:
        log.warning(
            "%d accounts were enrolled before second factors were bound to the app: they must be enrolled "
            "again (REST: second_factor_bound false; docs/security.md)",
            unbound,
        )
    return component
