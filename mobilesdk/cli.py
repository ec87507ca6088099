"""nextauth-app: a scriptable phone. Every command prints one JSON object; failures exit 1 with
``{"error": ...}`` on stdout so scripts and tests can read both the same way."""

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from mobilesdk.channel import ChannelError, RemoteError, open_channel
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
    with open_channel(endpoint.uri, device, endpoint.key_hash, timeout=args.timeout) as channel:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nextauth-app", description="The nextAuth phone simulator.")
    parser.add_argument(
        "--home",
        default=os.environ.get("NEXTAUTH_APP_HOME", str(Path.home() / ".nextauth-app")),
        help="folder holding this phone's keys and state (default: $NEXTAUTH_APP_HOME or ~/.nextauth-app)",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="network timeout in seconds")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    store = AppStore(Path(args.home))
    try:
        _emit(args.run(store, args))
    except (StoreError, ChannelError) as exc:
        _emit({"error": str(exc)})
        return 1
    except RemoteError as exc:
        _emit({"error": exc.message, "code": exc.code})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
