"""Small pieces the ns flows share: ids, time, the account lookup, the trusted SFS keys."""

import hashlib
import os
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from authserver.operations import OperationError
from authserver.operations import binary_param as unb64  # noqa: F401 - the flows decode parameters with it
from authserver.storage.flow_models import Account
from nextauth_core import attestation
from nextauth_core.encoding import b64url as b64  # noqa: F401 - the flows encode with it

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


def unbound_accounts(engine: Engine) -> int:
    """Confirmed accounts enrolled before accounts were bound to an app instance: each must be enrolled
    again before it can log in or sign with a second factor."""
    with Session(engine) as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Account)
                .where(Account.active.is_(True), Account.sfs_device.is_(None))
            )
            or 0
        )


def parse_trusted_sfs_keys(values: list[str]) -> dict[str, dict[str, ed25519.Ed25519PublicKey]]:
    """``IDENTITY:ATTESTATION`` entries (hex Ed25519 public keys) -> {SFS key hash: {key id: key}}.

    The SFS is named by its sigmai identity key hash (what apps pin and accounts record); ns trusts its
    attestations only when signed by one of the attestation keys listed with it. An SFS may appear
    several times, to roll its attestation key over. Raises ValueError saying what is wrong."""
    trusted: dict[str, dict[str, ed25519.Ed25519PublicKey]] = {}
    for position, value in enumerate(values, start=1):
        identity_hex, sep, attestation_hex = value.strip().partition(":")
        if not sep:
            raise ValueError(
                f"entry {position} names the SFS key only; write SFS_KEY:ATTESTATION_KEY "
                "(the SFS logs both at start, and its hello shows attestation_public_key)"
            )
        try:
            identity_raw = bytes.fromhex(identity_hex.strip())
            attestation_raw = bytes.fromhex(attestation_hex.strip())
            ed25519.Ed25519PublicKey.from_public_bytes(identity_raw)
            key = ed25519.Ed25519PublicKey.from_public_bytes(attestation_raw)
        except ValueError as exc:
            raise ValueError(f"entry {position} is not two hex Ed25519 public keys (64 hex each)") from exc
        if identity_raw == attestation_raw:
            raise ValueError(f"entry {position}: the attestation key must differ from the SFS key")
        trusted.setdefault(hashlib.sha256(identity_raw).hexdigest(), {})[attestation.key_id(key)] = key
    return trusted
