"""Push providers of the Message Center: FCM HTTP v1, APNs HTTP/2, and a logging stand-in.

The interface and the logging provider are imported eagerly; ``FcmProvider`` and ``ApnsProvider`` only
when asked for, so that the embedded default (no credentials, log only) needs no HTTP client at all.
"""

from typing import TYPE_CHECKING, Any

from authserver.push.base import PushMessage, PushProvider, PushResult
from authserver.push.logging_provider import LoggingProvider

if TYPE_CHECKING:
    from authserver.push.apns import ApnsProvider
    from authserver.push.fcm import FcmProvider, ServiceAccount

__all__ = [
    "ApnsProvider",
    "FcmProvider",
    "LoggingProvider",
    "PushMessage",
    "PushProvider",
    "PushResult",
    "ServiceAccount",
]

_LAZY = {"FcmProvider": "fcm", "ServiceAccount": "fcm", "ApnsProvider": "apns"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"authserver.push.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
