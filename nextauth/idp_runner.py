"""Run the IdP: on its own (``nextauth idp``), or embedded beside the ns of ``nextauth all``."""

import logging
import os
import signal
from pathlib import Path

import gevent
from gevent.pywsgi import WSGIServer

from authserver import heap, workers
from authserver.logs import setup_logging
from authserver.services.runtime import Component
from authserver.transport import httpcore_gevent
from idp import server as idp_server

log = logging.getLogger("nextauth")
IDP_GRACE_SECONDS = 2.0  # requests in flight at SIGTERM; the IdP holds no long channels


def _warn_unknown_settings() -> None:
    for name in idp_server.unknown_variables(os.environ):
        log.warning("ignoring unknown setting %s (a typo?)", name)


def embedded_idp(ns_component: Component, data_dir: Path, app_config: str | None = None) -> WSGIServer:
    """In all-in-one mode the IdP (login pages) runs too, as an application of the ns beside it.

    ``app_config``: the SFS and MC beside it (JSON as in ``app-config.json``), for the web authenticator."""
    _warn_unknown_settings()
    http = ns_component.config.listen["http"]
    settings = idp_server.load_settings(
        os.environ,
        data_dir=data_dir,
        embedded=True,
        defaults={
            "NS_API_URL": f"http://{http.host}:{http.port}",
            "NS_API_KEY": ns_component.extras["root_api_key"],
            "NS_WEBSOCKET_URL": ns_component.config.public_websocket_uri
            or f"{ns_component.urls['websocket']}ns/websocket",
        }
        | (
            {
                "AUTHENTICATOR_CONFIG": app_config,
                "AUTHENTICATOR_NS_URI": ns_component.config.public_sigmai_uri or ns_component.urls["sigmai"],
            }
            if app_config is not None
            else {}
        ),
    )
    server = idp_server.build_server(settings)
    server.public_url = settings.public_url
    return server


def run_idp() -> int:
    setup_logging(os.environ.get("NEXTAUTH_IDP_LOG_LEVEL", "INFO").upper())
    _warn_unknown_settings()
    settings = idp_server.load_settings(
        os.environ, data_dir=Path(os.environ.get("NEXTAUTH_DATA_DIR", ".nextauth"))
    )
    if settings.workers > 1 and workers.current() is None:
        from nextauth.supervisor import Supervisor

        listens = {"http": settings.listen}
        if settings.admin_listen is not None:
            listens["admin"] = settings.admin_listen
        return Supervisor("idp", ["idp"], settings.workers, listens, IDP_GRACE_SECONDS).run()
    httpcore_gevent.install()  # its calls to ns and to applications (back-channel logout)
    server = idp_server.build_server(settings)
    server.start()
    log.info("idp listening on %s", settings.public_url)
    if server.admin_url:
        log.info("idp admin (livez, readyz, metrics) on %s", server.admin_url)
    stop = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    heap.freeze_startup_objects()
    workers.announce_ready()
    parent = workers.parent_watch()
    gevent.spawn(lambda: (parent.gone.wait(), stop.set()))
    stop.wait()
    server.stop(timeout=IDP_GRACE_SECONDS)
    return 0
