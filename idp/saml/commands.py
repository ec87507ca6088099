"""``nextauth saml-sp add|set|list|remove``: registering SAML service providers by their metadata (a file,
or a URL whose signed metadata the IdP fetches again as it changes) and changing their options."""

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from idp.admin_audit import record_from_command_line
from idp.saml import attributes, metadata_fetch
from idp.saml.config import load_settings
from idp.saml.names import NAMEID_FORMATS
from idp.saml.registry import Registry
from idp.saml.spmetadata import MAX_METADATA_BYTES
from idp.saml.spoptions import NAME_FORMATS, SIGN_CHOICES, SIGNATURE_ALGORITHMS, SpOptions


def _options(parser: argparse.ArgumentParser) -> None:
    """The per-SP options; unset means the default (add) or unchanged (set)."""
    parser.add_argument(
        "--signature-algorithm",
        help=f"for responses and assertions: {', '.join(SIGNATURE_ALGORITHMS)} (default rsa-sha256)",
    )
    parser.add_argument(
        "--sign", choices=SIGN_CHOICES, help="what carries the IdP's signature (default both)"
    )
    parser.add_argument("--assertion-lifetime", type=int, metavar="SECONDS", help="60 to 3600 (default 300)")
    parser.add_argument(
        "--name-format",
        choices=NAME_FORMATS,
        help="attribute names: uri (urn:oid, default) or basic (eduPersonPrincipalName, mail, ...)",
    )


def _chosen(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "signature_algorithm": args.signature_algorithm,
        "sign": args.sign,
        "assertion_lifetime": args.assertion_lifetime,
        "name_format": args.name_format,
    }


def arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="register an SP from its metadata (again: replace it)")
    source = add.add_mutually_exclusive_group(required=True)
    source.add_argument("--metadata", help="the SP's metadata XML file ('-' for standard input)")
    source.add_argument(
        "--metadata-url", help="fetch the SP's metadata from this URL, and again as it changes"
    )
    add.add_argument(
        "--metadata-cert", help="PEM certificate whose key must have signed the metadata at --metadata-url"
    )
    add.add_argument(
        "--insecure-unsigned",
        action="store_true",
        help="accept unsigned metadata from --metadata-url (anyone who can change it can then log users in "
        "to an address of their choosing; use only on a trusted network)",
    )
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
    _options(add)
    change = actions.add_parser("set", help="change a registered SP's options")
    change.add_argument("entity_id")
    change.add_argument("--attributes", help="comma-separated, released to this SP (replaces the list)")
    encrypt = change.add_mutually_exclusive_group()
    encrypt.add_argument("--encrypt", dest="encrypt", action="store_true", default=None)
    encrypt.add_argument("--no-encrypt", dest="encrypt", action="store_false")
    _options(change)
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


def _fetched(args: argparse.Namespace, options: SpOptions) -> tuple[str, SpOptions]:
    """The metadata at --metadata-url, verified, and the options that remember where it came from."""
    url = args.metadata_url
    if args.metadata_cert is None and not args.insecure_unsigned:
        raise ValueError(
            "--metadata-url needs --metadata-cert (the certificate the SP or federation signs its metadata "
            "with), or --insecure-unsigned to accept it unsigned"
        )
    if args.metadata_cert is not None and args.insecure_unsigned:
        raise ValueError("--metadata-cert and --insecure-unsigned: choose one")
    certificate = None
    if args.metadata_cert is not None:
        path = Path(args.metadata_cert)
        if path.stat().st_size > 64 * 1024:
            raise ValueError(f"{args.metadata_cert}: too large for a certificate; is it the right file?")
        certificate = metadata_fetch.load_certificate(path.read_text(encoding="utf-8"))
    try:
        xml = metadata_fetch.fetch(url, certificate)
    except ValueError as exc:
        raise ValueError(f"{url}: {exc}") from exc
    refresh = load_settings(os.environ).metadata_refresh_seconds
    source = metadata_fetch.source_for(url, certificate, xml, refresh)
    return xml, replace(options, source=source)


def run(args: argparse.Namespace, engine: Engine) -> Any:
    registry = Registry(engine)
    if args.action == "add":
        options = SpOptions().changed(**_chosen(args))
        if args.metadata_url is not None:
            xml, options = _fetched(args, options)
            origin = args.metadata_url
        else:
            if args.metadata_cert is not None or args.insecure_unsigned:
                raise ValueError("--metadata-cert and --insecure-unsigned go with --metadata-url")
            try:
                xml = _read(args.metadata)
            except UnicodeDecodeError as exc:
                raise ValueError(f"{args.metadata}: not UTF-8 text") from exc
            origin = args.metadata
        try:
            provider, replaced = registry.add(
                xml,
                name_id_format=args.name_id_format,
                released=attributes.parse_list(args.attributes),
                encrypt=args.encrypt,
                options=options,
            )
        except ValueError as exc:
            raise ValueError(f"{origin}: {exc}") from exc
        record_from_command_line(
            engine, "saml_sp.added", {"entity": provider.entity_id, "replaced": replaced}
        )
        return {"replaced": replaced, **provider.summary()}
    if args.action == "set":
        released = attributes.parse_list(args.attributes) if args.attributes is not None else None
        provider = registry.change(args.entity_id, released=released, encrypt=args.encrypt, **_chosen(args))
        return provider.summary()
    if args.action == "list":
        return [provider.summary() for provider in registry.all()]
    removed = registry.remove(args.entity_id)
    if removed:
        record_from_command_line(engine, "saml_sp.removed", {"entity": args.entity_id})
    return {"removed": removed}
