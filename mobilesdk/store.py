"""The app's local state: its device key and which SFS and MC its publisher chose.

A real phone keeps the device key in secure hardware; the reference SDK keeps it in a file readable only
by its owner (0600) under the app's home folder. Every write goes to a temporary file first and is renamed
into place, so a crash never leaves half a key behind.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519

from sigmai import DeviceIdentity
from sigmai.constants import KEY_TYPE_ED25519, KEY_TYPE_P256

KEY_TYPES = {"p256": KEY_TYPE_P256, "ed25519": KEY_TYPE_ED25519}


class StoreError(Exception):
    pass


@dataclass(frozen=True)
class ServiceEndpoint:
    uri: str
    key_hash: bytes

    @classmethod
    def from_json(cls, name: str, data: Any) -> "ServiceEndpoint":
        try:
            key_hash = bytes.fromhex(data["key_hash"])
            uri = str(data["uri"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"{name}: needs 'uri' and a hex 'key_hash'") from exc
        if len(key_hash) != 32:
            raise StoreError(f"{name}: key_hash must be 64 hex characters (SHA-256)")
        if not uri.startswith(("ws://", "wss://")):
            raise StoreError(f"{name}: uri must start with ws:// or wss://")
        return cls(uri, key_hash)

    def to_json(self) -> dict[str, str]:
        return {"uri": self.uri, "key_hash": self.key_hash.hex()}


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class AppStore:
    def __init__(self, home: Path) -> None:
        self.home = home

    @property
    def _device_file(self) -> Path:
        return self.home / "device.pem"

    @property
    def _config_file(self) -> Path:
        return self.home / "services.json"

    def has_device(self) -> bool:
        return self._device_file.exists()

    def create_device(self, key_type: str = "p256") -> DeviceIdentity:
        if key_type not in KEY_TYPES:
            raise StoreError(f"key type must be one of {', '.join(KEY_TYPES)}")
        if self.has_device():
            raise StoreError(f"{self.home} already holds a device key")
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        identity = DeviceIdentity.generate(KEY_TYPES[key_type])
        pem = identity.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_private(self._device_file, pem)
        return identity

    def device(self) -> DeviceIdentity:
        try:
            key = serialization.load_pem_private_key(self._device_file.read_bytes(), password=None)
        except FileNotFoundError as exc:
            raise StoreError(f"no device in {self.home}: run 'nextauth-app init' first") from exc
        if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
            raise StoreError(f"{self._device_file} does not hold an Ed25519 or P-256 key")
        return DeviceIdentity(key)

    def save_services(self, services: dict[str, ServiceEndpoint]) -> None:
        data = {name: endpoint.to_json() for name, endpoint in services.items()}
        _write_private(self._config_file, json.dumps(data, indent=2).encode())

    def services(self) -> dict[str, ServiceEndpoint]:
        try:
            data = json.loads(self._config_file.read_text())
        except FileNotFoundError:
            return {}
        except json.JSONDecodeError as exc:
            raise StoreError(f"{self._config_file} is not valid JSON") from exc
        return {name: ServiceEndpoint.from_json(name, value) for name, value in data.items()}

    def service(self, name: str) -> ServiceEndpoint:
        services = self.services()
        if name not in services:
            raise StoreError(f"no {name} configured in {self.home}: run 'nextauth-app init' with --{name}")
        return services[name]


@dataclass(frozen=True)
class AccountRecord:
    """One enrolled account: a key for one server, and where that server lives."""

    id: str
    server_id: str
    server_name: str
    sigmai_uri: str
    server_key_hash: bytes
    user_id: str
    key_file: str
    server_public_key: str = ""  # hex; learnt in the enrolment handshake, checked against the pinned hash

    def to_json(self) -> dict[str, str]:
        return {
            "id": self.id,
            "server_id": self.server_id,
            "server_name": self.server_name,
            "sigmai_uri": self.sigmai_uri,
            "server_key_hash": self.server_key_hash.hex(),
            "user_id": self.user_id,
            "key_file": self.key_file,
            "server_public_key": self.server_public_key,
        }

    @classmethod
    def from_json(cls, data: dict[str, str]) -> "AccountRecord":
        return cls(
            id=data["id"],
            server_id=data["server_id"],
            server_name=data["server_name"],
            sigmai_uri=data["sigmai_uri"],
            server_key_hash=bytes.fromhex(data["server_key_hash"]),
            user_id=data["user_id"],
            key_file=data["key_file"],
            server_public_key=data.get("server_public_key", ""),
        )


def _pem(identity: DeviceIdentity) -> bytes:
    return identity.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class AccountStore:
    """Accounts and second-factor secrets of the app, beside the device key in the same home folder."""

    def __init__(self, home: Path) -> None:
        self.home = home

    @property
    def _accounts_file(self) -> Path:
        return self.home / "accounts.json"

    @property
    def _secrets_file(self) -> Path:
        return self.home / "second-factor.json"

    def accounts(self) -> list[AccountRecord]:
        try:
            data = json.loads(self._accounts_file.read_text())
        except FileNotFoundError:
            return []
        return [AccountRecord.from_json(item) for item in data]

    def new_account_key(self, key_type: str = "p256") -> tuple[DeviceIdentity, str]:
        identity = DeviceIdentity.generate(KEY_TYPES[key_type])
        (self.home / "keys").mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"keys/account-{identity.peer_key.thumbprint()[:16]}.pem"
        _write_private(self.home / name, _pem(identity))
        return identity, name

    def account_key(self, record: AccountRecord) -> DeviceIdentity:
        key = serialization.load_pem_private_key((self.home / record.key_file).read_bytes(), password=None)
        assert isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey)
        return DeviceIdentity(key)

    def add_account(self, record: AccountRecord) -> None:
        accounts = [a for a in self.accounts() if a.id != record.id] + [record]
        _write_private(self._accounts_file, json.dumps([a.to_json() for a in accounts], indent=2).encode())

    def accounts_at(self, server_key_hash: bytes) -> list[AccountRecord]:
        return [a for a in self.accounts() if a.server_key_hash == server_key_hash]

    def save_encryption_key(self, account_id: str, key: x25519.X25519PrivateKey) -> None:
        (self.home / "keys").mkdir(parents=True, exist_ok=True, mode=0o700)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_private(self.home / "keys" / f"encryption-{account_id}.pem", pem)

    def encryption_key(self, account_id: str) -> x25519.X25519PrivateKey | None:
        path = self.home / "keys" / f"encryption-{account_id}.pem"
        if not path.exists():
            return None
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        return key if isinstance(key, x25519.X25519PrivateKey) else None

    def server_public_key(self, record: AccountRecord) -> ed25519.Ed25519PublicKey:
        return ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(record.server_public_key))

    def second_factor(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self._secrets_file.read_text()))
        except FileNotFoundError:
            return {}

    def save_second_factor(self, data: dict[str, Any]) -> None:
        _write_private(self._secrets_file, json.dumps(data, indent=2).encode())
