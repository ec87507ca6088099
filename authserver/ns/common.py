"""Small pieces the ns flows share: ids, time, the account lookup, the trusted SFS keys."""

import hashlib
import os
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from authserver.operations import OperationError
from authserver.operations import binary_param as unb64  # noqa: F401 - the flows decode parameters with it
from authserver.storage.flow_models import Account
from nextauth_core.encoding import b64url as b64

NONCE_MIN_LENGTH = 22  # base64url of 16 random bytes: 128 bits at 6 bits a character
NONCE_MIN_HEX_LENGTH = 32  # hex of 16 random bytes: 4 bits a character
NONCE_MIN_DISTINCT = 6  # 16 random bytes have fewer in about 1 of 3 * 10^12 nonces (hex), far fewer in base64
NONCE_MAX_LENGTH = 256
_HEX = frozenset("0123456789abcdefABCDEF")


def new_id(size: int = 16) -> str:
    """A random id, in hex: people paste ids into command lines, where a leading '-' reads as an option."""
    return os.urandom(size).hex()


def now() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back; every datetime we store is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def hsid_for(nonce: str) -> str:
    """The public name of an application's login session. One-way, so the page (and anyone watching the
    browser WebSocket) learns nothing that would let it claim the session."""
    return b64(hashlib.sha256(b"nextauth hsid v1\x00" + nonce.encode("utf-8")).digest())


def valid_nonce(nonce: str | None) -> bool:
    """The nonce names the application's login session to ns: whoever guesses it owns the session. At least
    128 bits by its encoded length (a hex nonce needs 32 characters, any other 22, padding not counted), and
    not one that is plainly not random (22 times "a", "abab..."): at least ``NONCE_MIN_DISTINCT`` different
    characters. Length cannot prove randomness; this refuses mistakes (the integrator must use a CSPRNG)."""
    if nonce is None or len(nonce) > NONCE_MAX_LENGTH or not nonce.isascii() or not nonce.isprintable():
        return False
    if " " in nonce:
        return False
    body = nonce.rstrip("=")
    needed = NONCE_MIN_HEX_LENGTH if set(body) <= _HEX else NONCE_MIN_LENGTH
    return len(body) >= needed and len(set(body)) >= NONCE_MIN_DISTINCT


def account_for(engine: Engine, server_id: str, thumbprint: str) -> Account:
    with Session(engine) as session:
        account = session.scalar(
            select(Account).where(Account.server_id == server_id, Account.thumbprint == thumbprint)
        )
    if account is None or not account.active:
        raise OperationError("unknown_account", "This app has no account at this server; enrol first.")
    if account.blocked:
        raise OperationError("blocked", "This account is blocked. Contact the service's support.")
    return account


def parse_trusted_sfs_keys(values: list[str]) -> dict[str, ed25519.Ed25519PublicKey]:
    """Hex Ed25519 public keys -> {key hash (hex): key}, the form attestations name their issuer by."""
    trusted: dict[str, ed25519.Ed25519PublicKey] = {}
    for value in values:
        raw = bytes.fromhex(value.strip())
        key = ed25519.Ed25519PublicKey.from_public_bytes(raw)
        trusted[hashlib.sha256(raw).hexdigest()] = key
    return trusted
