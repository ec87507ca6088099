"""How many sigmai handshakes one core can do, and how close the Python state machine gets to the crypto.

Four measurements, all in this process on one pinned core (except (d), which needs a second process):

(a) full handshakes per second: a fresh ``ClientConnection`` and ``ServerConnection`` in memory, both sides;
(b) the server's share: the same handshakes, timing only the server's calls (new ``ServerConnection``,
    ClientHello in, ClientFinish in);
(c) the primitive ceiling: every cryptographic operation the server performs per handshake, counted by
    instrumenting one real handshake and timed one by one in isolation; their sum is the best any
    implementation on these primitives could do, and (b) / (c) shows what the protocol code costs;
(d) optionally, sequential handshake + ``hello`` round trips over a real loopback WebSocket against the
    sigmai endpoint the servers use, run in a child process.

Timing: ``time.perf_counter``, a warm-up round, then several repetitions (each one running (a), (b) and every
primitive of (c) in turn, so a noisy neighbour hits them alike); every figure is the median.
Run it as ``python -m bench`` (all benchmarks, writes docs/benchmarks/) or
``python -m bench.sigmai_handshake`` (this one, to stdout).
"""

import argparse
import contextlib
import hashlib
import hmac
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cryptography
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

import sigmai.connection as connection_module
from sigmai import ClientConnection, DeviceIdentity, ServerConnection, ServerIdentity
from sigmai import keyschedule as ks
from sigmai.constants import KEY_TYPE_ED25519, KEY_TYPE_P256
from sigmai.identity import PeerKey
from sigmai.record import RecordProtection

DEVICES = {"P-256": KEY_TYPE_P256, "Ed25519": KEY_TYPE_ED25519}
REPO = Path(__file__).resolve().parents[1]
DISPLAY_ORDER = [
    "X25519 keygen",
    "X25519 exchange",
    "Ed25519 sign",
    "device signature verify",
    "HKDF-Extract",
    "HKDF-Expand-Label (one HMAC block)",
    "HMAC-SHA256 (Finished)",
    "SHA-256 transcript hash",
    "ChaCha20-Poly1305 key setup",
    "ChaCha20-Poly1305 seal (128 B)",
    "ChaCha20-Poly1305 open (ClientFinish)",
]


@dataclass(frozen=True)
class Settings:
    handshakes: int = 400  # per repetition, for (a) and (b)
    primitive_ops: int = 2000  # per repetition, for (c)
    repetitions: int = 7
    websocket_handshakes: int = 100  # per repetition, for (d)
    websocket_stalled_handshakes: int = 10  # per repetition, for (d) without TCP_NODELAY (~45 ms each)


QUICK = Settings(
    handshakes=40, primitive_ops=200, repetitions=3, websocket_handshakes=20, websocket_stalled_handshakes=3
)


def _median_rate(run_once: Callable[[], float], count: int, repetitions: int) -> float:
    """``run_once`` performs ``count`` operations and returns the seconds they took; median ops/s."""
    run_once()  # warm-up: caches, lazy imports, branch predictors
    return statistics.median(count / run_once() for _ in range(repetitions))


# -- (a) and (b): the sans-IO handshake --------------------------------------------------------------


def _lookup_for(server_key: ServerIdentity) -> Callable[[bytes], ServerIdentity | None]:
    return lambda wanted: server_key if wanted == server_key.key_hash else None


def full_handshakes(device: DeviceIdentity, server_key: ServerIdentity, count: int) -> float:
    lookup = _lookup_for(server_key)
    start = time.perf_counter()
    for _ in range(count):
        client = ClientConnection(device, server_key.key_hash)
        server = ServerConnection(lookup)
        server.receive(client.initiate())
        client.receive(server.frames_to_send()[0])
        server.receive(client.frames_to_send()[0])
    return time.perf_counter() - start


def server_share(device: DeviceIdentity, server_key: ServerIdentity, count: int) -> float:
    lookup = _lookup_for(server_key)
    clock = time.perf_counter
    spent = 0.0
    for _ in range(count):
        client = ClientConnection(device, server_key.key_hash)
        hello = client.initiate()
        start = clock()
        server = ServerConnection(lookup)  # includes the server's fresh X25519 ephemeral
        server.receive(hello)
        (server_hello,) = server.frames_to_send()
        spent += clock() - start
        client.receive(server_hello)
        (finish,) = client.frames_to_send()
        start = clock()
        server.receive(finish)
        spent += clock() - start
    return spent


# -- (c): count what the server does, then time each primitive alone ----------------------------------


@contextlib.contextmanager
def _counting(counts: Counter[str]) -> Iterator[Callable[[bool], None]]:
    """Wrap sigmai's primitive call sites with counters; yields a switch so only server calls count."""
    active = [False]

    def counted(name: str, function: Callable, *, method: bool = False) -> Callable:
        def wrapper(*args: object, **kwargs: object) -> object:
            if active[0]:
                counts[name] += 1
            return function(*args, **kwargs)

        return wrapper

    targets: list[tuple[object, str, str]] = [
        (ks, "extract", "HKDF-Extract"),
        (ks, "expand_label", "HKDF-Expand-Label (one HMAC block)"),
        (ks, "finished_mac", "HMAC-SHA256 (Finished)"),
        (ks, "transcript_hash", "SHA-256 transcript hash"),
        (connection_module, "_shared_secret", "X25519 exchange"),
        (ServerIdentity, "sign", "Ed25519 sign"),
        (PeerKey, "verify", "device signature verify"),
        (RecordProtection, "__init__", "ChaCha20-Poly1305 key setup"),
        (RecordProtection, "seal", "ChaCha20-Poly1305 seal (128 B)"),
        (RecordProtection, "open", "ChaCha20-Poly1305 open (ClientFinish)"),
    ]
    saved = [(owner, attribute, getattr(owner, attribute)) for owner, attribute, _ in targets]
    try:
        for owner, attribute, name in targets:
            setattr(owner, attribute, counted(name, getattr(owner, attribute)))

        def switch(on: bool) -> None:
            active[0] = on

        yield switch
    finally:
        for owner, attribute, original in saved:
            setattr(owner, attribute, original)


def count_server_operations(device: DeviceIdentity, server_key: ServerIdentity) -> Counter[str]:
    counts: Counter[str] = Counter()
    with _counting(counts) as server_side:
        client = ClientConnection(device, server_key.key_hash)
        hello = client.initiate()
        server_side(True)
        server = ServerConnection(_lookup_for(server_key))
        server.receive(hello)
        (server_hello,) = server.frames_to_send()
        server_side(False)
        client.receive(server_hello)
        (finish,) = client.frames_to_send()
        server_side(True)
        server.receive(finish)
        server_side(False)
    # ServerConnection generates its ephemeral in the constructor, where no sigmai call site can count it.
    counts["X25519 keygen"] += 1
    # finished_mac = one HKDF-Expand-Label (counted above, it goes through expand_label) + one HMAC.
    return counts


def _timer(operation: Callable[[], object], count: int) -> Callable[[], float]:
    def run_once() -> float:
        start = time.perf_counter()
        for _ in range(count):
            operation()
        return time.perf_counter() - start

    return run_once


def primitive_operations(device: DeviceIdentity, server_key: ServerIdentity) -> dict[str, Callable]:
    """One bare operation per counted name, with inputs of the sizes the handshake uses."""
    secret = os.urandom(32)
    info = b"\x00\x20\x14sigmai1 c hs traffic\x20" + os.urandom(32)
    transcript = os.urandom(98 + 210 + 180)
    message = b" " * 64 + b"sigmai v1, server signature\x00" + os.urandom(32)
    server_private = ed25519.Ed25519PrivateKey.generate()
    peer_share = x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()
    ephemeral = x25519.X25519PrivateKey.generate()
    aead = ChaCha20Poly1305(secret)
    nonce = os.urandom(12)
    inner = os.urandom(128)
    finish_inner = os.urandom(1 + len(device.public_raw) + 64 + 32)
    sealed_finish = aead.encrypt(nonce, finish_inner, b"\x01\x03")
    clear = os.urandom(66)
    device_message = b" " * 64 + b"sigmai v1, client signature\x00" + os.urandom(32)
    device_signature = device.sign(device_message)
    raw = device.public_raw

    if device.key_type == KEY_TYPE_P256:
        r = int.from_bytes(device_signature[:32], "big")
        s = int.from_bytes(device_signature[32:], "big")

        def verify() -> None:
            public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
            public.verify(encode_dss_signature(r, s), device_message, ec.ECDSA(hashes.SHA256()))
    else:

        def verify() -> None:
            ed25519.Ed25519PublicKey.from_public_bytes(raw).verify(device_signature, device_message)

    return {
        "X25519 keygen": lambda: x25519.X25519PrivateKey.generate().public_key().public_bytes_raw(),
        "X25519 exchange": lambda: ephemeral.exchange(x25519.X25519PublicKey.from_public_bytes(peer_share)),
        "Ed25519 sign": lambda: server_private.sign(message),
        "device signature verify": verify,
        "HKDF-Extract": lambda: HKDF.extract(hashes.SHA256(), secret, secret),
        "HKDF-Expand-Label (one HMAC block)": lambda: HKDFExpand(hashes.SHA256(), 32, info).derive(secret),
        "HMAC-SHA256 (Finished)": lambda: hmac.new(secret, secret, hashlib.sha256).digest(),
        "SHA-256 transcript hash": lambda: hashlib.sha256(transcript).digest(),
        "ChaCha20-Poly1305 key setup": lambda: ChaCha20Poly1305(secret),
        "ChaCha20-Poly1305 seal (128 B)": lambda: aead.encrypt(nonce, inner, clear),
        "ChaCha20-Poly1305 open (ClientFinish)": lambda: aead.decrypt(nonce, sealed_finish, b"\x01\x03"),
    }


@dataclass
class DeviceResult:
    name: str
    full_per_second: float
    server_per_second: float
    counts: Counter[str]
    microseconds: dict[str, float]
    ratio: float  # median over repetitions of (server time in primitives) / (server time)

    @property
    def ceiling_seconds(self) -> float:
        return _ceiling_seconds(self.counts, self.microseconds)

    @property
    def ceiling_per_second(self) -> float:
        return 1 / self.ceiling_seconds


def _ceiling_seconds(counts: Counter[str], microseconds: dict[str, float]) -> float:
    return sum(counts[name] * microseconds[name] for name in counts) / 1e6


def bench_device(name: str, key_type: int, settings: Settings) -> DeviceResult:
    """All of (a), (b) and (c) for one device key type, interleaved within each repetition so that a
    noisy neighbour slows every figure of a repetition alike and the ratio stays meaningful."""
    device = DeviceIdentity.generate(key_type)
    server_key = ServerIdentity(ed25519.Ed25519PrivateKey.generate())
    n, m = settings.handshakes, settings.primitive_ops
    counts = count_server_operations(device, server_key)
    operations = primitive_operations(device, server_key)
    missing = set(counts) - set(operations)
    if missing:
        raise RuntimeError(f"no bare timing for {sorted(missing)}: update primitive_operations()")
    primitive_runs = {op: _timer(operations[op], m) for op in counts}

    def repetition() -> tuple[float, float, dict[str, float]]:
        full = n / full_handshakes(device, server_key, n)
        server = n / server_share(device, server_key, n)
        return full, server, {op: run() / m * 1e6 for op, run in primitive_runs.items()}

    repetition()  # warm-up: caches, lazy imports, branch predictors
    samples = [repetition() for _ in range(settings.repetitions)]
    median = statistics.median
    return DeviceResult(
        name,
        full_per_second=median(full for full, _, _ in samples),
        server_per_second=median(server for _, server, _ in samples),
        counts=counts,
        microseconds={op: median(us[op] for _, _, us in samples) for op in counts},
        ratio=median(server * _ceiling_seconds(counts, us) for _, server, us in samples),
    )


# -- (d): real loopback WebSocket against the servers' endpoint -----------------------------------------


def serve_websocket() -> None:
    """Child process: the servers' sigmai endpoint on a loopback port; prints ``<port> <key hash>``."""
    from gevent.server import StreamServer

    from authserver.operations import Operations
    from authserver.services.common import register_hello
    from authserver.transport.sigmai_endpoint import SigmaiEndpoint

    identity = ServerIdentity(ed25519.Ed25519PrivateKey.generate())
    operations = Operations()
    register_hello(operations, "ns", "benchmark")
    endpoint = SigmaiEndpoint(
        "ns", {identity.key_hash: identity}.get, operations, max_message=64 * 1024, handshake_timeout=10.0
    )
    server = StreamServer(("127.0.0.1", 0), endpoint)
    server.start()
    print(server.server_port, identity.key_hash.hex(), flush=True)
    server.serve_forever()


@contextlib.contextmanager
def _client_nodelay() -> Iterator[None]:
    """Set TCP_NODELAY on the sockets the SDK opens (it does not set it itself)."""
    original = socket.create_connection

    def create_connection(*args: object, **kwargs: object) -> socket.socket:
        sock = original(*args, **kwargs)  # type: ignore[arg-type]
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    socket.create_connection = create_connection  # type: ignore[assignment]
    try:
        yield
    finally:
        socket.create_connection = original


@dataclass
class WebSocketResult:
    rates: dict[str, float]  # variant -> channels/s
    note: str


def bench_websocket(settings: Settings, key_type: int = KEY_TYPE_P256) -> WebSocketResult:
    """Sequential open + ``hello`` + close against the servers' endpoint, as the SDK does it and with
    TCP_NODELAY on the client socket."""
    try:
        from mobilesdk.channel import open_channel
    except ImportError as exc:
        return WebSocketResult({}, f"skipped: {exc}")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    errors = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a chatty child must never block
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.sigmai_handshake", "--serve-websocket"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )
    try:
        line = child.stdout.readline() if child.stdout else ""
        if not line:
            child.wait(timeout=10)
            errors.seek(0)
            last = (errors.read().strip().splitlines() or ["no output"])[-1]
            return WebSocketResult({}, f"skipped: endpoint did not start: {last}")
        port_text, key_hash_hex = line.split()
        uri, key_hash = f"ws://127.0.0.1:{port_text}/", bytes.fromhex(key_hash_hex)
        device = DeviceIdentity.generate(key_type)

        def channels(count: int) -> Callable[[], float]:
            def run_once() -> float:
                start = time.perf_counter()
                for _ in range(count):
                    with open_channel(uri, device, key_hash) as channel:
                        channel.request("hello")
                return time.perf_counter() - start

            return run_once

        rates = {}
        count = settings.websocket_stalled_handshakes
        rates["SDK as is"] = _median_rate(channels(count), count, settings.repetitions)
        with _client_nodelay():
            count = settings.websocket_handshakes
            rates["client TCP_NODELAY"] = _median_rate(channels(count), count, settings.repetitions)
        return WebSocketResult(rates, "client in this process, endpoint (gevent) in a child process")
    except Exception as exc:  # the optional measurement must not sink the others
        return WebSocketResult({}, f"skipped: {type(exc).__name__}: {exc}")
    finally:
        child.terminate()
        child.wait(timeout=10)
        errors.close()


# -- reporting ----------------------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _openssl_version() -> str:
    try:
        from cryptography.hazmat.backends.openssl.backend import backend

        return backend.openssl_version_text()
    except Exception:
        return "unknown"


def _pin_to_one_core() -> str:
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity)"
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return f"pinned to CPU {core}"


def machine_info() -> list[tuple[str, str]]:
    return [
        ("platform", platform.platform()),
        ("CPU", f"{_cpu_model()} ({os.cpu_count()} logical CPUs visible)"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("cryptography", cryptography.__version__),
        ("OpenSSL", _openssl_version()),
    ]


def report(
    results: list[DeviceResult],
    websocket: WebSocketResult | None,
    settings: Settings,
    command: str,
    pinning: str,
    elapsed: float,
) -> str:
    lines = ["## sigmai handshake", ""]
    lines += ["| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in machine_info()]
    lines += [
        f"| command | `{command}` |",
        f"| process | single thread, {pinning} |",
        f"| method | `time.perf_counter`, 1 warm-up + {settings.repetitions} repetitions, median; "
        f"{settings.handshakes} handshakes / {settings.primitive_ops} primitive ops per repetition |",
        f"| run time | {elapsed:.1f} s |",
        "",
        "### Handshakes per second (one core)",
        "",
        "| device key | (a) full, both sides /s | (b) server share /s | server µs/handshake "
        "| (c) primitive ceiling /s | (b) : (c) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.full_per_second:,.0f} | {r.server_per_second:,.0f} "
            f"| {1e6 / r.server_per_second:,.1f} | {r.ceiling_per_second:,.0f} "
            f"| {r.ratio:.2f} |"
        )
    lines += [
        "",
        "### (c) What the server computes per handshake",
        "",
        "Counts come from instrumenting one real server-side handshake; each operation is then timed alone "
        "with inputs of the handshake's sizes. The device key is decoded inside its verify step.",
        "",
        "| operation | count | "
        + " | ".join(f"µs/op ({r.name}) | µs/handshake ({r.name})" for r in results)
        + " |",
        "|---|---:|" + "---:|---:|" * len(results),
    ]
    seen = {name for r in results for name in r.counts}
    names = [name for name in DISPLAY_ORDER if name in seen] + sorted(seen - set(DISPLAY_ORDER))
    for name in names:
        count_values = {r.counts[name] for r in results}
        count_text = "/".join(str(c) for c in sorted(count_values))
        cells = " | ".join(
            f"{r.microseconds.get(name, 0):.2f} | {r.counts[name] * r.microseconds.get(name, 0):.1f}"
            for r in results
        )
        lines.append(f"| {name} | {count_text} | {cells} |")
    totals = " | ".join(f" | **{r.ceiling_seconds * 1e6:.1f}**" for r in results)
    lines.append(f"| **sum** | |{totals} |")
    lines += [
        "",
        "(b) : (c) is the share of the server's time spent in these primitives (median of the per-repetition "
        "ratios; (a), (b) and (c) are measured interleaved in each repetition); the rest is the Python "
        "state machine (parsing, byte concatenation, object set-up, the second decoding of the device "
        "key in `PeerKey.verify`).",
    ]
    if websocket is not None:
        lines += ["", "### (d) Loopback WebSocket, sequential (P-256 device)", ""]
        if not websocket.rates:
            lines.append(f"(d) {websocket.note}")
        else:
            lines += [
                "| client socket | channels/s (open + `hello` + close) | ms per channel |",
                "|---|---:|---:|",
            ]
            lines += [
                f"| {name} | {rate:,.0f} | {1e3 / rate:.2f} |" for name, rate in websocket.rates.items()
            ]
            lines += [
                "",
                f"{websocket.note}; one channel at a time, so this is latency, not throughput. Without "
                "TCP_NODELAY the client's ClientFinish and first request are two small writes: Nagle holds "
                "the second until the server's delayed ACK (about 40 ms on Linux).",
            ]
    return "\n".join(lines) + "\n"


def run(*, quick: bool = False, websocket: bool = True, command: str = "python -m bench") -> str:
    return measure(quick=quick, websocket=websocket, command=command)[0]


def measure(
    *, quick: bool = False, websocket: bool = True, command: str = "python -m bench"
) -> tuple[str, list[DeviceResult], WebSocketResult | None]:
    """The report and the figures it shows."""
    settings = QUICK if quick else Settings()
    started = time.perf_counter()
    all_cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    pinning = _pin_to_one_core()
    try:
        results = [bench_device(name, key_type, settings) for name, key_type in DEVICES.items()]
    finally:
        if all_cores is not None:
            os.sched_setaffinity(0, all_cores)
    ws_result = bench_websocket(settings) if websocket else None
    markdown = report(results, ws_result, settings, command, pinning, time.perf_counter() - started)
    return markdown, results, ws_result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sigmai_handshake", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="few iterations, to check that it runs")
    parser.add_argument("--no-websocket", action="store_true", help="skip (d)")
    parser.add_argument("--serve-websocket", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_websocket:
        serve_websocket()
        return
    command = "python -m bench.sigmai_handshake" + " ".join(
        ["", *(argv if argv is not None else sys.argv[1:])]
    )
    sys.stdout.write(run(quick=args.quick, websocket=not args.no_websocket, command=command.rstrip()))


if __name__ == "__main__":
    main()
