"""A client's public keys, from its ``jwks`` metadata or fetched from its ``jwks_uri`` (RFC 7591 2).

They verify what the client signs: client assertions (RFC 7523), request objects (RFC 9101). A fetched set
is kept for a while; a key id it lacks makes one early refetch (the client has rotated), at most once per
``refetch_interval`` so unknown ids cannot make us hammer the client's server. Fetches are bounded: https
(http on loopback), no redirects, a timeout, a size limit, and a JWK set holding only public keys.
"""

import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, cast

import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OctKey

if TYPE_CHECKING:
    from idp.oidc.clients import Client

log = logging.getLogger("nextauth.idp.oidc")

MAX_JWKS_BYTES = 64 * 1024
MAX_KEYS = 20
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class ClientKeyError(Exception):
    """The client's keys cannot be had: the message says why, without secrets."""


def check_public_jwks(data: Any) -> dict[str, Any]:
    """A JWK set of public keys only, usable by joserfc; returns it as a dict. Raises ValueError."""
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list) or not data["keys"]:
        raise ValueError("jwks: a JSON object with a non-empty 'keys' list")
    if len(data["keys"]) > MAX_KEYS:
        raise ValueError(f"jwks: at most {MAX_KEYS} keys")
    for key in data["keys"]:
        if not isinstance(key, dict) or PRIVATE_MEMBERS & set(key):
            raise ValueError("jwks: public keys only (no private or symmetric key material)")
    try:
        KeySet.import_key_set(cast(Any, data))
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"jwks: not a usable JWK set ({type(exc).__name__})") from None
    return data


class ClientKeys:
    def __init__(
        self,
        *,
        ttl: float = 300.0,
        refetch_interval: float = 5.0,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.ttl = ttl
        self.refetch_interval = refetch_interval
        self.timeout = timeout
        self._transport = transport
        self._lock = threading.Lock()
        # jwks_uri -> (fetched at, key set)
        self._fetched: dict[str, tuple[float, KeySet]] = {}

    def key_set(self, client: "Client", kid: str | None = None) -> KeySet:
        """The client's keys, holding ``kid`` if the client's current set does. Raises ClientKeyError."""
        jwks = client.client_metadata.get("jwks")
        if jwks:
            return KeySet.import_key_set(jwks)
        uri = client.client_metadata.get("jwks_uri")
        if not uri:
            raise ClientKeyError("the client has registered no keys (jwks or jwks_uri)")
        now = time.monotonic()
        cached = self._fetched.get(uri)
        if cached is not None:
            age = now - cached[0]
            fresh = age < self.ttl
            known = kid is None or any(key.kid == kid for key in cached[1])
            if fresh and (known or age < self.refetch_interval):
                return cached[1]
        keys = self._fetch(uri)
        with self._lock:
            if len(self._fetched) > 1000:
                self._fetched.clear()
            self._fetched[uri] = (now, keys)
        return keys

    def _fetch(self, uri: str) -> KeySet:
        try:
            with (
                httpx.Client(timeout=self.timeout, follow_redirects=False, transport=self._transport) as http,
                http.stream("GET", uri, headers={"Accept": "application/json"}) as response,
            ):
                if response.status_code != 200:
                    raise ClientKeyError(f"the client's jwks_uri answered HTTP {response.status_code}")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body.extend(chunk)
                    if len(body) > MAX_JWKS_BYTES:
                        raise ClientKeyError("the client's jwks_uri sent more than 64 KiB")
        except httpx.HTTPError as exc:
            log.info("fetching %s failed: %s", uri, type(exc).__name__)
            raise ClientKeyError("the client's jwks_uri could not be fetched") from None
        try:
            return KeySet.import_key_set(cast(Any, check_public_jwks(json.loads(body))))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ClientKeyError(f"the client's jwks_uri holds no usable key set: {exc}") from None

    def decode(self, client: "Client", value: str, algorithms: tuple[str, ...]) -> jwt.Token:
        """A JWT the client signed, its signature verified (its claims are the caller's to check): with the
        client's secret for HS256, else with the client's key named by ``kid`` (or each of its keys, when
        the header names none). Raises ClientKeyError."""
        try:
            header = jws.extract_compact(value.encode()).headers()
        except (JoseError, ValueError, UnicodeError):
            raise ClientKeyError("not a compact JWS") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in algorithms:
            allowed = ", ".join(algorithms) or "nothing"
            raise ClientKeyError(f"signed with {alg!r}; this client may sign with {allowed}")
        if alg.startswith("HS"):
            if not client.hmac_secret:
                raise ClientKeyError("the client has no secret kept for HMAC")
            candidates: list[Any] = [OctKey.import_key(client.hmac_secret)]
        else:
            keys = self.key_set(client, kid if isinstance(kid, str) else None)
            candidates = [key for key in keys if key.kid == kid] if kid else list(keys)
        for key in candidates:
            try:
                return jwt.decode(value, key, algorithms=[alg])
            except JoseError:
                continue
        raise ClientKeyError("the signature does not verify with the client's registered keys")
