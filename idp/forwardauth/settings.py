"""Forward-auth settings (``NEXTAUTH_IDP_FORWARD_AUTH_*``, each also as ``..._FILE``), read once when the
IdP starts. docs/forward-auth.md lists them with their defaults."""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from authserver.config import ConfigError, read_setting
from idp.forwardauth.forwarded import Forwarded
from idp.forwardauth.rules import AccessRules, parse_rules
from nextauth_core.digits import only_digits

PREFIX = "NEXTAUTH_IDP_FORWARD_AUTH_"
# Every setting this module reads, after PREFIX (each also as ..._FILE).
SETTINGS = (
    "USER_HEADER", "NAME_HEADER", "EMAIL_HEADER", "GROUPS_HEADER", "METHOD_HEADER", "RULES", "HOSTS",
    "PLUGIN_TOKEN", "UNKNOWN_HOSTS",
)  # fmt: skip
HEADER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,63}$")
# Headers an identity header must never replace: routing, framing, credentials, proxy bookkeeping.
RESERVED_HEADERS = {
    "authorization", "connection", "content-length", "content-type", "cookie", "forwarded", "host",
    "keep-alive", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
    "x-forwarded-for", "x-forwarded-host", "x-forwarded-method", "x-forwarded-port", "x-forwarded-proto",
    "x-forwarded-uri", "x-real-ip",
}  # fmt: skip


@dataclass(frozen=True)
class HeaderNames:
    """The request headers the protected application reads the identity from."""

    user: str = "Remote-User"
    name: str = "Remote-Name"
    email: str = "Remote-Email"
    groups: str = "Remote-Groups"
    method: str = "Remote-Auth-Method"

    def all(self) -> tuple[str, ...]:
        return (self.user, self.name, self.email, self.groups, self.method)

    def to_json(self) -> dict[str, str]:
        return {"user": self.user, "name": self.name, "email": self.email, "groups": self.groups,
                "method": self.method}  # fmt: skip


@dataclass(frozen=True)
class HostPattern:
    """A host that /auth/return may send the browser back to: ``app.example.com``, ``*.example.com``,
    either with ``:port`` to allow only that port."""

    host: str
    port: int | None = None

    def admits(self, hostname: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.host.startswith("*."):
            suffix = self.host[1:]
            return hostname.endswith(suffix) and len(hostname) > len(suffix)
        return hostname == self.host

    def to_text(self) -> str:
        """As NEXTAUTH_IDP_FORWARD_AUTH_HOSTS spells it (IPv6 literals in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host + (f":{self.port}" if self.port else "")

    @classmethod
    def parse(cls, text: str) -> "HostPattern":
        text = text.strip().lower()
        host, port = text, None
        if text.startswith("["):
            end = text.find("]")
            host, rest = text[: end + 1], text[end + 1 :]
            if end < 0 or (rest and not rest.startswith(":")):
                raise ValueError(text)
            port = int(rest[1:]) if rest else None
        elif ":" in text:
            host, port_text = text.rsplit(":", 1)
            port = int(port_text)
        bare = host[2:] if host.startswith("*.") else host
        if not bare or any(c in bare for c in "*/?#@\\ ") or (port is not None and not 0 < port < 65536):
            raise ValueError(text)
        return cls(host.strip("[]") if host.startswith("[") else host, port)


@dataclass(frozen=True)
class ForwardAuthSettings:
    headers: HeaderNames = field(default_factory=HeaderNames)
    rules: AccessRules = field(default_factory=AccessRules)
    return_hosts: tuple[HostPattern, ...] = ()
    plugin_token: str | None = field(default=None, repr=False)
    # "deny": a request for a host that no return host pattern admits is refused (403), so that a
    # catch-all proxy route cannot carry a spoofed Host past the host rules.
    unknown_hosts: str = "allow"

    def admits_host(self, host: str, asked: Forwarded) -> bool:
        """``host`` normalised; with ``unknown_hosts: deny`` only the hosts of
        NEXTAUTH_IDP_FORWARD_AUTH_HOSTS (with their ports, when they name one)."""
        if self.unknown_hosts == "allow":
            return True
        port = request_port(asked.host, asked.proto)
        bare = host.strip("[]")
        return port is not None and any(pattern.admits(bare, port) for pattern in self.return_hosts)


def request_port(host: str, proto: str) -> int | None:
    """The port a Host header names, or the scheme's; None when it is not a port."""
    tail = host.rsplit("]", 1)[-1] if host.startswith("[") else host
    if ":" not in tail:
        return 443 if proto == "https" else 80
    text = tail.rsplit(":", 1)[1]
    return int(text) if only_digits(text) and 0 < int(text) < 65536 else None


def _header(environ: Mapping[str, str], flag: str, default: str) -> str:
    name = f"{PREFIX}{flag}_HEADER"
    value = read_setting(name, environ) or default
    if not HEADER_NAME.match(value) or value.lower() in RESERVED_HEADERS:
        raise ConfigError(f"{name}: {value!r} is not a header name an identity may travel in")
    return value


def load_settings(environ: Mapping[str, str]) -> ForwardAuthSettings:
    defaults = HeaderNames()
    headers = HeaderNames(
        user=_header(environ, "USER", defaults.user),
        name=_header(environ, "NAME", defaults.name),
        email=_header(environ, "EMAIL", defaults.email),
        groups=_header(environ, "GROUPS", defaults.groups),
        method=_header(environ, "METHOD", defaults.method),
    )
    # Servers that map header names to variables (CGI, WSGI, PHP) read Remote-User and REMOTE-USER
    # alike, so two names that differ only in case are one header.
    folded = [name.lower() for name in headers.all()]
    if len(set(folded)) != len(folded):
        raise ConfigError(f"{PREFIX}*_HEADER: the identity headers must have distinct names")
    rules_text = read_setting(f"{PREFIX}RULES", environ)
    source = environ.get(f"{PREFIX}RULES_FILE") or f"{PREFIX}RULES"
    rules = parse_rules(rules_text, source=source) if rules_text else AccessRules()
    hosts_text = read_setting(f"{PREFIX}HOSTS", environ) or ""
    patterns = []
    for item in hosts_text.split(","):
        if not item.strip():
            continue
        try:
            patterns.append(HostPattern.parse(item))
        except ValueError:
            raise ConfigError(
                f"{PREFIX}HOSTS: {item.strip()!r}: expected host names such as app.example.com, "
                "*.example.com or app.example.com:8443, separated by commas"
            ) from None
    token = read_setting(f"{PREFIX}PLUGIN_TOKEN", environ)
    if token is not None and len(token) < 32:
        raise ConfigError(f"{PREFIX}PLUGIN_TOKEN: at least 32 characters of random text")
    unknown = (read_setting(f"{PREFIX}UNKNOWN_HOSTS", environ) or "allow").strip().lower()
    if unknown not in ("allow", "deny"):
        raise ConfigError(f"{PREFIX}UNKNOWN_HOSTS: allow (the rules decide) or deny (only the HOSTS)")
    if unknown == "deny" and not patterns:
        raise ConfigError(f"{PREFIX}UNKNOWN_HOSTS=deny needs {PREFIX}HOSTS: the protected hosts")
    return ForwardAuthSettings(
        headers=headers, rules=rules, return_hosts=tuple(patterns), plugin_token=token, unknown_hosts=unknown
    )
