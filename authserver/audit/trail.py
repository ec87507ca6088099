"""Recording, querying and forgetting audit events.

A record is one INSERT in its own short transaction, never part of the flow's: an event must not vanish
because the flow's transaction rolled back later, nor may a failing insert fail a login (it is logged and
counted instead). One event is the exception: a login that succeeded is stored in the transaction (on
PostgreSQL, the statement) that records its session (``event`` gives the row, ``announce`` tells the sinks
after the commit), so a session is never there without its event, nor an event without its session.
Sinks get the event after the insert, so what a sink received can always be found in the table, for as
long as the retention keeps it.
"""

import json
import logging
import re
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from cloudevents.core.bindings.http import to_structured_event
from cloudevents.core.v1.event import CloudEvent
from prometheus_client import Counter
from sqlalchemy import Engine, Table, insert, select
from sqlalchemy.orm import Session

from authserver.audit.catalogue import EVENT_TYPES, TYPE_PREFIX
from authserver.storage import db as database
from authserver.storage.batched_delete import delete_in_batches
from authserver.storage.flow_models import AuditEvent
from authserver.storage.hot import HotStatement
from authserver.storage.models import utcnow

log = logging.getLogger("nextauth.audit")

RECORDED = Counter("nextauth_audit_events_total", "Audit events recorded", ["component", "type"])
NOT_STORED = Counter(
    "nextauth_audit_store_failures_total", "Audit events the database did not take", ["component"]
)
MAX_QUERY_LIMIT = 1000
# A Core insert: an event is written on every login, and the ORM's unit of work for one row cost more than
# the insert itself.
INSERT_EVENT = HotStatement(insert(cast(Table, AuditEvent.__table__)))


@dataclass(frozen=True)
class Event:
    """An event made ready to store: ``row`` is its audit_events row (without the database's own id)."""

    event_id: str
    when: datetime
    kind: str
    subject: str | None
    server_id: str | None
    actor: str | None
    fields: dict[str, Any]
    row: dict[str, Any]


class Sink(Protocol):
    def offer(self, body: bytes) -> None: ...
    def drain(self, timeout: float) -> bool: ...
    def start(self) -> None: ...
    def stop(self, timeout: float | None = None) -> None: ...


def default_instance() -> str:
    """This process's name in event sources: the host name (a container's id), reduced to what a URI path
    segment may hold without escaping."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:64] or "unknown"


def _short(value: str | None, limit: int) -> str | None:
    return value[:limit] if value is not None else None


class AuditTrail:
    def __init__(
        self,
        engine: Engine,
        component: str,
        *,
        instance: str | None = None,
        sinks: Sequence[Sink] = (),
    ) -> None:
        self._engine = engine
        self.component = component
        self.source = f"/{component}/{instance or default_instance()}"
        self.sinks = list(sinks)

    # -- recording -------------------------------------------------------------------------------------

    def record(
        self,
        kind: str,
        *,
        subject: str | None = None,
        server_id: str | None = None,
        actor: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> str:
        """Store the event ``kind`` (a name from the catalogue, without the type prefix) and queue it
        for the sinks; returns its id. Never raises for a storage or delivery failure."""
        event = self.event(kind, subject=subject, server_id=server_id, actor=actor, data=data)
        try:
            database.write_one(self._engine, INSERT_EVENT, event.row)
        except Exception:
            NOT_STORED.labels(self.component).inc()
            log.exception("audit: could not store %s event %s", kind, event.event_id)
        self.announce(event)
        return event.event_id

    def event(
        self,
        kind: str,
        *,
        subject: str | None = None,
        server_id: str | None = None,
        actor: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> Event:
        """The event ``kind`` made ready for a caller that stores ``row`` with ``INSERT_EVENT`` in its own
        transaction, then calls ``announce``."""
        spec = EVENT_TYPES[kind]  # an unknown kind is a programming error, caught by the tests
        event_id = str(uuid.uuid4())
        when = utcnow()
        fields = {key: value for key, value in (data or {}).items() if value is not None}
        row = {
            "event_id": event_id,
            "time": when,
            "type": TYPE_PREFIX + kind,
            "component": self.component,
            "source": self.source,
            "server_id": _short(server_id, 32),
            "subject": _short(subject, 255),
            "actor": _short(actor, 200),
            "outcome": spec.outcome,
            "data": json.dumps(fields, sort_keys=True, default=str),
        }
        return Event(event_id, when, kind, subject, server_id, actor, fields, row)

    def announce(self, event: Event) -> None:
        """An event stored (or given up on): counted, and queued for the sinks."""
        RECORDED.labels(self.component, event.kind).inc()
        if self.sinks:
            e = event
            body = self.cloudevent_body(e.event_id, e.when, e.kind, e.subject, e.server_id, e.actor, e.fields)
            for sink in self.sinks:
                sink.offer(body)

    def cloudevent_body(
        self,
        event_id: str,
        when: datetime,
        kind: str,
        subject: str | None,
        server_id: str | None,
        actor: str | None,
        fields: dict[str, Any],
    ) -> bytes:
        """The event in CloudEvents 1.0 structured JSON: what a sink's HTTP body is."""
        return to_structured_event(
            self.cloudevent(event_id, when, kind, subject, server_id, actor, fields)
        ).body

    def cloudevent(
        self,
        event_id: str,
        when: datetime,
        kind: str,
        subject: str | None,
        server_id: str | None,
        actor: str | None,
        fields: dict[str, Any],
    ) -> CloudEvent:
        attributes: dict[str, Any] = {
            "specversion": "1.0",
            "id": event_id,
            "type": TYPE_PREFIX + kind,
            "source": self.source,
            "time": when,
            "datacontenttype": "application/json",
        }
        if subject:
            attributes["subject"] = subject
        data: dict[str, Any] = {"outcome": EVENT_TYPES[kind].outcome, **fields}
        if server_id is not None:
            data["server"] = server_id
        if actor is not None:
            data["actor"] = actor
        return CloudEvent(attributes, json.loads(json.dumps(data, default=str)))

    # -- reading and forgetting ------------------------------------------------------------------------

    def query(
        self,
        *,
        types: Sequence[str] = (),
        subject: str | None = None,
        server_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        after: int | None = None,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Events oldest first, from after the cursor ``after``; with the cursor of the next page (None:
        this was the last)."""
        limit = max(1, min(limit, MAX_QUERY_LIMIT))
        statement = select(AuditEvent).order_by(AuditEvent.id).limit(limit + 1)
        if types:
            statement = statement.where(
                AuditEvent.type.in_([t if t.startswith(TYPE_PREFIX) else TYPE_PREFIX + t for t in types])
            )
        if subject is not None:
            statement = statement.where(AuditEvent.subject == subject)
        if server_id is not None:
            statement = statement.where(AuditEvent.server_id == server_id)
        if since is not None:
            statement = statement.where(AuditEvent.time >= since)
        if until is not None:
            statement = statement.where(AuditEvent.time < until)
        if after is not None:
            statement = statement.where(AuditEvent.id > after)
        with Session(self._engine) as db:
            rows = list(db.scalars(statement))
        more = len(rows) > limit
        rows = rows[:limit]
        return [_listing(row) for row in rows], (rows[-1].id if more else None)

    def purge(self, older_than: timedelta) -> int:
        """Forget this component's events older than ``older_than``; how many."""
        old = (AuditEvent.component == self.component, AuditEvent.time < utcnow() - older_than)
        return delete_in_batches(self._engine, AuditEvent.id, old)

    # -- running: the sinks deliver beside the component's listeners -----------------------------------

    def start(self) -> None:
        for sink in self.sinks:
            sink.start()

    def stop(self, timeout: float | None = None) -> None:
        for sink in self.sinks:
            sink.stop(timeout)

    def drain(self, timeout: float) -> bool:
        """Wait (up to ``timeout`` in all) until the sinks have sent what they hold."""
        deadline = time.monotonic() + timeout
        return all(sink.drain(max(deadline - time.monotonic(), 0.0)) for sink in self.sinks)


def _listing(row: AuditEvent) -> dict[str, Any]:
    return {
        "id": row.event_id,
        "cursor": row.id,
        "time": row.time.isoformat(),
        "type": row.type,
        "source": row.source,
        "server": row.server_id,
        "subject": row.subject,
        "actor": row.actor,
        "outcome": row.outcome,
        "data": json.loads(row.data),
    }
