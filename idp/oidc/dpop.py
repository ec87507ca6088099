"""DPoP (RFC 9449): tokens bound to a key the client holds, proven on every request.

A proof is a JWS (``typ: dpop+jwt``) signed by the key whose public JWK is in its header, over the request's
method (``htm``) and URL (``htu``), fresh (``iat``), single-use (``jti``), with a nonce this server issued
(``nonce``), and at resource servers the hash of the access token (``ath``). The thumbprint of the key
(``jkt``, RFC 7638) is what tokens are bound to.

Nonces (RFC 9449 8): one current nonce in the shared store, replaced every ``NONCE_ROTATE_SECONDS``, each
valid ``NONCE_VALID_SECONDS``; a proof without a valid one is answered ``use_dpop_nonce`` with a fresh one in
the ``DPoP-Nonce`` header. Every answer to a DPoP request carries the current nonce, so a client keeps
up without a failed round trip.
"""

import base64
import hashlib
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from authlib.oauth2 import OAuth2Error
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry
from joserfc.jws import JWSRegistry

from authserver.storage.kv import KeyValueStore

ALGS = ("ES256", "EdDSA", "RS256", "PS256")
PROOF_TYPE = "dpop+jwt"
MAX_PROOF_BYTES = 8192
IAT_WINDOW = 60  # seconds either side of now; the nonce bounds freshness more tightly
NONCE_ROTATE_SECONDS = 60
NONCE_VALID_SECONDS = 180
JTI_PREFIX = "oidc:dpop-jti:"
NONCE_PREFIX = "oidc:dpop-nonce:"
CURRENT_NONCE = "oidc:dpop-nonce-current"
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class _ProofRegistry(JWSRegistry):
    # The header carries the public key: an RSA one does not fit joserfc's default 512 bytes.
    max_header_length = 4096


PROOFS = _ProofRegistry(algorithms=list(ALGS))


class DPoPError(OAuth2Error):  # type: ignore[misc]
    """``invalid_dpop_proof`` or ``use_dpop_nonce`` (RFC 9449 7.1, 8): at the token endpoint a 400 with a
    JSON body, at a resource a 401 with ``WWW-Authenticate: DPoP``."""

    status_code = 400

    def __init__(
        self, error: str, description: str, nonce: str | None = None, resource: bool = False
    ) -> None:
        super().__init__(description=description, status_code=401 if resource else 400)
        self.error = error
        self.nonce = nonce
        self.resource = resource

    def get_headers(self) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = super().get_headers()
        if self.resource:
            challenge = (
                f'DPoP error="{self.error}", error_description="{self.description}", algs="{" ".join(ALGS)}"'
            )
            headers.append(("WWW-Authenticate", challenge))
        if self.nonce:
            headers.append(("DPoP-Nonce", self.nonce))
        return headers


def token_hash(access_token: str) -> str:
    """``ath``: base64url(SHA-256(the access token))."""
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _normal_url(url: str) -> str:
    """For htu: scheme and host in lower case, without query or fragment (RFC 9449 4.3)."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path or '/'}"


class DPoP:
    def __init__(self, kv: KeyValueStore) -> None:
        self._kv = kv

    def nonce(self) -> str:
        """The current server nonce, made anew when the last one has been current long enough."""
        current = self._kv.get(CURRENT_NONCE)
        if current is not None:
            return current.decode()
        fresh = secrets.token_urlsafe(24)
        self._kv.set(NONCE_PREFIX + fresh, b"1", ttl=NONCE_VALID_SECONDS)
        if not self._kv.set_if_absent(CURRENT_NONCE, fresh.encode(), ttl=NONCE_ROTATE_SECONDS):
            other = self._kv.get(CURRENT_NONCE)  # another instance made one at the same moment
            if other is not None:
                return other.decode()
        return fresh

    def verify(
        self,
        proof: str | None,
        method: str,
        url: str,
        *,
        access_token: str | None = None,
        resource: bool = False,
    ) -> str:
        """The proof's key thumbprint (jkt), after every check. Raises DPoPError."""

        def refuse(description: str) -> DPoPError:
            return DPoPError("invalid_dpop_proof", description, resource=resource)

        if not proof or len(proof) > MAX_PROOF_BYTES:
            raise refuse("Send one DPoP proof of at most 8 KiB in the DPoP header.")
        try:
            header = jws.extract_compact(proof.encode(), registry=PROOFS).headers()
        except (JoseError, ValueError, UnicodeError):
            raise refuse("The DPoP proof is not a compact JWS.") from None
        if header.get("typ") != PROOF_TYPE:
            raise refuse("The DPoP proof's typ must be dpop+jwt.")
        alg = header.get("alg")
        if alg not in ALGS:
            raise refuse(f"The DPoP proof's alg must be one of {', '.join(ALGS)}.")
        public = header.get("jwk")
        if not isinstance(public, dict) or PRIVATE_MEMBERS & set(public):
            raise refuse("The DPoP proof's header needs the public key (jwk), and no private key material.")
        try:
            key = JWKRegistry.import_key(public)
            claims = jwt.decode(proof, key, algorithms=[alg], registry=PROOFS).claims
        except (JoseError, ValueError, TypeError, KeyError):
            raise refuse("The DPoP proof's signature does not verify with its jwk.") from None
        jti, iat = claims.get("jti"), claims.get("iat")
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            raise refuse("The DPoP proof needs a jti.")
        if claims.get("htm") != method:
            raise refuse(f"The DPoP proof is for another method (htm must be {method}).")
        htu = claims.get("htu")
        if not isinstance(htu, str) or _normal_url(htu) != _normal_url(url):
            raise refuse(f"The DPoP proof is for another URL (htu must be {_normal_url(url)}).")
        if not isinstance(iat, int) or abs(time.time() - iat) > IAT_WINDOW:
            raise refuse("The DPoP proof's iat is not within a minute of now; check the clock.")
        if access_token is not None and claims.get("ath") != token_hash(access_token):
            raise refuse("The DPoP proof's ath is not the hash of this access token.")
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or self._kv.get(NONCE_PREFIX + nonce) is None:
            raise DPoPError(
                "use_dpop_nonce",
                "Use the nonce in the DPoP-Nonce header.",
                nonce=self.nonce(),
                resource=resource,
            )
        thumbprint: str = key.thumbprint()
        seen = hashlib.sha256(f"{thumbprint}\0{jti}".encode()).hexdigest()
        if not self._kv.set_if_absent(JTI_PREFIX + seen, b"1", ttl=2 * IAT_WINDOW + 10):
            raise refuse("This DPoP proof was used before: make a new one for every request.")
        return thumbprint


def header_value(headers: Any) -> str | None:
    """The one DPoP header, or None; several are refused as none would be."""
    values = headers.getlist("DPoP") if hasattr(headers, "getlist") else [headers.get("DPoP")]
    values = [v for v in values if v is not None]
    if len(values) > 1:
        return ""
    return values[0] if values else None
