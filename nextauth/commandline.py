"""The ``nextauth`` command line, below the gevent patch that ``nextauth.cli`` applies first.

The services, the IdP and their dependencies are imported only once a command needs them, so ``--help`` and
``--version`` answer at once: the parser built first knows the commands' names, and only the chosen
command's own arguments are filled in.
"""

import argparse
import json
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

SETTINGS_DOC = "docs/configuration.md"
AUDIT_DRAIN_SECONDS = 10.0
COMPONENTS = ("ns", "sfs", "mc")
ROLES = ("sessions", "users", "accounts", "servers", "createserver", "audit", "root")

# name -> help; the IdP's administration commands (idp.commands) are listed after these.
COMMANDS: dict[str, str] = {
    **{
        name: f"run the {name} service (settings NEXTAUTH_{name.upper()}_*, see {SETTINGS_DOC})"
        for name in COMPONENTS
    },
    "all": "run ns, sfs, mc and the IdP in one process on distinct loopback ports",
    "idp": f"run the IdP (login pages; settings NEXTAUTH_IDP_*, see {SETTINGS_DOC})",
    "migrate": "apply database migrations and exit",
    "apikey": "API keys for the ns REST API: create (printed once), list, revoke",
    "clientcert": "client certificates for the ns REST API: add, list, revoke",
    "invite": "invites with which people enrol their own phone: create (printed once), revoke",
    "audit": "the audit trail in ns's database: list events, oldest first",
}
IDP_COMMANDS: dict[str, str] = {
    "user": "the IdP's user directory: names, e-mail addresses, groups",
    "oidc-client": "OpenID Connect clients of the IdP",
    "oidc-consent": "users' consents to OpenID Connect clients: list, revoke",
    "idp-keys": "the IdP's signing keys: list, rotate",
    "saml-sp": "SAML service providers: register by metadata (file or URL), change options, list, remove",
}


def version() -> str:
    try:
        return metadata.version("nextauth")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _parser() -> tuple[argparse.ArgumentParser, Any]:
    parser = argparse.ArgumentParser(
        prog="nextauth",
        description=f"nextAuth authentication server. Settings: {SETTINGS_DOC}.",
    )
    parser.add_argument("--version", action="version", version=f"nextauth {version()}")
    return parser, parser.add_subparsers(dest="command", required=True)


def _key_options(parser: argparse.ArgumentParser, *, certificate: bool) -> None:
    parser.add_argument("--name", help="who or what uses it")
    parser.add_argument("--roles", help=f"comma-separated, among {', '.join(ROLES)}")
    parser.add_argument("--server", help="limit it to this virtual server")
    if certificate:
        parser.add_argument("--certificate", help="PEM file of the client's certificate")


def _access_arguments(parser: argparse.ArgumentParser, *, certificate: bool) -> None:
    """``apikey --name … --roles …`` (as before) or ``apikey create|list|revoke``."""
    _key_options(parser, certificate=certificate)
    actions = parser.add_subparsers(dest="action", metavar="action")
    _key_options(
        actions.add_parser("create" if not certificate else "add", help="the default"),
        certificate=certificate,
    )
    listed = actions.add_parser("list", help="every one, revoked ones included (never the secret)")
    listed.add_argument("--server", help="only those of this virtual server")
    revoke = actions.add_parser("revoke", help="stop it working (within seconds on running servers)")
    revoke.add_argument("id", help="its id (from list)" + (" or SHA-256 fingerprint" if certificate else ""))


def _invite_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="invite_command", required=True)
    create = actions.add_parser("create", help="a single-use invite link for a user (printed once)")
    create.add_argument("user", help="the user id the invite enrols")
    create.add_argument("--ttl", type=float, help="seconds it stays valid (default NEXTAUTH_NS_INVITE_TTL)")
    create.add_argument("--server", default="default", help="the virtual server (default: default)")
    revoke = actions.add_parser("revoke", help="revoke an invite: its link stops working")
    revoke.add_argument("invite", help="the invite id (not the token)")
    revoke.add_argument("--server", default="default", help="the virtual server (default: default)")


def _add_command(commands: Any, name: str) -> None:
    """Fill in one command's arguments (importing what it needs)."""
    if name in IDP_COMMANDS:
        from idp import commands as idp_commands

        help_text, (arguments, _run) = idp_commands.command(name)
        arguments(commands.add_parser(name, help=help_text))
        return
    command = commands.add_parser(name, help=COMMANDS[name])
    if name == "migrate":
        command.add_argument("component", choices=COMPONENTS)
    elif name in ("apikey", "clientcert"):
        _access_arguments(command, certificate=name == "clientcert")
    elif name == "invite":
        _invite_arguments(command)
    elif name == "audit":
        actions = command.add_subparsers(dest="action", metavar="action", required=True)
        listed = actions.add_parser("list", help="events oldest first, as JSON (the REST API's page)")
        listed.add_argument("--user", help="only events about this user id")
        listed.add_argument("--type", action="append", help="only this type (login.failed); repeatable")
        listed.add_argument("--server", help="only events of this virtual server")
        listed.add_argument("--since", help="from this ISO 8601 time on (UTC without a zone)")
        listed.add_argument("--until", help="before this ISO 8601 time")
        listed.add_argument("--limit", type=int, default=100, help="at most this many (1 to 1000)")
        listed.add_argument("--cursor", type=int, help="the next_cursor of the previous page")


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The parser for ``argv``: every command named, only the chosen one's arguments built."""
    parser, commands = _parser()
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    for name in (*COMMANDS, *IDP_COMMANDS):
        if name == chosen:
            _add_command(commands, name)
        else:
            commands.add_parser(name, help=COMMANDS.get(name) or IDP_COMMANDS[name], add_help=False)
    return parser


def _ns_config() -> Any:
    """ns's settings for the administration commands, without loading the services or the IdP (``nextauth
    ns`` runs them; a command that only opens the database need not import them: about 0.7 s each)."""
    from authserver.config import load_config

    return load_config("ns", os.environ, port_offset_profile="standalone")


def _roles(text: str | None) -> list[str]:
    return [role.strip() for role in (text or "").split(",") if role.strip()]


def _access(args: argparse.Namespace) -> int:
    """REST access from the command line: the first key of a deployment must come from somewhere."""
    from authserver.audit import AuditTrail
    from authserver.audit import settings as audit_settings
    from authserver.ns.access import AccessControl
    from authserver.storage import db

    config = _ns_config()
    trail_sinks = audit_settings.sinks("ns", os.environ)
    engine = db.create_engine_for(config.db_uri)
    db.upgrade(engine)
    trail = AuditTrail(engine, "ns", sinks=trail_sinks)
    trail.start()
    access = AccessControl(engine, "ns", None, trail)
    certificate = args.command == "clientcert"
    try:
        result: Any
        if args.action == "list":
            result = access.list_certificates(args.server) if certificate else access.list_keys(args.server)
        elif args.action == "revoke":
            revoked = (
                access.revoke_certificate(args.id, actor="command line")
                if certificate
                else access.revoke_key(args.id, actor="command line")
            )
            result = {"revoked": revoked}
            if not revoked:
                sys.stderr.write(
                    f"nextauth {args.command}: no such {args.command} (or already revoked): {args.id}\n"
                )
                return 2
        else:
            missing = [flag for flag, value in (("--name", args.name), ("--roles", args.roles)) if not value]
            if certificate and not args.certificate:
                missing.append("--certificate")
            if missing:
                sys.stderr.write(f"nextauth {args.command}: {', '.join(missing)} required\n")
                return 2
            roles = _roles(args.roles)
            if certificate:
                fingerprint = access.add_certificate(
                    args.name, roles, Path(args.certificate).read_bytes(), args.server, actor="command line"
                )
                result = {"name": args.name, "roles": roles, "sha256": fingerprint}
            else:
                result = {
                    "name": args.name,
                    "roles": roles,
                    "api_key": access.create_key(args.name, roles, args.server, actor="command line"),
                }
    except (ValueError, OSError) as exc:
        sys.stderr.write(f"nextauth {args.command}: {exc}\n")
        return 2
    finally:
        # The audit events of this command go to the sinks before it exits (the servers' sinks would
        # never see them).
        if not trail.drain(AUDIT_DRAIN_SECONDS):
            sys.stderr.write(f"nextauth {args.command}: an audit sink did not answer; the event is stored\n")
        trail.stop(1)
        engine.dispose()
    sys.stdout.write(json.dumps(result, default=str) + "\n")
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

    config = _ns_config()
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


def _audit(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from authserver.audit import EVENT_TYPES, TYPE_PREFIX, AuditTrail
    from authserver.storage import db

    def moment(flag: str, value: str | None) -> datetime | None:
        if value is None:
            return None
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"{flag}: an ISO 8601 time such as 2026-12-05T08:00:00Z") from exc
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed

    try:
        types = [t.strip() for value in args.type or () for t in value.split(",") if t.strip()]
        unknown = [t for t in types if t.removeprefix(TYPE_PREFIX) not in EVENT_TYPES]
        if unknown:
            raise ValueError(f"--type: no such event type {unknown[0]!r} (see docs/operations.md)")
        if not 1 <= args.limit <= 1000:
            raise ValueError("--limit: from 1 to 1000")
        since, until = moment("--since", args.since), moment("--until", args.until)
    except ValueError as exc:
        sys.stderr.write(f"nextauth audit: {exc}\n")
        return 2
    config = _ns_config()
    engine = db.create_engine_for(config.db_uri)
    try:
        db.upgrade(engine)
        events, cursor = AuditTrail(engine, "ns").query(
            types=types,
            subject=args.user,
            server_id=args.server,
            since=since,
            until=until,
            limit=args.limit,
            after=args.cursor,
        )
    finally:
        engine.dispose()
    sys.stdout.write(json.dumps({"events": events, "next_cursor": cursor}) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    from authserver.config import ConfigError

    try:
        if args.command in IDP_COMMANDS:
            from idp import commands as idp_commands

            return idp_commands.run(args)
        if args.command in ("apikey", "clientcert"):
            return _access(args)
        if args.command == "invite":
            return _invite(args)
        if args.command == "audit":
            return _audit(args)
        if args.command in COMPONENTS:
            from authserver import workers
            from authserver.config import load_config

            config = load_config(args.command, os.environ, port_offset_profile="standalone")
            if config.workers > 1 and workers.current() is None:
                # Checked and supervised before the services' code is loaded: the supervisor runs none.
                from nextauth.supervisor import supervise_component

                return supervise_component(config)
        from nextauth.services import load, run

        if args.command == "all":
            return run(load(list(COMPONENTS), os.environ, "all-in-one"), announce=True)
        if args.command == "idp":
            from nextauth.idp_runner import run_idp

            return run_idp()
        if args.command == "migrate":
            from authserver.storage import db

            (config,) = load([args.component], os.environ, "standalone")
            db.upgrade(db.create_engine_for(config.db_uri))
            return 0
        return run([config], announce=False)
    except ConfigError as exc:
        sys.stderr.write(f"nextauth: configuration error: {exc}\n")
        return 2
