from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class SendRequest(_message.Message):
    __slots__ = ("mailbox", "token", "envelope", "collapse_id", "ttl_seconds", "sender")
    MAILBOX_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    COLLAPSE_ID_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    mailbox: str
    token: str
    envelope: bytes
    collapse_id: str
    ttl_seconds: int
    sender: str
    def __init__(
        self,
        mailbox: _Optional[str] = ...,
        token: _Optional[str] = ...,
        envelope: _Optional[bytes] = ...,
        collapse_id: _Optional[str] = ...,
        ttl_seconds: _Optional[int] = ...,
        sender: _Optional[str] = ...,
    ) -> None: ...

class SendReply(_message.Message):
    __slots__ = ("message_id", "pushed")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    PUSHED_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    pushed: bool
    def __init__(self, message_id: _Optional[str] = ..., pushed: _Optional[bool] = ...) -> None: ...
