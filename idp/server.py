"""Run the IdP: its settings (``NEXTAUTH_IDP_*``, each also as ``_FILE``) and its gevent server.

The names the IdP reads are declared where they are read (``FLAGS`` here, the rate limits, forward-auth's
and SAML's settings); ``known_variables`` gathers them, so a misspelt ``NEXTAUTH_IDP_*`` is reported at
start as the components' are.
"""

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from flask import Flask
from gevent.pywsgi import WSGIServer

from authserver import workers
from authserver.audit import AuditTrail
from authserver.audit import settings as audit_settings
from authserver.audit.sinks import WebhookSink
from authserver.config import (
    DEFAULT_HTTP_IDLE_SECONDS,
    ConfigError,
    Listen,
    Network,
    kv_prefix_setting,
    parse_listen,
    read_setting,
    seconds_in_range,
)
from authserver.ratelimit import RateLimiter, Rule, trusted_proxies_setting
from authserver.storage import db
from authserver.storage.kv import KV_URI_PREFIXES, open_kv
from authserver.transport.servers import BoundedWSGIServer
from authserver.workers import WorkersError, workers_setting
from idp.admin import make_idp_admin_app
from idp.authenticator import AuthenticatorConfig
from idp.branding import Branding, load_branding
from idp.context import IdpServices
from idp.directory import Directory
from idp.forwardauth import settings as forward_auth_settings
from idp.housekeeping import Housekeeping
from idp.keys import KeyRing
from idp.long_urls import IdpHandler
from idp.ns_client import NsClient
from idp.ns_watch import NsSessionWatch
from idp.oidc import pairwise
from idp.ratelimits import IdpLimits, default_rules, rate_limit_variables, rules_from
from idp.saml import config as saml_config
from idp.sessions import SessionManager
from idp.web import create_app
from nextauth_core.digits import only_digits
from nextauth_core.secret_files import secret_file

PREFIX = "NEXTAUTH_IDP_"
# Each NEXTAUTH_IDP_<flag> that load_settings reads (its get() takes no other), and two read before or
# beside it: the log level (nextauth.idp_runner) and the templates and web app folders (idp.web).
FLAGS = (
    "LISTEN", "SECRET_KEY", "NS_WEBSOCKET_URL", "NS_API_URL", "NS_API_KEY", "NS_SERVER", "PUBLIC_URL",
    "DB_URI", "KV_URI", "KV_PREFIX", "COOKIE_DOMAIN", "SESSION_SECONDS", "NS_CHECK_SECONDS",
    "TRUSTED_PROXIES", "LOG_LEVEL", "TEMPLATES_DIR", "OIDC_REQUIRE_PAR",
    "OIDC_PAIRWISE_SECRET", "ADMIN_API_KEY", "DEVICE_CODE_SECONDS", "OIDC_POLL_SECONDS", "ADMIN_PORT",
    "AUTHENTICATOR_CONFIG", "AUTHENTICATOR_NS_URI", "WEBAPP_DIR",
    "BRAND_NAME", "BRAND_LOGO", "BRAND_COLOR", "BRAND_COLOR_DARK", "HELP_URL", "HELP_TEXT",
    "ADMIN_GROUP", "HELPDESK_GROUP", "WORKERS", "HTTP_IDLE_SECONDS",
)  # fmt: skip
# The admin port (/livez, /readyz, /metrics): 9613 like the components' in a container of its own; in
# `nextauth all` the one after the three components' (9613 to 9615).
ADMIN_PORT = {"standalone": 9613, "embedded": 9616}


def known_variables() -> frozenset[str]:
    """Every ``NEXTAUTH_IDP_*`` variable the IdP reads, each also as ``..._FILE``."""
    names = {PREFIX + flag for flag in FLAGS}
    names |= set(rate_limit_variables())
    names |= {forward_auth_settings.PREFIX + flag for flag in forward_auth_settings.SETTINGS}
    names |= saml_config.variables()
    names |= {name for name in audit_settings.setting_names("idp") if name.startswith(PREFIX)}
    return frozenset(names | {f"{name}_FILE" for name in names})


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """NEXTAUTH_IDP_ variables nothing reads: most likely typos, worth a warning at start."""
    known = known_variables()
    return sorted(name for name in environ if name.startswith(PREFIX) and name not in known)


@dataclass(frozen=True)
class IdpSettings:
    listen: Listen
    ns_api_url: str
    ns_api_key: str
    ns_server: str
    websocket_url: str
    secret_key: bytes = field(repr=False)
    public_url: str
    db_uri: str = field(repr=False)
    kv_uri: str | None = field(repr=False)
    kv_prefix: str
    cookie_domain: str | None
    session_seconds: int
    ns_check_seconds: float = 15.0
    rate_limits: dict[str, Rule] = field(default_factory=default_rules)
    trusted_proxies: tuple[Network, ...] = ()
    pairwise_secret: bytes = field(default=b"", repr=False)
    oidc_require_par: bool = False
    device_code_seconds: int = 600
    oidc_poll_seconds: int = 5
    # A browser's or client's connection silent this long is closed (authserver/transport/wsgi.py).
    http_idle_seconds: float = DEFAULT_HTTP_IDLE_SECONDS
    authenticator: AuthenticatorConfig | None = None
    admin_listen: Listen | None = None
    branding: Branding = field(default_factory=Branding)
    # Directory groups the admin console (/admin/) admits: everything, and the help desk's share.
    admin_group: str = "nextauth-admins"
    helpdesk_group: str = "nextauth-helpdesk"
    # Where the administration events go beside the database (NEXTAUTH_IDP_AUDIT_*), and how long kept.
    audit_sinks: tuple[WebhookSink, ...] = field(default=(), repr=False)
    audit_retention_days: int = 90
    workers: int = 1  # processes (nextauth.supervisor starts them when more than one)


def load_settings(
    environ: Mapping[str, str],
    *,
    data_dir: Path,
    defaults: Mapping[str, str] | None = None,
    embedded: bool = False,
) -> IdpSettings:
    """``defaults`` fill in what the all-in-one mode knows (where its ns runs, its root API key)."""
    defaults = defaults or {}

    def get(flag: str, required: bool = True, shared: bool = False) -> str | None:
        assert flag in FLAGS, f"declare {flag} in FLAGS, so it is not reported as a typo"
        name = PREFIX + flag
        value = read_setting(name, environ)
        if value is None and shared:
            value = read_setting(f"NEXTAUTH_{flag}", environ)
        if value is None:
            value = defaults.get(flag)
        if value is None and required:
            raise ConfigError(f"{name}: required")
        return value

    listen_name = "NEXTAUTH_IDP_LISTEN"
    listen = parse_listen(
        listen_name, get("LISTEN", required=False) or ("127.0.0.1:8000" if embedded else "0.0.0.0:8000")
    )
    secret = get("SECRET_KEY", required=not embedded)
    if secret is None:
        # Embedded mode only: a cookie-signing key kept beside the SQLite files, stable across restarts.
        secret = secret_file(data_dir / "idp-secret-key", lambda: secrets.token_urlsafe(48))
    if len(secret) < 32:
        raise ConfigError("NEXTAUTH_IDP_SECRET_KEY: must be at least 32 characters of random text")
    websocket_url = get("NS_WEBSOCKET_URL") or ""
    if not websocket_url.startswith(("ws://", "wss://")):
        raise ConfigError(
            "NEXTAUTH_IDP_NS_WEBSOCKET_URL: expected the ws:// or wss:// URL browsers use for ns"
        )
    api_url = get("NS_API_URL") or ""
    if not api_url.startswith(("http://", "https://")):
        raise ConfigError("NEXTAUTH_IDP_NS_API_URL: expected the http(s):// URL of the ns REST API")
    public_url = (get("PUBLIC_URL", required=False) or f"http://{listen.host}:{listen.port}").rstrip("/")
    if not public_url.startswith(("http://", "https://")) or "?" in public_url or "#" in public_url:
        raise ConfigError("NEXTAUTH_IDP_PUBLIC_URL: expected the http(s):// address browsers use for the IdP")
    kv_uri = get("KV_URI", required=False, shared=True)
    if kv_uri is not None and not kv_uri.lower().startswith(KV_URI_PREFIXES):
        raise ConfigError(
            "NEXTAUTH_IDP_KV_URI: expected a redis://, rediss://, unix://, redis+sentinel:// or memory:// URI"
        )
    kv_prefix = kv_prefix_setting("NEXTAUTH_IDP_KV_PREFIX", get("KV_PREFIX", required=False, shared=True))
    cookie_domain = get("COOKIE_DOMAIN", required=False)
    if cookie_domain is not None and (not cookie_domain or any(c in cookie_domain for c in "/:; ")):
        raise ConfigError("NEXTAUTH_IDP_COOKIE_DOMAIN: expected a domain name, e.g. example.com")
    session_seconds = int(
        seconds_in_range(
            "NEXTAUTH_IDP_SESSION_SECONDS",
            get("SESSION_SECONDS", required=False),
            28800,
            low=60,
            high=30 * 86400,
            whole=True,
            expected="a whole number of seconds from 60 to 2592000",
        )
    )
    ns_check_seconds = seconds_in_range(
        "NEXTAUTH_IDP_NS_CHECK_SECONDS",
        get("NS_CHECK_SECONDS", required=False),
        15.0,
        low=1,
        high=3600,
        zero_turns_off=True,
        expected="0 (off) or seconds from 1 to 3600",
    )
    device_code_seconds = int(
        seconds_in_range(
            "NEXTAUTH_IDP_DEVICE_CODE_SECONDS",
            get("DEVICE_CODE_SECONDS", required=False),
            600,
            low=10,
            high=3600,
            whole=True,
            expected="a whole number of seconds from 10 to 3600",
        )
    )
    oidc_poll_seconds = int(
        seconds_in_range(
            "NEXTAUTH_IDP_OIDC_POLL_SECONDS",
            get("OIDC_POLL_SECONDS", required=False),
            5,
            low=1,
            high=60,
            whole=True,
            expected="a whole number of seconds from 1 to 60",
        )
    )
    http_idle_seconds = seconds_in_range(
        "NEXTAUTH_IDP_HTTP_IDLE_SECONDS",
        get("HTTP_IDLE_SECONDS", required=False),
        DEFAULT_HTTP_IDLE_SECONDS,
        low=1,
        high=3600,
        expected="a number of seconds from 1 to 3600",
    )
    admin_listen = _admin_listen(get("ADMIN_PORT", required=False), listen, embedded)
    db_uri = get("DB_URI", required=False, shared=True) or f"sqlite:///{(data_dir / 'idp.db').as_posix()}"
    try:
        worker_count = (
            1
            if embedded
            else workers_setting(
                PREFIX + "WORKERS",
                get("WORKERS", required=False),
                kv_uri=kv_uri,
                db_uri=db_uri,
                kv_variable="NEXTAUTH_IDP_KV_URI or NEXTAUTH_KV_URI",
            )
        )
    except WorkersError as exc:
        raise ConfigError(str(exc)) from None
    return IdpSettings(
        listen=listen,
        ns_api_url=api_url,
        ns_api_key=get("NS_API_KEY") or "",
        ns_server=get("NS_SERVER", required=False) or "default",
        websocket_url=websocket_url,
        secret_key=secret.encode(),
        public_url=public_url,
        db_uri=db_uri,
        kv_uri=kv_uri,
        kv_prefix=kv_prefix,
        cookie_domain=cookie_domain,
        session_seconds=session_seconds,
        http_idle_seconds=http_idle_seconds,
        ns_check_seconds=ns_check_seconds,
        rate_limits=rules_from(environ),
        trusted_proxies=trusted_proxies_setting(environ, PREFIX + "TRUSTED_PROXIES"),
        pairwise_secret=_pairwise_secret(get("OIDC_PAIRWISE_SECRET", required=False), data_dir),
        oidc_require_par=_flag(PREFIX + "OIDC_REQUIRE_PAR", get("OIDC_REQUIRE_PAR", required=False)),
        device_code_seconds=device_code_seconds,
        oidc_poll_seconds=oidc_poll_seconds,
        authenticator=_authenticator(
            get("AUTHENTICATOR_CONFIG", required=False),
            get("AUTHENTICATOR_NS_URI", required=False),
            secure=public_url.startswith("https://"),
        ),
        admin_listen=admin_listen,
        branding=load_branding(lambda flag: get(flag, required=False)),
        admin_group=_group("ADMIN_GROUP", get("ADMIN_GROUP", required=False), "nextauth-admins"),
        helpdesk_group=_group("HELPDESK_GROUP", get("HELPDESK_GROUP", required=False), "nextauth-helpdesk"),
        audit_sinks=tuple(audit_settings.sinks("idp", environ)),
        audit_retention_days=audit_settings.retention("idp", environ).days,
        workers=worker_count,
    )


def _group(flag: str, value: str | None, default: str) -> str:
    """A group name as the directory stores them (``idp.directory``): what ``nextauth user set --groups``
    could have put there, or no one would ever be admitted."""
    text = default if value is None else value.strip()
    if not text or len(text) > 100 or any(c in text for c in ",\r\n"):
        raise ConfigError(f"{PREFIX}{flag}: a group name, 1 to 100 characters without commas")
    return text


def _authenticator(app_config: str | None, ns_uri: str | None, *, secure: bool) -> AuthenticatorConfig | None:
    """The web authenticator is served only when the operator says where its services are. From an
    https:// IdP a browser opens only wss:// connections: a ws:// endpoint would fail on every phone."""
    if app_config is None and ns_uri is None:
        return None
    if app_config is None or ns_uri is None:
        raise ConfigError(
            "NEXTAUTH_IDP_AUTHENTICATOR_CONFIG and NEXTAUTH_IDP_AUTHENTICATOR_NS_URI: set both or neither"
        )
    try:
        config = AuthenticatorConfig.parse(app_config, ns_uri)
    except ValueError as exc:
        raise ConfigError(f"NEXTAUTH_IDP_AUTHENTICATOR_CONFIG: {exc}") from exc
    insecure = [uri for uri in config.connect_sources() if uri.startswith("ws://")]
    if secure and insecure:
        raise ConfigError(
            "NEXTAUTH_IDP_AUTHENTICATOR_CONFIG and ..._NS_URI: the IdP is served over https, so browsers "
            f"refuse ws:// connections; use wss:// for {', '.join(insecure)}"
        )
    return config


def _admin_listen(value: str | None, listen: Listen, embedded: bool) -> Listen | None:
    """A port on the IdP's own address, or HOST:PORT, or ``off``; never the public port, which would put
    the metrics (who logs in, how often) in front of anyone who can reach the login page."""
    name = PREFIX + "ADMIN_PORT"
    text = (value or "").strip()
    if text.lower() == "off":
        return None
    if not text:
        admin = Listen(listen.host, ADMIN_PORT["embedded" if embedded else "standalone"])
    elif only_digits(text):
        if not 1 <= int(text) <= 65535:
            raise ConfigError(f"{name}: port must be 1 to 65535, got {text}")
        admin = Listen(listen.host, int(text))
    elif ":" in text:
        admin = parse_listen(name, text)
    else:
        raise ConfigError(f"{name}: expected a port, HOST:PORT or off, got {text!r}")
    if admin.port == listen.port:
        raise ConfigError(
            f"{name}: must not be the IdP's public port {listen.port}: metrics must not be public"
        )
    return admin


def _pairwise_secret(configured: str | None, data_dir: Path) -> bytes:
    try:
        return pairwise.load_secret(configured, data_dir)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def _flag(name: str, value: str | None) -> bool:
    if value is None or value.strip().lower() in ("", "0", "false", "no", "off"):
        return False
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name}: expected true or false")


def build_services(settings: IdpSettings) -> IdpServices:
    engine = db.create_engine_for(settings.db_uri)
    db.upgrade(engine)
    kv = open_kv(settings.kv_uri, prefix=settings.kv_prefix)
    lifetime = timedelta(seconds=settings.session_seconds)
    # Retired keys stay published for as long as anything they signed can live: a session, a day of tokens.
    keys = KeyRing(
        engine, issuer=settings.public_url, publish_after_retirement=max(lifetime, timedelta(days=1))
    )
    # The signing keys every login needs, made now (by the first worker or instance to start) rather than
    # by whichever signs first: the others then know them from the start, where a token signed with a key
    # they have not loaded would be refused until their ring's next reload.
    keys.active("session", "Ed25519")
    keys.active("oidc", "ES256")
    return IdpServices(
        ns=NsClient(settings.ns_api_url, settings.ns_api_key, settings.ns_server),
        engine=engine,
        kv=kv,
        keys=keys,
        directory=Directory(engine, cache_seconds=5.0),
        sessions=SessionManager(engine, kv, keys, issuer=settings.public_url, lifetime=lifetime),
        issuer=settings.public_url,
        oidc_require_par=settings.oidc_require_par,
        cookie_domain=settings.cookie_domain,
        secure_cookies=settings.public_url.startswith("https://"),
        pairwise_secret=settings.pairwise_secret,
        limits=IdpLimits(
            RateLimiter.for_store("idp", settings.kv_uri, prefix=settings.kv_prefix),
            settings.rate_limits,
            settings.trusted_proxies,
        ),
        device_code_seconds=settings.device_code_seconds,
        oidc_poll_seconds=settings.oidc_poll_seconds,
        authenticator=settings.authenticator,
        branding=settings.branding,
        admin_group=settings.admin_group,
        helpdesk_group=settings.helpdesk_group,
        audit=AuditTrail(engine, "idp", sinks=settings.audit_sinks),
        audit_retention_days=settings.audit_retention_days,
    )


def build_app(settings: IdpSettings, services: IdpServices | None = None) -> Flask:
    return create_app(
        services or build_services(settings),
        secret_key=settings.secret_key,
        websocket_url=settings.websocket_url,
    )


class IdpServer(BoundedWSGIServer):
    """The IdP's HTTP server, with the watch that follows ns's sessions and the housekeeping beside it."""

    def __init__(self, settings: IdpSettings) -> None:
        services = build_services(settings)
        super().__init__(
            workers.listener("http", settings.listen.host, settings.listen.port),
            build_app(settings, services),
            log=None,
            # Small answers leave at once (authserver/transport/wsgi.py); too long a URL gets the error page.
            handler_class=IdpHandler,
            http_idle_seconds=settings.http_idle_seconds,
        )
        self.services = services
        self.watch = NsSessionWatch(services, settings.ns_check_seconds)
        self.housekeeping = Housekeeping(services)
        self.admin: WSGIServer | None = None
        self.admin_url: str | None = None
        if settings.admin_listen is not None:
            host, port = settings.admin_listen.host, settings.admin_listen.port
            self.admin = WSGIServer(
                workers.listener("admin", host, port), make_idp_admin_app(services), log=None
            )
            self.admin_url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"

    def start(self) -> None:
        if self.admin is not None:
            self.admin.start()
        super().start()
        self.services.trail().start()  # each worker sends the events it records
        if workers.is_leader():  # one of several workers is enough to follow ns and to purge
            self.watch.start()
            self.housekeeping.start()

    def stop(self, timeout: float | None = None) -> None:
        self.watch.stop()
        self.housekeeping.stop()
        super().stop(timeout=timeout)
        self.services.trail().stop(timeout)
        if self.admin is not None:
            self.admin.stop(timeout=timeout)


def build_server(settings: IdpSettings) -> IdpServer:
    return IdpServer(settings)
