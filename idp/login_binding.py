"""A login belongs to the login page that started it, and completes once.

The browser's pre-login cookie names an ns session (its nonce). Anyone holding a copy of that cookie could
otherwise finish the login after the person at the browser approved it on the phone, and receive an IdP
session as them (session fixation). So each rendered login page also carries a key of its own, in the page
and nowhere else: the IdP keeps only the key's hash per nonce, issues one key per nonce (a second page for
the same nonce gets a new nonce), and completing takes the key and marks the nonce completed, atomically, so
the same login cannot complete twice. Nonces and keys are stored hashed: the shared store may be a Redis
that other components read.
"""

import hashlib
import hmac
import secrets

from authserver.storage.kv import KeyValueStore

KEY_PREFIX = "idp:login-key:"
DONE_PREFIX = "idp:login-done:"


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).hexdigest().encode()


class LoginBindings:
    def __init__(self, kv: KeyValueStore, *, ttl_seconds: float) -> None:
        self._kv = kv
        # At least the lifetime of the pre-login cookie (it names the nonce), so no nonce is bound twice.
        self._ttl = ttl_seconds

    def bind(self, nonce: str) -> str | None:
        """A new page key for this nonce, or None if a page was issued for it already."""
        key = secrets.token_urlsafe(24)
        if self._kv.set_if_absent(KEY_PREFIX + _digest(nonce).decode(), _digest(key), ttl=self._ttl):
            return key
        return None

    def holds(self, nonce: str, key: str | None) -> bool:
        """Whether ``key`` is the page key issued for ``nonce`` (completed or not)."""
        if not key or len(key) > 128:
            return False
        stored = self._kv.get(KEY_PREFIX + _digest(nonce).decode())
        return stored is not None and hmac.compare_digest(stored, _digest(key))

    def complete(self, nonce: str, key: str | None) -> bool:
        """Use the login once: True only for the right key, and only the first time."""
        if not self.holds(nonce, key):
            return False
        return self._kv.set_if_absent(DONE_PREFIX + _digest(nonce).decode(), b"1", ttl=self._ttl)

    def completed(self, nonce: str) -> bool:
        return self._kv.get(DONE_PREFIX + _digest(nonce).decode()) is not None
