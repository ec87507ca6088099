"""Pairwise subject identifiers (OIDC Core 8.1): a client registered with ``subject_type: pairwise`` sees
each user under a ``sub`` of its own, so that clients cannot join what they know about a person by ``sub``.

The sector of a client is the host of its redirect URIs (they must share one; we take no
``sector_identifier_uri``), so clients of one sector (one host) see the same ``sub``. The value is an
HMAC-SHA256, keyed by a server secret (the "salt" of OIDC Core 8.1), of the sector and the user id:
stable, not reversible without the secret, and the same on every IdP instance that shares the secret.
"""

import base64
import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from nextauth_core.secret_files import secret_file

SETTING = "OIDC_PAIRWISE_SECRET"
SECRET_FILE = "idp-oidc-pairwise-secret"
PUBLIC, PAIRWISE = "public", "pairwise"
SUBJECT_TYPES = (PUBLIC, PAIRWISE)


def load_secret(configured: str | None, data_dir: Path) -> bytes:
    """The configured secret, else one made on first start and kept in the data folder."""
    if configured is not None:
        if len(configured) < 32:
            raise ValueError(f"NEXTAUTH_IDP_{SETTING}: at least 32 characters of random text")
        return configured.encode()
    data_dir.mkdir(parents=True, exist_ok=True)
    return secret_file(data_dir / SECRET_FILE, lambda: secrets.token_urlsafe(48)).encode()


def sector_of(redirect_uris: list[str]) -> str:
    """The one host of a pairwise client's redirect URIs; ValueError if they name several."""
    hosts = {(urlsplit(uri).hostname or "").lower() for uri in redirect_uris}
    hosts.discard("")
    if len(hosts) != 1:
        raise ValueError(
            "pairwise subjects need redirect URIs on one host (the sector); "
            f"these name {len(hosts) or 'no'} hosts"
        )
    return hosts.pop()


def pairwise_subject(secret: bytes, sector: str, user_id: str) -> str:
    if not secret:
        raise RuntimeError("pairwise subjects need the IdP's pairwise secret")
    # Length-prefixed, so that no (sector, user) pair can be made to collide with another.
    message = b"".join(
        len(part).to_bytes(4, "big") + part
        for part in (b"nextauth-oidc-pairwise-v1", sector.encode(), user_id.encode())
    )
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def subject_for(secret: bytes, client: Any, user_id: str) -> str:
    """The ``sub`` this client knows the user by."""
    if client is None or client.subject_type != PAIRWISE:
        return user_id
    return pairwise_subject(secret, sector_of(client.redirect_uris), user_id)
