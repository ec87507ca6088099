"""ns's rules for attestations, checked on the service itself: single use, the account's own SFS only."""

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from authserver.ns.login import LoginService
from authserver.ns.servers import ServerRegistry
from authserver.operations import OperationError
from authserver.storage import db
from authserver.storage.flow_models import Account
from authserver.storage.kv import MemoryStore
from nextauth_core import attestation


@pytest.fixture
def setup(tmp_path: Path) -> dict:
    engine = db.create_engine_for(f"sqlite:///{tmp_path / 'ns.db'}")
    db.upgrade(engine)
    servers = ServerRegistry(engine)
    server = servers.ensure_default()
    sfs_key = ed25519.Ed25519PrivateKey.generate()
    other_sfs = ed25519.Ed25519PrivateKey.generate()
    # Each SFS signs attestations with its own key; the tests name the SFS by that key's hash too.
    trusted = {
        hashlib.sha256(key.public_key().public_bytes_raw()).hexdigest(): {
            attestation.key_id(key.public_key()): key.public_key()
        }
        for key in (sfs_key, other_sfs)
    }
    login = LoginService(engine, MemoryStore(), servers, trusted, "ws://127.0.0.1:1/")
    account = Account(
        id="acc",
        server_id=server.id,
        key_type="ed25519",
        public_key=b"k" * 32,
        thumbprint="tp",
        sfs_key_hash=hashlib.sha256(sfs_key.public_key().public_bytes_raw()).hexdigest(),
        sfs_device="device",
        active=True,
    )
    yield {"login": login, "account": account, "sfs": sfs_key, "other_sfs": other_sfs, "server": server}
    engine.dispose()


def _token(key: ed25519.Ed25519PrivateKey, challenge: bytes, server_id: str) -> str:
    return attestation.issue(
        key,
        issuer=hashlib.sha256(key.public_key().public_bytes_raw()).hexdigest(),
        audience=server_id,
        nonce=attestation.nonce_for(challenge),
        purpose="login",
        method="pin",
        account_thumbprint="tp",
        device="device",
    )


def test_attestation_is_accepted_once(setup: dict) -> None:
    token = _token(setup["sfs"], b"challenge", setup["server"].id)
    check = setup["login"].check_attestation
    assert check(token, setup["account"], setup["server"].id, b"challenge", "login").method == "pin"
    with pytest.raises(OperationError, match="used before"):
        check(token, setup["account"], setup["server"].id, b"challenge", "login")


def test_only_the_accounts_own_sfs_counts(setup: dict) -> None:
    """Another trusted SFS cannot vouch for an account registered with a different one."""
    token = _token(setup["other_sfs"], b"challenge", setup["server"].id)
    with pytest.raises(OperationError, match="does not trust"):
        setup["login"].check_attestation(token, setup["account"], setup["server"].id, b"challenge", "login")


def test_missing_attestation_asks_for_the_second_factor(setup: dict) -> None:
    with pytest.raises(OperationError) as refused:
        setup["login"].check_attestation(None, setup["account"], setup["server"].id, b"c", "login")
    assert refused.value.code == "second_factor_required"
