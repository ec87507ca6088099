"""What every push provider offers the Message Center, and the small helpers the providers share.

A push is only a wake-up: the MC sends "you have mail" with a message id, and the app then pulls the
end-to-end encrypted message from the MC. So ``send`` never raises for a failed push: it reports what
happened in a ``PushResult``, and the MC keeps the message for the app's next pull either way.

Device tokens and credentials stay out of logs and error texts: a device token identifies a phone, so
only ``token_prefix`` of one is ever logged.
"""

import email.utils
import ssl
import time
from dataclasses import dataclass
from typing import Protocol

from nextauth_core.digits import only_digits
from nextauth_core.encoding import b64url  # noqa: F401 - the providers import it from here


@dataclass(frozen=True)
class PushMessage:
    """One wake-up for one device. ``data`` is small and opaque to the provider (string values only:
    FCM allows nothing else). ``collapse_id`` lets the push service keep only the newest pending push
    of a kind; ``ttl_seconds`` is how long the service may hold the push for an offline device."""

    device_token: str
    collapse_id: str | None
    data: dict[str, str]
    alert_title: str | None = None
    alert_body: str | None = None
    ttl_seconds: int = 60


@dataclass(frozen=True)
class PushResult:
    """What became of one push.

    ``token_invalid``: the push service says the token will never work again (app uninstalled, token
    malformed or from another app); the MC should stop pushing to it. ``retry_after``: the service is
    overloaded or throttling; seconds to wait before pushing through this provider again.
    """

    delivered: bool
    provider: str
    provider_message_id: str | None
    token_invalid: bool
    retry_after: float | None
    error: str | None


class PushProvider(Protocol):
    name: str

    def send(self, message: PushMessage) -> PushResult: ...

    def close(self) -> None: ...


def token_prefix(token: str) -> str:
    """Enough of a device token to tell tokens apart in a log, not enough to push to the device."""
    return token[:8] + "…" if len(token) > 8 else token


def failed(
    provider: str,
    error: str,
    *,
    token_invalid: bool = False,
    retry_after: float | None = None,
    message_id: str | None = None,
) -> PushResult:
    # Error texts from the services can be long; a bounded one is enough for a log line.
    return PushResult(False, provider, message_id, token_invalid, retry_after, error[:300])


def parse_retry_after(value: str | None, default: float | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (RFC 9110 10.2.3): delay-seconds or an HTTP-date."""
    if value is None or not value.strip():
        return default
    value = value.strip()
    if only_digits(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        return default
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def client_tls_context(ca_file: str | None) -> ssl.SSLContext:
    """A verifying client context: the system's trust store, or only ``ca_file`` when one is given
    (a private CA in tests, or a pinned CA bundle in production). Verification is never switched off:
    these connections carry the service credentials."""
    if ca_file:
        context = ssl.create_default_context(cafile=ca_file)
    else:
        context = ssl.create_default_context()
        if not context.cert_store_stats().get("x509_ca"):
            # Slim container images may ship no system CA bundle; certifi comes with httpx.
            import certifi

            context.load_verify_locations(cafile=certifi.where())
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def require_https(url: str, what: str) -> str:
    """Credentials (OAuth assertions, bearer tokens) only ever go over TLS."""
    if not url.startswith("https://"):
        raise ValueError(f"{what} must be an https:// URL")
    return url.rstrip("/")
