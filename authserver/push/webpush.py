"""Web Push: pushes to web apps (and to anything else that holds a browser-style push subscription).

Three RFCs make one push:

- RFC 8030 (delivery): ``POST`` the message to the subscription's endpoint URL, with ``TTL`` (how long
  the push service may keep it for an offline browser), ``Urgency`` and optionally ``Topic`` (a newer
  message with the same topic replaces a pending older one). ``201 Created`` means accepted; ``404`` and
  ``410`` mean the subscription is gone for good.
- RFC 8291 (encryption): the push service must not read the message. The body is the ``aes128gcm``
  content coding of RFC 8188, its key agreed by ECDH (P-256) between a fresh key of ours and the
  subscription's ``p256dh`` key, mixed with the subscription's ``auth`` secret through HKDF-SHA256.
- RFC 8292 (VAPID): the MC identifies itself to the push service with an ES256 JWT (audience: the
  endpoint's origin, short expiry, a contact ``sub``) and its public key:
  ``Authorization: vapid t=<JWT>, k=<public key>``. Browsers bind a subscription to the public key the
  web app gave when subscribing, so the push service refuses pushes signed by any other key.

The endpoint comes from the app, and anyone can register an app: so an endpoint is an attacker-chosen
URL the MC will POST to. To keep the MC from being a tool for reaching what sits behind it (SSRF), an
endpoint must be ``https`` and its host must resolve only to public addresses; the connection then goes
to the very address that was checked (TLS still verifies the certificate for the host name), so a DNS
answer that changes between check and connect gains nothing. Redirects are not followed, and the push
service's answer body is never read. Tests on loopback switch the address check off explicitly.
"""

import hashlib
import hmac
import ipaddress
import json
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

from authserver.push.base import (
    PushMessage,
    PushResult,
    b64url,
    client_tls_context,
    failed,
    parse_retry_after,
)
from nextauth_core.encoding import unb64url
from nextauth_core.secret_files import write_private

log = logging.getLogger("nextauth.push.webpush")

RECORD_SIZE = 4096
# RFC 8030 section 7.2: push services must accept at least 4096 bytes of body; the header (86 bytes), the
# padding delimiter and the AEAD tag leave this much for the message itself.
MAX_PLAINTEXT_BYTES = RECORD_SIZE - 86 - 1 - 16
MAX_ENDPOINT_CHARS = 1024
MAX_TOKEN_CHARS = 2048
MAX_ADDRESSES_TRIED = 2
# RFC 8292 section 2: the JWT's expiry must not be more than 24 hours ahead.
VAPID_LIFETIME_SECONDS = 12 * 3600
_KEY_INFO = b"WebPush: info\x00"
_CEK_INFO = b"Content-Encoding: aes128gcm\x00"
_NONCE_INFO = b"Content-Encoding: nonce\x00"


# -- RFC 8291 message encryption -------------------------------------------------------------------------


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(hashes.SHA256(), length, salt, info).derive(ikm)


def _public_bytes(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def encrypt(
    plaintext: bytes,
    p256dh: bytes,
    auth: bytes,
    *,
    salt: bytes | None = None,
    sender_key: ec.EllipticCurvePrivateKey | None = None,
) -> bytes:
    """The ``aes128gcm`` body for one subscription: a single record of RFC 8188, keyed per RFC 8291.

    ``salt`` and ``sender_key`` are fresh for every message; tests pass the RFC's fixed ones to check
    the exact bytes. Reusing either would reuse the content key and nonce, which breaks AES-GCM.
    """
    if len(plaintext) > MAX_PLAINTEXT_BYTES:
        raise ValueError(f"web push message of {len(plaintext)} bytes is over {MAX_PLAINTEXT_BYTES}")
    receiver = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    salt = os.urandom(16) if salt is None else salt
    sender_key = ec.generate_private_key(ec.SECP256R1()) if sender_key is None else sender_key
    sender_public = _public_bytes(sender_key.public_key())
    shared = sender_key.exchange(ec.ECDH(), receiver)
    # RFC 8291 section 3.4: the auth secret salts the ECDH secret, and both public keys bind the result.
    ikm = _hkdf(auth, shared, _KEY_INFO + _public_bytes(receiver) + sender_public, 32)
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()  # HKDF-Extract, RFC 8188 section 2.2
    cek = HKDFExpand(hashes.SHA256(), 16, _CEK_INFO).derive(prk)
    nonce = HKDFExpand(hashes.SHA256(), 12, _NONCE_INFO).derive(prk)
    # One record, so its sequence number is 0 and the nonce is used as derived; 0x02 marks it the last.
    ciphertext = AESGCM(cek).encrypt(nonce, plaintext + b"\x02", None)
    header = salt + struct.pack("!IB", RECORD_SIZE, len(sender_public)) + sender_public
    return header + ciphertext


# -- subscriptions --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscription:
    """What a browser's ``PushSubscription.toJSON()`` gives: ``{"endpoint", "keys": {"p256dh", "auth"}}``."""

    endpoint: str
    p256dh: bytes
    auth: bytes

    @classmethod
    def parse(cls, token: str | dict[str, Any]) -> "Subscription":
        """Raises ValueError, with a message safe to show the app, for anything that is not a usable
        subscription. Checks the form only; whether the endpoint may be reached is ``EndpointPolicy``'s."""
        if isinstance(token, str):
            if len(token) > MAX_TOKEN_CHARS:
                raise ValueError("the subscription is too long")
            try:
                token = json.loads(token)
            except ValueError:
                raise ValueError("the subscription is not JSON") from None
        if not isinstance(token, dict):
            raise ValueError("the subscription must be an object with endpoint and keys")
        endpoint, keys = token.get("endpoint"), token.get("keys")
        if not isinstance(endpoint, str) or not 0 < len(endpoint) <= MAX_ENDPOINT_CHARS:
            raise ValueError(f"endpoint must be a URL of at most {MAX_ENDPOINT_CHARS} characters")
        if not endpoint.isascii() or any(c.isspace() or not c.isprintable() for c in endpoint):
            raise ValueError("endpoint must be a plain ASCII URL")
        if (
            not isinstance(keys, dict)
            or not isinstance(keys.get("p256dh"), str)
            or not isinstance(keys.get("auth"), str)
        ):
            raise ValueError("keys must hold p256dh and auth as base64url strings")
        try:
            p256dh, auth = unb64url(keys["p256dh"]), unb64url(keys["auth"])
        except ValueError:
            raise ValueError("p256dh and auth must be base64url") from None
        if len(p256dh) != 65 or p256dh[0] != 4:
            raise ValueError("p256dh must be an uncompressed P-256 point (65 bytes)")
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
        except ValueError:
            raise ValueError("p256dh is not a point on P-256") from None
        if len(auth) != 16:
            raise ValueError("auth must be 16 bytes")
        _split_endpoint(endpoint)
        return cls(endpoint, p256dh, auth)

    def to_token(self) -> str:
        """The canonical form the MC stores."""
        keys = {"p256dh": b64url(self.p256dh), "auth": b64url(self.auth)}
        return json.dumps({"endpoint": self.endpoint, "keys": keys}, separators=(",", ":"))

    def short(self) -> str:
        """Enough to tell subscriptions apart in a log: the push service's host and a digest. The path
        of an endpoint is the capability to push, so it never appears in full."""
        host = urlsplit(self.endpoint).hostname or "?"
        return f"{host}/{hashlib.sha256(self.endpoint.encode()).hexdigest()[:8]}"


def _split_endpoint(endpoint: str) -> tuple[str, int, str]:
    """Host, port and origin of an https endpoint; ValueError for anything else."""
    try:
        parts = urlsplit(endpoint)
        port = parts.port or 443
    except ValueError:
        raise ValueError("endpoint is not a valid URL") from None
    if parts.scheme != "https":
        raise ValueError("endpoint must be an https:// URL")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise ValueError("endpoint must name a host and carry no user name or password")
    if parts.fragment:
        raise ValueError("endpoint must have no fragment")
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    origin = f"https://{shown}" + (f":{port}" if port != 443 else "")
    return host, port, origin


@dataclass(frozen=True)
class EndpointPolicy:
    """Which addresses the MC may push to. ``allow_private`` lets loopback and private addresses through
    too: for tests, and for a push service of one's own inside a closed network."""

    allow_private: bool = False
    # None: socket.getaddrinfo looked up at each call, so that gevent's patched resolver is the one used
    # even when this module was imported before patching.
    resolve: Callable[..., list[Any]] | None = None

    def addresses(self, host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        """Every address ``host`` resolves to; ValueError if any is one the MC must not reach (one bad
        answer among good ones is refused too: the connection might otherwise land on it)."""
        try:
            literal: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            found = [literal]
        else:
            try:
                answers = (self.resolve or socket.getaddrinfo)(host, port, type=socket.SOCK_STREAM)
            except (OSError, UnicodeError):
                raise ValueError("the endpoint's host does not resolve") from None
            found = [ipaddress.ip_address(str(answer[4][0]).split("%")[0]) for answer in answers]
        if not found:
            raise ValueError("the endpoint's host does not resolve")
        for address in found:
            if not self.permits(address):
                raise ValueError("the endpoint's host is not a public address")
        return found

    def permits(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address.is_unspecified or address.is_multicast or address.is_reserved:
            return False
        return self.allow_private or address.is_global


# -- RFC 8292 VAPID --------------------------------------------------------------------------------------


def load_vapid_key(pem: bytes | str) -> ec.EllipticCurvePrivateKey:
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("the VAPID key is not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("the VAPID key must be a P-256 key (ES256)")
    return key


def vapid_key_in(data_dir: Path) -> ec.EllipticCurvePrivateKey:
    """The MC's own VAPID key, made on first start and kept (0600) in the data folder: every subscription
    is bound to it, so a new key on each start would silently end every web push."""
    path = data_dir / "mc-webpush-vapid-key.pem"
    if not path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            write_private(path, pem)
        except FileExistsError:  # another process made it between the check and the write: use theirs
            pass
    return load_vapid_key(path.read_bytes())


class Vapid:
    def __init__(
        self, key: ec.EllipticCurvePrivateKey, subject: str | None, clock: Callable[[], float] = time.time
    ) -> None:
        if subject is not None and not subject.startswith(("mailto:", "https://")):
            raise ValueError("the VAPID subject must be a mailto: or https: URI")
        self._key, self._subject, self._clock = key, subject, clock
        self.public_key = b64url(_public_bytes(key.public_key()))

    def token(self, audience: str) -> str:
        header = b64url(json.dumps({"typ": "JWT", "alg": "ES256"}, separators=(",", ":")).encode())
        claims: dict[str, Any] = {"aud": audience, "exp": int(self._clock()) + VAPID_LIFETIME_SECONDS}
        if self._subject:
            claims["sub"] = self._subject
        signing_input = f"{header}.{b64url(json.dumps(claims, separators=(',', ':')).encode())}"
        # JWS ES256 wants r || s, 32 bytes each (RFC 7518 section 3.4), not cryptography's DER.
        r, s = decode_dss_signature(self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def authorization(self, audience: str) -> str:
        return f"vapid t={self.token(audience)}, k={self.public_key}"


# -- logging -------------------------------------------------------------------------------------------


class _RedactEndpoints(logging.Filter):
    """httpx logs every request's URL at INFO; an endpoint's path is the right to push to that browser, so
    the URLs of pushes in flight are shortened to their origin."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._targets: dict[str, int] = {}

    def add(self, url: str) -> None:
        with self._lock:
            self._targets[url] = self._targets.get(url, 0) + 1

    def discard(self, url: str) -> None:
        with self._lock:
            if self._targets.get(url, 0) <= 1:
                self._targets.pop(url, None)
            else:
                self._targets[url] -= 1

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and self._targets:
            with self._lock:
                targets = set(self._targets)
            record.args = tuple(_origin_only(str(arg)) if str(arg) in targets else arg for arg in record.args)
        return True


def _origin_only(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…"


_REDACTION = _RedactEndpoints()


def _install_log_redaction() -> None:
    httpx_log = logging.getLogger("httpx")
    if _REDACTION not in httpx_log.filters:
        httpx_log.addFilter(_REDACTION)


# -- the provider ----------------------------------------------------------------------------------------


def topic_for(collapse_id: str) -> str:
    """RFC 8030 section 5.4: a Topic is at most 32 characters of the base64url alphabet; a digest of the
    collapse id fits and says nothing of it."""
    return b64url(hashlib.sha256(collapse_id.encode()).digest())[:32]


class WebPushProvider:
    """Sends encrypted, VAPID-signed pushes to subscription endpoints. Thread-safe."""

    name = "webpush"

    def __init__(
        self,
        vapid: Vapid,
        *,
        policy: EndpointPolicy | None = None,
        ca_file: str | None = None,
        timeout: float = 3.0,
    ) -> None:
        self.vapid = vapid
        self._policy = policy or EndpointPolicy()
        _install_log_redaction()
        # Endpoints are chosen by apps, so a slow one must not hold the MC's send for long (ns gives a
        # send 5 s): short timeouts, and at most two addresses tried. The client follows no redirect,
        # which could lead anywhere.
        # No connection is kept: the pool is keyed by address, and a connection verified for one push
        # service's name must not carry a push for another name that shares the address.
        self._http = httpx.Client(
            verify=client_tls_context(ca_file),
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    def send(self, message: PushMessage) -> PushResult:
        try:
            subscription = Subscription.parse(message.device_token)
        except ValueError as exc:
            return failed(self.name, f"bad subscription: {exc}", token_invalid=True)
        payload = json.dumps(message.data, separators=(",", ":"), sort_keys=True).encode()
        try:
            body = encrypt(payload, subscription.p256dh, subscription.auth)
            host, port, origin = _split_endpoint(subscription.endpoint)
            addresses = self._policy.addresses(host, port)
        except ValueError as exc:
            log.info("web push to %s refused: %s", subscription.short(), exc)
            return failed(self.name, f"refused: {exc}")
        headers = {
            "TTL": str(max(0, int(message.ttl_seconds))),
            # A login request is worth waking a phone for (RFC 8030 section 5.3).
            "Urgency": "high",
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "Authorization": self.vapid.authorization(origin),
            "Host": urlsplit(subscription.endpoint).netloc,
        }
        if message.collapse_id:
            headers["Topic"] = topic_for(message.collapse_id)
        try:
            status, location, retry_after = self._post_any(
                subscription.endpoint, host, addresses, headers, body
            )
        except httpx.HTTPError as exc:
            log.warning("web push to %s failed: %s", subscription.short(), type(exc).__name__)
            return failed(self.name, f"network: {type(exc).__name__}")
        if status in (200, 201, 202):
            return PushResult(True, self.name, location, False, None, None)
        description = f"{status} from the push service"
        log.info("web push to %s not delivered: %s", subscription.short(), description)
        if status in (404, 410):
            return failed(self.name, description, token_invalid=True)
        if status == 429 or status >= 500:
            return failed(self.name, description, retry_after=parse_retry_after(retry_after, 60.0))
        return failed(self.name, description)

    def _post_any(
        self,
        endpoint: str,
        host: str,
        addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address],
        headers: dict[str, str],
        body: bytes,
    ) -> tuple[int, str | None, str | None]:
        """Tries the checked addresses in the resolver's order until one takes the connection (a host
        with IPv6 and IPv4 addresses may answer on only one of them)."""
        addresses = addresses[:MAX_ADDRESSES_TRIED]
        for address in addresses[:-1]:
            try:
                return self._post(endpoint, host, address, headers, body)
            except httpx.ConnectError:
                continue
        return self._post(endpoint, host, addresses[-1], headers, body)

    def _post(
        self,
        endpoint: str,
        host: str,
        address: ipaddress.IPv4Address | ipaddress.IPv6Address,
        headers: dict[str, str],
        body: bytes,
    ) -> tuple[int, str | None, str | None]:
        parts = urlsplit(endpoint)
        shown = f"[{address}]" if address.version == 6 else str(address)
        port = f":{parts.port}" if parts.port else ""
        target = parts._replace(netloc=f"{shown}{port}").geturl()
        # Connect to the address that was checked; SNI and certificate verification use the host name.
        extensions = {"sni_hostname": host} if host != str(address) else {}
        request = self._http.build_request(
            "POST", target, content=body, headers=headers, extensions=extensions
        )
        target = str(request.url)
        _REDACTION.add(target)
        try:
            # Streamed and never read: what the push service says is in the status; a body could be large.
            response = self._http.send(request, stream=True)
            try:
                return (
                    response.status_code,
                    response.headers.get("Location"),
                    response.headers.get("Retry-After"),
                )
            finally:
                response.close()
        finally:
            _REDACTION.discard(target)

    def close(self) -> None:
        self._http.close()
