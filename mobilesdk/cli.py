"""nextauth-app: a scriptable phone. Every command prints one JSON object; failures exit 1 with
``{"error": ...}`` on stdout so scripts and tests can read both the same way."""

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from mobilesdk.channel import ChannelError, RemoteError, open_channel
from mobilesdk.flows import App, FlowError
from mobilesdk.store import AppStore, ServiceEndpoint, StoreError


def _emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")


def _init(store: AppStore, args: argparse.Namespace) -> dict[str, Any]:
    services = store.services()
    if args.config:
        try:
            data = json.loads(Path(args.config).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreError(f"cannot read app configuration {args.config}: {exc}") from exc
        for name in ("sfs", "mc"):
            if name in data:
                services[name] = ServiceEndpoint.from_json(name, data[name])
    for name in ("sfs", "mc"):
        uri, key_hash = getattr(args, name), getattr(args, f"{name}_key_hash")
        if uri or key_hash:
            services[name] = ServiceEndpoint.from_json(name, {"uri": uri, "key_hash": key_hash})
    created = False
    if not store.has_device():
        store.create_device(args.key_type)
        created = True
    store.save_services(services)
    device = store.device()
    return {
        "home": str(store.home),
        "device_created": created,
        "device_thumbprint": device.peer_key.thumbprint(),
        "device_key_type": device.peer_key.type_name,
        "services": {name: endpoint.to_json() for name, endpoint in services.items()},
    }


def _hello(store: AppStore, args: argparse.Namespace) -> dict[str, Any]:
    if args.uri:
        if not args.key_hash:
            raise StoreError("--uri needs --key-hash (the server key the app pins)")
        endpoint = ServiceEndpoint.from_json("target", {"uri": args.uri, "key_hash": args.key_hash})
    elif args.service:
        endpoint = store.service(args.service)
    else:
        raise StoreError("say which service: 'sfs', 'mc', or --uri with --key-hash")
    device = store.device()
    with open_channel(
        endpoint.uri, device, endpoint.key_hash, timeout=args.timeout, cafile=args.cafile
    ) as channel:
        answer = channel.request("hello")
        return {
            "uri": endpoint.uri,
            "server_public_key": channel.server.raw.hex(),
            "server_key_hash": endpoint.key_hash.hex(),
            "transcript_hash": (channel.transcript_hash or b"").hex(),
            "server": answer,
        }


def _status(store: AppStore, _args: argparse.Namespace) -> dict[str, Any]:
    device = store.device()
    return {
        "home": str(store.home),
        "device_thumbprint": device.peer_key.thumbprint(),
        "device_key_type": device.peer_key.type_name,
        "services": {name: endpoint.to_json() for name, endpoint in store.services().items()},
    }


def _app(store: AppStore, args: argparse.Namespace) -> App:
    return App(store.home, timeout=args.timeout, cafile=args.cafile)


def _register(store: AppStore, args: argparse.Namespace) -> dict[str, Any]:
    return _app(store, args).register(
        args.pin, biometric=args.biometric, push_provider=args.push_provider, push_token=args.push_token
    )


def _change_pin(store: AppStore, args: argparse.Namespace) -> dict[str, Any]:
    return _app(store, args).change_pin(args.old_pin, args.new_pin)


def _webpush_key(store: AppStore, args: argparse.Namespace) -> dict[str, Any]:
    return {"vapid_public_key": _app(store, args).webpush_key()}


def _inbox(store: AppStore, args: argparse.Namespace) -> dict[str, Any]:
    return {"messages": _app(store, args).inbox()}


def _approve(store: AppStore, args: argparse.Namespace) -> dict[str, Any]:
    if args.pin is None and not args.biometric and not args.decline:
        raise FlowError("Say how to confirm: --pin PIN or --biometric (or --decline).")
    return _app(store, args).approve(args.message, number=args.number, pin=args.pin, decline=args.decline)


def _read_payload(args: argparse.Namespace) -> str:
    return sys.stdin.read().strip() if args.payload == "-" else args.payload


def _scan(store: AppStore, args: argparse.Namespace) -> dict[str, Any]:
    if args.pin is None and not args.biometric and not args.decline:
        raise FlowError("Say how to confirm: --pin PIN or --biometric (or --decline).")
    return _app(store, args).scan(
        _read_payload(args), pin=args.pin, approve=not args.decline, account_id=args.account
    )


def _accounts(store: AppStore, args: argparse.Namespace) -> dict[str, Any]:
    return {"accounts": [record.to_json() for record in _app(store, args).accounts.accounts()]}


def _logout(store: AppStore, args: argparse.Namespace) -> dict[str, Any]:
    return _app(store, args).logout(account_id=args.account)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nextauth-app", description="The nextAuth phone simulator.")
    parser.add_argument(
        "--home",
        default=os.environ.get("NEXTAUTH_APP_HOME", str(Path.home() / ".nextauth-app")),
        help="folder holding this phone's keys and state (default: $NEXTAUTH_APP_HOME or ~/.nextauth-app)",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="network timeout in seconds")
    parser.add_argument(
        "--cafile", help="CA certificates (PEM) to trust for wss:// instead of the system ones"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    init = commands.add_parser("init", help="create the device key and set the app's SFS and MC")
    init.add_argument("--config", help="app configuration JSON as printed by 'nextauth all'")
    init.add_argument("--sfs", help="sigmai URI of the SFS, e.g. ws://127.0.0.1:8889/")
    init.add_argument("--sfs-key-hash", help="SHA-256 (hex) of the SFS public key")
    init.add_argument("--mc", help="sigmai URI of the MC")
    init.add_argument("--mc-key-hash", help="SHA-256 (hex) of the MC public key")
    init.add_argument("--key-type", choices=["p256", "ed25519"], default="p256")
    init.set_defaults(run=_init)

    hello = commands.add_parser("hello", help="open a sigmai channel and show who answered")
    hello.add_argument("service", nargs="?", choices=["sfs", "mc"])
    hello.add_argument("--uri", help="any sigmai URI, e.g. the ns one")
    hello.add_argument("--key-hash", help="pinned server key hash for --uri")
    hello.set_defaults(run=_hello)

    status = commands.add_parser("status", help="show the device and its configured services")
    status.set_defaults(run=_status)

    register = commands.add_parser("register", help="register this app and its PIN with the SFS")
    register.add_argument("--pin", required=True, help="the PIN to set (4 to 64 characters)")
    register.add_argument("--biometric", action="store_true", help="also set up a biometric key")
    register.add_argument("--push-provider", choices=["fcm", "apns", "webpush", "none"], default="none")
    register.add_argument(
        "--push-token",
        help="the FCM registration token, the APNs device token, or the Web Push subscription as JSON",
    )
    register.set_defaults(run=_register)

    change_pin = commands.add_parser(
        "change-pin", help="change the PIN at the SFS (a wrong old PIN counts like one at login)"
    )
    change_pin.add_argument("--old-pin", required=True, help="the PIN in use now")
    change_pin.add_argument("--new-pin", required=True, help="the PIN to set (4 to 64 characters)")
    change_pin.set_defaults(run=_change_pin)
    webpush_key = commands.add_parser(
        "webpush-key", help="show the MC's VAPID public key (a web app subscribes with it)"
    )
    webpush_key.set_defaults(run=_webpush_key)

    scan = commands.add_parser("scan", help="scan a login or enrolment code (the QR payload text)")
    scan.add_argument("payload", help="the QR payload, an app link, or - to read it from standard input")
    scan.add_argument("--pin", help="confirm with this PIN")
    scan.add_argument("--biometric", action="store_true", help="confirm with the biometric instead")
    scan.add_argument("--decline", action="store_true", help="refuse the login")
    scan.add_argument("--account", help="which account to use when there are several at that service")
    scan.set_defaults(run=_scan)

    inbox = commands.add_parser("inbox", help="pull login requests from the message center")
    inbox.set_defaults(run=_inbox)

    approve = commands.add_parser("approve", help="answer a login or signing request from the inbox")
    approve.add_argument("message", help="the message id shown by 'inbox'")
    approve.add_argument("--number", type=int, help="for a login: the number the login page shows")
    approve.add_argument("--decline", action="store_true", help="decline the login or signing request")
    approve.add_argument("--pin", help="confirm with this PIN")
    approve.add_argument("--biometric", action="store_true", help="confirm with the biometric instead")
    approve.set_defaults(run=_approve)

    accounts = commands.add_parser("accounts", help="list this app's accounts")
    accounts.set_defaults(run=_accounts)

    logout = commands.add_parser("logout", help="end the sessions of this app's accounts")
    logout.add_argument("--account", help="only this account")
    logout.set_defaults(run=_logout)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    store = AppStore(Path(args.home))
    try:
        _emit(args.run(store, args))
    except (StoreError, ChannelError, FlowError) as exc:
        _emit({"error": str(exc)})
        return 1
    except RemoteError as exc:
        _emit({"error": exc.message, "code": exc.code})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
