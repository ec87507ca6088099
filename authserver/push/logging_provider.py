"""The embedded default when no FCM or APNs credentials are configured: log instead of pushing.

A newcomer's all-in-one setup has no Google or Apple credentials, and needs none: apps still get every
message by pulling from the MC when they show their main screen; only the wake-up is missing. This
provider stands in for FCM and APNs there, logs "would push to <token prefix>" at INFO (never the whole
device token) and reports the push as delivered, so the MC behaves as it would with a real provider.
"""

import logging

from authserver.push.base import PushMessage, PushResult, token_prefix

log = logging.getLogger("nextauth.push")


class LoggingProvider:
    """Logs each push instead of sending it. ``name`` (shown in the log line) tells which real provider
    it stands in for, e.g. "fcm (log only)"."""

    def __init__(self, name: str = "log") -> None:
        self.name = name

    def send(self, message: PushMessage) -> PushResult:
        log.info("would push to %s (%s)", token_prefix(message.device_token), self.name)
        # provider "log", whatever it stands in for: a result never claims FCM or APNs took the push.
        return PushResult(True, "log", None, False, None, None)

    def close(self) -> None:
        """Nothing to release."""
