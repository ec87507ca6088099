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
from typing import Any

import gevent
from flask import Flask, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed

from authserver.config import Network
from authserver.ns.errors import ServiceError
from authserver.ns.login import LoginService
from authserver.ns.push import PushLoginService
from authserver.ns.servers import ServerRegistry
from authserver.ratelimit import RateLimited, RateLimiter, Rule, client_ip
from authserver.storage.kv import KeyValueStore

log = logging.getLogger("nextauth.ns.browser")
REGISTER_TIMEOUT = 30.0
IDLE_SECONDS = 600.0


def make_browser_app(
    kv: KeyValueStore,
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
    app.config["SOCK_SERVER_OPTIONS"] = {"ping_interval": 25, "max_message_size": 512}

    def serve(ws: Any) -> None:
        client = client_ip(request.remote_addr, request.headers.get("X-Forwarded-For"), trusted_proxies)
        first = ws.receive(timeout=REGISTER_TIMEOUT)
        parts = first.split() if isinstance(first, str) else []
        if len(parts) != 3 or parts[0] != "REGISTER" or len(parts[1]) > 64:
            ws.close(reason=1008)
            return
        hsid, server_id = parts[1], parts[2]
        server = servers.get(server_id)
        if server is None:
            ws.close(reason=1008)
            return
        subscription = kv.subscribe(login.events.channel(hsid))
        try:
            if login.active_session(server_id, hsid) is not None:
                ws.send("LOGIN")
            elif push.can_provoke(server_id, hsid):
                ws.send("CANPROVOKE")

            def forward() -> None:
                # Ends when the store closes the subscription (shutdown), not just when the page leaves.
                while not subscription.closed:
                    message = subscription.get(timeout=1.0)
                    if message is not None:
                        ws.send(message.decode("ascii"))

            forwarder = gevent.spawn(forward)
            try:
                while forwarder and not forwarder.dead:
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
                forwarder.kill()
        except ConnectionClosed:
            pass
        finally:
            subscription.close()

    sock.route("/", endpoint="browser_root")(serve)
    sock.route("/ns/websocket", endpoint="browser_ns")(serve)
    return app
