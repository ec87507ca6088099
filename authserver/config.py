"""Configuration from ``NEXTAUTH_*`` environment variables, each also accepted as ``..._FILE``.

A component's settings are ``NEXTAUTH_<NS|SFS|MC>_<FLAG>``; the shared ones (database, store, logging,
data folder) fall back to ``NEXTAUTH_<FLAG>``. Everything is read and checked once, at start: a bad value
stops the process with a message naming the variable and saying what was expected, never echoing a secret.
"""

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from authserver.storage.kv import DEFAULT_PREFIX as DEFAULT_KV_PREFIX
from authserver.storage.kv import KV_URI_PREFIXES
from authserver.workers import WorkersError, workers_setting
from nextauth_core.digits import only_digits

COMPONENTS = ("ns", "sfs", "mc")
ENDPOINTS = ("admin", "grpc", "http", "sigmai", "websocket")
CLIENT_AUTH_MODES = ("none", "required", "required-ca")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")

# Which listeners each component has, and their ports: standalone (one component per host or container,
# as the seed's network table has them) and all-in-one (every component in one process on loopback).
DEFAULT_PORTS: dict[str, dict[str, dict[str, int]]] = {
    "standalone": {
        "ns": {"http": 8080, "websocket": 9999, "sigmai": 8888, "admin": 9613},
        "sfs": {"sigmai": 8888, "admin": 9613},
        "mc": {"http": 8080, "grpc": 9090, "sigmai": 8888, "admin": 9613},
    },
    "all-in-one": {
        "ns": {"http": 8080, "websocket": 9999, "sigmai": 8888, "admin": 9613},
        "sfs": {"sigmai": 8889, "admin": 9614},
        "mc": {"http": 8081, "grpc": 9090, "sigmai": 8890, "admin": 9615},
    },
}
DEFAULT_HOST = {"standalone": "0.0.0.0", "all-in-one": "127.0.0.1"}  # noqa: S104 - a container's listener

SHARED_FLAGS = ("DB_URI", "KV_URI", "KV_PREFIX", "LOG_LEVEL", "LOG_FORMAT", "DATA_DIR", "TRUSTED_PROXIES")
COMPONENT_FLAGS = (
    "DEFAULT_SIGMAI_URI",
    "HTTP_CLIENT_AUTH",
    "HTTP_CLIENT_CA",
    "IDENTITY_KEY",
    "SIGMAI_HANDSHAKE_TIMEOUT",
    "SIGMAI_IDLE_TIMEOUT",
    "SIGMAI_MAX_FRAME_BYTES",
    "DRAIN_SECONDS",
    "DB_WAIT_SECONDS",
    "WORKERS",
    "HTTP_IDLE_SECONDS",
)
DEFAULT_DRAIN_SECONDS = 20.0
# How long an HTTP connection (REST, the MC's push API, the IdP) may send nothing, before its request or
# between kept-alive requests, before it is closed: longer than proxies keep idle connections to their
# backends (Traefik 90 s, nginx's upstream keepalive_timeout 60 s), so that they close theirs first and
# never send a request on one this side is closing.
DEFAULT_HTTP_IDLE_SECONDS = 120.0
DEFAULT_DB_WAIT_SECONDS = 60.0
# Read here for ns only: the WebSocket address browsers are given.
NS_FLAGS = ("DEFAULT_WEBSOCKET_URI",)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_FILE_BYTES = 1024 * 1024  # a secret or a PEM bundle; anything larger is a wrong path


class ConfigError(Exception):
    """A setting is missing or wrong; the message names the variable and what it should be."""


def read_setting(name: str, environ: Mapping[str, str]) -> str | None:
    """The value of ``name``, or the content of the file named by ``name_FILE`` (Docker secrets).

    One trailing newline is dropped from a file, as editors and ``echo`` add one. An empty value counts
    as unset.
    """
    direct = environ.get(name) or None
    file_name = environ.get(f"{name}_FILE") or None
    if direct is not None and file_name is not None:
        raise ConfigError(f"{name} and {name}_FILE are both set; set only one")
    if file_name is None:
        return direct
    try:
        path = Path(file_name)
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ConfigError(f"{name}_FILE: {file_name} is larger than 1 MiB; is it the right file?")
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not readable UTF-8 text"
        raise ConfigError(f"{name}_FILE: cannot read {file_name} ({reason})") from exc
    if content.endswith("\r\n"):
        content = content[:-2]
    elif content.endswith("\n"):
        content = content[:-1]
    return content or None


def parse_networks(variable: str, value: str | None) -> tuple[Network, ...]:
    """Comma-separated addresses or networks (CIDR) of the proxies whose X-Forwarded-For is believed."""
    networks = []
    for item in (value or "").replace(";", ",").split(","):
        if item.strip():
            try:
                networks.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError as exc:
                raise ConfigError(
                    f"{variable}: expected comma-separated IP addresses or networks such as 10.0.0.0/8, "
                    f"got {item.strip()!r}"
                ) from exc
    return tuple(networks)


@dataclass(frozen=True)
class Listen:
    host: str
    port: int


@dataclass(frozen=True)
class TLSMaterial:
    key_pem: bytes
    certificate_pem: bytes
    key_variable: str
    certificate_variable: str


@dataclass(frozen=True)
class ComponentConfig:
    """Everything a component needs to start. Values that may hold secrets (database and store URIs with
    passwords, keys) stay out of ``repr``, so logging a configuration never leaks them."""

    component: str
    db_uri: str = field(repr=False)
    kv_uri: str | None = field(repr=False)
    kv_prefix: str
    listen: dict[str, Listen]
    tls: dict[str, TLSMaterial] = field(repr=False)
    client_auth: str
    client_ca_pem: bytes | None = field(repr=False)
    identity_key_pem: bytes | None = field(repr=False)
    handshake_timeout: float
    idle_timeout: float
    max_frame_bytes: int
    log_level: str
    log_format: str
    data_dir: Path
    public_sigmai_uri: str | None
    public_websocket_uri: str | None
    trusted_proxies: tuple[Network, ...] = ()
    # On SIGTERM: how long channels and requests in flight may take to finish before the process exits.
    drain_seconds: float = DEFAULT_DRAIN_SECONDS
    # At start: how long to wait for the database to answer before giving up.
    db_wait_seconds: float = DEFAULT_DB_WAIT_SECONDS
    # Processes serving this component (nextauth.supervisor starts them when more than one).
    workers: int = 1
    # An HTTP connection silent this long is closed (none while a request is being served).
    http_idle_seconds: float = DEFAULT_HTTP_IDLE_SECONDS
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)


def parse_listen(name: str, value: str) -> Listen:
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not only_digits(port_text):
        raise ConfigError(f"{name}: expected HOST:PORT (e.g. 0.0.0.0:8080 or [::1]:8080), got {value!r}")
    if host.startswith("["):
        if not host.endswith("]"):
            raise ConfigError(f"{name}: unbalanced brackets around the IPv6 address in {value!r}")
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise ConfigError(f"{name}: {host!r} is not an IPv6 address") from exc
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ConfigError(f"{name}: port must be 1 to 65535, got {port}")
    return Listen(host, port)


def _number(name: str, value: str | None, default: float, *, integer: bool = False) -> float:
    if value is None:
        return default
    try:
        number = int(value) if integer else float(value)
    except ValueError as exc:
        raise ConfigError(f"{name}: expected a {'whole ' if integer else ''}number, got {value!r}") from exc
    if not number > 0:
        raise ConfigError(f"{name}: must be greater than 0")
    return number


KV_PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def kv_prefix_setting(name: str, value: str | None) -> str:
    """The prefix of every key and channel in Redis: deployments (or test runs) sharing one Redis keep
    apart by it. ns, sfs, mc and the IdP of one deployment must use the same one."""
    if value is None:
        return DEFAULT_KV_PREFIX
    if not KV_PREFIX_PATTERN.fullmatch(value):
        raise ConfigError(f"{name}: expected 1 to 64 letters, digits or _ . : -, got {value[:80]!r}")
    return value


def seconds_in_range(
    name: str,
    value: str | None,
    default: float,
    *,
    low: float,
    high: float,
    expected: str,
    above_low: bool = False,
    whole: bool = False,
    zero_turns_off: bool = False,
) -> float:
    """A duration or count setting: ``default`` when unset, else a number from ``low`` to ``high`` (more
    than ``low`` with ``above_low``; or 0 with ``zero_turns_off``); with ``whole``, written in ASCII
    digits only (no sign, point or unit). ``expected`` says what to write, in the error."""
    if value is None:
        return default
    refused = ConfigError(f"{name}: expected {expected}, got {value[:40]!r}")
    text = value.strip()
    if whole and not only_digits(text):
        raise refused
    try:
        seconds: float = int(text) if whole else float(text)
    except ValueError as exc:
        raise refused from exc
    in_range = (low < seconds if above_low else low <= seconds) and seconds <= high
    if not (in_range or (zero_turns_off and seconds == 0)):
        raise refused
    return seconds


def whole_number_in_range(
    name: str, value: str | None, *, default: int, high: int, low: int = 1, unit: str = ""
) -> int:
    """A count setting (attempts, days, seconds) from ``low`` to ``high``; ``unit`` names what it counts,
    in the error."""
    what = f"a whole number of {unit}" if unit else "a whole number"
    expected = f"{what} from {low} to {high}"
    return int(seconds_in_range(name, value, default, low=low, high=high, whole=True, expected=expected))


def _tls_material(prefix: str, endpoint: str, environ: Mapping[str, str]) -> TLSMaterial | None:
    key_name = f"{prefix}_{endpoint.upper()}_TLS_KEY"
    cert_name = f"{prefix}_{endpoint.upper()}_TLS_CERTIFICATE"
    key, certificate = read_setting(key_name, environ), read_setting(cert_name, environ)
    if key is None and certificate is None:
        return None
    if key is None or certificate is None:
        missing = key_name if key is None else cert_name
        raise ConfigError(f"{missing}: needed too, TLS key and certificate go together")
    try:
        private = serialization.load_pem_private_key(key.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{key_name}: not an unencrypted PEM private key") from exc
    try:
        chain = x509.load_pem_x509_certificates(certificate.encode())
    except ValueError as exc:
        raise ConfigError(f"{cert_name}: not a PEM certificate") from exc
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    if chain[0].public_key().public_bytes(encoding, public) != private.public_key().public_bytes(
        encoding, public
    ):
        raise ConfigError(f"{key_name}: does not match the certificate in {cert_name}")
    return TLSMaterial(key.encode(), certificate.encode(), key_name, cert_name)


def load_config(
    component: str, environ: Mapping[str, str] | None = None, *, port_offset_profile: str = "standalone"
) -> ComponentConfig:
    if component not in COMPONENTS:
        raise ValueError(f"unknown component {component!r}")
    env = os.environ if environ is None else environ
    prefix = f"NEXTAUTH_{component.upper()}"

    def setting(flag: str, *, shared: bool = False) -> str | None:
        value = read_setting(f"{prefix}_{flag}", env)
        if value is None and shared:
            value = read_setting(f"NEXTAUTH_{flag}", env)
        return value

    data_dir = Path(setting("DATA_DIR", shared=True) or ".nextauth")
    ports = DEFAULT_PORTS[port_offset_profile][component]
    listen = {}
    for endpoint, port in ports.items():
        name = f"{prefix}_{endpoint.upper()}_LISTEN"
        value = read_setting(name, env)
        listen[endpoint] = (
            parse_listen(name, value) if value else Listen(DEFAULT_HOST[port_offset_profile], port)
        )

    tls = {}
    for endpoint in ENDPOINTS:
        material = _tls_material(prefix, endpoint, env)
        if material is None:
            continue
        if endpoint not in ports:
            raise ConfigError(f"{material.key_variable}: {component} has no {endpoint} endpoint")
        tls[endpoint] = material

    client_auth = (setting("HTTP_CLIENT_AUTH") or "none").lower()
    if client_auth not in CLIENT_AUTH_MODES:
        raise ConfigError(f"{prefix}_HTTP_CLIENT_AUTH: expected one of {', '.join(CLIENT_AUTH_MODES)}")
    ca = setting("HTTP_CLIENT_CA")
    if client_auth != "none":
        if ca is None:
            raise ConfigError(
                f"{prefix}_HTTP_CLIENT_CA: needed when {prefix}_HTTP_CLIENT_AUTH={client_auth} "
                "(the CA, or the accepted clients' own certificates)"
            )
        try:
            x509.load_pem_x509_certificates(ca.encode())
        except ValueError as exc:
            raise ConfigError(f"{prefix}_HTTP_CLIENT_CA: not a PEM certificate") from exc
    if client_auth != "none" and "http" in ports and "http" not in tls:
        raise ConfigError(f"{prefix}_HTTP_CLIENT_AUTH: client certificates need TLS on {prefix}_HTTP_TLS_KEY")

    identity = setting("IDENTITY_KEY")
    if identity is not None:
        try:
            key = serialization.load_pem_private_key(identity.encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{prefix}_IDENTITY_KEY: not an unencrypted PEM private key") from exc
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ConfigError(f"{prefix}_IDENTITY_KEY: must be an Ed25519 key")

    db_uri = setting("DB_URI", shared=True) or f"sqlite:///{(data_dir / f'{component}.db').as_posix()}"
    kv_uri = setting("KV_URI", shared=True)
    if kv_uri is not None and not kv_uri.lower().startswith(KV_URI_PREFIXES):
        raise ConfigError(
            f"{prefix}_KV_URI: expected a redis://, rediss://, unix://, redis+sentinel:// or memory:// URI"
        )
    kv_prefix = kv_prefix_setting(f"{prefix}_KV_PREFIX", setting("KV_PREFIX", shared=True))
    level = (setting("LOG_LEVEL", shared=True) or "INFO").upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"{prefix}_LOG_LEVEL: expected one of {', '.join(LOG_LEVELS)}")
    log_format = (setting("LOG_FORMAT", shared=True) or "text").lower()
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"{prefix}_LOG_FORMAT: expected text or json")

    public_sigmai = setting("DEFAULT_SIGMAI_URI", shared=component == "ns")
    for name, value in ((f"{prefix}_DEFAULT_SIGMAI_URI", public_sigmai),):
        if value is not None and not value.startswith(("ws://", "wss://")):
            raise ConfigError(f"{name}: expected a ws:// or wss:// URI")

    return ComponentConfig(
        component=component,
        db_uri=db_uri,
        kv_uri=kv_uri,
        kv_prefix=kv_prefix,
        listen=listen,
        tls=tls,
        client_auth=client_auth,
        client_ca_pem=ca.encode() if ca else None,
        identity_key_pem=identity.encode() if identity else None,
        handshake_timeout=_number(
            f"{prefix}_SIGMAI_HANDSHAKE_TIMEOUT", setting("SIGMAI_HANDSHAKE_TIMEOUT"), 10.0
        ),
        idle_timeout=_number(f"{prefix}_SIGMAI_IDLE_TIMEOUT", setting("SIGMAI_IDLE_TIMEOUT"), 300.0),
        max_frame_bytes=int(
            _number(
                f"{prefix}_SIGMAI_MAX_FRAME_BYTES", setting("SIGMAI_MAX_FRAME_BYTES"), 65536, integer=True
            )
        ),
        log_level=level,
        log_format=log_format,
        data_dir=data_dir,
        public_sigmai_uri=public_sigmai,
        public_websocket_uri=setting(NS_FLAGS[0], shared=True) if component == "ns" else None,
        trusted_proxies=parse_networks(
            f"{prefix}_TRUSTED_PROXIES"
            if read_setting(f"{prefix}_TRUSTED_PROXIES", env) is not None
            else "NEXTAUTH_TRUSTED_PROXIES",
            setting("TRUSTED_PROXIES", shared=True),
        ),
        http_idle_seconds=seconds_in_range(
            f"{prefix}_HTTP_IDLE_SECONDS",
            setting("HTTP_IDLE_SECONDS"),
            DEFAULT_HTTP_IDLE_SECONDS,
            low=1,
            high=3600,
            expected="a number of seconds from 1 to 3600",
        ),
        drain_seconds=seconds_in_range(
            f"{prefix}_DRAIN_SECONDS",
            setting("DRAIN_SECONDS"),
            DEFAULT_DRAIN_SECONDS,
            low=0,
            high=3600,
            expected="a number of seconds from 0 to 3600",
        ),
        db_wait_seconds=seconds_in_range(
            f"{prefix}_DB_WAIT_SECONDS",
            setting("DB_WAIT_SECONDS"),
            DEFAULT_DB_WAIT_SECONDS,
            low=0,
            high=86400,
            expected="a number of seconds from 0 to 86400",
        ),
        workers=_workers(component, setting("WORKERS"), kv_uri, db_uri, port_offset_profile),
        environ=env,
    )


def _workers(component: str, value: str | None, kv_uri: str | None, db_uri: str, profile: str) -> int:
    if profile == "all-in-one":  # `nextauth all` is one process, for a first look (nextauth.commandline)
        return 1
    prefix = f"NEXTAUTH_{component.upper()}"
    try:
        return workers_setting(
            f"{prefix}_WORKERS",
            value,
            kv_uri=kv_uri,
            db_uri=db_uri,
            kv_variable=f"{prefix}_KV_URI or NEXTAUTH_KV_URI",
        )
    except WorkersError as exc:
        raise ConfigError(str(exc)) from None


def _known_variables() -> set[str]:
    # What each component reads beyond ComponentConfig is declared where it is read (SETTINGS of its
    # services module). Those modules import this one, hence the import here, when the check runs.
    from authserver.services import mc, ns, sfs

    known = {f"NEXTAUTH_{flag}" for flag in (*SHARED_FLAGS, "DEFAULT_SIGMAI_URI", *NS_FLAGS)}
    known.update(f"NEXTAUTH_NS_{flag}" for flag in NS_FLAGS)
    known.update(ns.SETTINGS, sfs.SETTINGS, mc.SETTINGS)
    for component in COMPONENTS:
        prefix = f"NEXTAUTH_{component.upper()}"
        known.update(f"{prefix}_{flag}" for flag in (*SHARED_FLAGS, *COMPONENT_FLAGS))
        for endpoint in ENDPOINTS:
            known.update(
                f"{prefix}_{endpoint.upper()}_{suffix}" for suffix in ("LISTEN", "TLS_KEY", "TLS_CERTIFICATE")
            )
    return known | {f"{name}_FILE" for name in known}


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """NEXTAUTH_ variables nothing reads: most likely typos, worth a warning at start."""
    known = _known_variables()
    return sorted(
        name
        for name in environ
        if name.startswith("NEXTAUTH_")
        and name not in known
        and not name.startswith(("NEXTAUTH_TEST_", "NEXTAUTH_IDP_", "NEXTAUTH_APP_", "NEXTAUTH_BENCH_"))
    )
