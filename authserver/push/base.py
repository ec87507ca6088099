"""What every push provider offers the Message Center."""

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class PushMessage:
    device_token: str
    collapse_id: str | None
    data: dict[str, str]
    alert_title: str | None = None
    alert_body: str | None = None
    ttl_seconds: int = 60


@dataclass(frozen=True)
class PushResult:
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
