"""Turn a component's configuration into running gevent servers, and stop them cleanly.

A component is the same set of parts whatever its job: a database (migrated at start), a short-lived
store (Redis or in-process), a long-term Ed25519 sigmai key, a sigmai listener, an admin listener, and
the listeners particular to it (REST, gRPC, browser WebSocket) that its module in this package builds.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import gevent
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import Engine

from authserver import tls, workers
from authserver.admin import make_admin_app
from authserver.config import ComponentConfig
from authserver.operations import Operations
from authserver.ratelimit import RateLimiter
from authserver.services.common import register_hello
from authserver.storage import db
from authserver.storage.kv import KeyValueStore, open_kv
from authserver.storage.repository import ensure_service_key, record_device_seen
from authserver.transport.inflight import InFlight, TrackRequests, accept_waiting
from authserver.transport.servers import BoundedStreamServer, BoundedWSGIServer
from authserver.transport.sigmai_endpoint import SigmaiEndpoint
from authserver.transport.wsgi import PeerCertificateHandler
from sigmai import PeerKey, ServerIdentity
from sigmai.connection import KeyLookup

log = logging.getLogger("nextauth.runtime")
# Background jobs that one worker of several runs.
LEADER_ONLY = ("purge", "enrolment-purge", "audit-purge")


class Startable(Protocol):
    def start(self) -> None: ...
    def stop(self, timeout: float | None = None) -> None: ...


@dataclass
class Component:
    """A built component: its shared resources and its listeners (not yet started)."""

    config: ComponentConfig
    engine: Engine
    kv: KeyValueStore
    identity: ServerIdentity
    identity_key: ed25519.Ed25519PrivateKey
    operations: Operations
    limiter: RateLimiter
    listeners: dict[str, Startable] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    on_start: list[Callable[[], None]] = field(default_factory=list)
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)  # what a component's module wants to show or share
    inflight: InFlight = field(default_factory=InFlight)  # sigmai channels and REST requests being served
    draining: bool = False

    @property
    def name(self) -> str:
        return self.config.component

    def readiness_checks(self) -> dict[str, Callable[[], bool]]:
        # While draining, the balancer should send nothing new here: not ready, though still serving.
        return {
            "database": lambda: db.ping(self.engine),
            "store": self.kv.ping,
            "accepting": lambda: not self.draining,
        }

    def ssl_context(self, endpoint: str, *, api: bool = False) -> Any:
        material = self.config.tls.get(endpoint)
        if material is None:
            return None
        if api:
            return tls.server_context(
                material, client_auth=self.config.client_auth, client_ca_pem=self.config.client_ca_pem
            )
        return tls.server_context(material)

    def tls_kwargs(self, endpoint: str, *, api: bool = False) -> dict[str, Any]:
        """gevent servers take ``ssl_context`` only when there is one."""
        context = self.ssl_context(endpoint, api=api)
        return {"ssl_context": context} if context is not None else {}

    def url(self, endpoint: str, scheme: str) -> str:
        listen = self.config.listen[endpoint]
        secure = endpoint in self.config.tls
        host = f"[{listen.host}]" if ":" in listen.host else listen.host
        if host == "0.0.0.0":  # noqa: S104 - shown to a person, who connects to loopback
            host = "127.0.0.1"
        return f"{scheme}{'s' if secure else ''}://{host}:{listen.port}/"

    def address(self, endpoint: str) -> Any:
        """What ``endpoint``'s server listens on: the supervisor's shared socket in a worker, else the
        configured address."""
        listen = self.config.listen[endpoint]
        return workers.listener(endpoint, listen.host, listen.port)

    def add_wsgi(self, endpoint: str, app: Any, scheme: str = "http", *, api: bool = False) -> None:
        counted: dict[str, Any] = {}
        if endpoint != "admin":  # probes and scrapes do not hold up a shutdown
            app = TrackRequests(app, self.inflight)
            counted["spawn"] = self.inflight.spawn  # from the accept to the request
        self.listeners[endpoint] = BoundedWSGIServer(
            self.address(endpoint),
            app,
            log=None,
            handler_class=PeerCertificateHandler,
            # Probes come and go; the admin port is not for strangers.
            http_idle_seconds=None if endpoint == "admin" else self.config.http_idle_seconds,
            **counted,
            **self.tls_kwargs(endpoint, api=api),
        )
        self.urls[endpoint] = self.url(endpoint, scheme)

    def start(self) -> None:
        if not workers.is_leader():
            # Purges forget what has expired; one worker doing it is enough.
            for name in [name for name in self.listeners if name in LEADER_ONLY]:
                del self.listeners[name]
        for hook in self.on_start:
            hook()
        for endpoint, server in self.listeners.items():
            server.start()
            if endpoint in self.urls:  # background jobs (purges) listen on nothing
                log.info("%s %s listening on %s", self.name, endpoint, self.urls[endpoint])

    def stop(self, grace: float | None = None) -> None:
        """Drain, then stop: accept no new connection, let channels and requests in flight finish for up
        to ``grace`` seconds (the component's drain setting by default), then end what is left. A
        connection the kernel had set up before the listening socket closed is in flight too: it is
        taken and served, not reset.

        The admin port keeps answering meanwhile (not ready), and login pages stay connected so that a
        login finishing during the drain still reaches its page."""
        grace = self.config.drain_seconds if grace is None else grace
        self.draining = True
        others = []
        for endpoint, server in self.listeners.items():
            close = getattr(server, "close", None)
            if endpoint == "admin":
                continue
            if close is not None:  # gevent servers: the listening socket goes, open connections stay
                accept_waiting(server)
                close()
            else:  # gRPC drains by itself within its grace; purge jobs just stop
                others.append(gevent.spawn(server.stop, grace))
        if self.inflight.count:
            log.info(
                "%s: draining %d channels and requests (up to %.0f s)", self.name, self.inflight.count, grace
            )
        deadline = time.monotonic() + grace
        if not self.inflight.wait_idle(grace):
            log.warning(
                "%s: %d channels or requests still open after %.0f s: ended",
                self.name,
                self.inflight.count,
                grace,
            )
        # One of several workers: pages connected here may be waiting for a login another worker is
        # still finishing; they stay until every worker is idle (or the grace period is over).
        workers.parent_watch().wait_for_siblings(deadline - time.monotonic())
        gevent.joinall(others, timeout=1)
        # Stopped once only: a second gRPC stop with a shorter grace would cut what the first let finish.
        gevent.joinall(
            [gevent.spawn(server.stop, 1) for server in self.listeners.values() if hasattr(server, "close")],
            timeout=3,
        )
        for hook in self.on_stop:
            hook()
        self.kv.close()
        self.engine.dispose()


def _configured_identity(config: ComponentConfig) -> ed25519.Ed25519PrivateKey | None:
    if config.identity_key_pem is None:
        return None
    key = serialization.load_pem_private_key(config.identity_key_pem, password=None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)  # checked when the configuration was loaded
    return key


def build_component(
    config: ComponentConfig, display_name: str, *, key_lookup: KeyLookup | None = None
) -> Component:
    """Connect storage, load or create the key, and set up the listeners every component has.

    ``key_lookup`` replaces the single component key for sigmai when a component answers for several
    keys (ns: one per virtual server)."""
    engine = db.create_engine_for(config.db_uri)
    db.wait_for(engine, config.db_wait_seconds, label=f"{config.component}: ")
    db.upgrade(engine)
    kv = open_kv(config.kv_uri, prefix=config.kv_prefix)
    identity_key = ensure_service_key(engine, config.component, configured=_configured_identity(config))
    identity = ServerIdentity(identity_key)
    operations = Operations()
    register_hello(operations, config.component, display_name)
    component = Component(
        config=config,
        engine=engine,
        kv=kv,
        identity=identity,
        identity_key=identity_key,
        operations=operations,
        limiter=RateLimiter.for_store(config.component, config.kv_uri, prefix=config.kv_prefix),
    )

    def seen(peer: PeerKey) -> None:
        record_device_seen(engine, config.component, peer.type_name, peer.raw)

    endpoint = SigmaiEndpoint(
        config.component,
        key_lookup or {identity.key_hash: identity}.get,
        operations,
        max_message=config.max_frame_bytes,
        handshake_timeout=config.handshake_timeout,
        idle_timeout=config.idle_timeout,
        on_handshake=seen,
        trusted_proxies=config.trusted_proxies,
        inflight=component.inflight,
    )
    component.listeners["sigmai"] = BoundedStreamServer(
        component.address("sigmai"),
        endpoint,
        spawn=component.inflight.spawn,  # a channel counts from its accept, through its TLS handshake
        handshake_seconds=config.handshake_timeout,
        **component.tls_kwargs("sigmai"),
    )
    component.urls["sigmai"] = component.url("sigmai", "ws")
    component.add_wsgi("admin", make_admin_app(config.component, component.readiness_checks()))
    return component
