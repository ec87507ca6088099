"""The visual hash against its test vectors, and against the definition in docs/app-protocol.md written
out again here from the prose, so that a change to either the code or the vectors fails."""

import hashlib
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from nextauth_core.visualhash import PALETTE, WORDS, visual_hash

VECTORS = json.loads((Path(__file__).resolve().parents[2] / "docs" / "visual-hash-vectors.json").read_text())


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_vectors(vector: dict) -> None:
    seen = visual_hash(bytes.fromhex(vector["public_key"])).to_dict()
    assert seen == {"version": 1, **{k: v for k, v in vector.items() if k not in ("name", "public_key")}}


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_vectors_follow_the_written_definition(vector: dict) -> None:
    digest = hashlib.sha256(b"nextAuth visual hash v1\x00" + bytes.fromhex(vector["public_key"])).digest()
    assert digest.hex() == vector["digest"]
    value = digest[0] * 256 + digest[1]
    for row in range(5):
        left = ["#" if value & (1 << (3 * row + col)) else "." for col in range(3)]
        assert vector["grid"][row] == "".join([*left, left[1], left[0]])
    assert vector["colour"] == PALETTE[digest[2] % 8][0]
    assert vector["words"] == [WORDS[digest[3 + i] % 64] for i in range(3)]


def test_vector_file_carries_the_lists_an_app_needs() -> None:
    assert VECTORS["wordlist"] == list(WORDS)
    assert [(c["name"], c["hex"]) for c in VECTORS["palette"]] == list(PALETTE)


def test_lists_are_fixed_sizes_without_repeats() -> None:
    assert len(PALETTE) == 8 and len({name for name, _ in PALETTE}) == 8
    assert len(WORDS) == 64 and len(set(WORDS)) == 64


def test_one_bit_of_key_changes_the_picture() -> None:
    key = bytes(range(32))
    flipped = bytes([key[0] ^ 1]) + key[1:]
    assert visual_hash(key).to_dict() != visual_hash(flipped).to_dict()


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_only_raw_32_byte_keys(length: int) -> None:
    with pytest.raises(ValueError):
        visual_hash(bytes(length))


def test_svg_draws_the_grid_in_the_colour() -> None:
    shown = visual_hash(bytes(32))
    svg = ET.fromstring(shown.to_svg())  # noqa: S314 - our own output
    ns = "{http://www.w3.org/2000/svg}"
    group = svg.find(f"{ns}g")
    assert group is not None and group.get("fill") == shown.colour_hex
    filled = sum(row.count("#") for row in shown.rows())
    assert len(group.findall(f"{ns}rect")) == filled
    assert " ".join(shown.words) in (svg.findtext(f"{ns}title") or "")
    assert svg.find(f"{ns}script") is None and svg.find(f"{ns}style") is None
