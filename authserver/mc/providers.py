"""Which push providers the MC uses, from its configuration.

Without credentials both FCM and APNs fall back to the logging provider: the embedded default, where
apps still get every message by pulling.
"""

from collections.abc import Mapping

from authserver.push.base import PushProvider
from authserver.push.logging_provider import LoggingProvider


def providers_from_environment(environ: Mapping[str, str]) -> dict[str, PushProvider]:
    return {"fcm": LoggingProvider("fcm (log only)"), "apns": LoggingProvider("apns (log only)")}
