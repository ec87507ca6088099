"""The byte strings the app signs and the values both sides derive from a channel's exporter.

Kept in one place because the app and the servers must compute them identically. Every field is
length-prefixed so that no two different statements encode to the same bytes, and every statement starts
with its own label so that a signature made for one purpose can never be presented for another.
"""

LOGIN_EXPORTER = b"EXPORTER-nextauth-login"
SFS_PROOF_EXPORTER = b"EXPORTER-nextauth-sfs-proof"
ENROL_CODE_EXPORTER = b"EXPORTER-nextauth-enrol-code"
PIN_CHANGE_EXPORTER = b"EXPORTER-nextauth-sfs-pin-change"


def length_prefixed(*fields: bytes) -> bytes:
    return b"".join(len(field).to_bytes(2, "big") + field for field in fields)


def login_statement(qr_id: str, qr_challenge: bytes, ns_challenge: bytes, channel_binding: bytes) -> bytes:
    """What the account key signs to confirm a login: the QR, ns's challenge, and this very channel."""
    return length_prefixed(b"nextauth login v1", qr_id.encode(), qr_challenge, ns_challenge, channel_binding)


def sfs_proof_statement(
    *,
    sfs_challenge: bytes,
    channel_binding: bytes,
    audience: str,
    ns_challenge: bytes,
    purpose: str,
    account_thumbprint: str,
) -> bytes:
    """What the app signs with its PIN-derived (or biometric) key at the SFS: everything the attestation
    will say, plus the SFS's one-time challenge and the SFS channel's binding, so it cannot be replayed."""
    return length_prefixed(
        b"nextauth sfs proof v1",
        sfs_challenge,
        channel_binding,
        audience.encode(),
        ns_challenge,
        purpose.encode(),
        account_thumbprint.encode(),
    )


def pin_change_statement(*, sfs_challenge: bytes, channel_binding: bytes, new_pin_verifier: bytes) -> bytes:
    """What the app signs with the key derived from its *old* PIN to replace it: the SFS's one-time
    challenge from ``pin.change.start``, this SFS channel's binding, and the new verifier itself, so the
    proof authorises exactly this new PIN, once, on this channel. Its own label keeps it apart from a
    proof for an attestation made with the same key."""
    return length_prefixed(b"nextauth sfs pin change v1", sfs_challenge, channel_binding, new_pin_verifier)


def confirmation_code(channel_export: bytes) -> str:
    """Six digits from the enrolment channel's exporter: the app and ns compute it independently."""
    return f"{int.from_bytes(channel_export[:8], 'big') % 1_000_000:06d}"
