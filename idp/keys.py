"""The IdP's signing keys: created on first use, kept in the database so every IdP instance signs with the
same keys, rotated by command, and published (JWKS) while anything they signed may still be presented.

Purposes and algorithms:

- ``session``: browser session tokens, JWS alg ``Ed25519`` (RFC 9864); forward-auth and the Traefik
  plugin verify them.
- ``oidc``: ID tokens, ES256 (P-256) or RS256 (RSA 2048) per client.
- ``saml``: SAML responses and assertions, RSA 2048 with a self-signed certificate in the metadata.
"""

import hashlib
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from joserfc.jwk import ECKey, KeyParameters, OKPKey, RSAKey
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from idp.models import SigningKey

UNKNOWN_KID_RELOAD_SECONDS = 5.0
# How long a request asking for a key it has not seen waits for another request's reload in flight.
RELOAD_WAIT_SECONDS = 5.0
ALGORITHMS = {"session": ("Ed25519",), "oidc": ("ES256", "RS256"), "saml": ("RS256",)}
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
JoseKey = OKPKey | ECKey | RSAKey


@dataclass(frozen=True)
class LoadedKey:
    kid: str
    purpose: str
    alg: str
    private_key: PrivateKey
    jose: JoseKey  # private; ``public_jwk`` is what may be shown
    certificate: str | None
    created_at: datetime
    retired_at: datetime | None

    @property
    def public_jwk(self) -> dict[str, Any]:
        jwk = dict(self.jose.as_dict(private=False))
        jwk.update(kid=self.kid, alg=self.alg, use="sig")
        return jwk

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def _generate(alg: str) -> PrivateKey:
    if alg == "Ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"unsupported signing algorithm {alg!r}")


def _self_signed(private_key: rsa.RSAPrivateKey, common_name: str) -> str:
    """SAML metadata carries the signing key as a certificate; only its key matters to SPs."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, (common_name or "nextAuth IdP")[:64])])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=3650))
        .sign(private_key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _load(row: SigningKey) -> LoadedKey:
    private_key = serialization.load_der_private_key(row.private_key, password=None)
    jose: JoseKey
    # The kid travels with the key, so key sets pick it by the kid in a token's header.
    parameters: KeyParameters = {"kid": row.kid, "alg": row.alg, "use": "sig"}
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        jose = OKPKey.import_key(private_key, parameters)
    elif isinstance(private_key, ec.EllipticCurvePrivateKey):
        jose = ECKey.import_key(private_key, parameters)
    elif isinstance(private_key, rsa.RSAPrivateKey):
        jose = RSAKey.import_key(private_key, parameters)
    else:
        raise ValueError(f"key {row.kid}: unsupported key type")
    return LoadedKey(
        kid=row.kid,
        purpose=row.purpose,
        alg=row.alg,
        private_key=private_key,
        jose=jose,
        certificate=row.certificate,
        created_at=row.created_at,
        retired_at=row.retired_at,
    )


class KeyRing:
    """Keys by purpose, read from the database at most every ``refresh_seconds`` (rotation by another
    instance shows up within that time).

    ``publish_after_retirement`` must cover the longest lifetime of anything signed: sessions, ID tokens.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        issuer: str,
        publish_after_retirement: timedelta = timedelta(days=1),
        refresh_seconds: float = 30.0,
    ) -> None:
        self._engine = engine
        self._issuer = issuer
        self._grace = publish_after_retirement
        self._refresh = refresh_seconds
        self._keys: list[LoadedKey] = []
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()

    def _all(self) -> list[LoadedKey]:
        if time.monotonic() - self._loaded_at > self._refresh:
            # One request refreshes; the others go on with the keys they have. Without this, every
            # request in flight when the refresh falls due queries the database at once, and on a busy
            # forward-auth endpoint they queue for the connection pool (seen as a 1.7 s p99 in bench/).
            if not self._keys:
                self.reload()
            elif self._refreshing.acquire(blocking=False):
                try:
                    self.reload()
                finally:
                    self._refreshing.release()
        return self._keys

    def reload(self) -> None:
        horizon = datetime.now(UTC) - self._grace
        with Session(self._engine) as db:
            rows = db.scalars(select(SigningKey).order_by(SigningKey.created_at.desc())).all()
            keys = [_load(row) for row in rows if row.retired_at is None or row.retired_at > horizon]
        with self._lock:
            self._keys, self._loaded_at = keys, time.monotonic()

    def active(self, purpose: str, alg: str) -> LoadedKey:
        """The newest unretired key for this purpose and algorithm, created if there is none."""
        for key in self._all():
            if key.purpose == purpose and key.alg == alg and key.retired_at is None:
                return key
        return self._create(purpose, alg)

    def by_kid(self, kid: str) -> LoadedKey | None:
        for key in self._all():
            if key.kid == kid:
                return key
        # Perhaps a key another instance created since the last refresh: look again, but not more than
        # once every few seconds, or tokens with made-up kids would each cost a database query.
        if time.monotonic() - self._loaded_at < UNKNOWN_KID_RELOAD_SECONDS:
            return None
        if not self._refreshing.acquire(blocking=False):
            # Another request is loading the keys right now, perhaps for a token of the same new key: wait
            # for it and look in what it loaded, rather than refuse a good token (or query once more).
            if self._refreshing.acquire(timeout=RELOAD_WAIT_SECONDS):
                self._refreshing.release()
            return next((key for key in self._keys if key.kid == kid), None)
        try:
            self.reload()
        finally:
            self._refreshing.release()
        return next((key for key in self._keys if key.kid == kid), None)

    def published(self, purpose: str) -> list[LoadedKey]:
        return [key for key in self._all() if key.purpose == purpose]

    def jwks(self, purpose: str) -> dict[str, Any]:
        return {"keys": [key.public_jwk for key in self.published(purpose)]}

    def rotate(self, purpose: str, alg: str) -> LoadedKey:
        """Retire the active key of this purpose and algorithm; it stays published for the grace period."""
        with Session(self._engine) as db, db.begin():
            for row in db.scalars(
                select(SigningKey).where(
                    SigningKey.purpose == purpose, SigningKey.alg == alg, SigningKey.retired_at.is_(None)
                )
            ):
                row.retired_at = datetime.now(UTC)
        return self._create(purpose, alg)

    def _create(self, purpose: str, alg: str) -> LoadedKey:
        if alg not in ALGORITHMS.get(purpose, ()):
            raise ValueError(f"{purpose} keys cannot use {alg}")
        private_key = _generate(alg)
        public_der = private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        # The kid names the public key, so every instance computes the same one for the same key.
        kid = hashlib.sha256(public_der).hexdigest()[:32]
        certificate = (
            _self_signed(private_key, self._issuer)
            if purpose == "saml" and isinstance(private_key, rsa.RSAPrivateKey)
            else None
        )
        with Session(self._engine) as db, db.begin():
            db.add(
                SigningKey(
                    kid=kid,
                    purpose=purpose,
                    alg=alg,
                    private_key=private_key.private_bytes(
                        serialization.Encoding.DER,
                        serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption(),
                    ),
                    certificate=certificate,
                )
            )
        self.reload()
        key = self.by_kid(kid)
        assert key is not None
        return key
