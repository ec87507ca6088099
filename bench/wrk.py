"""Drive ``wrk`` (Debian's package) from Python: one Lua script per run sets the method, headers and body
and prints the summary and latency percentiles as one JSON line from ``done()``, which this module parses.

wrk keeps its connections open (HTTP/1.1 keep-alive) and measures closed-loop latency: each connection
sends its next request when the previous answer arrived, so the percentiles are those of the answers
at the throughput reached, not of a fixed offered rate.
"""

import json
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

MARKER = "WRK_JSON "

_DONE = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, "write": %d, '
    .. '"status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "p999_us": %d, '
    .. '"mean_us": %.1f, "max_us": %d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.mean, latency.max))
end
"""


@dataclass
class WrkResult:
    requests: int
    seconds: float
    per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    socket_errors: int  # connect, read, write, timeout
    status_errors: int  # answers with status > 399
    connections: int

    @property
    def errors(self) -> int:
        return self.socket_errors + self.status_errors


def available() -> bool:
    return shutil.which("wrk") is not None


def _lua_string(text: str) -> str:
    return (
        "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r") + "'"
    )


def script(method: str = "GET", headers: dict[str, str] | None = None, body: str | None = None) -> str:
    lines = [f"wrk.method = {_lua_string(method)}"]
    for name, value in (headers or {}).items():
        lines.append(f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}")
    if body is not None:
        lines.append(f"wrk.body = {_lua_string(body)}")
    return "\n".join(lines) + "\n" + _DONE


def run(
    url: str,
    *,
    connections: int,
    seconds: float,
    threads: int = 1,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: str | None = None,
    timeout_s: float = 5.0,
) -> WrkResult:
    with tempfile.TemporaryDirectory(prefix="nextauth-wrk-") as folder:
        lua = Path(folder) / "run.lua"
        lua.write_text(script(method, headers, body))
        argv = [
            "wrk",
            f"-t{threads}",
            f"-c{max(connections, threads)}",
            f"-d{max(1, round(seconds))}s",
            f"--timeout={timeout_s:g}s",
            "-s",
            str(lua),
            url,
        ]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith(MARKER)), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {(out.stderr or out.stdout).strip()[-400:]}")
    data = json.loads(line[len(MARKER) :])
    seconds_run = data["duration_us"] / 1e6
    return WrkResult(
        requests=data["requests"],
        seconds=seconds_run,
        per_second=data["requests"] / seconds_run if seconds_run else 0.0,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        socket_errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
        status_errors=data["status"],
        connections=max(connections, threads),
    )


def combined(slices: list[WrkResult]) -> WrkResult:
    """One row from several runs of the same target: requests and time summed (the rate is the whole
    run's), each latency percentile the median of the slices' (wrk gives no histogram to merge), the
    maximum the largest, errors summed."""
    if not slices:
        raise ValueError("no slices")
    seconds = sum(r.seconds for r in slices)
    requests = sum(r.requests for r in slices)
    return WrkResult(
        requests=requests,
        seconds=seconds,
        per_second=requests / seconds if seconds else 0.0,
        p50_ms=statistics.median(r.p50_ms for r in slices),
        p90_ms=statistics.median(r.p90_ms for r in slices),
        p99_ms=statistics.median(r.p99_ms for r in slices),
        max_ms=max(r.max_ms for r in slices),
        socket_errors=sum(r.socket_errors for r in slices),
        status_errors=sum(r.status_errors for r in slices),
        connections=slices[0].connections,
    )
