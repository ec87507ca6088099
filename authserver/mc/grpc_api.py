"""The MC's gRPC API for ns (port 9090): one method, Send, over the generated protobuf stubs."""

import grpc

from authserver.mc.mailboxes import MailboxService, SendError
from authserver.mc.proto import messagecenter_pb2, messagecenter_pb2_grpc

_STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    403: grpc.StatusCode.PERMISSION_DENIED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


class MessageCenterServicer(messagecenter_pb2_grpc.MessageCenterServicer):
    def __init__(self, mailboxes: MailboxService) -> None:
        self._mailboxes = mailboxes

    def Send(
        self, request: messagecenter_pb2.SendRequest, context: grpc.ServicerContext
    ) -> messagecenter_pb2.SendReply:
        try:
            result = self._mailboxes.send(
                request.mailbox,
                request.token,
                request.envelope,
                sender=request.sender,
                collapse_id=request.collapse_id,
                ttl=request.ttl_seconds or 120,
            )
        except SendError as exc:
            context.abort(_STATUS.get(exc.status, grpc.StatusCode.INVALID_ARGUMENT), exc.message)
        return messagecenter_pb2.SendReply(message_id=result.message_id, pushed=result.pushed)


def add_to_server(server: grpc.Server, mailboxes: MailboxService) -> None:
    messagecenter_pb2_grpc.add_MessageCenterServicer_to_server(MessageCenterServicer(mailboxes), server)
