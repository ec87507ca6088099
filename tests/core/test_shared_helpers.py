"""The helpers ns and the IdP share: the hsid, secret files, duration settings."""

import hashlib
import stat
from pathlib import Path

import pytest

from authserver.config import ConfigError, seconds_in_range
from nextauth_core.encoding import b64url
from nextauth_core.hsid import hsid_for
from nextauth_core.secret_files import secret_file, write_private


def test_hsid_is_the_tagged_hash_of_the_nonce() -> None:
    nonce = "n" * 32
    assert hsid_for(nonce) == b64url(hashlib.sha256(b"nextauth hsid v1\x00" + nonce.encode()).digest())
    assert hsid_for(nonce) != hsid_for(nonce + "x")


def test_secret_file_is_made_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "key"
    made = iter(["first", "second"])
    assert secret_file(path, lambda: next(made)) == "first"
    assert secret_file(path, lambda: next(made)) == "first"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_write_private_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    write_private(path, b"one")
    with pytest.raises(FileExistsError):
        write_private(path, b"two")
    assert path.read_bytes() == b"one"


def test_seconds_in_range() -> None:
    kwargs = {"low": 1, "high": 60, "expected": "seconds from 1 to 60"}
    assert seconds_in_range("X", None, 7, **kwargs) == 7
    assert seconds_in_range("X", "1.5", 7, **kwargs) == 1.5
    assert seconds_in_range("X", "0", 7, zero_turns_off=True, **kwargs) == 0
    for bad in ("0", "61", "soon", "nan"):
        with pytest.raises(ConfigError, match=r"^X: expected seconds from 1 to 60"):
            seconds_in_range("X", bad, 7, **kwargs)
    with pytest.raises(ConfigError):
        seconds_in_range("X", "0", 7, low=0, above_low=True, high=60, expected="more than 0")
    with pytest.raises(ConfigError):
        seconds_in_range("X", "1.5", 7, whole=True, **kwargs)


def test_secret_file_made_by_another_process_meanwhile_is_the_one_used(tmp_path: Path) -> None:
    path = tmp_path / "secret"

    def generate_while_another_process_writes() -> str:
        path.write_text("theirs\n")  # two processes starting at once: the other one wrote first
        return "mine"

    assert secret_file(path, generate_while_another_process_writes) == "theirs"
    assert secret_file(path, lambda: "never") == "theirs"
