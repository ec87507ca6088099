"""Webhook sinks: each POSTs the CloudEvents to one URL, in order, from a bounded queue, in the background.

Order: one worker per sink sends one event at a time and retries it (exponential backoff, capped) before
the next, so a sink sees events in the order they were recorded. Bound: a sink that is down must not
make the process grow, so when the queue is full the oldest waiting event is dropped from delivery (it
stays in the table, and the drop is counted and logged); after ``max_attempts`` an event is abandoned
the same way, so one event a sink keeps refusing does not stop the rest.

Authenticity: the body is signed with HMAC-SHA256 under the sink's own secret, sent as
``X-Nextauth-Signature: sha256=<hex>``. The body holds the event's unique id and time, so a receiver that
checks the signature can also refuse a replayed event by its id.

Workers are threads: under gevent's monkey patching (the services' processes) they are greenlets, and
the HTTP client's sockets yield like every other.
"""

import collections
import hashlib
import hmac
import logging
import threading
import time
from urllib.parse import urlsplit

import httpx
from prometheus_client import Counter

log = logging.getLogger("nextauth.audit")

SIGNATURE_HEADER = "X-Nextauth-Signature"
CONTENT_TYPE = "application/cloudevents+json"
DELIVERIES = Counter(
    "nextauth_audit_sink_events_total",
    "Audit events per webhook sink and result: delivered, retried, dropped (queue full), abandoned",
    ["component", "sink", "result"],
)


class SinkError(ValueError):
    """A sink's setting is not acceptable (the message names the reason, never the secret)."""


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def check_url(url: str, *, allow_http: bool) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise SinkError(f"{url!r} is not an http(s) URL")
    if parts.scheme == "http" and not allow_http:
        raise SinkError(f"{parts.scheme}://{parts.hostname}...: events carry user ids, so only https")
    if parts.username or parts.password:
        raise SinkError("put no credentials in a sink URL: the signature authenticates the events")
    return url


class WebhookSink:
    def __init__(
        self,
        url: str,
        secret: bytes,
        *,
        name: str = "0",
        component: str = "ns",
        allow_http: bool = False,
        max_queue: int = 10_000,
        max_attempts: int = 10,
        backoff: float = 1.0,
        max_backoff: float = 300.0,
        timeout: float = 10.0,
    ) -> None:
        self.url = check_url(url, allow_http=allow_http)
        if len(secret) < 16:
            raise SinkError("the sink's secret must be at least 16 bytes")
        self._secret = secret
        self.name = name  # the sink's label in metrics and logs: its position, not its URL
        self._component = component
        self.max_queue = max_queue
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._timeout = timeout
        self._queue: collections.deque[bytes] = collections.deque()
        self._ready = threading.Condition()
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None
        self._busy = False  # an event taken from the queue is being delivered
        self.dropped = 0
        self.abandoned = 0
        self.delivered = 0

    def offer(self, body: bytes) -> None:
        """Queue ``body`` for delivery; never blocks, never raises."""
        with self._ready:
            if len(self._queue) >= self.max_queue:
                self._queue.popleft()
                self.dropped += 1
                DELIVERIES.labels(self._component, self.name, "dropped").inc()
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    log.warning(
                        "audit sink %s: queue full (%d); dropped the oldest event from delivery (%d so far;"
                        " every event stays in the audit table)",
                        self.name,
                        self.max_queue,
                        self.dropped,
                    )
            self._queue.append(body)
            self._ready.notify()

    def pending(self) -> int:
        with self._ready:
            return len(self._queue)

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every queued event to be delivered (or given up); whether
        that happened. For short-lived processes (the command line), which would otherwise exit first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._ready:
                if not self._queue and not self._busy:
                    return True
            time.sleep(0.02)
        return False

    def start(self) -> None:
        if self._worker is None:
            self._stopping.clear()
            self._worker = threading.Thread(target=self._run, name=f"audit-sink-{self.name}", daemon=True)
            self._worker.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop delivering; what is still queued is not sent (it is in the table)."""
        self._stopping.set()
        with self._ready:
            self._ready.notify_all()
        if self._worker is not None:
            self._worker.join(timeout if timeout is not None else 5.0)
            self._worker = None

    def _next(self) -> bytes | None:
        with self._ready:
            while not self._queue and not self._stopping.is_set():
                self._ready.wait(1.0)
            self._busy = bool(self._queue)
            return self._queue.popleft() if self._queue else None

    def _run(self) -> None:
        with httpx.Client(timeout=self._timeout, follow_redirects=False) as client:
            while not self._stopping.is_set():
                body = self._next()
                if body is not None and not self._stopping.is_set():
                    try:
                        self._deliver(client, body)
                    finally:
                        with self._ready:
                            self._busy = False

    def _deliver(self, client: httpx.Client, body: bytes) -> None:
        headers = {
            "Content-Type": CONTENT_TYPE,
            SIGNATURE_HEADER: signature(self._secret, body),
            "User-Agent": "nextAuth-audit",
        }
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = client.post(self.url, content=body, headers=headers)
                if 200 <= response.status_code < 300:
                    self.delivered += 1
                    DELIVERIES.labels(self._component, self.name, "delivered").inc()
                    return
                problem = f"answered {response.status_code}"
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            if attempt == self.max_attempts:
                break
            delay = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
            DELIVERIES.labels(self._component, self.name, "retried").inc()
            log.info("audit sink %s %s; retrying in %.1fs", self.name, problem, delay)
            if self._stopping.wait(delay):
                return
        self.abandoned += 1
        DELIVERIES.labels(self._component, self.name, "abandoned").inc()
        log.warning(
            "audit sink %s: gave up on an event after %d attempts (%s); it stays in the audit table",
            self.name,
            self.max_attempts,
            problem,
        )
