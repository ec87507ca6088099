"""The audit trail in-process: what a record stores, the query filters, the retention purge, and the webhook
sinks against a local HTTP server (signature, retries with backoff, order, the queue bound, https only)."""

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_structured_event
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from authserver.audit import EVENT_TYPES, AuditTrail
from authserver.audit import settings as audit_settings
from authserver.audit.sinks import SIGNATURE_HEADER, SinkError, WebhookSink, signature
from authserver.config import ConfigError
from authserver.storage import db
from authserver.storage.flow_models import AuditEvent
from tests.fixtures.webhooks import Receiver

SECRET = b"s" * 32
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def engine(db_uri: str) -> Iterator[Engine]:
    """Each test on SQLite, PostgreSQL and MariaDB: the query's time filters and the purge compare
    times, which each database stores its own way."""
    if db_uri.startswith("sqlite:///"):
        Path(db_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    built = db.create_engine_for(db_uri)
    db.upgrade(built)
    yield built
    built.dispose()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


def sink_for(receiver: Receiver, **options: Any) -> WebhookSink:
    return WebhookSink(receiver.url, SECRET, allow_http=True, **options)


def parse(body: bytes) -> Any:
    return from_structured_event(HTTPMessage({"content-type": "application/cloudevents+json"}, body))


# -- the trail -----------------------------------------------------------------------------------------


def test_a_record_is_stored_and_sent_as_a_cloudevent(engine: Engine, receiver: Receiver) -> None:
    sink = sink_for(receiver)
    trail = AuditTrail(engine, "ns", instance="ns-1", sinks=[sink])
    trail.start()
    try:
        event_id = trail.record(
            "login.failed",
            subject="alice",
            server_id="default",
            actor="phone",
            data={"account": "a1", "session": "h1", "reason": "wrong_pin"},
        )
        (headers, body), *_ = receiver.wait_for(1)
    finally:
        trail.stop()
    event = parse(body)
    assert event.get_specversion() == "1.0"
    assert event.get_id() == event_id
    assert event.get_type() == "io.nextauth.login.failed"
    assert event.get_source() == "/ns/ns-1"
    assert event.get_subject() == "alice"
    assert event.get_time() is not None
    assert event.get_data() == {
        "outcome": "failure",
        "server": "default",
        "actor": "phone",
        "account": "a1",
        "session": "h1",
        "reason": "wrong_pin",
    }
    assert headers["content-type"] == "application/cloudevents+json"
    events, cursor = trail.query()
    assert cursor is None and len(events) == 1
    stored = events[0]
    assert stored["id"] == event_id and stored["subject"] == "alice" and stored["outcome"] == "failure"
    assert stored["data"] == {"account": "a1", "session": "h1", "reason": "wrong_pin"}


def test_the_catalogue_knows_every_type_and_refuses_others(engine: Engine) -> None:
    trail = AuditTrail(engine, "ns")
    with pytest.raises(KeyError):
        trail.record("login.maybe")
    for kind in EVENT_TYPES:
        trail.record(kind)
    assert len(trail.query(limit=1000)[0]) == len(EVENT_TYPES)


def test_the_operations_doc_lists_every_type_with_its_fields() -> None:
    text = (REPO / "docs" / "operations.md").read_text()
    for kind, spec in EVENT_TYPES.items():
        line = next((row for row in text.splitlines() if row.startswith(f"| `io.nextauth.{kind}`")), None)
        assert line is not None, kind
        assert all(f"`{name}`" in line for name in spec.fields), (kind, line)


def test_a_failing_database_does_not_fail_the_caller(tmp_path: Path, receiver: Receiver) -> None:
    bare = db.create_engine_for(f"sqlite:///{tmp_path / 'no-tables.db'}")  # never migrated
    sink = sink_for(receiver)
    trail = AuditTrail(bare, "ns", sinks=[sink])
    trail.start()
    try:
        trail.record("login.succeeded", subject="bob")  # no table: logged, not raised
        assert parse(receiver.wait_for(1)[0][1]).get_subject() == "bob"
    finally:
        trail.stop()
        bare.dispose()


def test_query_filters_and_pages(engine: Engine) -> None:
    trail = AuditTrail(engine, "ns")
    trail.record("login.succeeded", subject="alice", server_id="default")
    trail.record("login.failed", subject="bob", server_id="default", data={"reason": "declined"})
    trail.record("login.failed", subject="alice", server_id="other", data={"reason": "locked"})
    trail.record("server.created", server_id="other")
    assert [e["subject"] for e in trail.query(types=["login.failed"])[0]] == ["bob", "alice"]
    both = trail.query(types=["io.nextauth.login.failed", "server.created"])[0]
    assert [e["type"] for e in both] == ["io.nextauth.login.failed"] * 2 + ["io.nextauth.server.created"]
    assert [e["type"] for e in trail.query(subject="alice")[0]] == [
        "io.nextauth.login.succeeded",
        "io.nextauth.login.failed",
    ]
    assert len(trail.query(server_id="other")[0]) == 2
    page, cursor = trail.query(limit=3)
    assert len(page) == 3 and cursor == page[-1]["cursor"]
    rest, end = trail.query(limit=3, after=cursor)
    assert [e["type"] for e in rest] == ["io.nextauth.server.created"] and end is None
    now = datetime.now(UTC)
    assert len(trail.query(since=now - timedelta(minutes=1))[0]) == 4
    assert trail.query(since=now + timedelta(minutes=1))[0] == []
    assert trail.query(until=now - timedelta(minutes=1))[0] == []


def test_retention_purge_forgets_old_events_of_its_own_component_only(engine: Engine) -> None:
    ns, sfs = AuditTrail(engine, "ns"), AuditTrail(engine, "sfs")
    old = ns.record("login.succeeded", subject="old")
    ns.record("login.succeeded", subject="new")
    old_sfs = sfs.record("pin.wrong", data={"device": "d", "attempts_left": 4})
    with Session(engine) as session:
        session.execute(
            update(AuditEvent)
            .where(AuditEvent.event_id.in_([old, old_sfs]))
            .values(time=datetime.now(UTC) - timedelta(days=91))
        )
        session.commit()
    purge = audit_settings.retention_purge("ns", ns, {"NEXTAUTH_NS_AUDIT_RETENTION_DAYS": "90"})
    assert purge.run_once() == 1
    assert [e["subject"] for e in ns.query(types=["login.succeeded"])[0]] == ["new"]
    assert len(sfs.query(types=["pin.wrong"])[0]) == 1  # sfs purges its own
    assert audit_settings.retention_purge("sfs", sfs, {}).run_once() == 1  # default: 90 days


def test_retention_setting_is_checked() -> None:
    assert audit_settings.retention("ns", {}) == timedelta(days=90)
    assert audit_settings.retention("ns", {"NEXTAUTH_AUDIT_RETENTION_DAYS": "7"}) == timedelta(days=7)
    own = {"NEXTAUTH_AUDIT_RETENTION_DAYS": "7", "NEXTAUTH_SFS_AUDIT_RETENTION_DAYS": "30"}
    assert audit_settings.retention("sfs", own) == timedelta(days=30)
    for bad in ("0", "-1", "ten", "36501"):
        with pytest.raises(ConfigError, match="NEXTAUTH_NS_AUDIT_RETENTION_DAYS"):
            audit_settings.retention("ns", {"NEXTAUTH_NS_AUDIT_RETENTION_DAYS": bad})


# -- the sinks -----------------------------------------------------------------------------------------


def test_the_signature_is_hmac_sha256_over_the_exact_body(receiver: Receiver) -> None:
    sink = sink_for(receiver)
    sink.start()
    try:
        sink.offer(b'{"id": "1"}')
        headers, body = receiver.wait_for(1)[0]
    finally:
        sink.stop()
    expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER.lower()] == expected == signature(SECRET, b'{"id": "1"}')
    assert headers[SIGNATURE_HEADER.lower()] != signature(b"another secret of 32 bytes......", body)
    assert headers[SIGNATURE_HEADER.lower()] != signature(SECRET, b'{"id": "2"}')


def test_a_failing_sink_is_retried_with_growing_delays_and_keeps_the_order() -> None:
    receiver = Receiver(failures=2)
    sink = sink_for(receiver, backoff=0.2, max_backoff=5.0)
    sink.start()
    try:
        for n in range(5):
            sink.offer(json.dumps({"n": n}).encode())
        received = receiver.wait_for(5)
    finally:
        sink.stop()
        receiver.close()
    assert [json.loads(body)["n"] for _, body in received] == [0, 1, 2, 3, 4]
    first, second, third = receiver.attempts[:3]
    assert second - first >= 0.2 and third - second >= 0.4  # 0.2 s, then twice that
    assert sink.delivered == 5 and sink.abandoned == 0


def test_drain_waits_for_the_queue_and_the_event_in_flight() -> None:
    receiver = Receiver(failures=1)
    sink = sink_for(receiver, backoff=0.3)
    sink.start()
    try:
        sink.offer(b'{"n": 0}')
        sink.offer(b'{"n": 1}')
        assert sink.drain(10.0)
        assert len(receiver.received) == 2  # the first took a retry, and drain waited for it
        receiver.failures = 100
        sink.offer(b'{"n": 2}')
        assert not sink.drain(0.2)
    finally:
        sink.stop(timeout=1)
        receiver.close()


def test_an_event_a_sink_keeps_refusing_is_abandoned_and_the_rest_go_on() -> None:
    receiver = Receiver(failures=3)
    sink = sink_for(receiver, backoff=0.01, max_attempts=3)
    sink.start()
    try:
        sink.offer(b'{"n": 0}')
        sink.offer(b'{"n": 1}')
        received = receiver.wait_for(1)
    finally:
        sink.stop()
        receiver.close()
    assert [json.loads(body)["n"] for _, body in received] == [1]
    assert sink.abandoned == 1


def test_a_full_queue_drops_the_oldest_from_delivery_not_from_the_table(
    engine: Engine, receiver: Receiver
) -> None:
    sink = sink_for(receiver, max_queue=3)
    trail = AuditTrail(engine, "ns", sinks=[sink])
    for n in range(5):  # the sink is not running yet: its queue fills up
        trail.record("server.created", data={"name": f"s{n}"})
    assert sink.pending() == 3 and sink.dropped == 2
    trail.start()
    try:
        received = receiver.wait_for(3)
    finally:
        trail.stop()
    assert [parse(body).get_data()["name"] for _, body in received] == ["s2", "s3", "s4"]
    assert len(trail.query()[0]) == 5


def test_recording_does_not_wait_for_a_slow_sink(engine: Engine) -> None:
    unreachable = WebhookSink("https://127.0.0.1:9/", SECRET, timeout=5, backoff=5)
    trail = AuditTrail(engine, "ns", sinks=[unreachable])
    trail.start()
    try:
        started = time.monotonic()
        for _ in range(20):
            trail.record("login.succeeded")
        assert time.monotonic() - started < 2.0
    finally:
        trail.stop(timeout=1)


def test_sinks_must_be_https_unless_http_is_allowed() -> None:
    with pytest.raises(SinkError, match="only https"):
        WebhookSink("http://siem.example/events", SECRET)
    assert WebhookSink("http://siem.example/events", SECRET, allow_http=True).url.startswith("http:")
    assert WebhookSink("https://siem.example/events", SECRET).url.startswith("https:")
    for bad in ("ftp://siem.example/", "siem.example/events", "https://user:pw@siem.example/"):
        with pytest.raises(SinkError):
            WebhookSink(bad, SECRET)
    with pytest.raises(SinkError, match="16 bytes"):
        WebhookSink("https://siem.example/events", b"short")


def test_sink_settings() -> None:
    env = {
        "NEXTAUTH_AUDIT_WEBHOOK_URLS": "https://a.example/e, https://b.example/e",
        "NEXTAUTH_AUDIT_WEBHOOK_SECRETS": "a" * 32 + " " + "b" * 32,
        "NEXTAUTH_NS_AUDIT_WEBHOOK_QUEUE_SIZE": "50",
    }
    sinks = audit_settings.sinks("ns", env)
    assert [s.url for s in sinks] == ["https://a.example/e", "https://b.example/e"]
    assert [s.max_queue for s in sinks] == [50, 50]
    assert audit_settings.sinks("sfs", {}) == []
    # Shared secrets with URLs for some components only: the others simply have no sink.
    own = {
        "NEXTAUTH_NS_AUDIT_WEBHOOK_URLS": "https://a.example/e",
        "NEXTAUTH_AUDIT_WEBHOOK_SECRETS": "a" * 32,
    }
    assert len(audit_settings.sinks("ns", own)) == 1 and audit_settings.sinks("idp", own) == []
    with pytest.raises(ConfigError, match="one secret per URL"):
        audit_settings.sinks("ns", {**env, "NEXTAUTH_AUDIT_WEBHOOK_SECRETS": "a" * 32})
    plain = {**env, "NEXTAUTH_AUDIT_WEBHOOK_URLS": "http://a.example/e, https://b.example/e"}
    with pytest.raises(ConfigError, match="only https"):
        audit_settings.sinks("ns", plain)
    assert len(audit_settings.sinks("ns", {**plain, "NEXTAUTH_NS_AUDIT_WEBHOOK_ALLOW_HTTP": "true"})) == 2
    with pytest.raises(ConfigError, match="true or false"):
        audit_settings.sinks("ns", {**plain, "NEXTAUTH_NS_AUDIT_WEBHOOK_ALLOW_HTTP": "maybe"})
