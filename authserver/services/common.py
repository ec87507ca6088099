"""What every service offers on its sigmai channel, whatever its job."""

from typing import Any

from authserver.operations import ChannelContext, Operations
from sigmai.constants import VERSION


def register_hello(
    operations: Operations, component: str, display_name: str, *, extra: dict[str, Any] | None = None
) -> None:
    @operations.register("hello")
    def hello(context: ChannelContext, _params: dict[str, Any]) -> dict[str, Any]:
        """Say who answered and whom it sees: the app shows this to prove the channel is right."""
        return {
            "component": component,
            "name": display_name,
            "protocol_version": VERSION,
            "server_key_hash": context.server_key_hash.hex(),
            "device_thumbprint": context.peer.thumbprint(),
            "device_key_type": context.peer.type_name,
            "operations": operations.names,
            **(extra or {}),
        }
