"""The audit trail end to end: the running services send the events of a login, a wrong-PIN lockout and an
administrator's change to a webhook, in order, as signed CloudEvents, and the REST API reads them back."""

import json
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_structured_event

from authserver.audit.sinks import SIGNATURE_HEADER, signature
from tests.fixtures import forked_commands
from tests.fixtures.flows import PIN, enrol, new_nonce, start_login
from tests.fixtures.system import RunningSystem, ns_api, run_app
from tests.fixtures.webhooks import Receiver

SECRET = "audit-test-secret-" + "x" * 20


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


@pytest.fixture(scope="module")
def system_env(receiver: Receiver) -> dict[str, str]:
    base = receiver.url.rsplit("/", 1)[0]
    return {
        "NEXTAUTH_NS_AUDIT_WEBHOOK_URLS": f"{base}/ns",
        "NEXTAUTH_SFS_AUDIT_WEBHOOK_URLS": f"{base}/sfs",
        "NEXTAUTH_AUDIT_WEBHOOK_SECRETS": SECRET,
        "NEXTAUTH_AUDIT_WEBHOOK_ALLOW_HTTP": "true",  # the receiver is plain HTTP on loopback
    }


def events_at(receiver: Receiver, path: str, after: int, count: int) -> list[Any]:
    """The CloudEvents sent to ``path`` since ``after`` deliveries, once ``count`` have arrived; each
    parsed with the SDK and its signature checked."""
    deadline = time.monotonic() + 15
    while True:
        received = [(h, b) for h, b in receiver.wait_for(after)[after:] if h[":path"] == path]
        if len(received) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    parsed = []
    for headers, body in received:
        assert headers[SIGNATURE_HEADER.lower()] == signature(SECRET.encode(), body)
        assert headers["content-type"] == "application/cloudevents+json"
        parsed.append(from_structured_event(HTTPMessage(headers, body)))
    return parsed


def create_key(system: RunningSystem, name: str, roles: str) -> str:
    args = ["apikey", "--name", name, "--roles", roles]
    done = forked_commands.run("nextauth.cli", args, env=system.env, check=True)
    return str(json.loads(done.stdout)["api_key"])


def test_login_lockout_and_admin_change_reach_the_sink_in_order(
    system: RunningSystem, receiver: Receiver, tmp_path: Path
) -> None:
    phone = tmp_path / "phone"
    assert run_app(phone, "init", "--config", str(system.data_dir / "app-config.json"))[0] == 0
    assert run_app(phone, "register", "--pin", PIN)[0] == 0
    mark = len(receiver.received)
    api = ns_api(system)

    enrolled = enrol(system, phone, "audra")
    account = enrolled["done"]["accountid"]
    nonce = new_nonce()
    view = start_login(system, nonce)
    assert run_app(phone, "scan", view["loginqrdata"], "--pin", PIN)[0] == 0
    assert api.call("POST", "/v1/servers/default/sessions/logout", headers={"X-nonce": nonce})[0] == 200
    answers = []
    for _ in range(5):
        view = start_login(system, nonce)
        answers.append(run_app(phone, "scan", view["loginqrdata"], "--pin", "9999")[1].get("code"))
    assert answers == ["wrong_pin"] * 4 + ["locked"]
    assert api.call("POST", f"/v1/servers/default/accounts/{account}/block")[0] == 200
    status, server = api.call("POST", "/v1/servers", {"name": "Audited"})
    assert status == 201

    ns_events = events_at(receiver, "/ns", mark, 11)
    assert [(e.get_type().removeprefix("io.nextauth."), e.get_data().get("reason")) for e in ns_events] == [
        ("enrolment.started", None),
        ("enrolment.completed", None),
        ("login.succeeded", None),
        ("session.ended", None),
        *[("login.failed", "wrong_pin")] * 4,
        ("login.failed", "locked"),
        ("account.blocked", None),
        ("server.created", None),
    ]
    for event in ns_events:
        assert event.get_specversion() == "1.0" and event.get_source().startswith("/ns/")
        assert event.get_time() is not None and event.get_id()
    assert len({e.get_id() for e in ns_events}) == len(ns_events)
    assert [e.get_subject() for e in ns_events[:-1]] == ["audra"] * 10
    started, succeeded, ended, blocked = ns_events[0], ns_events[2], ns_events[3], ns_events[9]
    assert started.get_data()["enrolment"] == enrolled["enrolment"]["enrolment"]
    assert succeeded.get_data() == {
        "outcome": "success",
        "server": "default",
        "actor": "phone",
        "account": account,
        "session": view["hsid"],
        "method": "qr",
        "second_factor": "pin",
    }
    assert ended.get_data()["ended_by"] == "application" and ended.get_data()["actor"] == "application"
    assert blocked.get_data() == {
        "outcome": "success",
        "server": "default",
        "actor": "root (configured)",
        "account": account,
    }
    assert ns_events[-1].get_data()["server"] == server["id"]

    sfs_events = events_at(receiver, "/sfs", mark, 6)
    assert [e.get_type() for e in sfs_events] == ["io.nextauth.pin.wrong"] * 5 + ["io.nextauth.app.locked"]
    assert [e.get_data()["attempts_left"] for e in sfs_events[:5]] == [4, 3, 2, 1, 0]
    assert sfs_events[-1].get_data()["max_attempts"] == 5
    assert all(e.get_source().startswith("/sfs/") and e.get_subject() is None for e in sfs_events)
    assert len({e.get_data()["device"] for e in sfs_events}) == 1


def test_rest_query_filters_and_refuses_keys_without_the_role(
    system: RunningSystem, receiver: Receiver
) -> None:
    mark = len(receiver.received)
    auditor = ns_api(system, create_key(system, "auditor", "audit"))
    # The command line sends its own events before it exits.
    (made,) = events_at(receiver, "/ns", mark, 1)
    assert made.get_type() == "io.nextauth.apikey.created"
    assert made.get_data()["name"] == "auditor" and made.get_data()["actor"] == "command line"
    status, failed = auditor.call("GET", "/v1/audit-events?type=login.failed&user=audra")
    assert status == 200, failed
    assert [e["data"]["reason"] for e in failed["events"]] == ["wrong_pin"] * 4 + ["locked"]
    assert all(e["outcome"] == "failure" and e["subject"] == "audra" for e in failed["events"])
    status, everything = auditor.call("GET", "/v1/audit-events?user=audra&limit=1000")
    types = [e["type"] for e in everything["events"]]
    assert [t.removeprefix("io.nextauth.") for t in types[:4]] == [
        "enrolment.started",
        "enrolment.completed",
        "login.succeeded",
        "session.ended",
    ]
    since = urllib.parse.quote(failed["events"][2]["time"])
    status, later = auditor.call("GET", f"/v1/audit-events?type=login.failed&user=audra&since={since}")
    assert [e["id"] for e in later["events"]] == [e["id"] for e in failed["events"][2:]]
    status, until = auditor.call("GET", f"/v1/audit-events?type=login.failed&user=audra&until={since}")
    assert [e["id"] for e in until["events"]] == [e["id"] for e in failed["events"][:2]]
    # Keys made on the command line are in the trail, with who made them.
    status, keys = auditor.call("GET", "/v1/audit-events?type=apikey.created")
    created = next(e for e in keys["events"] if e["data"]["name"] == "auditor")
    assert created["actor"] == "command line" and created["data"]["roles"] == ["audit"]
    # Every other role, even all of them together, is refused; so is a wrong key (and that is recorded).
    others = ns_api(system, create_key(system, "no-auditor", "sessions,users,accounts,servers,createserver"))
    status, refused = others.call("GET", "/v1/audit-events")
    assert status == 403 and refused["error"] == "forbidden"
    wrong = ns_api(system, "na_" + "B" * 43)
    assert wrong.call("GET", "/v1/audit-events")[0] == 401
    status, refusals = auditor.call("GET", "/v1/audit-events?type=apikey.refused")
    assert refusals["events"] and refusals["events"][-1]["data"]["client"] == "127.0.0.1"
