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


def _invite(args: argparse.Namespace) -> int:
    """Make (or revoke) an invite from the command line, straight in ns's database, as ``apikey`` makes
    keys: the running ns reads it from there, so this works for a single in-process ns too."""
    from authserver.ns.enrolment import EnrolmentService
    from authserver.ns.errors import ServiceError
    from authserver.ns.login import LoginService
    from authserver.ns.servers import ServerRegistry
    from authserver.services.ns import invite_ttl, invite_url
    from authserver.storage import db
    from authserver.storage.kv import MemoryStore

    (config,) = load(["ns"], os.environ, "standalone")
    engine = db.create_engine_for(config.db_uri)
    db.upgrade(engine)
    try:
        servers = ServerRegistry(engine)
        servers.ensure_default()
        server = servers.get(args.server)
        if server is None:
            sys.stderr.write(f"nextauth: no server {args.server!r}\n")
            return 2
        # Making an invite needs no login and no sigmai: the services' other parts stay idle here.
        login = LoginService(engine, MemoryStore(), servers, {}, "")
        invite_base = invite_url(os.environ)
        if invite_base is None and os.environ.get("NEXTAUTH_IDP_PUBLIC_URL"):
            invite_base = os.environ["NEXTAUTH_IDP_PUBLIC_URL"].rstrip("/") + "/enrol/"
        invites = EnrolmentService(
            engine, servers, login, "", invite_ttl=invite_ttl(os.environ), invite_url=invite_base
        )
        if args.invite_command == "revoke":
            invite = invites.revoke_invite(server, args.invite)
        else:
            invite = invites.create_invite(server, args.user, args.ttl)
    except ServiceError as exc:
        sys.stderr.write(f"nextauth: {exc.message}\n")
        return 2
    finally:
        engine.dispose()
    sys.stdout.write(json.dumps(invite) + "\n")
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
    invite = commands.add_parser("invite", help="invites with which people enrol their own phone")
    invite_commands = invite.add_subparsers(dest="invite_command", required=True)
    create = invite_commands.add_parser("create", help="a single-use invite link for a user (printed once)")
    create.add_argument("user", help="the user id the invite enrols")
    create.add_argument("--ttl", type=float, help="seconds it stays valid (default NEXTAUTH_NS_INVITE_TTL)")
    create.add_argument("--server", default="default", help="the virtual server (default: default)")
    revoke = invite_commands.add_parser("revoke", help="revoke an invite: its link stops working")
    revoke.add_argument("invite", help="the invite id (not the token)")
    revoke.add_argument("--server", default="default", help="the virtual server (default: default)")
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
        if args.command == "invite":
            return _invite(args)
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
