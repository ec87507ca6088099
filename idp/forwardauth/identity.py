"""Who the browser is, for forward-auth: the session cookie's token checked without a database query per
request, and the identity headers the application receives.

``SessionManager.verify`` reloads the key ring from the database whenever a token names a key it does not
know (a key another instance just created). Forward-auth answers every request an unauthenticated client
sends, so a token with a made-up ``kid`` must not cost a query: tokens whose key is not published are
refused before ``verify``, and the ring is reloaded for an unknown key at most every few seconds.
"""

import base64
import json
import logging
import threading
import time
from collections.abc import Callable

from idp.forwardauth.settings import HeaderNames
from idp.keys import KeyRing
from idp.sessions import SessionManager, SignedInUser

log = logging.getLogger("nextauth.idp.forward_auth")

UNKNOWN_KID_RELOAD_SECONDS = 5.0
SECOND_FACTORS = ("pin", "bio")


def header_value(text: str | None) -> str:
    """Header-safe text: control characters dropped, UTF-8 bytes carried as WSGI carries them (latin-1)."""
    cleaned = "".join(c for c in (text or "") if ord(c) >= 0x20 and ord(c) != 0x7F)
    return cleaned.encode("utf-8").decode("latin-1")


def auth_method(user: SignedInUser) -> str:
    """``qr`` or ``push``, with the second factor the app checked: ``qr+pin``, ``push+bio``."""
    factor = next((f for f in SECOND_FACTORS if f in user.amr), None)
    return f"{user.method}+{factor}" if factor else user.method


def identity_headers(user: SignedInUser | None, names: HeaderNames) -> dict[str, str]:
    """Every configured header, empty when unknown: the proxy replaces whatever the client sent under
    these names only with what this answer carries."""
    if user is None:
        return dict.fromkeys(names.all(), "")
    return {
        names.user: header_value(user.sub),
        names.name: header_value(user.name),
        names.email: header_value(user.email),
        names.groups: header_value(",".join(user.groups)),
        names.method: header_value(auth_method(user)),
    }


def token_kid(token: str) -> str | None:
    """The ``kid`` of a compact JWS header, unverified; None when it is not one."""
    head = token.split(".", 1)[0]
    if not head or len(head) > 1024:
        return None
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, TypeError):
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) else None


class SessionReader:
    def __init__(
        self,
        sessions: SessionManager,
        keys: KeyRing,
        *,
        clock: Callable[[], float] = time.monotonic,
        reload_seconds: float = UNKNOWN_KID_RELOAD_SECONDS,
    ) -> None:
        self._sessions = sessions
        self._keys = keys
        self._clock = clock
        self._reload_seconds = reload_seconds
        self._reloaded_at = float("-inf")
        self._lock = threading.Lock()

    def user(self, token: str | None) -> SignedInUser | None:
        if not token:
            return None
        kid = token_kid(token)
        if kid is None or not self._known(kid):
            return None
        return self._sessions.verify(token)

    def _known(self, kid: str) -> bool:
        if any(key.kid == kid for key in self._keys.published("session")):
            return True
        with self._lock:
            now = self._clock()
            if now - self._reloaded_at < self._reload_seconds:
                return False
            self._reloaded_at = now
        log.info("session token names an unknown key %r; reloading the key ring", kid[:16])
        self._keys.reload()
        return any(key.kid == kid for key in self._keys.published("session"))
