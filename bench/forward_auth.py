"""Forward-auth checks per second against their ceilings, with wrk as the load generator.

Targets, each driven by wrk (one thread, keep-alive connections) at the same concurrency, side by side
in one run, interleaved per concurrency level:

- bare gevent WSGI "200 OK" (``bench.bare_app``) as a default ``gevent.pywsgi.WSGIServer``, which is how
  the IdP serves: the ceiling for a check answered by a gevent WSGI process;
- the same with TCP_NODELAY on accepted sockets (see ``bench.bare_app`` for why it matters);
- the IdP's ``GET /auth/forward`` with a valid session cookie, called directly, per backend;
- Traefik (the real binary) routing to the bare app (TCP_NODELAY variant) with no auth: the ceiling of
  the Traefik path;
- the same Traefik with its ``forwardAuth`` middleware asking the IdP before every request, with the
  nextAuth plugin checking sessions itself, and with a plugin that only passes requests on.

The Traefik rows all send the same browser request, session cookie included: only the middleware differs.
The direct rows (the bare servers and the IdP) all get the same forward-auth request, as a proxy sends it:
only the server differs.

The session cookie comes from a real QR login at the IdP's login page (``qr_login.idp_login``): a phone
enrolled at ns scans the page's QR and approves with its PIN. Every target is first checked with one
request (status, identity header, and that a request without the cookie is refused), so that wrk's
rates count answers that mean what they should; wrk's own error counts (socket errors, status > 399)
are reported next to them.
"""

import contextlib
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import qr_login, traefik, wrk
from bench.common import (
    PYTHON,
    REPO,
    SQLITE,
    Backend,
    Child,
    LoadWatch,
    free_port,
    machine_table,
    server_versions,
)
from bench.profiles import ProfileSummary, safely, summarize
from bench.profiles import markdown as markdown_profile

FORWARD_PATH = "/auth/forward"
BROWSER_HEADERS = {"Accept": "text/html,application/xhtml+xml"}
FORWARDED = {
    "X-Forwarded-Method": "GET",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "app.bench.test",
    "X-Forwarded-Uri": "/reports/2026?page=1",
}
BARE = "bare gevent WSGI 200 (pywsgi defaults)"
BARE_NODELAY = "bare gevent WSGI 200 + TCP_NODELAY"
BARE_OURS = "bare gevent WSGI 200, our handler (TCP_NODELAY, connections take turns)"
TRAEFIK_NOAUTH = "Traefik -> bare app, no auth"
TRAEFIK_FWD = "Traefik forwardAuth -> IdP, then bare app"
TRAEFIK_PLUGIN = "Traefik nextAuth plugin (checks locally), then bare app"
TRAEFIK_PASSTHROUGH = "Traefik pass-through plugin (does nothing), then bare app"


def forward_auth_direct(backend: str) -> str:
    return f"IdP /auth/forward direct ({backend})"


@dataclass
class Row:
    target: str
    connections: int
    result: wrk.WrkResult | None
    note: str = ""
    slices: list[float] = field(default_factory=list)  # each slice's requests per second, in turn


@dataclass
class HttpResults:
    markdown: str
    rows: list[Row]
    ratios: list[tuple[str, float, str]] = field(default_factory=list)  # (what, ratio, basis)
    profile: ProfileSummary | None = None
    landed: bool = False


@dataclass
class Settings:
    seconds: float = 7.5
    levels: tuple[int, ...] = (10, 50)
    # Each row is measured in this many slices, the rows of one concurrency level taking turns slice by
    # slice: a change in the machine's speed during the run falls on the rows compared alike, where rows
    # run one after the other would each get whatever speed their turn had.
    slices: int = 5


QUICK = Settings(seconds=1.0, levels=(10,), slices=1)


def _forward_auth_landed() -> tuple[bool, str]:
    here = [p for p in ("idp/forward_auth.py", "idp/forwardauth") if (REPO / p).exists()]
    if not here:
        return False, "the IdP's forward-auth (idp/forward_auth.py or idp/forwardauth/) is not in this tree"
    return True, f"found {', '.join(here)}"


def _check(url: str, headers: dict[str, str], expect_user: str | None = None) -> tuple[int, dict[str, str]]:
    import httpx

    response = httpx.get(url, headers=headers, timeout=10, follow_redirects=False)
    return response.status_code, dict(response.headers)


def _session(services: qr_login.Services, folder: Path) -> tuple[str, str]:
    """A logged-in browser's session token and its user, from a real QR login at the IdP."""
    app, account = qr_login.phone(services, folder / "fa-phone", "fa-user")
    token, _cookies = qr_login.idp_login(services, app, account)
    return token, "fa-user"


def run(
    *,
    quick: bool = False,
    backends: list[Backend] | None = None,
    notes: list[str] | None = None,
    command: str = "python -m bench --only forward-auth",
    profile_dir: Path | None = None,
) -> HttpResults:
    settings = QUICK if quick else Settings()
    backends = backends or [Backend(SQLITE)]
    watch = LoadWatch()
    started = time.perf_counter()
    landed, landed_note = _forward_auth_landed()
    page_notes = list(notes or [])
    rows: list[Row] = []
    checks: list[str] = []
    server_notes: list[str] = []
    with contextlib.ExitStack() as stack:
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nextauth-bench-http-")))
        bare_port, nodelay_port = free_port(), free_port()
        bare = stack.enter_context(
            Child("bare", [PYTHON, "-m", "bench.bare_app", str(bare_port)], log_dir=logs)
        )
        nodelay = stack.enter_context(
            Child(
                "bare-nodelay", [PYTHON, "-m", "bench.bare_app", str(nodelay_port), "--nodelay"], log_dir=logs
            )
        )
        ours_port = free_port()
        ours_bare = stack.enter_context(
            Child("bare-ours", [PYTHON, "-m", "bench.bare_app", str(ours_port), "--ours"], log_dir=logs)
        )
        bare_url, nodelay_url = f"http://127.0.0.1:{bare_port}/", f"http://127.0.0.1:{nodelay_port}/"
        ours_url = f"http://127.0.0.1:{ours_port}/"
        bare.wait_http(bare_url)
        nodelay.wait_http(nodelay_url)
        ours_bare.wait_http(ours_url)
        bare_targets = [(BARE, bare_url), (BARE_NODELAY, nodelay_url), (BARE_OURS, ours_url)]
        targets: list[tuple[str, str, dict[str, str]]] = []
        fwd_address: str | None = None
        idp_base: str | None = None
        for index, backend in enumerate(backends):
            versions = ", ".join(f"{k} {v}" for k, v in server_versions(backend).items())
            server_notes.append(f"{backend.name}: {versions}" + (f"; {backend.note}" if backend.note else ""))
            env = stack.enter_context(backend.database())
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nextauth-bench-")))
            services = qr_login.Services(folder, env)
            stack.callback(services.stop)
            try:
                token, user = _session(services, folder)
            except Exception as exc:
                page_notes.append(f"{backend.name}: no session for forward-auth: {type(exc).__name__}: {exc}")
                continue
            url = services.idp_url + FORWARD_PATH
            headers = {**BROWSER_HEADERS, **FORWARDED, "Cookie": f"nextauth_session={token}"}
            status, answer = _check(url, headers)
            if status == 404:
                landed = False
                page_notes.append(
                    f"{backend.name}: the IdP answers 404 on {FORWARD_PATH}: forward-auth has not landed; "
                    "only the baselines are measured."
                )
                continue
            refused, _ = _check(url, {**BROWSER_HEADERS, **FORWARDED})
            checks.append(
                f"{forward_auth_direct(backend.name)}: with the cookie {status}, Remote-User "
                f"{answer.get('remote-user')!r} (expected 200, {user!r}); without it {refused}"
            )
            targets.append((forward_auth_direct(backend.name), url, headers))
            if index == len(backends) - 1:
                fwd_address, idp_base = url, services.idp_url
        # The bare servers get the request the IdP gets (a proxy's forward-auth request, cookie included):
        # reading its headers is work any server does, so a ceiling asked with a bare "GET /" would
        # count it against the IdP alone.
        direct = next((h for _, u, h in targets if u == fwd_address), {**BROWSER_HEADERS, **FORWARDED})
        targets[:0] = [(name, url, direct) for name, url in bare_targets]  # first, as the page lists them
        try:
            proxy = traefik.start(logs, nodelay_url, fwd_address, idp_base)
            stack.callback(proxy.stop)
            # Every Traefik row sends the same browser request, cookie included: only the middleware differs.
            browser = dict(BROWSER_HEADERS)
            if fwd_address is not None:
                browser["Cookie"] = direct["Cookie"]
            targets.append((TRAEFIK_NOAUTH, proxy.noauth_url, browser))
            if proxy.forward_auth_url and fwd_address is not None:
                status, _ = _check(proxy.forward_auth_url, browser)
                refused, refused_headers = _check(proxy.forward_auth_url, BROWSER_HEADERS)
                checks.append(
                    f"{TRAEFIK_FWD}: with the cookie {status} (expected 200 from the app); without it "
                    f"{refused} to {refused_headers.get('location', '-')[:60]}"
                )
                targets.append((TRAEFIK_FWD, proxy.forward_auth_url, browser))
            if proxy.plugin_url and fwd_address is not None:
                status, _ = _check(proxy.plugin_url, browser)
                refused, refused_headers = _check(proxy.plugin_url, BROWSER_HEADERS)
                checks.append(
                    f"{TRAEFIK_PLUGIN}: with the cookie {status} (expected 200 from the app); without it "
                    f"{refused} to {refused_headers.get('location', '-')[:60]}"
                )
                targets.append((TRAEFIK_PLUGIN, proxy.plugin_url, browser))
                if proxy.passthrough_url:
                    status, _ = _check(proxy.passthrough_url, browser)
                    checks.append(f"{TRAEFIK_PASSTHROUGH}: {status} (expected 200 from the app)")
                    targets.append((TRAEFIK_PASSTHROUGH, proxy.passthrough_url, browser))
        except Exception as exc:
            page_notes.append(f"Traefik not measured: {type(exc).__name__}: {exc}")
        for level in settings.levels:
            rows += _measured(targets, level, settings)
    profile = (
        safely(lambda: _profile(backends[-1], profile_dir, settings), page_notes)
        if profile_dir and landed
        else None
    )
    if profile_dir and not landed:
        page_notes.append("No profile: forward-auth has not landed.")
    ratios = _ratios(rows, backends)
    markdown = _page(
        rows, ratios, checks, page_notes, server_notes, settings, command, watch, started, landed, landed_note
    )
    if profile is not None:
        markdown += "\n## Profile of the IdP\n\n" + markdown_profile(profile)
    return HttpResults(markdown, rows, ratios, profile, landed)


def _measured(targets: list[tuple[str, str, dict[str, str]]], level: int, settings: Settings) -> list[Row]:
    """Every target at one concurrency level, in ``settings.slices`` rounds of a slice each."""
    slices: dict[str, list[wrk.WrkResult]] = {name: [] for name, _, _ in targets}
    failed: dict[str, str] = {}
    seconds = settings.seconds / settings.slices
    for _ in range(settings.slices):
        for name, url, headers in targets:
            if name in failed:
                continue
            try:
                slices[name].append(wrk.run(url, connections=level, seconds=seconds, headers=headers))
            except Exception as exc:
                failed[name] = f"{type(exc).__name__}: {exc}"
    rows: list[Row] = []
    for name, _, _ in targets:
        if name in failed:
            rows.append(Row(name, level, None, failed[name]))
        else:
            rates = [piece.per_second for piece in slices[name]]
            rows.append(Row(name, level, wrk.combined(slices[name]), slices=rates))
    return rows


def _row(rows: list[Row], target: str, level: int) -> Row | None:
    for row in rows:
        if row.target == target and row.connections == level and row.result and row.result.requests:
            return row
    return None


def _ratios(rows: list[Row], backends: list[Backend]) -> list[tuple[str, float, str]]:
    found: list[tuple[str, float, str]] = []
    levels = sorted({row.connections for row in rows})
    pairs = [
        (forward_auth_direct(b.name), base, f"forward-auth ({b.name}) : {label}")
        for b in backends
        for base, label in (
            (BARE_NODELAY, "bare gevent + TCP_NODELAY"),
            (BARE_OURS, "bare gevent, our handler"),
        )
    ] + [
        (TRAEFIK_FWD, TRAEFIK_NOAUTH, "Traefik with forwardAuth : Traefik without auth"),
        (TRAEFIK_PLUGIN, TRAEFIK_NOAUTH, "Traefik with the nextAuth plugin : Traefik without auth"),
        (TRAEFIK_PASSTHROUGH, TRAEFIK_NOAUTH, "Traefik with a pass-through plugin : Traefik without auth"),
        (
            TRAEFIK_PLUGIN,
            TRAEFIK_PASSTHROUGH,
            "Traefik with the nextAuth plugin : with a pass-through plugin",
        ),
    ]
    for target, base, label in pairs:
        for level in levels:
            ours, ceiling = _row(rows, target, level), _row(rows, base, level)
            if ours is None or ceiling is None:
                continue
            paired = [a / b for a, b in zip(ours.slices, ceiling.slices, strict=False) if b]
            if len(paired) == len(ours.slices) == len(ceiling.slices) and len(paired) > 1:
                each = ", ".join(f"{ratio:.2f}" for ratio in paired)
                found.append((label, statistics.median(paired), f"{level} connections (slices: {each})"))
            else:
                assert ours.result is not None and ceiling.result is not None
                found.append(
                    (label, ours.result.per_second / ceiling.result.per_second, f"{level} connections")
                )
    return found


def _page(
    rows: list[Row],
    ratios: list[tuple[str, float, str]],
    checks: list[str],
    notes: list[str],
    server_notes: list[str],
    settings: Settings,
    command: str,
    watch: LoadWatch,
    started: float,
    landed: bool,
    landed_note: str,
) -> str:
    lines = [
        "# Benchmarks: forward-auth and HTTP ceilings",
        "",
        "Generated by `python -m bench` (bench/forward_auth.py). Load generator: wrk, one thread, "
        f"keep-alive connections, {settings.seconds:g} s per row in {settings.slices} slices: the rows of "
        "one concurrency level take turns slice by slice, so that a change in the machine's speed during "
        "the run falls on the rows compared alike (a row's rate is over all its slices, its percentiles "
        "the median of its slices'). Each ratio is the median of its slices' ratios, a slice of one row "
        "against the slice of the other from the same turn; every slice's ratio is listed. Latency is "
        "closed-loop (each connection waits for its answer before "
        "it sends again). wrk, the servers and Traefik share this machine's CPUs. The bare servers and "
        "the IdP are sent the same request (a proxy's forward-auth request: Accept, the X-Forwarded "
        "headers and the session cookie), and so are all the Traefik rows (a browser's request with the "
        "cookie).",
        "",
        machine_table(command),
        f"Servers: {'; '.join(server_notes) or '-'}.",
        "",
        f"Run: {time.perf_counter() - started:.0f} s; {watch.note()}.",
        "",
        f"Forward-auth: {landed_note}; " + ("measured." if landed else "not measured in this run."),
        "",
    ]
    lines += [f"- Note: {note}" for note in notes]
    lines += [f"- Check: {check}" for check in checks]
    lines += [
        "",
        "| target | connections | requests/s | p50 ms | p90 ms | p99 ms | requests "
        "| socket errors | status > 399 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        r = row.result
        if r is None:
            lines.append(f"| {row.target} | {row.connections} | not measured: {row.note} | | | | | | |")
            continue
        lines.append(
            f"| {row.target} | {row.connections} | {r.per_second:,.0f} | {r.p50_ms:.2f} | {r.p90_ms:.2f} "
            f"| {r.p99_ms:.2f} | {r.requests:,} | {r.socket_errors} | {r.status_errors} |"
        )
    if ratios:
        lines += [
            "",
            "## Ratios (same run, same concurrency)",
            "",
            "| ratio | at | value |",
            "|---|---|---:|",
        ]
        lines += [f"| {what} | {basis} | {value:.2f} |" for what, value, basis in ratios]
    lines += [
        "",
        "gevent's pywsgi sends a response's headers and body in two writes; without TCP_NODELAY, Nagle's "
        "algorithm holds the body until the client acknowledges the headers, which a Linux client delays "
        "by about 40 ms on a kept-alive connection: the bare server's first two rows show the cost. An "
        "answer with an empty body (a forward-auth 200) is one write and does not pay it, so the ceiling "
        "for forward-auth is the TCP_NODELAY row, and the ratios are taken against it. A forward-auth "
        "answer with a body (a redirect to the login page, a 401 or 403 with JSON) does pay it on a "
        "kept-alive connection from Traefik. The servers of the IdP and the services also take turns "
        "between kept-alive connections (authserver/transport/wsgi.py): one that has answered yields "
        "before it reads its next request. That costs a switch per request and keeps every connection's "
        "p99 near its median, where the plain bare server serves a few connections again and again while "
        "the others wait (compare the p99 columns); the bare server with our handler is the ceiling with "
        "that policy, and the ratios are taken against both.",
        "",
        "Traefik runs a plugin in its Go interpreter (Yaegi): each request is handed into interpreted code "
        "and back. The pass-through plugin (bench/passthrough-plugin) does only that, so Traefik with it "
        "against Traefik without auth is what hosting any plugin costs, and the nextAuth plugin against "
        "it is what the plugin's own checks cost.",
    ]
    return "\n".join(lines) + "\n"


def _profile(backend: Backend, profile_dir: Path, settings: Settings) -> ProfileSummary | None:
    out = profile_dir / "forward-auth.json"
    with backend.database() as env, tempfile.TemporaryDirectory(prefix="nextauth-bench-") as folder:
        services = qr_login.Services(Path(folder), env, profile_to=out)
        try:
            token, _user = _session(services, Path(folder))
            headers = {**BROWSER_HEADERS, **FORWARDED, "Cookie": f"nextauth_session={token}"}
            services.profile_start()
            result = wrk.run(
                services.idp_url + FORWARD_PATH,
                connections=10,
                seconds=max(3, settings.seconds),
                headers=headers,
            )
            saved = services.profile_stop()
        finally:
            services.stop()
    if saved is None:
        return None
    return summarize(
        saved,
        title=f"forward-auth checks, {backend.name}",
        workload=f"wrk, 10 connections, {result.requests:,} checks, {result.errors} errors, "
        f"{result.per_second:,.0f} checks/s under the profiler",
    )
