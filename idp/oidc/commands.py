"""``nextauth oidc-client add|list|show|remove`` and ``nextauth oidc-keys rotate``."""

import argparse
import os
from typing import Any

from sqlalchemy import Engine

from idp.keys import ALGORITHMS, KeyRing
from idp.oidc.clients import GRANT_TYPES, ClientRegistry, build_metadata


def client_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="register a client; prints its id and secret (shown once)")
    add.add_argument("--name", required=True, help="shown to users on the consent page")
    add.add_argument("--client-id", help="default: random")
    add.add_argument("--redirect-uri", action="append", default=[], help="exact redirect URI (repeatable)")
    add.add_argument("--post-logout-redirect-uri", action="append", default=[], help="repeatable")
    add.add_argument(
        "--grant",
        action="append",
        choices=list(GRANT_TYPES),
        help="default: authorization_code and refresh_token (repeatable)",
    )
    add.add_argument("--public", action="store_true", help="no secret (single-page and native apps); PKCE")
    add.add_argument("--auth-method", choices=["client_secret_basic", "client_secret_post"])
    add.add_argument("--id-token-alg", choices=["ES256", "RS256"], default="ES256")
    add.add_argument("--scope", help="scopes it may ask for, space-separated (default: all)")
    add.add_argument("--backchannel-logout-uri", help="where logout tokens are POSTed when a session ends")
    add.add_argument("--trusted", action="store_true", help="first-party: never ask the user for consent")
    add.add_argument(
        "--ciba-mode", choices=["poll", "ping"], help="with --grant urn:openid:params:grant-type:ciba"
    )
    add.add_argument("--ciba-notification-endpoint", help="CIBA ping mode: where the IdP POSTs when done")
    actions.add_parser("list", help="every client")
    show = actions.add_parser("show", help="one client's metadata")
    show.add_argument("client_id")
    remove = actions.add_parser("remove", help="delete a client (its tokens stop working)")
    remove.add_argument("client_id")


def client_command(args: argparse.Namespace, engine: Engine) -> Any:
    registry = ClientRegistry(engine, cache_seconds=0)
    if args.action == "add":
        metadata = build_metadata(
            redirect_uris=args.redirect_uri,
            post_logout_redirect_uris=args.post_logout_redirect_uri,
            grant_types=args.grant,
            public=args.public,
            auth_method=args.auth_method,
            id_token_alg=args.id_token_alg,
            scope=args.scope,
            backchannel_logout_uri=args.backchannel_logout_uri,
            trusted=args.trusted,
            ciba_mode=args.ciba_mode,
            ciba_notification_endpoint=args.ciba_notification_endpoint,
        )
        client, secret = registry.add(args.name, metadata, args.client_id)
        return {**client.public_view(), "client_secret": secret}
    if args.action == "list":
        return [client.public_view() for client in registry.all()]
    if args.action == "show":
        found = registry.get(args.client_id)
        if found is None:
            raise ValueError(f"no client {args.client_id!r}")
        return found.public_view()
    return {"removed": registry.remove(args.client_id)}


def keys_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    rotate = actions.add_parser("rotate", help="new signing key; the old one stays published a while")
    rotate.add_argument("--purpose", choices=["oidc", "session", "saml"], default="oidc")
    rotate.add_argument("--alg", choices=["ES256", "RS256", "Ed25519"], help="default: every alg in use")
    actions.add_parser("list", help="published keys")


def keys_command(args: argparse.Namespace, engine: Engine) -> Any:
    ring = KeyRing(engine, issuer=os.environ.get("NEXTAUTH_IDP_PUBLIC_URL", ""))
    if args.action == "list":
        return [
            {
                "kid": k.kid,
                "purpose": k.purpose,
                "alg": k.alg,
                "created": k.created_at,
                "retired": k.retired_at,
            }
            for k in ring.published("oidc") + ring.published("session") + ring.published("saml")
        ]
    in_use = {k.alg for k in ring.published(args.purpose) if k.retired_at is None}
    algs = [args.alg] if args.alg else sorted(in_use or set(ALGORITHMS[args.purpose]))
    return [{"purpose": args.purpose, "alg": alg, "kid": ring.rotate(args.purpose, alg).kid} for alg in algs]
