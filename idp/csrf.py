"""Tokens for the IdP's own forms (the admin console, My account): an HMAC of the IdP session id under the
app's secret key, one purpose label per set of pages. A token fits one session and one set of pages, dies
with the session, and is checked in constant time. The login flows' one-off tokens (consent, device code)
are different: they live in the Flask session and are used once."""

import base64
import hashlib
import hmac

from flask import current_app


def form_token(purpose: str, sid: str) -> str:
    secret = current_app.secret_key
    key = secret if isinstance(secret, bytes) else str(secret).encode()
    label = f"nextauth form {purpose}\x00".encode()
    digest = hmac.new(key, label + sid.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def form_token_valid(purpose: str, sid: str, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(str(sent).encode(), form_token(purpose, sid).encode())
