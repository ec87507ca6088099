"""gevent's WSGI handler, with two things it does not do: send small answers at once, and pass on the TLS
client certificate.

gevent writes a response's headers and body separately; with Nagle's algorithm on, the body of a small
answer on a kept-alive connection waits for the client's delayed acknowledgement (about 40 ms on Linux).
The REST APIs grant access by a client certificate listed in the database (TLS peer verification), so
the application needs the certificate's fingerprint; the handler puts it in the WSGI environment.
"""

import hashlib
import http.client
import socket
from typing import Any

from gevent import pywsgi
from gevent.pywsgi import WSGIHandler

from authserver.transport import headers

CLIENT_CERT_KEY = "nextauth.client_cert_sha256"
# The gevent WSGIServer attribute with its connections' idle limit in seconds (none: no limit).
HTTP_IDLE_ATTRIBUTE = "http_idle_seconds"


class NoDelayHandler(WSGIHandler):  # type: ignore[misc]  # gevent ships no types
    def MessageClass(self, fp: Any, *_args: Any) -> Any:  # gevent calls it by this name
        """The request's headers as gevent's own factory reads them (authserver/transport/headers.py)."""
        message_class = pywsgi.OldMessage
        try:
            return headers.parse(fp, message_class)
        except http.client.LineTooLong:
            message = message_class()
            message.status = "Line too long"
            return message

    def handle(self) -> None:
        try:
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass  # not TCP (a Unix socket): nothing to tune
        # A client that connects and sends nothing, or stops half-way through its request, or keeps an
        # idle connection open, would hold a descriptor for ever: each read or write waits this long at
        # most (a server that sets ``http_idle_seconds``), then gevent closes the connection.
        idle = getattr(self.server, HTTP_IDLE_ATTRIBUTE, None)
        if idle is not None:
            self.socket.settimeout(idle)
        super().handle()


class PeerCertificateHandler(NoDelayHandler):
    def get_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environ()
        getpeercert = getattr(self.socket, "getpeercert", None)
        if getpeercert is not None:
            der = getpeercert(binary_form=True)
            if der:
                environ[CLIENT_CERT_KEY] = hashlib.sha256(der).hexdigest()
        return environ
