"""A small HTTP/1.1 load generator for requests that can each be sent only once (authorization requests
with their own PKCE challenge, single-use code exchanges), which wrk cannot walk without losing its
timing: a fixed list of raw requests, sent over N keep-alive connections (asyncio, one thread), each
connection taking the next request when its previous answer is in. Every answer is kept (status,
headers, body, latency) so the caller can check it and read what it carries (a code, a token).

Its own ceiling on this machine is reported by ``ceiling()`` against the bare gevent server, next to
wrk's, so a rate it measures can be judged against what it can drive at all.
"""

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float


@dataclass
class LoadResult:
    answers: list[Answer | None]  # by request index; None where the request failed at the socket
    wall_seconds: float
    connections: int
    socket_errors: list[str] = field(default_factory=list)

    def summary(self, ok: Callable[[Answer], bool]) -> dict[str, float | int]:
        good = sorted(a.seconds for a in self.answers if a is not None and ok(a))
        bad = sum(1 for a in self.answers if a is not None and not ok(a))
        return {
            "requests": len(self.answers),
            "ok": len(good),
            "bad_answers": bad,
            "socket_errors": len(self.socket_errors),
            "per_second": len(good) / self.wall_seconds if self.wall_seconds else 0.0,
            "p50_ms": 1000 * statistics.median(good) if good else float("nan"),
            "p99_ms": 1000 * good[min(len(good) - 1, int(0.99 * len(good)))] if good else float("nan"),
            "connections": self.connections,
            "seconds": self.wall_seconds,
        }


def build(
    method: str, host: str, port: int, path: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in header_lines:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    else:
        body = b""
    return status, headers, body


async def _drive(host: str, port: int, requests: list[bytes], connections: int, timeout: float) -> LoadResult:
    answers: list[Answer | None] = [None] * len(requests)
    errors: list[str] = []
    next_index = iter(range(len(requests)))
    clock = time.perf_counter

    async def connection() -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        for index in next_index:
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
                started = clock()
                writer.write(requests[index])
                status, headers, body = await asyncio.wait_for(_read_answer(reader), timeout)  # type: ignore[arg-type]
                answers[index] = Answer(status, headers, body, clock() - started)
                if headers.get("connection", "").lower() == "close":
                    writer.close()
                    reader = writer = None
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                errors.append(type(exc).__name__)
                if writer is not None:
                    writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    started = clock()
    await asyncio.gather(*(connection() for _ in range(max(1, min(connections, len(requests))))))
    return LoadResult(answers, clock() - started, connections, errors)


def run(
    host: str, port: int, requests: list[bytes], *, connections: int, timeout: float = 30.0
) -> LoadResult:
    return asyncio.run(_drive(host, port, requests, connections, timeout))


def ceiling(host: str, port: int, *, count: int, connections: int) -> dict[str, float | int]:
    """What this generator drives against a given server (the bare gevent app), GET / repeated."""
    request = build("GET", host, port, "/")
    return run(host, port, [request] * count, connections=connections).summary(lambda a: a.status == 200)
