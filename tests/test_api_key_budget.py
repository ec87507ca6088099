"""The budget of wrong API keys per client (authserver.ns.access): refused once used up, even with the
right key; read from the store at most once a second for a client whose keys were right, and on the
very next request after a wrong one (authserver.ratelimit.FailureBudget)."""

from pathlib import Path
from typing import Any

import pytest
from limits.storage import MemoryStorage

from authserver import ratelimit
from authserver.ns.access import AccessControl
from authserver.ratelimit import RateLimited, RateLimiter, client_key, parse_rule
from authserver.storage import db

ROOT_KEY = "na_" + "r" * 43
CLIENT = "203.0.113.7"


@pytest.fixture
def control(tmp_path: Path) -> Any:
    engine = db.create_engine_for(f"sqlite:///{tmp_path / 'ns.db'}")
    db.upgrade(engine)
    control = AccessControl(engine, "ns", ROOT_KEY)
    storage = MemoryStorage()
    control.limiter = RateLimiter("ns", storage)  # the tests' handle on the shared store
    control.limit_failures(control.limiter, parse_rule("api_key_failures", "X", "3/minute"))
    yield control
    engine.dispose()


def _asked(monkeypatch: pytest.MonkeyPatch, limiter: RateLimiter) -> list[str]:
    asked: list[str] = []
    check = limiter.check

    def counted(rule: Any, key: str, **kwargs: Any) -> None:
        asked.append(key)
        check(rule, key, **kwargs)

    monkeypatch.setattr(limiter, "check", counted)
    return asked


def test_a_client_with_right_keys_is_looked_up_once_a_second(
    control: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: now[0])
    asked = _asked(monkeypatch, control.limiter)
    for _ in range(5):
        assert control.authenticate_from(ROOT_KEY, CLIENT) is not None
    assert asked == [CLIENT]
    now[0] += ratelimit.UNDER_BUDGET_SECONDS
    assert control.authenticate_from(ROOT_KEY, CLIENT) is not None
    assert asked == [CLIENT, CLIENT]
    assert control.authenticate_from(ROOT_KEY, "203.0.113.8") is not None  # each client its own
    assert asked == [CLIENT, CLIENT, "203.0.113.8"]


def test_after_a_wrong_key_the_next_request_is_looked_up_and_a_used_up_budget_refuses_the_right_key(
    control: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: 1000.0)  # no second passes
    asked = _asked(monkeypatch, control.limiter)
    assert control.authenticate_from(ROOT_KEY, CLIENT) is not None
    for _ in range(3):
        assert control.authenticate_from("na_wrong", CLIENT) is None
    # The first wrong key came within the second of a right one; each later request asked the store.
    assert len(asked) == 3
    with pytest.raises(RateLimited):
        control.authenticate_from("na_wrong", CLIENT)
    with pytest.raises(RateLimited):
        control.authenticate_from(ROOT_KEY, CLIENT)


def test_wrong_keys_counted_by_another_process_refuse_the_right_key_within_a_second(
    control: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: now[0])
    assert control.authenticate_from(ROOT_KEY, CLIENT) is not None
    # Another ns process shares the store and counts this client's wrong keys there.
    for _ in range(3):
        control.limiter.count(control.failures.rule, client_key(CLIENT))
    now[0] += ratelimit.UNDER_BUDGET_SECONDS
    with pytest.raises(RateLimited):
        control.authenticate_from(ROOT_KEY, CLIENT)


def test_the_memory_of_clients_is_bounded(control: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "UNDER_BUDGET_MAX", 10)
    for number in range(50):
        assert control.authenticate_from(ROOT_KEY, f"198.51.100.{number}") is not None
        assert len(control.failures._under) <= 10
