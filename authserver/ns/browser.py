"""The browser WebSocket (port 9999): a login page waits here for news about its session.

Text protocol of the original product. The page sends ``REGISTER <hsid> <serverid>``; ns answers with
``LOGIN`` (at once if the session is already logged in), ``CONFIRMSCAN`` when a phone scanned the code,
``CANCEL`` when the person declined on the phone, ``LOGOUT`` when the session ended, ``CANPROVOKE`` when a
push can be sent to the account that last logged in here. The page may send ``LOGOUT`` (ends the session)
and ``PROVOKE`` (pushes a login request to that same account; ns answers ``NUMBER n`` for the page to
show, or ``NOACCOUNTS``; past the limit of pushes per session, ``TOOMANY <seconds>`` and no push).
Knowing an hsid lets a page do these things and no more: it never gets the
session itself, which belongs to whoever holds the nonce.
"""

import logging
import socket
from typing import Any

import gevent
from flask import Flask, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed

from authserver.config import Network
from authserver.ns.browser_hub import BrowserHub
from authserver.ns.errors import ServiceError
from authserver.ns.login import LoginService
from authserver.ns.push import PushLoginService
from authserver.ns.servers import ServerRegistry
from authserver.ratelimit import RateLimited, RateLimiter, Rule, client_ip
from authserver.transport.wsgi import NoDelayHandler

log = logging.getLogger("nextauth.ns.browser")
# A page sends REGISTER as soon as it is open; a client that says nothing is not a login page.
REGISTER_TIMEOUT = 10.0
IDLE_SECONDS = 600.0
REQUEST_SECONDS = 10.0  # to send the HTTP upgrade request
PING_SECONDS = 25  # keeps proxies from dropping a waiting page; a client that answers no ping is closed
# After our close frame, how long a client has to answer before the TCP connection is cut regardless.
CLOSE_ANSWER_SECONDS = 2.0
SEND_SECONDS = 10.0  # a client that does not read what we send is dropped after this long
MAX_MESSAGE = 512
_SERVICE_RESTART = 1012  # the page reconnects (login.js does on any close), likely to another instance


class _Page:
    """One open login page as the hub sees it."""

    def __init__(self, ws: Any, server_id: str, hsid: str, login: LoginService) -> None:
        self.ws = ws
        self.server_id = server_id
        self.hsid = hsid
        self._login = login
        self.heard_login = False  # LOGIN once: the hub's event and a catch-up may both bring it

    def deliver(self, event: str) -> None:
        if event == "LOGIN":
            if self.heard_login:
                return
            self.heard_login = True
        try:
            with gevent.Timeout(SEND_SECONDS):
                self.ws.send(event)
        except (ConnectionClosed, OSError, gevent.Timeout):
            _drop(self.ws)

    def close(self) -> None:
        if self.ws.connected:
            try:
                self.ws.close(reason=_SERVICE_RESTART)
            except (ConnectionClosed, OSError):
                pass
        self.ws.event.set()  # wakes the page's receive, which then sees the socket closed

    def catch_up(self) -> None:
        """After the hub lost its subscription, or before it closes the page: the one event a page cannot
        do without is LOGIN."""
        if self.heard_login:
            return
        try:
            if self._login.active_session(self.server_id, self.hsid) is not None:
                self.deliver("LOGIN")
        except Exception as exc:
            log.info("browser page catch-up failed: %s", type(exc).__name__)


def _drop(ws: Any) -> None:
    """End the connection now: shutdown reaches the TCP connection whichever descriptor holds it."""
    try:
        ws.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    ws.connected = False


def _finish(ws: Any, code: int | None = None) -> None:
    """Close the WebSocket, give the client a moment to answer, then close the TCP connection."""
    if ws.connected:
        try:
            ws.close(reason=code)
        except (ConnectionClosed, OSError):
            pass
    # simple_websocket's reader ends when the answer arrives (or the peer goes); it would otherwise wait
    # for the next ping, and the socket with it.
    ws.thread.join(CLOSE_ANSWER_SECONDS)
    _drop(ws)


class BrowserSocketHandler(NoDelayHandler):
    """The WSGI handler of the browser port: after a WebSocket ends, the connection ends too.

    gevent would otherwise go back to reading HTTP requests from it, and a client that never closed its
    side would keep a descriptor here for ever."""

    def handle(self) -> None:
        # Bounds the wait for the upgrade request itself: a client that connects and says nothing (or
        # trickles) is dropped. The WebSocket reads through its own descriptor, without this limit.
        self.socket.settimeout(REQUEST_SECONDS)
        super().handle()

    def run_application(self) -> None:
        try:
            super().run_application()
        finally:
            if self._connection_upgrade_requested():
                self.close_connection = True


def make_browser_app(
    hub: BrowserHub,
    servers: ServerRegistry,
    login: LoginService,
    push: PushLoginService,
    *,
    limiter: RateLimiter | None = None,
    provoke_rule: Rule | None = None,
    trusted_proxies: tuple[Network, ...] = (),
) -> Flask:
    app = Flask("nextauth-ns-browser")
    sock = Sock(app)
    app.config["SOCK_SERVER_OPTIONS"] = {"ping_interval": PING_SECONDS, "max_message_size": MAX_MESSAGE}

    def serve(ws: Any) -> None:
        code: int | None = None
        try:
            code = _serve(ws)
        except ConnectionClosed:
            pass
        except Exception as exc:  # a store or database outage: the page reconnects and asks again
            log.warning("browser page ended: %s", type(exc).__name__)
            code = 1011
        finally:
            _finish(ws, code)

    def _serve(ws: Any) -> int | None:
        client = client_ip(request.remote_addr, request.headers.get("X-Forwarded-For"), trusted_proxies)
        first = ws.receive(timeout=REGISTER_TIMEOUT)
        parts = first.split() if isinstance(first, str) else []
        if len(parts) != 3 or parts[0] != "REGISTER" or len(parts[1]) > 64:
            return 1008
        hsid, server_id = parts[1], parts[2]
        server = servers.get(server_id)
        if server is None:
            return 1008
        page = _Page(ws, server_id, hsid, login)
        hub.add(hsid, page)
        try:
            if login.active_session(server_id, hsid) is not None:
                page.deliver("LOGIN")
            elif push.can_provoke(server_id, hsid):
                ws.send("CANPROVOKE")
            while ws.connected:
                incoming = ws.receive(timeout=IDLE_SECONDS)
                if incoming is None:
                    break
                if incoming == "LOGOUT":
                    login.logout(server_id, hsid, "browser")
                elif incoming == "PROVOKE":
                    try:
                        # Each PROVOKE rings the phone: counted per session, whichever page sends it.
                        if limiter is not None and provoke_rule is not None:
                            limiter.hit(provoke_rule, f"{server_id}:{hsid}", client=client)
                    except RateLimited as exc:
                        ws.send(f"TOOMANY {exc.retry_after}")
                        continue
                    try:
                        answer = push.provoke_session(server, hsid, {})
                        ws.send(f"NUMBER {answer['number']}")
                    except ServiceError:
                        ws.send("NOACCOUNTS")
        finally:
            hub.remove(hsid, page)
        return None

    sock.route("/", endpoint="browser_root")(serve)
    sock.route("/ns/websocket", endpoint="browser_ns")(serve)
    return app
