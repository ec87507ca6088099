"""The URLs of a forward-auth round trip: where the browser was going, the login page that sends it back,
and the check that the way back leads only to a protected application (no open redirect).

The login page accepts only a path on the IdP as ``next`` (``idp.web.safe_next``); the way back to
another host therefore goes through ``/auth/return?url=...``, which redirects only to hosts the operator
listed (``NEXTAUTH_IDP_FORWARD_AUTH_HOSTS``) or to the IdP itself.
"""

import re
from collections.abc import Iterable
from urllib.parse import urlencode, urlsplit

from idp.forwardauth.settings import HostPattern

RETURN_PATH = "/auth/return"
MAX_URL = 2048
_Q_ZERO = re.compile(r"^0(\.0{0,3})?$")


def original_url(proto: str | None, host: str | None, uri: str | None) -> str:
    """The URL the browser asked the proxy for, from Traefik's X-Forwarded-Proto/Host/Uri. Too long a
    URL shrinks to the site's root rather than make a login link no browser keeps."""
    scheme = proto.strip().lower() if proto else ""
    scheme = scheme if scheme in ("http", "https") else "https"
    host = (host or "").strip()
    uri = uri if uri and uri.startswith("/") else "/"
    url = f"{scheme}://{host}{uri}"
    return url if len(url) <= MAX_URL else f"{scheme}://{host}/"


def return_path(url: str) -> str:
    """The IdP-local path that sends the browser on to ``url`` once it is logged in."""
    return f"{RETURN_PATH}?{urlencode({'url': url})}"


def wants_html(accept: str | None) -> bool:
    """A browser navigating (Accept names text/html with a non-zero quality), not an API client."""
    for element in (accept or "").split(","):
        media, *params = element.split(";")
        if media.strip().lower() != "text/html":
            continue
        quality = "1"
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                quality = value.strip()
        if not _Q_ZERO.match(quality):
            return True
    return False


def safe_return(url: str | None, allowed: Iterable[HostPattern], *, idp_url: str) -> str | None:
    """``url`` if it leads to an allowed host (or the IdP) over http or https; None for anything else:
    other hosts, user info, odd characters, relative or scheme-less URLs.

    Plain http stays allowed behind an https IdP: Traefik's forwardAuth reports the scheme of the
    connection it received, which is http behind a load balancer that ends TLS, and the session cookie
    is Secure anyway."""
    if not url or len(url) > MAX_URL or any(not 0x21 <= ord(c) <= 0x7E for c in url) or "\\" in url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    idp = urlsplit(idp_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    effective = port or (443 if parts.scheme == "https" else 80)
    if parts.hostname == idp.hostname and effective == (idp.port or (443 if idp.scheme == "https" else 80)):
        return url
    if any(pattern.admits(parts.hostname, effective) for pattern in allowed):
        return url
    return None
