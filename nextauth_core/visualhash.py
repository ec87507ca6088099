"""The visual hash of an ns server key: a 5x5 mirrored grid in one colour and three words.

The enrolment page shows it, and the app shows the one it computes from the key the server proved in the
sigmai handshake, so the person enrolling sees that the page and the phone talk about the same server.
It is a check for eyes, not a security boundary: the app already pins the key's hash from the QR. The
definition (normative, with test vectors in ``docs/visual-hash-vectors.json``) is in
``docs/app-protocol.md``, "Visual hash".

``visual_hash(public_key)`` gives the plain data an app draws; ``to_svg()`` draws it for a web page.
"""

import hashlib
from dataclasses import dataclass
from typing import Any

VERSION = 1
LABEL = b"nextAuth visual hash v1\x00"
SIZE = 5

# Eight colours far apart for most kinds of colour vision, each with a name a person can say aloud.
PALETTE: tuple[tuple[str, str], ...] = (
    ("black", "#1a1a1a"),
    ("blue", "#1f5fbf"),
    ("orange", "#e07000"),
    ("green", "#1e8a3c"),
    ("purple", "#7b3fa8"),
    ("red", "#c0262d"),
    ("teal", "#00838f"),
    ("brown", "#7a4a1e"),
)

# 64 short, concrete nouns, no two alike in sound or spelling; index = 6 bits.
WORDS: tuple[str, ...] = (
    "anchor", "apple", "arrow", "badge", "basket", "bell", "bridge", "button",
    "cactus", "camel", "candle", "castle", "cherry", "cloud", "comet", "crown",
    "daisy", "desert", "dolphin", "drum", "eagle", "engine", "feather", "forest",
    "garden", "giraffe", "guitar", "hammer", "harbor", "helmet", "island", "jacket",
    "kettle", "ladder", "lemon", "lizard", "magnet", "meadow", "mirror", "monkey",
    "needle", "ocean", "orchid", "otter", "pepper", "piano", "pillow", "planet",
    "pocket", "rabbit", "ribbon", "rocket", "saddle", "salmon", "shovel", "spider",
    "teapot", "tiger", "tomato", "tunnel", "violin", "walnut", "window", "zebra",
)  # fmt: skip


@dataclass(frozen=True)
class VisualHash:
    digest: bytes
    grid: tuple[tuple[bool, ...], ...]  # rows top to bottom, cells left to right
    colour: str
    colour_hex: str
    words: tuple[str, ...]

    def rows(self) -> list[str]:
        """The grid as text, ``#`` for a filled cell and ``.`` for an empty one."""
        return ["".join("#" if cell else "." for cell in row) for row in self.grid]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "digest": self.digest.hex(),
            "grid": self.rows(),
            "colour": self.colour,
            "colour_hex": self.colour_hex,
            "words": list(self.words),
        }

    def to_svg(self, *, cell: int = 24, title: str = "Visual hash of the server's key") -> str:
        """An inline SVG (no script, no style element: it passes a strict Content-Security-Policy)."""
        side = cell * (SIZE + 1)
        half = cell // 2
        squares = "".join(
            f'<rect x="{half + c * cell}" y="{half + r * cell}" width="{cell}" height="{cell}"/>'
            for r, row in enumerate(self.grid)
            for c, filled in enumerate(row)
            if filled
        )
        words = " ".join(self.words)
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {side} {side}" width="{side}" '
            f'height="{side}" role="img" aria-label="{title}: {self.colour}, {words}">'
            f"<title>{title}: {self.colour}, {words}</title>"
            f'<rect width="{side}" height="{side}" fill="#f4f4f4"/>'
            f'<g fill="{self.colour_hex}">{squares}</g></svg>'
        )


def visual_hash(public_key: bytes) -> VisualHash:
    """The visual hash of a server's raw 32-byte Ed25519 public key."""
    if len(public_key) != 32:
        raise ValueError("an ns server key is 32 bytes (raw Ed25519)")
    digest = hashlib.sha256(LABEL + public_key).digest()
    bits = int.from_bytes(digest[0:2], "big")
    half = [[bool(bits >> (r * 3 + c) & 1) for c in range(3)] for r in range(SIZE)]
    # Mirrored left to right, as faces and emblems are: a symmetric shape is easier to remember.
    grid = tuple(tuple(row + row[1::-1]) for row in half)
    colour, colour_hex = PALETTE[digest[2] % len(PALETTE)]
    words = tuple(WORDS[digest[3 + i] % len(WORDS)] for i in range(3))
    return VisualHash(digest=digest, grid=grid, colour=colour, colour_hex=colour_hex, words=words)
