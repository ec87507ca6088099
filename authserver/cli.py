"""nextauth: run ns, sfs, mc (one per process in production, or all in one for a first look).

gevent must patch the standard library before anything else imports it, hence the first lines.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from collections.abc import Mapping  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402
from grpc.experimental import gevent as grpc_gevent  # noqa: E402

from authserver.config import COMPONENTS, ComponentConfig, ConfigError, load_config, unknown_variables  # noqa: E402
from authserver.logs import setup_logging  # noqa: E402
from authserver.ns.access import ROLES  # noqa: E402
from authserver.services import mc, ns, sfs  # noqa: E402
from authserver.services.runtime import Component  # noqa: E402
from authserver.storage.db import mask_uri  # noqa: E402
from idp import commands as idp_commands  # noqa: E402
from idp import server as idp_server  # noqa: E402

log = logging.getLogger("nextauth")

# sfs first: in all-in-one mode ns trusts the sfs it runs beside.
BUILD_ORDER = ("sfs", "mc", "ns")


def _load(names: list[str], environ: Mapping[str, str], profile: str) -> list[ComponentConfig]:
    return [load_config(name, environ, port_offset_profile=profile) for name in names]


def _run(configs: list[ComponentConfig], *, announce: bool) -> int:
    first = configs[0]
    setup_logging(first.log_level, first.log_format)
    for name in unknown_variables(os.environ):
        log.warning("ignoring unknown setting %s (a typo?)", name)
    grpc_gevent.init_gevent()
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
        idp = _embedded_idp(by_name["ns"], first.data_dir) if announce and "ns" in by_name else None
        for component in components:
            component.start()
        if idp is not None:
            idp.start()
    except OSError as exc:
        log.error("cannot start: %s", exc)
        for component in components:
            component.stop()
        return 1
    if announce:
        _announce([by_name[name] for name in COMPONENTS if name in by_name], idp)
    stop = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    stop.wait()
    log.info("shutting down")
    stopping = [gevent.spawn(component.stop) for component in components]
    if idp is not None:
        stopping.append(gevent.spawn(idp.stop, 2))
    gevent.joinall(stopping, timeout=8)
    return 0


def _embedded_idp(ns_component: Component, data_dir: Path) -> WSGIServer:
    """In all-in-one mode the IdP (login pages) runs too, as an application of the ns beside it."""
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
        },
    )
    server = idp_server.build_server(settings)
    server.public_url = settings.public_url  # type: ignore[attr-defined]
    return server


def _run_idp() -> int:
    setup_logging(os.environ.get("NEXTAUTH_IDP_LOG_LEVEL", "INFO").upper())
    settings = idp_server.load_settings(
        os.environ, data_dir=Path(os.environ.get("NEXTAUTH_DATA_DIR", ".nextauth"))
    )
    server = idp_server.build_server(settings)
    server.start()
    log.info("idp listening on %s", settings.public_url)
    stop = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    stop.wait()
    server.stop(timeout=2)
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
        base = idp.public_url  # type: ignore[attr-defined]
        lines += [
            f"  Open {base}/login to log in with the app (QR login page).",
            f"  OpenID Connect: {base}/.well-known/openid-configuration (clients: nextauth oidc-client add)",
            "",
        ]
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
        "Readiness: " + ", ".join(f"{c.urls['admin']}readyz" for c in components),
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


def _access(args: argparse.Namespace) -> int:
    """Grant REST access from the command line: the first key of a deployment must come from somewhere."""
    from authserver.ns.access import AccessControl
    from authserver.storage import db

    (config,) = _load(["ns"], os.environ, "standalone")
    engine = db.create_engine_for(config.db_uri)
    db.upgrade(engine)
    access = AccessControl(engine, "ns", None)
    roles = [role.strip() for role in args.roles.split(",") if role.strip()]
    try:
        if args.command == "apikey":
            key = access.create_key(args.name, roles, args.server)
            sys.stdout.write(json.dumps({"name": args.name, "roles": roles, "api_key": key}) + "\n")
        else:
            fingerprint = access.add_certificate(
                args.name, roles, Path(args.certificate).read_bytes(), args.server
            )
            sys.stdout.write(json.dumps({"name": args.name, "roles": roles, "sha256": fingerprint}) + "\n")
    except (ValueError, OSError) as exc:
        sys.stderr.write(f"nextauth: {exc}\n")
        return 2
    finally:
        engine.dispose()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nextauth", description="nextAuth authentication server.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in COMPONENTS:
        commands.add_parser(name, help=f"run the {name} service (settings from NEXTAUTH_{name.upper()}_*)")
    commands.add_parser("all", help="run ns, sfs, mc and the IdP in one process on distinct loopback ports")
    commands.add_parser("idp", help="run the IdP (login pages; settings from NEXTAUTH_IDP_*)")
    migrate = commands.add_parser("migrate", help="apply database migrations and exit")
    migrate.add_argument("component", choices=COMPONENTS)
    apikey = commands.add_parser("apikey", help="create an API key for the ns REST API (printed once)")
    apikey.add_argument("--name", required=True, help="who or what uses it")
    apikey.add_argument("--roles", required=True, help=f"comma-separated, among {', '.join(ROLES)}")
    apikey.add_argument("--server", help="limit it to this virtual server")
    clientcert = commands.add_parser("clientcert", help="list a client certificate for the ns REST API")
    clientcert.add_argument("--name", required=True)
    clientcert.add_argument("--roles", required=True, help=f"comma-separated, among {', '.join(ROLES)}")
    clientcert.add_argument("--server", help="limit it to this virtual server")
    clientcert.add_argument("--certificate", required=True, help="PEM file of the client's certificate")
    idp_commands.add_parsers(commands)
    args = parser.parse_args(argv)
    try:
        if args.command in idp_commands.commands():
            return idp_commands.run(args)
        if args.command == "all":
            return _run(_load(list(COMPONENTS), os.environ, "all-in-one"), announce=True)
        if args.command == "idp":
            return _run_idp()
        if args.command in ("apikey", "clientcert"):
            return _access(args)
        if args.command == "migrate":
            from authserver.storage import db

            (config,) = _load([args.component], os.environ, "standalone")
            db.upgrade(db.create_engine_for(config.db_uri))
            return 0
        return _run(_load([args.command], os.environ, "standalone"), announce=False)
    except ConfigError as exc:
        sys.stderr.write(f"nextauth: configuration error: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
