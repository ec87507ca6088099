"""The identity headers the application behind forward-auth receives. (Who the browser is comes from
``SessionManager.verify``: no database query per request, and a made-up ``kid`` reloads the key ring at
most every few seconds, ``KeyRing.by_kid``.)"""

import re

from idp.forwardauth.settings import HeaderNames
from idp.sessions import SignedInUser

SECOND_FACTORS = ("pin", "bio")
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def header_value(text: str | None) -> str:
    """Header-safe text: control characters dropped, UTF-8 bytes carried as WSGI carries them (latin-1)."""
    cleaned = _CONTROL.sub("", text or "")
    # ASCII is the same in both: most names and every user id skip the round trip (on every request).
    return cleaned if cleaned.isascii() else cleaned.encode("utf-8").decode("latin-1")


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
