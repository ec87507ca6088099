"""Bad input is a clear refusal, never a crash: the rules on their own (the running system's answers are
in tests/test_openapi.py and tests/test_system.py). See docs/security.md, "Input rules"."""

import hashlib
import json
import secrets
import time
import unicodedata
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from authserver.ns.access import Grant
from authserver.ns.common import valid_nonce
from authserver.ns.errors import ServiceError
from authserver.ns.transactions import validate_fields
from authserver.storage import db
from idp.directory import Directory, Profile
from nextauth_core import attestation, evidence, jsonlimits, userids
from nextauth_core.qr import QRError, QRPayload
from sigmai import DeviceIdentity, ProtocolError, messages

# -- bounded JSON ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("[" * 1000 + "]" * 1000, "deeper than 32"),
        ("[" * 33 + "]" * 33, "deeper than 32"),  # one past the limit: as many brackets as levels
        ('{"a":' * 40 + "1" + "}" * 40, "deeper than 32"),
        ("1e400", "too large"),
        ("[-1e400]", "too large"),
        ("NaN", "not a JSON number"),
        ('{"x": Infinity}', "not a JSON number"),
        ("-Infinity", "not a JSON number"),
        ("1" * 5000, "not valid JSON"),
        ('{"a": ', "not valid JSON"),
    ],
)
def test_bounded_json_refuses_with_a_value_error(text: str, why: str) -> None:
    with pytest.raises(jsonlimits.JSONLimitError, match=why):
        jsonlimits.loads(text)


def test_bounded_json_reads_ordinary_json_and_brackets_inside_strings() -> None:
    text = '{"a": ["[[[[", "\\"]]]", {"b": 1.5}], "c": "{' + "[" * 100 + '"}'
    assert jsonlimits.loads(text)["a"][2] == {"b": 1.5}
    assert jsonlimits.depth(text) == 3
    assert jsonlimits.loads("[" * 32 + "]" * 32) is not None
    assert jsonlimits.loads("[" + "[]," * 100 + "[]]") is not None  # many brackets, 2 levels
    assert jsonlimits.loads("[[1]]", max_depth=2) == [[1]]
    with pytest.raises(jsonlimits.JSONLimitError, match="deeper than 2"):
        jsonlimits.loads("[[[1]]]", max_depth=2)
    with pytest.raises(jsonlimits.JSONLimitError, match="larger than 10 bytes"):
        jsonlimits.loads(b"[1,2,3,4,5,6]", max_bytes=10)


def test_bounded_json_depth_scan_is_linear_on_hostile_strings() -> None:
    started = time.monotonic()
    for hostile in ('"' + '\\"' * 300_000, "[" + "[]," * 200_000 + "[]]"):
        assert jsonlimits.depth(hostile) <= 2
    assert jsonlimits.loads('"' + '\\"' * 300_000 + '"') == '"' * 300_000
    assert time.monotonic() - started < 5


def test_sigmai_message_too_deep_is_a_protocol_error_not_a_recursion_error() -> None:
    with pytest.raises(ProtocolError, match="nests deeper than 16"):
        messages.decode(b'{"id":1,"op":"hello","params":' + b"[" * 1000 + b"]" * 1000 + b"}")
    with pytest.raises(ProtocolError, match="too large"):
        messages.decode(b'{"id":1e400,"op":"hello"}')


@pytest.mark.parametrize("value", [0, 1, 2**53 - 1])
def test_message_ids_in_range(value: int) -> None:
    assert messages.valid_id(value)


@pytest.mark.parametrize("value", [-1, 2**53, 10**30, 1.0, 1.5, True, False, None, "1", float("inf")])
def test_message_ids_out_of_range(value: object) -> None:
    assert not messages.valid_id(value)


def test_messages_never_encode_infinity() -> None:
    with pytest.raises(ValueError):
        messages.encode({"id": float("inf")})


def test_attestation_payload_nested_too_deep_is_refused_not_a_recursion_error() -> None:
    from nextauth_core.encoding import b64url

    token = b64url(b'{"alg":"Ed25519"}') + "." + b64url(b"[" * 1200 + b"]" * 1200) + ".AAAA"
    with pytest.raises(attestation.AttestationError, match="not JSON"):
        attestation.verify(
            token, {"sfs": SFS.public_key()}, audience="a", nonce="n", purpose="sign", account_thumbprint="t"
        )


def test_qr_payload_nested_too_deep_is_a_damaged_code() -> None:
    from nextauth_core.encoding import b64url

    with pytest.raises(QRError, match="damaged"):
        QRPayload.decode("NA1." + b64url(b"[" * 300 + b"]" * 300))


# -- transaction display text ---------------------------------------------------------------------------

FIELDS = {"amount": "EUR 1.00", "beneficiary": "Shop", "description": "Order 7"}


@pytest.mark.parametrize("char", [*sorted(evidence.BIDI_CONTROLS), "\n", "\r", "\t", "\x00", "\x7f", "\x85"])
def test_display_text_refuses_bidi_and_control_characters(char: str) -> None:
    for name in FIELDS:
        with pytest.raises(ServiceError, match=f"^{name} contains"):
            validate_fields({**FIELDS, name: f"EUR 1{char}00"})


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\ud800"])
def test_display_text_refuses_separators_and_lone_surrogates(char: str) -> None:
    with pytest.raises(ServiceError):
        validate_fields({**FIELDS, "description": f"a{char}b"})


def test_display_text_keeps_ordinary_text_of_any_script() -> None:
    fields = {**FIELDS, "beneficiary": "Café Zoë, 東京 / שלום ✓"}
    assert validate_fields(fields) == fields


# -- user ids -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("alice", "alice"),
        ("Alice", "Alice"),
        ("\uff41\uff4c\uff49\uff43\uff45", "alice"),  # fullwidth
        ("Zoe\u0301", "Zo\u00e9"),  # NFD -> NFC
        ("\uff76\uff80\uff76\uff85", "\u30ab\u30bf\u30ab\u30ca"),  # halfwidth katakana
        ("first.last+tag@example.com", "first.last+tag@example.com"),
        ("\u0434\u043c\u0438\u0442\u0440\u0438\u0439", "\u0434\u043c\u0438\u0442\u0440\u0438\u0439"),
        ("yamada\u5c71\u7530", "yamada\u5c71\u7530"),  # Latin + Han: allowed together
        ("\uae40\ucca0\uc218", "\uae40\ucca0\uc218"),
    ],
)
def test_user_ids_are_normalised(given: str, canonical: str) -> None:
    assert userids.normalise(given) == canonical
    assert unicodedata.is_normalized("NFC", userids.normalise(given))


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("\u0430lice", "several scripts"),  # Cyrillic a
        ("p\u0430yp\u0430l", "several scripts"),
        ("\u03a9mega", "several scripts"),  # Greek capital omega
        ("al\u200bice", "invisible"),
        ("al\u202eice", "invisible"),
        ("al ice", "space"),
        ("al\u3000ice", "space"),  # ideographic space
        ("\ufb01x", "compatibility"),  # ligature
        ("x\u00b2", "compatibility"),  # superscript
        ("a\u2022b", "symbol or punctuation"),
        ("", "1 to 255"),
        ("a" * 256, "1 to 255"),
    ],
)
def test_user_ids_breaking_the_rule_are_refused(given: str, why: str) -> None:
    with pytest.raises(userids.UserIdError, match=why):
        userids.normalise(given)


def test_idp_directory_applies_the_same_rule(tmp_path: Path) -> None:
    engine = db.create_engine_for(f"sqlite:///{tmp_path / 'idp.db'}")
    db.upgrade(engine)
    try:
        directory = Directory(engine)
        stored = directory.put(Profile("\uff4e\uff4f\uff52\uff41", name="Nora"))
        assert stored.user_id == "nora"
        assert directory.get("nora").name == "Nora"
        assert directory.get("\uff4e\uff4f\uff52\uff41").name == "Nora"
        with pytest.raises(ValueError, match="several scripts"):
            directory.put(Profile("n\u043ere", name="Impostor"))  # Cyrillic o
        assert [profile.user_id for profile in directory.all()] == ["nora"]
        assert directory.delete("\uff4e\uff4f\uff52\uff41") is True
    finally:
        engine.dispose()


# -- integrator nonces ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "nonce",
    [
        "a" * 22,
        "ab" * 11,
        "abcde" * 5,  # five different characters
        "0123456789abcdef012345",  # 22 hex characters: 88 bits
        "0123456789abcdef" + "0" * 15,  # 31 hex characters
        "a" * 40 + "==",
        None,
        "",
        "with space Jq3vXb0Lr8sT2uYwQe5N4g",
        secrets.token_urlsafe(200),  # over 256 characters
    ],
)
def test_weak_or_malformed_nonces_are_refused(nonce: str | None) -> None:
    assert not valid_nonce(nonce)


def test_random_nonces_are_accepted() -> None:
    for _ in range(200):
        assert valid_nonce(secrets.token_urlsafe(16))
        assert valid_nonce(secrets.token_hex(16))
    assert valid_nonce(secrets.token_urlsafe(32) + "=")


# -- global operations ----------------------------------------------------------------------------------


def test_a_server_scoped_grant_allows_no_global_operation() -> None:
    scoped = Grant("scoped", frozenset({"servers", "createserver", "sessions"}), "default")
    assert scoped.allows("servers", "default")
    assert not scoped.allows("servers", "other")
    assert not scoped.allows("createserver", None, global_operation=True)
    assert not scoped.allows("servers", None, global_operation=True)
    assert scoped.allows("sessions", None)  # not global: the operation keeps to what the key may see
    everywhere = Grant("global", frozenset({"servers", "createserver"}), None)
    assert everywhere.allows("createserver", None, global_operation=True)
    assert not Grant("g", frozenset({"sessions"}), None).allows("servers", None, global_operation=True)
    assert Grant("root", frozenset({"root"}), None).allows("createserver", None, global_operation=True)


def test_root_and_granted_roles_count_only_where_held() -> None:
    tenant_root = Grant("tenant", frozenset({"root"}), "default")
    assert tenant_root.allows("accounts", "default")
    assert not tenant_root.allows("accounts", "other")
    assert not tenant_root.allows("root", None, global_operation=True)
    granted = Grant("probe", frozenset({"audit"}), None, frozenset({("shop", "users"), ("shop", "root")}))
    assert granted.roles_on("shop") == {"audit", "users", "root"}
    assert granted.roles_on("other") == {"audit"}
    assert granted.allows("servers", "shop") and not granted.allows("servers", "other")
    assert not granted.allows("users", None, global_operation=True)
    assert granted.allows("audit", None, global_operation=True)
    assert granted.allows("users", None)  # about no one server: the operation keeps to "shop"
    # Granted on a server the key is not limited to: nothing (the grant service refuses it anyway).
    limited = Grant("limited", frozenset({"users"}), "bakery", frozenset({("shop", "sessions")}))
    assert limited.roles_on("shop") == set() and limited.roles_on("bakery") == {"users"}
    assert not limited.allows("sessions", "shop") and not limited.allows("sessions", None)


# -- evidence parts -------------------------------------------------------------------------------------

SFS = ed25519.Ed25519PrivateKey.generate()
NS = ed25519.Ed25519PrivateKey.generate()
ISSUED_AT = 1_800_000_000.0


def _record(*, token_key: ed25519.Ed25519PrivateKey = SFS, **claims: str) -> dict:
    device = DeviceIdentity.generate()
    challenge = secrets.token_bytes(32)
    content = evidence.canonical({"type": "transaction", "server": "default", "transaction": "t1"})
    issued = {
        "issuer": "sfs",
        "audience": "default",
        "nonce": attestation.nonce_for(challenge),
        "purpose": "sign",
        "method": "pin",
        "account_thumbprint": device.peer_key.thumbprint(),
        "device": "instance-1",
        "now": ISSUED_AT,
    }
    issued.update(claims)
    token = attestation.issue(token_key, **issued)  # type: ignore[arg-type]
    return evidence.record(
        content=content,
        ns_challenge=challenge,
        signature=device.sign(evidence.signing_statement(content, challenge, "approved")),
        key=device.peer_key,
        attestation=token,
        decision="approved",
        ns_key=NS,
        server_id="default",
    )


def _check(record: dict, **overrides: object) -> attestation.Attestation:
    arguments: dict = {"audience": "default", "at": ISSUED_AT + 2, "device": "instance-1"}
    arguments.update(overrides)
    trusted = {"sfs": {attestation.key_id(SFS.public_key()): SFS.public_key()}}
    return evidence.check_attestation(record, trusted, **arguments)


def test_evidence_attestation_is_checked_at_the_moment_of_the_decision() -> None:
    record = _record()
    assert _check(record).purpose == "sign"
    assert _check(record, device="instance-1").device == "instance-1"
    evidence.verify_ns_signature(record, "default", NS.public_key())


@pytest.mark.parametrize(
    ("record", "overrides", "why"),
    [
        (_record(), {"device": "instance-2"}, "another app instance"),
        (_record(), {"device": None}, "bound to no app instance"),
        (_record(), {"audience": "other"}, "another server"),
        (_record(), {"at": ISSUED_AT + 3600}, "expired"),
        (_record(token_key=ed25519.Ed25519PrivateKey.generate()), {}, "not signed by a trusted"),
        (_record(purpose="login"), {}, "another purpose"),
        (_record(nonce=attestation.nonce_for(b"another transaction")), {}, "another challenge"),
        (_record(account_thumbprint="another-key"), {}, "another account key"),
        ({**_record(), "attestation": "garbage"}, {}, "signature or format"),
        ({**_record(), "attestation": None}, {}, "no SFS attestation"),
    ],
)
def test_evidence_attestation_refusals(record: dict, overrides: dict, why: str) -> None:
    with pytest.raises(evidence.EvidenceError, match=why):
        _check(record, **overrides)


def test_ns_signature_covers_the_whole_record() -> None:
    record = _record()
    other = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(evidence.EvidenceError, match="does not verify"):
        evidence.verify_ns_signature(record, "default", other.public_key())
    with pytest.raises(evidence.EvidenceError, match="another server"):
        evidence.verify_ns_signature(record, "other", NS.public_key())
    for name, value in (("decision", "declined"), ("attestation", "x"), ("ns_challenge", "AAAA")):
        with pytest.raises(evidence.EvidenceError, match="does not verify"):
            evidence.verify_ns_signature({**record, name: value}, "default", NS.public_key())
    unsigned = {name: value for name, value in record.items() if name != "ns_signature"}
    with pytest.raises(evidence.EvidenceError, match="no signature of ns"):
        evidence.verify_ns_signature(unsigned, "default", NS.public_key())
    raw = NS.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert record["ns_signature"]["key_hash"] == hashlib.sha256(raw).hexdigest()


@pytest.mark.parametrize("value", [None, 1, 1.5, True, [], {}, "", "!!", "AAAA", {"a": 1}, ["x"]])
def test_any_value_in_any_evidence_field_is_a_refusal_not_a_crash(value: object) -> None:
    record = _record()
    paths = [(name,) for name in record] + [("account_key", name) for name in record["account_key"]]
    paths += [("ns_signature", name) for name in record["ns_signature"]]
    for path in paths:
        changed = json.loads(json.dumps(record))
        target = changed
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
        for check in (
            lambda r=changed: evidence.verify(r),
            lambda r=changed: evidence.verify_ns_signature(r, "default", NS.public_key()),
            lambda r=changed: _check(r),
        ):
            try:
                check()
            except evidence.EvidenceError:
                pass
