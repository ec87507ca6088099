"""Wire constants of sigmai version 1. There is no negotiation: a peer speaks exactly this or nothing."""

VERSION = 0x01

CLIENT_HELLO = 0x01
SERVER_HELLO = 0x02
CLIENT_FINISH = 0x03
RECORD = 0x17

HEADER_LEN = 2
X25519_LEN = 32
RANDOM_LEN = 32
HASH_LEN = 32
ED25519_PUBLIC_LEN = 32
P256_PUBLIC_LEN = 65  # uncompressed SEC1 point
SIGNATURE_LEN = 64  # Ed25519, or ECDSA P-256 as fixed-width r || s
AEAD_TAG_LEN = 16
AEAD_KEY_LEN = 32
AEAD_NONCE_LEN = 12

KEY_TYPE_ED25519 = 0x01
KEY_TYPE_P256 = 0x02

CLIENT_HELLO_LEN = HEADER_LEN + X25519_LEN + RANDOM_LEN + HASH_LEN
SERVER_HELLO_CLEAR_LEN = HEADER_LEN + X25519_LEN + RANDOM_LEN
SERVER_HELLO_LEN = SERVER_HELLO_CLEAR_LEN + ED25519_PUBLIC_LEN + SIGNATURE_LEN + HASH_LEN + AEAD_TAG_LEN

# Labels are prefixed like TLS 1.3's "tls13 " so no sigmai key can ever equal a TLS key by construction.
LABEL_PREFIX = b"sigmai1 "
SERVER_SIGNATURE_CONTEXT = b"sigmai v1, server signature"
CLIENT_SIGNATURE_CONTEXT = b"sigmai v1, client signature"

# Largest application message by default; the transport may lower it. Bounded so a peer cannot make
# the other side buffer or decrypt arbitrarily large frames.
DEFAULT_MAX_MESSAGE = 64 * 1024
# What a frame may add to an application message (header and AEAD tag): transports size their
# buffers with it so that one limit applies at both layers.
RECORD_OVERHEAD = 2 + 16
# Record sequence numbers are 64-bit; the channel closes long before they could wrap.
MAX_SEQUENCE = 2**64 - 1
