"""Record protection: one AEAD key per direction, the nonce built from a sequence number.

Each side counts the records it sends and the records it receives. A replayed, dropped, reordered or
reflected record therefore meets the wrong nonce (or the wrong direction's key) and fails to decrypt.
"""

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from sigmai.constants import AEAD_NONCE_LEN, MAX_SEQUENCE
from sigmai.errors import ProtocolError
from sigmai.keyschedule import TrafficKeys


class RecordProtection:
    """Seals or opens records for one direction, in order."""

    def __init__(self, keys: TrafficKeys) -> None:
        self._aead = ChaCha20Poly1305(keys.key)
        self._iv = int.from_bytes(keys.iv, "big")
        self._sequence = 0

    def _next_nonce(self) -> bytes:
        if self._sequence > MAX_SEQUENCE:
            raise ProtocolError("sequence number exhausted")
        nonce = (self._iv ^ self._sequence).to_bytes(AEAD_NONCE_LEN, "big")
        self._sequence += 1
        return nonce

    def seal(self, plaintext: bytes, associated_data: bytes) -> bytes:
        return self._aead.encrypt(self._next_nonce(), plaintext, associated_data)

    def open(self, ciphertext: bytes, associated_data: bytes) -> bytes:
        try:
            return self._aead.decrypt(self._next_nonce(), ciphertext, associated_data)
        except InvalidTag as exc:
            raise ProtocolError("record does not authenticate") from exc
