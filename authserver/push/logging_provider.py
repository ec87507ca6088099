"""The embedded default when no FCM or APNs credentials are configured: log instead of pushing.

Apps still get their messages by pulling from the MC; only the wake-up is missing.
"""

import logging

from authserver.push.base import PushMessage, PushResult

log = logging.getLogger("nextauth.push")


class LoggingProvider:
    def __init__(self, name: str = "log") -> None:
        self.name = name

    def send(self, message: PushMessage) -> PushResult:
        log.info("would push to %s… (%s)", message.device_token[:8], self.name)
        return PushResult(True, self.name, None, False, None, None)

    def close(self) -> None:
        pass
