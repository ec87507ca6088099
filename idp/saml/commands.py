"""``nextauth saml-sp add|list|remove``: registering SAML service providers by their metadata."""

import argparse
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from idp.saml import attributes
from idp.saml.names import NAMEID_FORMATS
from idp.saml.registry import Registry
from idp.saml.spmetadata import MAX_METADATA_BYTES

HELP = "SAML service providers: register by metadata, list, remove"


def arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="register an SP from its metadata (again: replace it)")
    add.add_argument("--metadata", required=True, help="the SP's metadata XML file ('-' for standard input)")
    add.add_argument(
        "--name-id-format",
        choices=sorted(NAMEID_FORMATS),
        default=None,
        help="persistent: a stable pseudonym per SP; transient: new every session; email: the verified "
        "e-mail address. Default: the first of these the SP's metadata declares (NameIDFormat), else "
        "persistent. The SP may ask for one that discloses less (transient < persistent < email)",
    )
    add.add_argument(
        "--attributes",
        default=",".join(attributes.DEFAULT),
        help=f"comma-separated, released to this SP: {', '.join(attributes.CATALOGUE)} (default: uid)",
    )
    add.add_argument("--encrypt", action="store_true", help="encrypt assertions to the SP's encryption key")
    actions.add_parser("list", help="every registered SP")
    remove = actions.add_parser("remove", help="forget an SP")
    remove.add_argument("entity_id")


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read(MAX_METADATA_BYTES + 1)
    file = Path(path)
    if file.stat().st_size > MAX_METADATA_BYTES:
        raise ValueError(f"{path}: larger than {MAX_METADATA_BYTES // 1024} KiB; is it the right file?")
    return file.read_text(encoding="utf-8")


def run(args: argparse.Namespace, engine: Engine) -> Any:
    registry = Registry(engine)
    if args.action == "add":
        try:
            xml = _read(args.metadata)
        except UnicodeDecodeError as exc:
            raise ValueError(f"{args.metadata}: not UTF-8 text") from exc
        try:
            provider, replaced = registry.add(
                xml,
                name_id_format=args.name_id_format,
                released=attributes.parse_list(args.attributes),
                encrypt=args.encrypt,
            )
        except ValueError as exc:
            raise ValueError(f"{args.metadata}: {exc}") from exc
        return {"replaced": replaced, **provider.summary()}
    if args.action == "list":
        return [provider.summary() for provider in registry.all()]
    return {"removed": registry.remove(args.entity_id)}
