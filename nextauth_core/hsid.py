"""The public name (``hsid``) of an application's login session, which ns and the IdP both derive."""

import hashlib

from nextauth_core.encoding import b64url


def hsid_for(nonce: str) -> str:
    """The public name of an application's login session. One-way, so the page (and anyone watching the
    browser WebSocket) learns nothing that would let it claim the session."""
    return b64url(hashlib.sha256(b"nextauth hsid v1\x00" + nonce.encode("utf-8")).digest())
