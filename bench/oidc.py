"""OIDC: authorization-code exchanges and token introspection per second, ours against a reference
OpenID provider (node ``oidc-provider``, bench/reference-op/) on the same machine, in the same run.

Both providers are driven alike, and only through what their discovery documents name:

1. a confidential client (client_secret_basic, ID tokens ES256, redirect URI on loopback that nothing
   listens on) and a browser session at the provider: at ours a real QR login at the IdP's page (a phone
   approves), at the reference its auto-approving interaction;
2. authorize: N authorization requests, each with its own PKCE (S256) challenge, state and nonce, sent
   with the session's cookies; each answer must redirect to the client with a code (the requests/s are
   reported too);
3. token: the N single-use codes exchanged (grant_type=authorization_code, code_verifier, HTTP Basic
   client authentication); each answer must be 200 with an access token and an ID token;
4. introspection: one of those access tokens introspected again and again (wrk, a static POST);
   the answer is checked once to say ``"active": true``.

Steps 2 and 3 use ``bench.loadgen`` (a Python asyncio load generator: each request can be sent once, so
wrk cannot walk them and keep its timing); step 4 uses wrk. The reference keeps its state in memory (the
Map-based adapter in bench/reference-op/provider.mjs); ours in its database (SQLite, or PostgreSQL +
Redis), so the ratio includes the cost of durable storage.
"""

import base64
import contextlib
import hashlib
import json
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from authserver.workers import available_cores
from bench import loadgen, qr_login, wrk
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
from nextauth_core.encoding import b64url

REFERENCE_DIR = REPO / "bench" / "reference-op"
REDIRECT_URI = "http://127.0.0.1:9/bench/callback"  # discard port: never followed
ID_TOKEN_SIGNING = "ES256"  # noqa: S105 - a JWS alg, not a secret
REFERENCE = "reference: node oidc-provider"
OURS = "ours: nextAuth IdP"
CORES = available_cores()
REFERENCE_ALL = f"reference, all cores: node oidc-provider, cluster of {CORES}, state in Redis"
OURS_ALL = f"ours, all cores: nextAuth IdP, {CORES} workers"
# Like for like with the reference in one process: state inside the process (ours keeps it in a SQLite
# file and its in-process store; the reference in memory only, gone when it stops).
OURS_EMBEDDED = "ours, embedded: nextAuth IdP, SQLite + in-process store"
# Which reference each of ours is held against.
PAIRS = {OURS: REFERENCE, OURS_EMBEDDED: REFERENCE, OURS_ALL: REFERENCE_ALL}


@dataclass
class Settings:
    codes: int = 1500
    warmup: int = 100  # codes exchanged before the measured ones
    connections: int = 16
    introspect_seconds: float = 6.0


QUICK = Settings(codes=120, warmup=20, connections=8, introspect_seconds=2.0)


@dataclass
class Client:
    client_id: str
    client_secret: str

    @property
    def basic(self) -> str:
        raw = f"{self.client_id}:{self.client_secret}".encode()
        return "Basic " + base64.b64encode(raw).decode()


@dataclass
class Provider:
    name: str
    issuer: str
    client: Client
    cookies: dict[str, str]
    discovery: dict[str, Any] = field(default_factory=dict)

    @property
    def cookie_header(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())


@dataclass
class Measured:
    provider: str
    step: str  # authorize, token, introspection
    figures: dict[str, Any] | None
    note: str = ""


@dataclass
class OidcResults:
    markdown: str
    measured: list[Measured]
    ratios: list[tuple[str, float, str]]
    profile: ProfileSummary | None = None
    ours_landed: bool = False


# -- the reference provider -------------------------------------------------------------------------


def reference_version() -> str | None:
    with contextlib.suppress(OSError, ValueError):
        package = REFERENCE_DIR / "node_modules" / "oidc-provider" / "package.json"
        return str(json.loads(package.read_text())["version"])
    return None


def install_reference() -> None:
    """``npm ci`` from the committed package-lock.json when node_modules is missing."""
    if all((REFERENCE_DIR / "node_modules" / name).exists() for name in ("oidc-provider", "ioredis")):
        return
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise RuntimeError("node and npm are needed for the reference provider (Debian: nodejs, npm)")
    out = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=REFERENCE_DIR,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"npm ci failed in bench/reference-op: {(out.stderr or out.stdout)[-400:]}")


def start_reference(
    log_dir: Path, *, name: str = REFERENCE, workers: int = 1, redis: str | None = None
) -> tuple[Child, Provider]:
    """The reference provider; with ``redis``, its state there (``workers`` > 1 needs it)."""
    install_reference()
    port = free_port()
    client = Client("bench-rp", secrets.token_urlsafe(32))
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(log_dir),
        "BENCH_OP_PORT": str(port),
        "BENCH_OP_CLIENTS": json.dumps(
            [
                {
                    "client_id": client.client_id,
                    "client_secret": client.client_secret,
                    "redirect_uris": [REDIRECT_URI],
                    "grant_types": ["authorization_code", "refresh_token"],
                    "id_token_signed_response_alg": ID_TOKEN_SIGNING,
                }
            ]
        ),
    }
    import os

    env["PATH"] = os.environ.get("PATH", env["PATH"])
    env["BENCH_OP_WORKERS"] = str(workers)
    if redis:
        env["BENCH_OP_REDIS"] = redis
        env["BENCH_OP_REDIS_PREFIX"] = f"bench-op-{secrets.token_hex(4)}:"
    label = "reference-op" if workers == 1 else f"reference-op-{workers}"
    child = Child(label, ["node", "provider.mjs"], log_dir=log_dir, env=env, cwd=REFERENCE_DIR)
    issuer = f"http://127.0.0.1:{port}"
    child.wait_http(issuer + "/.well-known/openid-configuration")
    if workers > 1:
        _wait_for_line(child, f"ready {port}")
    return child, Provider(name, issuer, client, {})


def _wait_for_line(child: Child, line: str, timeout: float = 30.0) -> None:
    """Every worker listening: the first one answers before the others are up."""
    deadline = time.monotonic() + timeout
    while line not in child.log_tail(50).splitlines():
        if time.monotonic() > deadline or not child.alive():
            raise RuntimeError(f"{child.name} did not start: {child.log_tail()}")
        time.sleep(0.1)


# -- ours ---------------------------------------------------------------------------------------------


def register_our_client(services: qr_login.Services) -> Client:
    argv = [PYTHON, "-m", "nextauth.cli", "oidc-client", "add", "--name", "bench-rp"]
    argv += ["--redirect-uri", REDIRECT_URI, "--trusted", "--id-token-alg", ID_TOKEN_SIGNING]
    out = subprocess.run(
        argv, cwd=REPO, env=services.env, capture_output=True, text=True, timeout=60, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"oidc-client add failed: {(out.stderr or out.stdout).strip()[-300:]}")
    answer = json.loads(out.stdout)
    return Client(answer["client_id"], answer["client_secret"])


def our_provider(
    services: qr_login.Services, folder: Path, name: str = OURS, idp_url: str | None = None
) -> Provider:
    """A client and a logged-in browser at our IdP: the one of ``services``, or another at ``idp_url``
    beside the same ns."""
    import httpx

    idp_url = idp_url or services.idp_url
    found = httpx.get(idp_url + "/.well-known/openid-configuration", timeout=10)
    if found.status_code != 200:
        raise LookupError(f"the IdP answers {found.status_code} on /.well-known/openid-configuration")
    client = register_our_client(services)
    app, account = qr_login.phone(services, folder / f"oidc-phone-{secrets.token_hex(3)}", "oidc-user")
    _token, cookies = qr_login.idp_login(services, app, account, idp_url=idp_url)
    return Provider(name, idp_url, client, cookies)


def _start_ours(
    stack: contextlib.ExitStack, backend: Backend, name: str
) -> tuple[Path, qr_login.Services, Provider]:
    """``nextauth all`` on ``backend`` until ``stack`` closes, with our client and a logged-in browser."""
    env = stack.enter_context(backend.database())
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nextauth-bench-")))
    services = qr_login.Services(folder, env)
    stack.callback(services.stop)
    provider = our_provider(services, folder, name)
    _discover(provider)
    _settle_session(provider)
    return folder, services, provider


def start_our_idp_workers(services: qr_login.Services, log_dir: Path, workers: int) -> tuple[Child, str]:
    """``nextauth idp`` with ``workers`` worker processes, beside the ns of ``services`` and on its
    database and Redis (as a deployment runs the IdP on its own)."""
    port = free_port()
    env = dict(services.env)
    env.update(
        NEXTAUTH_IDP_LISTEN=f"127.0.0.1:{port}",
        NEXTAUTH_IDP_PUBLIC_URL=f"http://127.0.0.1:{port}",
        NEXTAUTH_IDP_ADMIN_PORT=str(free_port()),
        NEXTAUTH_IDP_WORKERS=str(workers),
        NEXTAUTH_IDP_NS_API_URL=f"http://127.0.0.1:{services.ports['ns']['http']}",
        NEXTAUTH_IDP_NS_API_KEY=services.api_key,
        NEXTAUTH_IDP_NS_WEBSOCKET_URL=f"ws://127.0.0.1:{services.ports['ns']['websocket']}/ns/websocket",
        NEXTAUTH_IDP_SECRET_KEY=secrets.token_urlsafe(32),
    )
    child = Child(f"idp-{workers}", [PYTHON, "-m", "nextauth.cli", "idp"], log_dir=log_dir, env=env)
    url = f"http://127.0.0.1:{port}"
    child.wait_http(url + "/.well-known/openid-configuration", timeout=60)
    return child, url


# -- the steps ----------------------------------------------------------------------------------------


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = b64url(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge


def _discover(provider: Provider) -> None:
    import httpx

    document = httpx.get(provider.issuer + "/.well-known/openid-configuration", timeout=10).json()
    for name in ("authorization_endpoint", "token_endpoint", "introspection_endpoint"):
        if name not in document:
            raise LookupError(f"{provider.name}: discovery names no {name}")
    provider.discovery = document


def _authorize_query(client: Client, challenge: str) -> dict[str, str]:
    return {
        "client_id": client.client_id,
        "response_type": "code",
        "scope": "openid",
        "redirect_uri": REDIRECT_URI,
        "state": secrets.token_urlsafe(12),
        "nonce": secrets.token_urlsafe(12),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }


def _settle_session(provider: Provider) -> None:
    """One authorization by a browser-like client, so the provider's session cookies are in place (the
    reference logs the account in through its interaction here) and the client needs no consent."""
    import httpx

    with httpx.Client(cookies=provider.cookies, timeout=15) as browser:
        _verifier, challenge = _pkce()
        url = (
            provider.discovery["authorization_endpoint"]
            + "?"
            + urlencode(_authorize_query(provider.client, challenge))
        )
        for _ in range(10):
            answer = browser.get(url)
            location = answer.headers.get("location", "")
            if answer.status_code in (302, 303) and location.startswith(REDIRECT_URI):
                if "code=" not in location:
                    raise RuntimeError(f"{provider.name}: authorization refused: {location[:200]}")
                provider.cookies = {c.name: c.value for c in browser.cookies.jar if c.value is not None}
                return
            if answer.status_code not in (302, 303):
                raise RuntimeError(
                    f"{provider.name}: authorization answered {answer.status_code}, no redirect"
                )
            url = str(answer.url.join(location))
    raise RuntimeError(f"{provider.name}: no code after 10 redirects")


def _target(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    return (
        parts.hostname or "127.0.0.1",
        parts.port or 80,
        parts.path + (f"?{parts.query}" if parts.query else ""),
    )


def mint_codes(
    provider: Provider, count: int, connections: int
) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """``count`` authorization requests; the (code, verifier) pairs and the authorize figures."""
    host, port, path = _target(provider.discovery["authorization_endpoint"])
    verifiers, requests = [], []
    for _ in range(count):
        verifier, challenge = _pkce()
        verifiers.append(verifier)
        query = urlencode(_authorize_query(provider.client, challenge))
        requests.append(
            loadgen.build("GET", host, port, f"{path}?{query}", {"Cookie": provider.cookie_header})
        )
    result = loadgen.run(host, port, requests, connections=connections)

    def redirected(answer: loadgen.Answer) -> bool:
        return answer.status in (302, 303) and answer.headers.get("location", "").startswith(
            REDIRECT_URI + "?code="
        )

    pairs = []
    for answer, verifier in zip(result.answers, verifiers, strict=True):
        if answer is not None and redirected(answer):
            code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
            pairs.append((code, verifier))
    return pairs, result.summary(redirected)


def exchange(
    provider: Provider, pairs: list[tuple[str, str]], connections: int
) -> tuple[dict[str, Any], str | None]:
    """Exchange every code once; the figures and one access token."""
    host, port, path = _target(provider.discovery["token_endpoint"])
    headers = {"Authorization": provider.client.basic, "Content-Type": "application/x-www-form-urlencoded"}
    requests = []
    for code, verifier in pairs:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        }
        requests.append(loadgen.build("POST", host, port, path, headers, urlencode(form).encode()))
    result = loadgen.run(host, port, requests, connections=connections)

    def issued(answer: loadgen.Answer) -> bool:
        body = answer.body
        # Both sides issue the same three tokens (see the page's note on refresh tokens).
        return answer.status == 200 and all(
            name in body for name in (b'"access_token"', b'"id_token"', b'"refresh_token"')
        )

    token = None
    for answer in result.answers:
        if answer is not None and issued(answer):
            token = json.loads(answer.body)["access_token"]
            break
    figures = result.summary(issued)
    statuses: dict[int, int] = {}
    for answer in result.answers:
        if answer is not None and not issued(answer):
            statuses[answer.status] = statuses.get(answer.status, 0) + 1
    figures["failed_statuses"] = statuses
    return figures, token


def introspect(provider: Provider, token: str, seconds: float, connections: int) -> dict[str, Any]:
    import httpx

    url = provider.discovery["introspection_endpoint"]
    headers = {"Authorization": provider.client.basic, "Content-Type": "application/x-www-form-urlencoded"}
    body = urlencode({"token": token, "token_type_hint": "access_token"})
    check = httpx.post(url, headers=headers, content=body, timeout=10)
    if check.status_code != 200 or check.json().get("active") is not True:
        raise RuntimeError(f"{provider.name}: introspection answered {check.status_code} {check.text[:120]}")
    result = wrk.run(url, connections=connections, seconds=seconds, method="POST", headers=headers, body=body)
    return {
        "requests": result.requests,
        "ok": result.requests - result.status_errors,
        "per_second": result.per_second,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "socket_errors": result.socket_errors,
        "bad_answers": result.status_errors,
        "connections": result.connections,
        "seconds": result.seconds,
    }


# -- the run ------------------------------------------------------------------------------------------


def run(
    *,
    quick: bool = False,
    backends: list[Backend] | None = None,
    notes: list[str] | None = None,
    command: str = "python -m bench --only oidc",
    profile_dir: Path | None = None,
) -> OidcResults:
    settings = QUICK if quick else Settings()
    backend = (backends or [Backend(SQLITE)])[-1]
    watch = LoadWatch()
    started = time.perf_counter()
    page_notes = list(notes or [])
    measured: list[Measured] = []
    providers: list[Provider] = []
    ours_landed = False
    with contextlib.ExitStack() as stack:
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nextauth-bench-oidc-")))
        try:
            child, reference = start_reference(logs)
            stack.callback(child.stop)
            _discover(reference)
            _settle_session(reference)
            providers.append(reference)
        except Exception as exc:
            page_notes.append(f"Reference provider not measured: {type(exc).__name__}: {exc}")
        services: qr_login.Services | None = None
        try:
            folder, services, ours = _start_ours(stack, backend, OURS)
            providers.append(ours)
            ours_landed = True
        except LookupError as exc:
            page_notes.append(f"Ours not measured: the IdP's OIDC provider has not landed ({exc}).")
        except Exception as exc:
            page_notes.append(f"{OURS} not measured: {type(exc).__name__}: {exc}")
        # One process with its state inside, as the reference keeps it, when the run's backend is a server's.
        embedded = next((b for b in backends or [] if b.name == SQLITE), None)
        if ours_landed and embedded is not None and embedded is not backend:
            try:
                providers.append(_start_ours(stack, embedded, OURS_EMBEDDED)[2])
            except Exception as exc:
                page_notes.append(f"{OURS_EMBEDDED} not measured: {type(exc).__name__}: {exc}")
        # All cores: several processes share their state through Redis, ours and the reference alike.
        redis = backend.redis or ""
        if CORES < 2:
            page_notes.append("All-cores rows not measured: this machine has one core.")
        elif not redis.startswith("redis"):
            page_notes.append(f"All-cores rows not measured: they need Redis, and {backend.name} has none.")
        else:
            try:
                child, reference_all = start_reference(logs, name=REFERENCE_ALL, workers=CORES, redis=redis)
                stack.callback(child.stop)
                _discover(reference_all)
                _settle_session(reference_all)
                providers.append(reference_all)
            except Exception as exc:
                page_notes.append(f"{REFERENCE_ALL} not measured: {type(exc).__name__}: {exc}")
            if services is not None and ours_landed:
                try:
                    idp, url = start_our_idp_workers(services, logs, CORES)
                    stack.callback(idp.stop)
                    ours_all = our_provider(services, folder, OURS_ALL, idp_url=url)
                    _discover(ours_all)
                    _settle_session(ours_all)
                    providers.append(ours_all)
                except Exception as exc:
                    page_notes.append(f"{OURS_ALL} not measured: {type(exc).__name__}: {exc}")
        tokens: dict[str, str | None] = {}
        codes: dict[str, list[tuple[str, str]]] = {}
        for provider in providers:  # authorize, side by side
            try:
                pairs, figures = mint_codes(provider, settings.codes + settings.warmup, settings.connections)
                codes[provider.name] = pairs
                measured.append(Measured(provider.name, "authorize", figures))
            except Exception as exc:
                measured.append(Measured(provider.name, "authorize", None, f"{type(exc).__name__}: {exc}"))
        for provider in providers:  # token: warm-up, then the measured exchanges
            pairs = codes.get(provider.name, [])
            if len(pairs) <= settings.warmup:
                measured.append(Measured(provider.name, "token", None, f"only {len(pairs)} codes minted"))
                continue
            try:
                exchange(provider, pairs[: settings.warmup], settings.connections)
                figures, tokens[provider.name] = exchange(
                    provider, pairs[settings.warmup :], settings.connections
                )
                measured.append(Measured(provider.name, "token", figures))
            except Exception as exc:
                measured.append(Measured(provider.name, "token", None, f"{type(exc).__name__}: {exc}"))
        for provider in providers:
            token = tokens.get(provider.name)
            if token is None:
                measured.append(Measured(provider.name, "introspection", None, "no access token"))
                continue
            try:
                figures = introspect(provider, token, settings.introspect_seconds, settings.connections)
                measured.append(Measured(provider.name, "introspection", figures))
            except Exception as exc:
                measured.append(
                    Measured(provider.name, "introspection", None, f"{type(exc).__name__}: {exc}")
                )
        server = f"{backend.name}: " + ", ".join(f"{k} {v}" for k, v in server_versions(backend).items())
        if backend.note:
            server += f"; {backend.note}"
    profile = (
        safely(lambda: _profile(backend, profile_dir, settings), page_notes)
        if profile_dir and ours_landed
        else None
    )
    ratios = _ratios(measured, providers)
    markdown = _page(measured, ratios, page_notes, server, settings, command, watch, started, ours_landed)
    if profile is not None:
        markdown += "\n## Profile of our IdP\n\n" + markdown_profile(profile)
    return OidcResults(markdown, measured, ratios, profile, ours_landed)


def _ratios(measured: list[Measured], providers: list[Provider]) -> list[tuple[str, float, str]]:
    found: list[tuple[str, float, str]] = []
    by = {(m.provider, m.step): m.figures for m in measured if m.figures}
    for provider in providers:
        against = PAIRS.get(provider.name)
        if against is None:
            continue
        for step in ("token", "introspection", "authorize"):
            ours, reference = by.get((provider.name, step)), by.get((against, step))
            if ours and reference and reference["per_second"]:
                label = f"{step}: {provider.name.split(':')[0]} : {against.split(':')[0]}"
                found.append((label, ours["per_second"] / reference["per_second"], "requests/s"))
    return found


def _page(
    measured: list[Measured],
    ratios: list[tuple[str, float, str]],
    notes: list[str],
    server: str,
    settings: Settings,
    command: str,
    watch: LoadWatch,
    started: float,
    ours_landed: bool,
) -> str:
    version = reference_version() or "not installed"
    lines = [
        "# Benchmarks: OIDC token endpoint and introspection",
        "",
        "Generated by `python -m bench` (bench/oidc.py): ours (the nextAuth IdP, gevent + Flask + Authlib) "
        f"against node oidc-provider {version} (bench/reference-op/, state in memory) on the same machine "
        "in the same run. Same client set-up on both (confidential, client_secret_basic, PKCE S256, "
        f"ID tokens {ID_TOKEN_SIGNING}); endpoints from each discovery document. authorize and token: "
        f"bench/loadgen.py (Python asyncio, {settings.connections} keep-alive connections, each single-use "
        f"request sent once; {settings.codes} measured exchanges after {settings.warmup} warm-up ones); "
        f"introspection: wrk ({settings.connections} connections, {settings.introspect_seconds:g} s, one "
        "token introspected repeatedly).",
        "",
        machine_table(command, {"oidc-provider": version}),
        f"Servers: {server}.",
        "",
        f"Run: {time.perf_counter() - started:.0f} s; {watch.note()}.",
        "",
    ]
    lines += [f"- Note: {note}" for note in notes]
    lines += [
        "",
        "| provider | step | ok | requests/s | p50 ms | p99 ms | bad answers | socket errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m in measured:
        f = m.figures
        if f is None:
            lines.append(f"| {m.provider} | {m.step} | not measured: {m.note} | | | | | |")
            continue
        bad = f"{f['bad_answers']}" + (f" {f['failed_statuses']}" if f.get("failed_statuses") else "")
        lines.append(
            f"| {m.provider} | {m.step} | {f['ok']:,} | {f['per_second']:,.0f} | {f['p50_ms']:.1f} "
            f"| {f['p99_ms']:.1f} | {bad} | {f['socket_errors']} |"
        )
    if ratios:
        lines += ["", "## Ratios (same run)", "", "| ratio | value |", "|---|---:|"]
        lines += [f"| {what} | {value:.2f} |" for what, value, _basis in ratios]
    if not ours_landed:
        lines += ["", "Ours was not measured in this run, so there is no ratio yet."]
    else:
        lines += [
            "",
            f'"{OURS}" and "{REFERENCE}" are one process each: ours on the run\'s database and Redis, the '
            f'reference with its state in memory. "{OURS_EMBEDDED}" is the like-for-like one-process row: '
            "ours with its state inside the process too (a SQLite file, kept across restarts, and its "
            'in-process store). The "all cores" rows run several: ours as `nextauth idp` '
            f"with NEXTAUTH_IDP_WORKERS={CORES} (a supervisor and {CORES} workers sharing the listening "
            "socket) beside the same ns, database and Redis; the reference under node's cluster module with "
            f"{CORES} workers and its state in Redis (an adapter in bench/reference-op/provider.mjs), since "
            "workers share no memory. The load generator runs on the same cores. Both issue a refresh token "
            "with every exchange: each client may refresh (the reference's `issueRefreshToken` says so for "
            "a client with the refresh grant, as ours does; by default it wants the offline_access scope).",
        ]
    lines += [
        "",
        "The load generator's own ceiling is on the summary page (bench/loadgen.py against the bare "
        "gevent server); a rate well below it is the provider's.",
    ]
    return "\n".join(lines) + "\n"


def _profile(backend: Backend, profile_dir: Path, settings: Settings) -> ProfileSummary | None:
    """Our IdP under pyinstrument while it exchanges codes (minted before the profile starts)."""
    out = profile_dir / "oidc.json"
    count = min(settings.codes, 600)
    with backend.database() as env, tempfile.TemporaryDirectory(prefix="nextauth-bench-") as folder:
        services = qr_login.Services(Path(folder), env, profile_to=out)
        try:
            ours = our_provider(services, Path(folder))
            _discover(ours)
            _settle_session(ours)
            pairs, _ = mint_codes(ours, count, settings.connections)
            services.profile_start()
            figures, _token = exchange(ours, pairs, settings.connections)
            saved = services.profile_stop()
        finally:
            services.stop()
    if saved is None:
        return None
    return summarize(
        saved,
        title=f"OIDC code exchanges at our IdP, {backend.name}",
        workload=f"{figures['ok']} exchanges, {figures['bad_answers']} bad answers, "
        f"{figures['per_second']:,.0f}/s under the profiler",
    )
