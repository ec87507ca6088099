"""Message Center: delivers push and pull messages to apps; ns reaches it over gRPC or REST."""

import logging
import os
from datetime import timedelta

import gevent
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from authserver.config import ComponentConfig, read_setting, whole_number_in_range
from authserver.mc import grpc_api, providers, rest_api
from authserver.mc.mailboxes import MailboxService
from authserver.mc.providers import providers_from_environment
from authserver.metrics import instrument_flask
from authserver.purge import PeriodicPurge
from authserver.ratelimit import client_guard, describe, rule_setting
from authserver.services.info_api import make_info_app
from authserver.services.runtime import Component, build_component

log = logging.getLogger("nextauth.mc")

# The settings read here and by the push providers (authserver.config reads the rest); the typo check
# knows them from this list.
SETTINGS = (
    "NEXTAUTH_MC_UNUSED_MAILBOX_DAYS",
    "NEXTAUTH_MC_RATE_LIMIT_MAILBOX",
    "NEXTAUTH_MC_RATE_LIMIT_MAILBOX_ALL",
    *providers.SETTINGS,
)
DEFAULT_UNUSED_MAILBOX_DAYS = 30


def _unused_mailbox_days(environ: dict[str, str]) -> int:
    return whole_number_in_range(
        "NEXTAUTH_MC_UNUSED_MAILBOX_DAYS",
        read_setting("NEXTAUTH_MC_UNUSED_MAILBOX_DAYS", environ),
        default=DEFAULT_UNUSED_MAILBOX_DAYS,
        high=3650,
        unit="days",
    )


class GrpcServer:
    """Adapts a grpc.Server to start/stop like the gevent servers, with the standard health service
    reporting SERVING only while the component's database and store answer."""

    def __init__(self, component: Component) -> None:
        self._component = component
        listen = component.config.listen["grpc"]
        # Several workers each bind the gRPC port (gRPC takes no inherited socket): SO_REUSEPORT lets them,
        # and the kernel spreads connections. One process alone keeps it off, so a port in use is an error.
        reuse = 1 if component.config.workers > 1 else 0
        self.server = grpc.server(_executor(), options=[("grpc.so_reuseport", reuse)])
        self.health = health.HealthServicer()
        self._watcher: gevent.Greenlet | None = None
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        address = f"[{listen.host}]:{listen.port}" if ":" in listen.host else f"{listen.host}:{listen.port}"
        material = component.config.tls.get("grpc")
        try:
            if material is None:
                self.server.add_insecure_port(address)
            else:
                credentials = grpc.ssl_server_credentials([(material.key_pem, material.certificate_pem)])
                self.server.add_secure_port(address, credentials)
        except RuntimeError as exc:  # grpc reports a port in use this way, not as OSError
            raise OSError(f"cannot listen for gRPC on {address} (in use?)") from exc

    def refresh_health(self) -> None:
        ready = all(check() for check in self._component.readiness_checks().values())
        status = (
            health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        self.health.set("", status)
        self.health.set("nextauth.mc", status)

    def _watch(self) -> None:
        while True:
            gevent.sleep(5)
            self.refresh_health()

    def start(self) -> None:
        self.refresh_health()
        self.server.start()
        self._watcher = gevent.spawn(self._watch)

    def stop(self, timeout: float | None = None) -> None:
        # Also called when another listener failed to start before this one did.
        if self._watcher is not None:
            self._watcher.kill()
            self._watcher = None
        self.server.stop(grace=timeout)


def _executor():  # type: ignore[no-untyped-def]
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=16, thread_name_prefix="mc-grpc")


def build(config: ComponentConfig, *, environ: dict[str, str] | None = None) -> Component:
    environ = dict(os.environ if environ is None else environ)
    component = build_component(config, "Message Center")
    providers = providers_from_environment(environ, config.data_dir)
    mailboxes = MailboxService(component.engine, providers)
    component.operations.register("mailbox.register")(mailboxes.register)
    # Each mailbox.register of a new device key adds a row: limited per client address and for all.
    per_client = rule_setting(environ, "NEXTAUTH_MC_RATE_LIMIT_MAILBOX", "mailbox_register", "30/minute")
    overall = rule_setting(
        environ, "NEXTAUTH_MC_RATE_LIMIT_MAILBOX_ALL", "mailbox_register_all", "600/minute"
    )
    guard = client_guard(component.limiter, per_client, overall)
    component.operations.guard("mailbox.register", guard)
    # mailbox.push adds no row, but each call may name a new endpoint to push to: counted the same way.
    component.operations.register("mailbox.push")(mailboxes.set_push)
    component.operations.guard("mailbox.push", guard)
    log.info("mc rate limits: %s", describe([per_client, overall]))
    unused = timedelta(days=_unused_mailbox_days(environ))
    component.listeners["purge"] = PeriodicPurge(
        "mc", "unused mailboxes", lambda: mailboxes.purge_unused(unused)
    )
    component.operations.register("mailbox.fetch")(mailboxes.fetch)
    component.operations.register("mailbox.ack")(mailboxes.ack)
    vapid_public_key = mailboxes.vapid_public_key()
    if vapid_public_key is not None:
        log.info("mc web push VAPID public key: %s", vapid_public_key)
    component.operations.register("webpush.key")(mailboxes.webpush_key)
    http_app = make_info_app(component)
    rest_api.add_routes(http_app, mailboxes)
    instrument_flask(http_app, "mc")
    component.add_wsgi("http", http_app, api=True)
    component.on_stop.extend(provider.close for provider in providers.values())
    grpc_server = GrpcServer(component)
    grpc_api.add_to_server(grpc_server.server, mailboxes)
    component.listeners["grpc"] = grpc_server
    listen = config.listen["grpc"]
    component.urls["grpc"] = f"{listen.host}:{listen.port}"
    return component
