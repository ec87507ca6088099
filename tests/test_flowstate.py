"""The key-value entries of ns's flows keep the JSON they had as dicts: instances of different versions share
one store during a rolling upgrade."""

import json

from authserver.ns.flowstate import CurrentQR, LoginItem, SignItem

QR_ENTRY = {
    "server_id": "default",
    "hsid": "h" * 43,
    "challenge_hash": "ab" * 32,
    "browser": {"ip": "192.0.2.1", "agent": "Firefox"},
    "created": 1700000000.5,
}
PUSH_ENTRY = {**QR_ENTRY, "account_id": "acc1", "number": 42, "method": "push"}


def test_a_qr_entry_keeps_its_keys() -> None:
    item = LoginItem.from_json(json.dumps(QR_ENTRY).encode())
    assert (item.method, item.account_id, item.number) == ("qr", None, None)
    assert json.loads(item.to_json()) == QR_ENTRY


def test_a_push_entry_keeps_its_keys() -> None:
    item = LoginItem.from_json(json.dumps(PUSH_ENTRY).encode())
    assert (item.method, item.account_id, item.number) == ("push", "acc1", 42)
    assert json.loads(item.to_json()) == PUSH_ENTRY


def test_the_current_qr_and_a_signing_request_round_trip() -> None:
    shown = {"qr_id": "q1", "payload": "nextauth://login?x", "expires": 1700000060.0}
    assert json.loads(CurrentQR.from_json(json.dumps(shown).encode()).to_json()) == shown
    sign = {"challenge_hash": "cd" * 32, "server_id": "default"}
    assert json.loads(SignItem.from_json(json.dumps(sign).encode()).to_json()) == sign
    assert SignItem.from_json(SignItem(**sign).to_json()) == SignItem(**sign)
