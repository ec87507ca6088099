"""``nextauth oidc-client add|list|show|remove``, ``nextauth oidc-consent list|revoke`` and
``nextauth idp-keys rotate``."""

import argparse
import json
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from authserver.config import kv_prefix_setting, read_setting
from authserver.storage.kv import open_kv
from idp.admin_audit import record_from_command_line
from idp.keys import ALGORITHMS, KeyRing
from idp.oidc.client_keys import check_public_jwks
from idp.oidc.clients import GRANT_TYPES, ClientRegistry, build_metadata
from idp.oidc.consents import list_consents, revoke_consent


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
    add.add_argument(
        "--auth-method",
        choices=["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt"],
        help="how a confidential client authenticates (default client_secret_basic); private_key_jwt needs "
        "--jwks or --jwks-uri",
    )
    keys = add.add_mutually_exclusive_group()
    keys.add_argument("--jwks", help="the client's public keys: a JWK set file (JSON)")
    keys.add_argument("--jwks-uri", help="where the client publishes its public keys (https)")
    add.add_argument("--auth-signing-alg", help="the one alg its client assertions may use (default: any)")
    add.add_argument(
        "--require-par", action="store_true", help="authorization requests only through PAR (RFC 9126)"
    )
    add.add_argument("--id-token-alg", choices=["ES256", "RS256"], default="ES256")
    add.add_argument("--scope", help="scopes it may ask for, space-separated (default: all)")
    add.add_argument("--backchannel-logout-uri", help="where logout tokens are POSTed when a session ends")
    add.add_argument("--trusted", action="store_true", help="first-party: never ask the user for consent")
    add.add_argument(
        "--web-origin",
        action="append",
        help="origin (scheme://host[:port]) whose pages may call the token, userinfo and revocation "
        "endpoints (CORS; repeatable). Default: public clients their redirect URIs' origins, others none",
    )
    add.add_argument("--no-web-origins", action="store_true", help="no CORS at all, even for a public client")
    add.add_argument(
        "--subject-type",
        choices=["public", "pairwise"],
        default="public",
        help="pairwise: a sub of its own per sector (the redirect URIs' host)",
    )
    add.add_argument(
        "--access-token-format", choices=["opaque", "jwt"], default="opaque", help="jwt: RFC 9068"
    )
    add.add_argument(
        "--access-token-audience",
        action="append",
        help="resource URI its JWT access tokens are for; a token request's 'resource' picks one",
    )
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
            web_origins=[] if args.no_web_origins else args.web_origin,
            subject_type=args.subject_type,
            access_token_format=args.access_token_format,
            access_token_audiences=args.access_token_audience,
            jwks=_read_jwks(args.jwks) if args.jwks else None,
            jwks_uri=args.jwks_uri,
            auth_signing_alg=args.auth_signing_alg,
            require_par=args.require_par,
            ciba_mode=args.ciba_mode,
            ciba_notification_endpoint=args.ciba_notification_endpoint,
        )
        client, secret = registry.add(args.name, metadata, args.client_id)
        record_from_command_line(engine, "oidc_client.added", {"client": client.client_id, "name": args.name})
        return {**client.public_view(), "client_secret": secret}
    if args.action == "list":
        return [client.public_view() for client in registry.all()]
    if args.action == "show":
        found = registry.get(args.client_id)
        if found is None:
            raise ValueError(f"no client {args.client_id!r}")
        return found.public_view()
    removed = registry.remove(args.client_id)
    if removed:
        record_from_command_line(engine, "oidc_client.removed", {"client": args.client_id})
    return {"removed": removed}


def _read_jwks(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"--jwks {path}: not a readable JSON file ({exc})") from None
    return check_public_jwks(data)


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


def consent_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    listed = actions.add_parser("list", help="users' consents to clients")
    listed.add_argument("--user", help="only this user's")
    listed.add_argument("--client", help="only those to this client")
    revoke = actions.add_parser(
        "revoke", help="forget a consent; the client's refresh tokens for the user end"
    )
    revoke.add_argument("--user", required=True)
    revoke.add_argument("--client", required=True)


def consent_command(args: argparse.Namespace, engine: Engine) -> Any:
    if args.action == "list":
        return list_consents(engine, user_id=args.user, client_id=args.client)
    # Access tokens are marked revoked in the shared store when this command can reach it (Redis); the
    # in-process store of a single IdP is out of reach, and its access tokens live out their 15 minutes.
    uri = read_setting("NEXTAUTH_IDP_KV_URI", os.environ) or read_setting("NEXTAUTH_KV_URI", os.environ)
    prefix = read_setting("NEXTAUTH_IDP_KV_PREFIX", os.environ) or read_setting(
        "NEXTAUTH_KV_PREFIX", os.environ
    )
    kv = (
        open_kv(uri, prefix=kv_prefix_setting("NEXTAUTH_IDP_KV_PREFIX", prefix))
        if uri and uri != "memory://"
        else None
    )
    return revoke_consent(engine, args.user, args.client, kv)
