"""Which request the proxy asks about, from the headers it describes it with.

Two conventions are in use: ``X-Forwarded-Method/Proto/Host/Uri`` (Traefik's forwardAuth, Caddy's
forward_auth, the usual nginx snippets) and ``X-Original-URL`` (a full URL, or a path) with
``X-Original-Method`` (nginx snippets written for Authelia and authentik). Either will do; both are read.

A request is refused rather than guessed at when it does not name its method, URI or host: deciding it
as ``GET /`` would let path, method and deny rules silently stop applying. It is refused as well when
the two conventions disagree, or a header comes twice: nginx's auth_request passes the client's own
headers on, so a header the proxy's configuration does not set may be the client's.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URI = 8192
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?\.?"
_HOST = re.compile(rf"^(?:{_NAME}|\[[0-9A-Fa-f:.]{{2,45}}\])(?::\d{{1,5}})?$")
_METHOD = re.compile(r"^[A-Za-z]{1,16}$")
_URIS = ("X-Forwarded-Uri", "X-Original-URL")
_JOINED = re.compile(r",\s*(?:/|https?:)", re.IGNORECASE)
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]*")


@dataclass(frozen=True)
class Forwarded:
    """The original request: method (upper case), scheme, Host as sent, and the URI with its query."""

    method: str
    proto: str
    host: str
    uri: str


class Unusable(Exception):
    """The proxy's description is missing or contradicts itself; ``header`` names what to fix."""

    def __init__(self, header: str, problem: str) -> None:
        super().__init__(f"{header}: {problem}")
        self.header = header
        self.problem = problem


def _one(values: list[str], name: str) -> str | None:
    if not values:
        return None
    # WSGI servers join a header sent twice with a comma: "/public,/admin" is two URIs, not one.
    if len(values) > 1 or (name in _URIS and _JOINED.search(values[0])):
        raise Unusable(name, "sent more than once")
    return values[0].strip()


def _agree(name: str, first: str | None, second: str | None, *, fold: bool = False) -> str | None:
    if first is not None and second is not None:
        same = first.lower() == second.lower() if fold else first == second
        if not same:
            raise Unusable(name, "X-Forwarded-* and X-Original-* name different requests")
    return first if first is not None else second


def describe(values: Callable[[str], list[str]]) -> Forwarded:
    """The request the proxy describes; ``values`` gives every value of a header, by name in any case
    (werkzeug's ``headers.getlist``). Raises Unusable naming the header to fix."""
    f_method = _one(values("X-Forwarded-Method"), "X-Forwarded-Method")
    f_proto = _one(values("X-Forwarded-Proto"), "X-Forwarded-Proto")
    f_host = _one(values("X-Forwarded-Host"), "X-Forwarded-Host")
    f_uri = _one(values("X-Forwarded-Uri"), "X-Forwarded-Uri")
    o_method = _one(values("X-Original-Method"), "X-Original-Method")
    o_url = _one(values("X-Original-URL"), "X-Original-URL")

    o_proto = o_host = o_uri = None
    if o_url is not None:
        if o_url.startswith("/"):
            o_uri = o_url
        else:
            try:
                parts = urlsplit(o_url)
            except ValueError:
                raise Unusable("X-Original-URL", "not a URL") from None
            if parts.scheme.lower() not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
                raise Unusable("X-Original-URL", "expected http(s)://host/path or /path")
            o_proto, o_host = parts.scheme.lower(), parts.netloc
            o_uri = o_url[o_url.index(parts.netloc) + len(parts.netloc) :] or "/"

    uri = _agree("X-Forwarded-Uri", f_uri, o_uri)
    if uri is None:
        raise Unusable("X-Forwarded-Uri", "missing (or X-Original-URL): which URI the request is for")
    if not uri.startswith("/") or len(uri) > MAX_URI or not _VISIBLE_ASCII.fullmatch(uri):
        raise Unusable("X-Forwarded-Uri", "expected the request's path and query, starting with /")
    method = _agree("X-Forwarded-Method", f_method, o_method, fold=True)
    if method is None:
        raise Unusable("X-Forwarded-Method", "missing (or X-Original-Method): which method the request has")
    if not _METHOD.match(method):
        raise Unusable("X-Forwarded-Method", "not a method name")
    host = _agree("X-Forwarded-Host", f_host, o_host, fold=True)
    if host is None:
        raise Unusable("X-Forwarded-Host", "missing (or X-Original-URL): which host the request is for")
    if not _HOST.match(host):
        raise Unusable("X-Forwarded-Host", "expected one host name, with an optional port")
    proto = _agree("X-Forwarded-Proto", f_proto.lower() if f_proto else None, o_proto)
    if proto is not None and proto not in ("http", "https"):
        raise Unusable("X-Forwarded-Proto", "expected http or https")
    return Forwarded(method=method.upper(), proto=proto or "https", host=host, uri=uri)
