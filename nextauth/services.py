"""Run ns, sfs and mc in this process: one of them (production), or all three and the IdP (``nextauth all``).

The caller (``nextauth.cli``) has let gevent patch the standard library before importing this module.
"""

import json
import logging
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

import gevent
from gevent.pywsgi import WSGIServer
from grpc.experimental import gevent as grpc_gevent

from authserver import heap, workers
from authserver.config import COMPONENTS, ComponentConfig, load_config, unknown_variables
from authserver.logs import setup_logging
from authserver.services import mc, ns, sfs
from authserver.services.runtime import Component
from authserver.storage.db import DatabaseUnavailable, mask_uri
from authserver.transport import httpcore_gevent
from nextauth.idp_runner import embedded_idp

log = logging.getLogger("nextauth")

# sfs first: in all-in-one mode ns trusts the sfs it runs beside.
BUILD_ORDER = ("sfs", "mc", "ns")


def load(names: list[str], environ: Mapping[str, str], profile: str) -> list[ComponentConfig]:
    return [load_config(name, environ, port_offset_profile=profile) for name in names]


def run(configs: list[ComponentConfig], *, announce: bool) -> int:
    first = configs[0]
    setup_logging(first.log_level, first.log_format)
    for name in unknown_variables(os.environ):
        log.warning("ignoring unknown setting %s (a typo?)", name)
    if announce:
        for name in sorted(n for n in os.environ if n.startswith("NEXTAUTH_") and n.endswith("_WORKERS")):
            if os.environ[name].strip() not in ("", "1", "auto"):
                log.warning(
                    "ignoring %s: nextauth all runs in one process (workers: nextauth ns, sfs, mc, idp)", name
                )
    grpc_gevent.init_gevent()
    httpcore_gevent.install()  # for the httpx clients here: pushes, audit webhooks, the IdP calling ns
    components: list[Component] = []
    try:
        by_name: dict[str, Component] = {}
        for config in sorted(configs, key=lambda c: BUILD_ORDER.index(c.component)):
            log.info(
                "%s: database %s, store %s",
                config.component,
                mask_uri(config.db_uri),
                mask_uri(config.kv_uri) if config.kv_uri else "in-process",
            )
            by_name[config.component] = _build(config, by_name, embedded=announce)
            components.append(by_name[config.component])
        idp = None
        if announce and "ns" in by_name:
            apps = [by_name[name] for name in ("sfs", "mc") if name in by_name]
            app_config = json.dumps(app_configuration(apps)) if "sfs" in by_name else None
            idp = embedded_idp(by_name["ns"], first.data_dir, app_config)
        enrolment = by_name["ns"].extras["enrolment"] if "ns" in by_name else None
        if idp is not None and enrolment is not None and enrolment.invite_url is None:
            # The IdP beside it is where invite links lead, unless NEXTAUTH_NS_INVITE_URL says otherwise.
            enrolment.invite_url = f"{idp.public_url}/enrol/"
        for component in components:
            component.start()
        if idp is not None:
            idp.start()
    except (OSError, DatabaseUnavailable) as exc:
        log.error("cannot start: %s", exc)
        for component in components:
            component.stop()
        return 1
    if announce:
        _announce([by_name[name] for name in COMPONENTS if name in by_name], idp)
    stop = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    heap.freeze_startup_objects()
    # A worker of nextauth.supervisor: ready now; and it stops (drains) too if its supervisor goes away.
    workers.announce_ready()
    parent = workers.parent_watch()
    gevent.spawn(lambda: (parent.gone.wait(), stop.set()))
    stop.wait()
    log.info("shutting down")
    stopping = [gevent.spawn(component.stop) for component in components]
    if idp is not None:
        stopping.append(gevent.spawn(idp.stop, 2))
    # Each component drains for its own grace period, all at once; what is still running after that
    # (and a little more for closing) ends with the process.
    gevent.joinall(stopping, timeout=max(c.config.drain_seconds for c in components) + 6)
    log.info("stopped")
    return 0


def _build(config: ComponentConfig, built: dict[str, Component], *, embedded: bool) -> Component:
    if config.component == "sfs":
        return sfs.build(config)
    if config.component == "mc":
        return mc.build(config)
    local_sfs = [sfs.trusted_entry(built["sfs"])] if "sfs" in built else []
    local_mc = {}
    if "mc" in built:
        grpc_listen = built["mc"].config.listen["grpc"]
        local_mc[built["mc"].identity.key_hash.hex()] = f"grpc://{grpc_listen.host}:{grpc_listen.port}"
    return ns.build(config, trusted_sfs_keys=local_sfs, message_centers=local_mc, embedded=embedded)


def app_configuration(components: list[Component]) -> dict[str, dict[str, str]]:
    """What an app publisher bakes into its app: where its SFS and MC are and which keys they hold."""
    return {
        component.name: {
            "uri": component.config.public_sigmai_uri or component.urls["sigmai"],
            "key_hash": component.identity.key_hash.hex(),
        }
        for component in components
        if component.name in ("sfs", "mc")
    }


def _announce(components: list[Component], idp: WSGIServer | None = None) -> None:
    by_name = {component.name: component for component in components}
    data_dir = components[0].config.data_dir
    app_config_path = data_dir / "app-config.json"
    app_config_path.write_text(json.dumps(app_configuration(components), indent=2) + "\n")
    lines = ["", "nextAuth is running (embedded defaults: SQLite and an in-process store).", ""]
    if idp is not None:
        base = idp.public_url
        lines += [
            f"  Open {base}/login to log in with the app (QR login page).",
            f"  OpenID Connect: {base}/.well-known/openid-configuration (clients: nextauth oidc-client add)",
            f"  Web authenticator (a phone's browser as the app): {base}/app/",
            "",
        ]
    idp_admin = getattr(idp, "admin_url", None)
    if idp_admin:
        lines.append(f"  {'idp':<4} {'admin':<10} {idp_admin}")
    for component in components:
        for endpoint, url in component.urls.items():
            lines.append(f"  {component.name:<4} {endpoint:<10} {url}")
        lines.append(f"  {component.name:<4} {'key hash':<10} {component.identity.key_hash.hex()}")
        if component.name == "sfs":  # what another ns would trust it by (NEXTAUTH_NS_TRUSTED_SFS_KEYS)
            lines.append(f"  {'sfs':<4} {'ns trusts':<10} {sfs.trusted_entry(component)}")
    app = f"{Path(sys.executable).parent / 'nextauth-app'} --home {data_dir / 'phone'}"
    ns_component = by_name.get("ns")
    lines += [
        "",
        "Readiness: "
        + ", ".join(
            [f"{c.urls['admin']}readyz" for c in components] + ([f"{idp_admin}readyz"] if idp_admin else [])
        ),
        "",
        "Try the phone simulator:",
        f"  {app} init --config {app_config_path}",
        f"  {app} hello sfs",
        f"  {app} hello mc",
    ]
    if ns_component is not None:
        lines.append(
            f"  {app} hello --uri {ns_component.urls['sigmai']} "
            f"--key-hash {ns_component.identity.key_hash.hex()}"
        )
    if ns_component is not None:
        server = ns_component.extras["default_server"]
        lines += [
            "",
            f"REST API: {ns_component.urls['http']}v1/  (root API key: {ns_component.extras['root_api_key']},"
            f" also in {data_dir / 'ns-root-api-key'})",
            f"Default server id: {server.id}  (key hash {server.key_hash})",
            "The README's 'Enrol and log in from the terminal' walks through a first login.",
        ]
    lines.append("")
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
