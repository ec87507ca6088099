"""What one full QR login may ask of the database: at most 12 SQL statements in at most 4 transactions,
and no pre-ping round trip per checkout.

Counted inside the real services (``nextauth all`` on SQLite, under ``bench.wrapper --count``: SQLAlchemy
engine and pool events), for logins as the benchmark makes them: the application's REST status call and
QR, the phone's channels to ns and its SFS with the PIN check and attestation, the confirmation, and the
application's status call that finds the session logged in. Behaviour, not timing: the counts are exact.
"""

from collections.abc import Iterator

import pytest

from bench import history
from bench.qr_login import Services, measure_logins, phone
from mobilesdk.flows import App
from tests.fixtures.system import free_port

pytestmark = pytest.mark.e2e

MAX_STATEMENTS = 12
MAX_TRANSACTIONS = 4
LOGINS = 3


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    running = Services(tmp_path_factory.mktemp("budget"), {}, counting=True, pick_port=free_port)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def enrolled(services: Services, tmp_path_factory: pytest.TempPathFactory) -> tuple[App, str]:
    return phone(services, tmp_path_factory.mktemp("phone"), "budget-user")


def test_one_qr_login_stays_within_its_statement_and_transaction_budget(
    services: Services, enrolled: tuple[App, str]
) -> None:
    services.reset_counts()
    done = measure_logins(services, [enrolled], LOGINS)
    counts = services.counts()
    assert done["logins"] == LOGINS and done["errors"] == 0, done
    per_login = {name: counts[name] / LOGINS for name in ("statements", "transactions", "pings")}
    kinds = "\n".join(f"{n / LOGINS:4.1f} {kind}" for kind, n in sorted(counts["kinds"].items()))
    assert per_login["statements"] <= MAX_STATEMENTS, f"{per_login}\n{kinds}"
    assert per_login["transactions"] <= MAX_TRANSACTIONS, f"{per_login}\n{kinds}"
    assert per_login["pings"] == 0, per_login  # a dead connection is found without a round trip


def test_counting_sees_what_the_services_do(services: Services, enrolled: tuple[App, str]) -> None:
    """The budget test cannot pass by counting nothing: nothing between two counts reads zero, and a
    login writes its session (an INSERT into ns_sessions) and its audit event."""
    services.reset_counts()
    assert services.counts()["statements"] == 0
    measure_logins(services, [enrolled], 1)
    kinds = services.counts()["kinds"]
    assert any(kind.startswith("INSERT INTO ns_sessions") for kind in kinds), kinds
    assert any(kind.startswith("INSERT INTO audit_events") for kind in kinds), kinds


# What a deployment holds after months, written as the benchmark writes it (bench/history.py); fewer rows
# than the benchmark's, enough for a scan to cost a hundred times a lookup.
GROWN = {"USERS": 5_000, "SESSIONS": 20_000, "EVENTS": 20_000}


def test_a_login_asks_sqlite_the_same_work_with_many_sessions_users_and_events(
    services: Services, enrolled: tuple[App, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each statement of a login finds its rows through an index on what picks them out, not on the
    virtual server every row shares: the SQLite VM instructions a login runs stay the same after
    ``GROWN`` more users (each with an account at ns and an app instance at the SFS), sessions and
    audit events (a scan of the server's sessions ran tens of instructions per session, three times
    per login)."""

    def steps_per_login() -> float:
        services.reset_counts()
        done = measure_logins(services, [enrolled], LOGINS)
        assert done["logins"] == LOGINS and done["errors"] == 0, done
        return services.counts()["sqlite_vm_steps"] / LOGINS

    before = steps_per_login()
    assert before > 0  # the count sees the statements at all
    for name, rows in GROWN.items():
        monkeypatch.setattr(history, name, rows)
    history.grow(services.env, "grown")
    after = steps_per_login()
    # A deeper B-tree costs a few instructions per lookup; a scan costs thousands per lookup.
    assert after < before * 1.2, f"{before:.0f} VM instructions per login, then {after:.0f}"
