"""nextauth: run ns, sfs, mc (one per process in production, or all in one for a first look) and the IdP.

gevent must patch the standard library before anything else imports it, hence the first lines.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from authserver.config import COMPONENTS, ConfigError  # noqa: E402
from authserver.ns.access import ROLES  # noqa: E402
from idp import commands as idp_commands  # noqa: E402
from nextauth.idp_runner import run_idp  # noqa: E402
from nextauth.services import load, run  # noqa: E402


def _access(args: argparse.Namespace) -> int:
    """Grant REST access from the command line: the first key of a deployment must come from somewhere."""
    from authserver.ns.access import AccessControl
    from authserver.storage import db

    (config,) = load(["ns"], os.environ, "standalone")
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
            return run(load(list(COMPONENTS), os.environ, "all-in-one"), announce=True)
        if args.command == "idp":
            return run_idp()
        if args.command in ("apikey", "clientcert"):
            return _access(args)
        if args.command == "migrate":
            from authserver.storage import db

            (config,) = load([args.component], os.environ, "standalone")
            db.upgrade(db.create_engine_for(config.db_uri))
            return 0
        return run(load([args.command], os.environ, "standalone"), announce=False)
    except ConfigError as exc:
        sys.stderr.write(f"nextauth: configuration error: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
