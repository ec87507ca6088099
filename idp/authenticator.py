"""The web authenticator's settings: where its ns, SFS and MC are, and the SFS and MC keys it pins.

Read from ``NEXTAUTH_IDP_AUTHENTICATOR_CONFIG`` (JSON as ``nextauth all`` writes to ``app-config.json``, so
``..._CONFIG_FILE`` may name that file) and ``NEXTAUTH_IDP_AUTHENTICATOR_NS_URI``. Every URI here ends up
in a Content-Security-Policy header, so each is checked to be a plain ws:// or wss:// URI.
"""

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Endpoint:
    uri: str
    key_hash: str  # hex SHA-256 of the service's sigmai public key, pinned by the app

    def to_json(self) -> dict[str, str]:
        return {"uri": self.uri, "key_hash": self.key_hash}


@dataclass(frozen=True)
class AuthenticatorConfig:
    """Where the web authenticator's services are: ns (its sigmai URI; the server key comes from each QR
    code, as for the native app), and the SFS and MC with the keys the app pins."""

    ns_uri: str
    sfs: Endpoint
    mc: Endpoint | None = None

    @classmethod
    def parse(cls, app_config: str, ns_uri: str) -> "AuthenticatorConfig":
        """``app_config``: JSON as ``nextauth all`` writes to ``app-config.json``. Raises ``ValueError``."""
        try:
            data = json.loads(app_config)
        except json.JSONDecodeError as exc:
            raise ValueError("expected JSON as in app-config.json") from exc
        if not isinstance(data, dict) or "sfs" not in data:
            raise ValueError("expected a JSON object with at least 'sfs' (and 'mc' for push)")
        unknown = set(data) - {"sfs", "mc"}
        if unknown:
            raise ValueError(f"unknown entries {', '.join(sorted(unknown))}: only 'sfs' and 'mc'")
        return cls(
            ns_uri=_websocket_uri("the ns sigmai URI", ns_uri),
            sfs=_endpoint("sfs", data["sfs"]),
            mc=_endpoint("mc", data["mc"]) if data.get("mc") is not None else None,
        )

    def to_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"ns": {"uri": self.ns_uri}, "sfs": self.sfs.to_json()}
        if self.mc is not None:
            answer["mc"] = self.mc.to_json()
        return answer

    def connect_sources(self) -> list[str]:
        uris = [self.ns_uri, self.sfs.uri] + ([self.mc.uri] if self.mc else [])
        return list(dict.fromkeys(uris))


def _websocket_uri(what: str, value: Any) -> str:
    uri = str(value or "")
    parts = urlsplit(uri)
    # The URI goes into the CSP header: nothing that could end or extend a directive.
    if parts.scheme not in ("ws", "wss") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"{what}: expected a ws:// or wss:// URI without query, got {uri[:80]!r}")
    if any(c in uri for c in " ;,'\"\\") or not uri.isprintable():
        raise ValueError(f"{what}: the URI holds characters a URI cannot have")
    return uri


def _endpoint(name: str, data: Any) -> Endpoint:
    if not isinstance(data, dict):
        raise ValueError(f"{name}: expected an object with 'uri' and 'key_hash'")
    key_hash = str(data.get("key_hash") or "").lower()
    if not re.fullmatch(r"[0-9a-f]{64}", key_hash):
        raise ValueError(f"{name}: key_hash must be 64 hex characters (SHA-256 of the sigmai key)")
    return Endpoint(uri=_websocket_uri(f"{name} uri", data.get("uri")), key_hash=key_hash)
