"""Administration of the IdP from the command line (``nextauth user|oidc-client|saml-sp|idp-keys ...``).

Each command opens the IdP's database as the IdP itself would (``NEXTAUTH_IDP_DB_URI``, else
``NEXTAUTH_DB_URI``, else ``idp.db`` in ``NEXTAUTH_DATA_DIR``), applies migrations, and prints JSON.
"""

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from authserver.config import ConfigError, read_setting
from authserver.storage import db
from idp.directory import Directory, Profile

# command name -> (add its arguments, run it on the IdP's engine)
Command = tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace, Engine], Any]]


def idp_engine(environ: dict[str, str] | None = None) -> Engine:
    environ = dict(os.environ if environ is None else environ)
    uri = read_setting("NEXTAUTH_IDP_DB_URI", environ) or read_setting("NEXTAUTH_DB_URI", environ)
    if uri is None:
        data_dir = Path(environ.get("NEXTAUTH_DATA_DIR", ".nextauth"))
        data_dir.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{(data_dir / 'idp.db').as_posix()}"
    engine = db.create_engine_for(uri)
    db.upgrade(engine)
    return engine


def _user_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    put = actions.add_parser(
        "set", help="create a user's profile or change the fields given (the others stay; '' clears one)"
    )
    put.add_argument("user_id", help="the user id ns logs in (as enrolled)")
    put.add_argument("--name")
    put.add_argument("--email", help="a new address is unverified unless --email-verified is given too")
    put.add_argument("--email-verified", action=argparse.BooleanOptionalAction, default=None)
    put.add_argument("--groups", help="comma-separated group names (replaces the list)")
    show = actions.add_parser("show", help="print a user's profile")
    show.add_argument("user_id")
    remove = actions.add_parser("delete", help="forget a user's profile (the user can still log in)")
    remove.add_argument("user_id")
    actions.add_parser("list", help="every profile")


def _changed_profile(current: Profile, args: argparse.Namespace) -> Profile:
    """``current`` with the fields the command gave: others keep their value, and a changed e-mail address
    loses its verified mark unless the command vouches for the new one."""
    changes: dict[str, Any] = {}
    if args.name is not None:
        changes["name"] = args.name or None
    if args.email is not None:
        changes["email"] = args.email or None
        if changes["email"] != current.email:
            changes["email_verified"] = False
    if args.email_verified is not None:
        changes["email_verified"] = args.email_verified
    if args.groups is not None:
        changes["groups"] = tuple(group.strip() for group in args.groups.split(",") if group.strip())
    return replace(current, **changes)


def _user(args: argparse.Namespace, engine: Engine) -> Any:
    directory = Directory(engine)
    if args.action == "set":
        return asdict(directory.put(_changed_profile(directory.get(args.user_id), args)))
    if args.action == "show":
        return asdict(directory.get(args.user_id))
    if args.action == "delete":
        return {"deleted": directory.delete(args.user_id)}
    return [asdict(profile) for profile in directory.all()]


def _oidc_command(arguments: str, handler: str) -> Callable[[], Command]:
    def load() -> Command:
        from idp.oidc import commands as oidc

        return getattr(oidc, arguments), getattr(oidc, handler)

    return load


def _saml_command() -> Command:
    from idp.saml import commands as saml

    return saml.arguments, saml.run


# name -> (help, how to get the command). Each protocol's module is imported only when one of its commands
# runs: pysaml2 alone costs half a second, which `nextauth user` need not pay.
COMMANDS: dict[str, tuple[str, Callable[[], Command]]] = {
    "user": ("the IdP's user directory: names, e-mail addresses, groups", lambda: (_user_arguments, _user)),
    "oidc-client": ("OpenID Connect clients of the IdP", _oidc_command("client_arguments", "client_command")),
    "oidc-consent": (
        "users' consents to OpenID Connect clients: list, revoke",
        _oidc_command("consent_arguments", "consent_command"),
    ),
    "idp-keys": ("the IdP's signing keys: list, rotate", _oidc_command("keys_arguments", "keys_command")),
    "saml-sp": (
        "SAML service providers: register by metadata (file or URL), change options, list, remove",
        _saml_command,
    ),
}


def command(name: str) -> tuple[str, Command]:
    """One command's help and (arguments, handler), importing only what it needs."""
    help_text, load = COMMANDS[name]
    return help_text, load()


def commands() -> dict[str, tuple[str, Command]]:
    """name -> (help, command), every one (this imports every protocol's module)."""
    return {name: command(name) for name in COMMANDS}


def add_parsers(subparsers: Any) -> None:
    for name, (help_text, (arguments, _run)) in commands().items():
        arguments(subparsers.add_parser(name, help=help_text))


def run(args: argparse.Namespace) -> int:
    _help, (_arguments, handler) = command(args.command)
    engine = idp_engine()
    try:
        result = handler(args, engine)
    except (ValueError, OSError, ConfigError) as exc:
        sys.stderr.write(f"nextauth {args.command}: {exc}\n")
        return 2
    finally:
        engine.dispose()
    sys.stdout.write(json.dumps(result, indent=1, default=str) + "\n")
    return 0
