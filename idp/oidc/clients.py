"""OIDC clients: registered by an administrator (``nextauth oidc-client add``), stored with a hash of their
secret, and read through a short in-process cache because the token endpoint needs one per request."""

import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import ClientMixin
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from idp.models import OidcClient
from idp.oidc.client_keys import check_public_jwks
from idp.oidc.pairwise import sector_of

SCOPES = ("openid", "profile", "email", "groups", "offline_access")
# What a client gets without asking the user: who they are. Anything more needs consent once.
BASIC_SCOPES = frozenset({"openid", "profile", "email"})
CIBA_GRANT = "urn:openid:params:grant-type:ciba"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials", CIBA_GRANT, DEVICE_GRANT)
CIBA_MODES = ("poll", "ping")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "none")
# What clients may sign with: assertions and request objects (private_key_jwt and the client's keys), or HMAC
# with the client's secret (client_secret_jwt). Never "none".
PRIVATE_KEY_ALGS = ("ES256", "RS256", "PS256", "EdDSA")
SECRET_ALGS = ("HS256",)
ID_TOKEN_ALGS = ("ES256", "RS256")
SUBJECT_TYPES = ("public", "pairwise")
ACCESS_TOKEN_FORMATS = ("opaque", "jwt")
# client_secret_jwt needs the secret itself to check an HMAC, not a hash of it: it is kept in the metadata
# under this name (as the IdP's own private keys are kept in its database) and never shown.
HMAC_SECRET = "nextauth_hmac_secret"


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_redirect_uri_syntax(uri: str, what: str = "redirect URI") -> None:
    """Absolute https URLs, or http on loopback for development; never a fragment (RFC 6749 3.1.2)."""
    parts = urlsplit(uri)
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.fragment or "#" in uri:
        raise ValueError(f"{what} {uri!r}: an absolute http(s) URL without a fragment")
    if parts.scheme == "http" and not loopback:
        raise ValueError(f"{what} {uri!r}: must use https (http only for localhost)")


def origin_of(uri: str) -> str:
    """``scheme://host[:port]`` as browsers send it in ``Origin`` (default ports left out)."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(parts.scheme)
    port = f":{parts.port}" if parts.port is not None and parts.port != default else ""
    return f"{parts.scheme}://{host}{port}"


def default_web_origins(redirect_uris: list[str]) -> list[str]:
    return sorted({origin_of(uri) for uri in redirect_uris})


def check_web_origin(origin: str) -> str:
    """An origin exactly as browsers send it: scheme and host (and port), nothing else; ``*`` is refused
    (a client's tokens are not for every page on the web)."""
    check_redirect_uri_syntax(origin, "web origin")
    if origin_of(origin) != origin:
        raise ValueError(f"web origin {origin!r}: scheme://host[:port] only, e.g. {origin_of(origin)!r}")
    return origin


def new_client_id() -> str:
    """A random client id that never starts with '-' (a command line would take it for an option)."""
    while True:
        client_id = secrets.token_urlsafe(18)
        if not client_id.startswith("-"):
            return client_id


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    name: str
    secret_hash: str | None
    client_metadata: dict[str, Any] = field(default_factory=dict)

    # -- what Authlib asks ---------------------------------------------------------------------------

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        uris = self.redirect_uris
        return uris[0] if len(uris) == 1 else None

    @property
    def allowed_scope(self) -> str:
        """The scopes the client may ask for, separated by single spaces."""
        return " ".join(self.client_metadata.get("scope", " ".join(SCOPES)).split())

    def get_allowed_scope(self, scope: str) -> str:
        allowed = set(self.allowed_scope.split())
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # Exact match: no prefixes, no wildcards (RFC 9700 2.1).
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        if self.secret_hash is None or not client_secret:
            return False
        return hmac.compare_digest(_hash_secret(client_secret), self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    # -- metadata --------------------------------------------------------------------------------------

    @property
    def redirect_uris(self) -> list[str]:
        return list(self.client_metadata.get("redirect_uris", []))

    @property
    def grant_types(self) -> list[str]:
        return list(self.client_metadata.get("grant_types", ["authorization_code", "refresh_token"]))

    @property
    def token_endpoint_auth_method(self) -> str:
        return str(self.client_metadata.get("token_endpoint_auth_method", "client_secret_basic"))

    @property
    def assertion_algs(self) -> tuple[str, ...]:
        """What this client may sign its client assertions with (RFC 7523), by its auth method."""
        method = self.token_endpoint_auth_method
        algs = {"client_secret_jwt": SECRET_ALGS, "private_key_jwt": PRIVATE_KEY_ALGS}.get(method, ())
        pinned = self.client_metadata.get("token_endpoint_auth_signing_alg")
        return tuple(a for a in algs if pinned is None or a == pinned)

    @property
    def request_object_algs(self) -> tuple[str, ...]:
        """What this client may sign request objects with (RFC 9101): its keys, or HMAC with its secret."""
        return (PRIVATE_KEY_ALGS if self.has_keys else ()) + (SECRET_ALGS if self.hmac_secret else ())

    @property
    def has_keys(self) -> bool:
        return bool(self.client_metadata.get("jwks") or self.client_metadata.get("jwks_uri"))

    @property
    def hmac_secret(self) -> str | None:
        return self.client_metadata.get(HMAC_SECRET)

    @property
    def require_pushed_authorization_requests(self) -> bool:
        return bool(self.client_metadata.get("require_pushed_authorization_requests", False))

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    @property
    def id_token_signed_response_alg(self) -> str:
        return str(self.client_metadata.get("id_token_signed_response_alg", "ES256"))

    @property
    def post_logout_redirect_uris(self) -> list[str]:
        return list(self.client_metadata.get("post_logout_redirect_uris", []))

    @property
    def backchannel_logout_uri(self) -> str | None:
        return self.client_metadata.get("backchannel_logout_uri")

    @property
    def trusted(self) -> bool:
        """First-party clients skip the consent page."""
        return bool(self.client_metadata.get("nextauth_trusted", False))

    @property
    def subject_type(self) -> str:
        return str(self.client_metadata.get("subject_type", "public"))

    @property
    def web_origins(self) -> list[str]:
        """Origins whose pages may call the token, userinfo and revocation endpoints (CORS). Clients
        registered before the setting existed: a public client's redirect URI origins, else none."""
        if "nextauth_web_origins" in self.client_metadata:
            return list(self.client_metadata["nextauth_web_origins"])
        return default_web_origins(self.redirect_uris) if self.token_endpoint_auth_method == "none" else []

    @property
    def access_token_format(self) -> str:
        return str(self.client_metadata.get("nextauth_access_token_format", "opaque"))

    @property
    def access_token_audiences(self) -> list[str]:
        return list(self.client_metadata.get("nextauth_access_token_audiences", []))

    def public_view(self) -> dict[str, Any]:
        shown = {k: v for k, v in self.client_metadata.items() if k != HMAC_SECRET}
        return {"client_id": self.client_id, "client_name": self.name, **shown}


def build_metadata(
    *,
    redirect_uris: list[str],
    post_logout_redirect_uris: list[str] | None = None,
    grant_types: list[str] | None = None,
    public: bool = False,
    auth_method: str | None = None,
    id_token_alg: str = "ES256",
    scope: str | None = None,
    backchannel_logout_uri: str | None = None,
    trusted: bool = False,
    web_origins: list[str] | None = None,
    subject_type: str = "public",
    access_token_format: str = "opaque",
    access_token_audiences: list[str] | None = None,
    jwks: dict[str, Any] | None = None,
    jwks_uri: str | None = None,
    auth_signing_alg: str | None = None,
    require_par: bool = False,
    ciba_mode: str | None = None,
    ciba_notification_endpoint: str | None = None,
) -> dict[str, Any]:
    """Checked client metadata, with RFC 7591 / OIDC Registration names."""
    grant_types = grant_types or ["authorization_code", "refresh_token"]
    for grant in grant_types:
        if grant not in GRANT_TYPES:
            raise ValueError(f"grant type {grant!r}: one of {', '.join(GRANT_TYPES)}")
    method = auth_method or ("none" if public else "client_secret_basic")
    if method not in AUTH_METHODS:
        raise ValueError(f"token endpoint auth method {method!r}: one of {', '.join(AUTH_METHODS)}")
    if public != (method == "none"):
        raise ValueError("public clients (no secret) authenticate with 'none', confidential ones cannot")
    if jwks and jwks_uri:
        raise ValueError("give the client's keys as jwks or as jwks_uri, not both")
    if method == "private_key_jwt" and not (jwks or jwks_uri):
        raise ValueError("private_key_jwt needs the client's public keys: jwks or jwks_uri")
    if jwks:
        check_public_jwks(jwks)
    if jwks_uri:
        check_redirect_uri_syntax(jwks_uri, "jwks_uri")
    if auth_signing_alg is not None:
        allowed = SECRET_ALGS if method == "client_secret_jwt" else PRIVATE_KEY_ALGS
        if method not in ("client_secret_jwt", "private_key_jwt") or auth_signing_alg not in allowed:
            raise ValueError(f"token endpoint signing alg {auth_signing_alg!r}: one of {', '.join(allowed)}")
    if public and "client_credentials" in grant_types:
        raise ValueError("client_credentials needs a confidential client (with a secret)")
    if public and CIBA_GRANT in grant_types:
        raise ValueError("CIBA needs a confidential client (with a secret)")
    if (CIBA_GRANT in grant_types) != (ciba_mode is not None):
        raise ValueError("the CIBA grant and a CIBA token delivery mode (poll or ping) go together")
    if ciba_mode is not None and ciba_mode not in CIBA_MODES:
        raise ValueError(f"CIBA token delivery mode {ciba_mode!r}: one of {', '.join(CIBA_MODES)}")
    if (ciba_mode == "ping") != bool(ciba_notification_endpoint):
        raise ValueError("CIBA ping mode needs a client notification endpoint, and only ping mode has one")
    if ciba_notification_endpoint:
        check_redirect_uri_syntax(ciba_notification_endpoint, "CIBA client notification endpoint")
    if "authorization_code" in grant_types and not redirect_uris:
        raise ValueError("the authorization code flow needs at least one redirect URI")
    for uri in redirect_uris:
        check_redirect_uri_syntax(uri)
    for uri in post_logout_redirect_uris or []:
        check_redirect_uri_syntax(uri, "post-logout redirect URI")
    if backchannel_logout_uri:
        check_redirect_uri_syntax(backchannel_logout_uri, "back-channel logout URI")
    if id_token_alg not in ID_TOKEN_ALGS:
        raise ValueError(f"ID token algorithm {id_token_alg!r}: one of {', '.join(ID_TOKEN_ALGS)}")
    scopes = (scope or " ".join(SCOPES)).split()
    for name in scopes:
        if name not in SCOPES:
            raise ValueError(f"scope {name!r}: one of {', '.join(SCOPES)}")
    metadata: dict[str, Any] = {
        "redirect_uris": redirect_uris,
        "post_logout_redirect_uris": post_logout_redirect_uris or [],
        "grant_types": grant_types,
        "response_types": ["code"] if "authorization_code" in grant_types else [],
        "token_endpoint_auth_method": method,
        "id_token_signed_response_alg": id_token_alg,
        "scope": " ".join(scopes),
        "nextauth_trusted": trusted,
    }
    if backchannel_logout_uri:
        metadata["backchannel_logout_uri"] = backchannel_logout_uri
        metadata["backchannel_logout_session_required"] = True
    # Browsers' pages: a public client is one (a single-page app) unless told otherwise; a confidential
    # client calls from its server, where CORS plays no part.
    if web_origins is None:
        web_origins = default_web_origins(redirect_uris) if public else []
    metadata["nextauth_web_origins"] = sorted({check_web_origin(origin) for origin in web_origins})
    if subject_type not in SUBJECT_TYPES:
        raise ValueError(f"subject type {subject_type!r}: one of {', '.join(SUBJECT_TYPES)}")
    if subject_type == "pairwise":
        sector_of(redirect_uris)
    metadata["subject_type"] = subject_type
    if access_token_format not in ACCESS_TOKEN_FORMATS:
        raise ValueError(
            f"access token format {access_token_format!r}: one of {', '.join(ACCESS_TOKEN_FORMATS)}"
        )
    metadata["nextauth_access_token_format"] = access_token_format
    for audience in access_token_audiences or []:
        parts = urlsplit(audience)
        if not parts.scheme or parts.fragment or len(audience) > 500:
            raise ValueError(f"access token audience {audience!r}: an absolute URI without a fragment")
    if access_token_audiences:
        metadata["nextauth_access_token_audiences"] = list(dict.fromkeys(access_token_audiences))
    if jwks:
        metadata["jwks"] = jwks
    if jwks_uri:
        metadata["jwks_uri"] = jwks_uri
    if auth_signing_alg:
        metadata["token_endpoint_auth_signing_alg"] = auth_signing_alg
    if require_par:
        metadata["require_pushed_authorization_requests"] = True
    if ciba_mode is not None:  # CIBA Core 4 (client metadata)
        metadata["backchannel_token_delivery_mode"] = ciba_mode
        metadata["backchannel_user_code_parameter"] = False
        if ciba_notification_endpoint:
            metadata["backchannel_client_notification_endpoint"] = ciba_notification_endpoint
    return metadata


class ClientRegistry:
    def __init__(self, engine: Engine, *, cache_seconds: float = 5.0) -> None:
        self._engine = engine
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Client | None]] = {}
        self._lock = threading.Lock()

    def get(self, client_id: str | None) -> Client | None:
        if not client_id or len(client_id) > 64:
            return None
        now = time.monotonic()
        cached = self._cache.get(client_id)
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        with Session(self._engine) as db:
            row = db.get(OidcClient, client_id)
            client = (
                Client(row.client_id, row.name, row.secret_hash, json.loads(row.metadata_json))
                if row is not None and not row.disabled
                else None
            )
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[client_id] = (now, client)
        return client

    def add(
        self, name: str, metadata: dict[str, Any], client_id: str | None = None
    ) -> tuple[Client, str | None]:
        """Register a client; returns it and its secret (shown once; None for a public client)."""
        if not name or len(name) > 200:
            raise ValueError("client name: 1 to 200 characters")
        client_id = client_id or new_client_id()
        if (
            len(client_id) > 64
            or client_id.startswith("-")
            or not client_id.isascii()
            or not client_id.replace("-", "").replace("_", "").isalnum()
        ):
            raise ValueError("client id: up to 64 ASCII letters, digits, '-' or '_', not starting with '-'")
        method = metadata["token_endpoint_auth_method"]
        secret = None if method in ("none", "private_key_jwt") else secrets.token_urlsafe(32)
        if method == "client_secret_jwt":
            metadata = {**metadata, HMAC_SECRET: secret}
        with Session(self._engine) as db, db.begin():
            if db.get(OidcClient, client_id) is not None:
                raise ValueError(f"client id {client_id!r} is taken")
            db.add(
                OidcClient(
                    client_id=client_id,
                    secret_hash=_hash_secret(secret) if secret else None,
                    name=name,
                    metadata_json=json.dumps(metadata),
                )
            )
        return Client(client_id, name, _hash_secret(secret) if secret else None, metadata), secret

    def remove(self, client_id: str) -> bool:
        with Session(self._engine) as db, db.begin():
            row = db.get(OidcClient, client_id)
            if row is None:
                return False
            db.delete(row)
        self._cache.pop(client_id, None)
        return True

    def set_disabled(self, client_id: str, disabled: bool) -> bool:
        """A disabled client is unknown to the endpoints (``get``) until enabled again; False if no such
        client. Other IdP instances follow within their cache time."""
        with Session(self._engine) as db, db.begin():
            row = db.get(OidcClient, client_id)
            if row is None:
                return False
            row.disabled = disabled
        self._cache.pop(client_id, None)
        return True

    def disabled_ids(self) -> set[str]:
        with Session(self._engine) as db:
            return set(db.scalars(select(OidcClient.client_id).where(OidcClient.disabled.is_(True))))

    def all(self) -> list[Client]:
        with Session(self._engine) as db:
            rows = db.scalars(select(OidcClient).order_by(OidcClient.created_at)).all()
            return [Client(r.client_id, r.name, r.secret_hash, json.loads(r.metadata_json)) for r in rows]
