"""gevent's WSGI server and handler, with what they do not do: send small answers at once, pass on the TLS
client certificate, close connections that stay silent, and take turns between kept-alive connections.

gevent writes a response's headers and body separately; with Nagle's algorithm on, the body of a small
answer on a kept-alive connection waits for the client's delayed acknowledgement (about 40 ms on Linux).
The handler turns Nagle off, and sends a small answer's headers and body together: one system call, not
two (most answers here are a few hundred bytes of JSON).
The REST APIs grant access by a client certificate listed in the database (TLS peer verification), so
the application needs the certificate's fingerprint; the handler puts it in the WSGI environment. A
client that connects and sends nothing (not even its TLS hello), stops half-way through its request, or
keeps an idle connection open would hold a descriptor and a greenlet for ever: on a server with
``http_idle_seconds`` (authserver/transport/servers.py) each read and write waits that long at most.

A connection's greenlet reads its next request as soon as it has answered one, and a client on another
core has often sent it by then: the read finds data, nothing blocks, and the greenlet does not go back to
the hub. Under load a few busy connections were served again and again while the others waited (answers
in 0.1 ms at the median, 300 ms and more at the 99th percentile, with 16 connections). Before each
further request on a connection the handler yields once, so that every connection found ready at the same
moment is served before any of them is served twice.
"""

import hashlib
import http.client
import socket
from collections.abc import Iterator
from typing import Any

import gevent
from gevent import pywsgi
from gevent.pywsgi import WSGIHandler

from authserver.transport import headers

CLIENT_CERT_KEY = "nextauth.client_cert_sha256"
# A body up to this size goes out in one send with the headers; a larger one is sent on its own, as gevent
# does, rather than copied.
SEND_WITH_HEADERS_MAX = 16 * 1024
# What gevent's servers log to when given log=None, as ours are: an access line would be formatted for it
# and thrown away.
_DISCARDING_LOG = getattr(pywsgi, "_NoopLog", ())


class NoDelayHandler(WSGIHandler):  # type: ignore[misc]  # gevent ships no types
    # gevent's: the status line as bytes (start_response encodes it), or after a socket error a text
    # saying so; the status code, negated after a socket error.
    status: Any
    code: Any

    def MessageClass(self, fp: Any, *_args: Any) -> Any:  # gevent calls it by this name
        """The request's headers as gevent's own factory reads them (authserver/transport/headers.py)."""
        message_class = headers.RequestHeaders
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
        # On a server with an idle limit each read or write waits this long at most, then gevent closes the
        # connection (a plain one: a TLS one has the limit from its handshake already).
        idle = getattr(self.server, "http_idle_seconds", None)
        if idle is not None:
            self.socket.settimeout(idle)
        self._answered = False
        super().handle()

    def _headers(self) -> Iterator[tuple[str, str]]:
        """``WSGIHandler._headers``: the ``HTTP_*`` environ entries, read from the message's name/value
        pairs. gevent formats each pair as a ``Name: value`` line and splits it again; a name never holds
        a colon, so the name and the stripped value are what that gives back. Names with an underscore are
        dropped (they could pass for another header once dashes become underscores)."""
        for name, value in self.headers._headers:
            if "_" in name:
                continue
            key = name.replace("-", "_").upper()
            if key != "CONTENT_TYPE" and key != "CONTENT_LENGTH":
                yield "HTTP_" + key, str(value).strip()

    def _write_with_headers(self, data: bytes) -> None:
        """gevent's, with the body in the same send as the headers when it is small and not chunked."""
        self.headers_sent = True
        self.finalize_headers()  # decides whether the body is chunked
        # status and headers are latin-1 bytes already (start_response encoded them)
        towrite = bytearray(b"HTTP/1.1 ")
        towrite += self.status
        towrite += b"\r\n"
        for header, value in self.response_headers:
            towrite += header
            towrite += b": "
            towrite += value
            towrite += b"\r\n"
        towrite += b"\r\n"
        if self.response_use_chunked or len(data) > SEND_WITH_HEADERS_MAX:
            self._sendall(towrite)
            self._write(data)
            return
        towrite += data
        self._sendall(towrite)

    def _sendall(self, data: bytes | bytearray) -> None:
        """gevent's, with one send for an answer that fits the socket's buffer (gevent's sendall asks the
        kernel for the buffer's size first, every time)."""
        try:
            sent = self.socket.send(data)
            if sent < len(data):
                self.socket.sendall(memoryview(data)[sent:])
        except OSError as ex:
            self.status = f"socket error: {ex}"
            if self.code > 0:
                self.code = -self.code
            raise
        self.response_length += len(data)

    def log_request(self) -> None:
        if not isinstance(self.server.log, _DISCARDING_LOG):
            super().log_request()

    def handle_one_request(self) -> Any:
        if self._answered:
            gevent.sleep(0)  # the other connections' turn first (see the module's docstring)
        self._answered = True
        return super().handle_one_request()


class PeerCertificateHandler(NoDelayHandler):
    def get_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environ()
        getpeercert = getattr(self.socket, "getpeercert", None)
        if getpeercert is not None:
            der = getpeercert(binary_form=True)
            if der:
                environ[CLIENT_CERT_KEY] = hashlib.sha256(der).hexdigest()
        return environ
