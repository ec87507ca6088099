"""The database or Redis down: at start (wait, then one clear line), for REST (503 unavailable with
Retry-After) and in a sigmai handshake hook (the channel is refused, the listener lives on)."""

import logging
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import sqlalchemy.exc

from authserver.audit import AuditTrail
from authserver.ns.access import AccessControl
from authserver.ns.api import make_api
from authserver.ns.openapi import load_document
from authserver.ns.servers import ServerRegistry
from authserver.operations import Operations
from authserver.outage import OutageLog
from authserver.storage import db
from tests.fixtures.system import REPO, free_port, start_system, stop_system

ROOT_KEY = "na_root_" + "k" * 40


def _closed_port_uri() -> str:
    return f"postgresql://nextauth:hunter2secret@127.0.0.1:{free_port()}/nextauth"


def test_start_waits_for_the_database_then_gives_up_in_one_line(tmp_path: Path) -> None:
    running = start_system(
        tmp_path / "nodb",
        command=("ns",),
        extra_env={"NEXTAUTH_NS_DB_URI": _closed_port_uri(), "NEXTAUTH_NS_DB_WAIT_SECONDS": "3"},
        wait_ready=False,
    )
    try:
        started = time.monotonic()
        assert running.process.wait(timeout=30) == 1
        took = time.monotonic() - started
    finally:
        stop_system(running)
    log = running.log()
    assert 2.5 < took < 20, log
    assert log.count("waiting for the database") >= 2, log
    assert "cannot start: ns: the database at 127.0.0.1:" in log, log
    assert "did not answer within 3 s" in log
    assert "Traceback" not in log
    assert "hunter2secret" not in log


def test_a_port_in_use_at_start_is_one_line_and_what_was_built_stops_cleanly(tmp_path: Path) -> None:
    """The first listener to start cannot bind: mc and ns, built but never started, stop without a word."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        running = start_system(
            tmp_path / "busy",
            extra_env={"NEXTAUTH_SFS_SIGMAI_LISTEN": f"127.0.0.1:{port}"},
            wait_ready=False,
        )
        try:
            assert running.process.wait(timeout=60) == 1
        finally:
            stop_system(running)
    log = running.log()
    assert "cannot start:" in log and "in use" in log, log
    assert "Traceback" not in log and "Error" not in log.split("cannot start:")[1], log


def test_wait_for_returns_once_the_database_answers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = db.create_engine_for(f"sqlite:///{tmp_path / 'here.db'}")
    with caplog.at_level(logging.INFO, "nextauth.storage"):
        db.wait_for(engine, 0)  # answers at once: no waiting, no line
    assert "waiting" not in caplog.text
    engine.dispose()


def test_wait_for_zero_seconds_fails_at_the_first_refusal() -> None:
    engine = db.create_engine_for(_closed_port_uri())
    with pytest.raises(db.DatabaseUnavailable, match="did not answer within 0 s"):
        db.wait_for(engine, 0)


def test_rest_answers_503_unavailable_with_retry_after_when_the_database_is_down() -> None:
    engine = db.create_engine_for(_closed_port_uri())
    api = make_api(
        engine,
        ServerRegistry(engine),
        AccessControl(engine, "ns", ROOT_KEY),
        None,  # type: ignore[arg-type]  # the servers list needs none of the flow services
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        audit=AuditTrail(engine, "ns"),
    )
    client = api.test_client()
    response = client.get("/v1/servers", headers={"X-apikey": ROOT_KEY})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.get_json()["error"] == "unavailable"
    assert response.get_json()["retry_after"] == 5
    # The answer is the one the OpenAPI document describes for 503, and listServers lists it.
    document = load_document()
    described = document["components"]["responses"]["Unavailable"]
    jsonschema.validate(response.get_json(), described["content"]["application/json"]["schema"])
    assert document["paths"]["/v1/servers"]["get"]["responses"]["503"] == {
        "$ref": "#/components/responses/Unavailable"
    }
    # A wrong key is still refused before anything touches the database.
    assert client.get("/v1/servers", headers={"X-apikey": "na_" + "x" * 40}).status_code in (401, 503)
    engine.dispose()


def test_rest_programming_errors_stay_500() -> None:
    api = make_api(None, None, None, None, None, None, None, audit=None)  # type: ignore[arg-type]
    response = api.test_client().get("/v1/servers", headers={"X-apikey": ROOT_KEY})
    assert response.status_code == 500
    assert response.get_json()["error"] == "internal_error"


def test_outage_log_writes_one_line_per_outage(caplog: pytest.LogCaptureFixture) -> None:
    outages = OutageLog(logging.getLogger("test.outage"), "here")
    with caplog.at_level(logging.WARNING, "test.outage"):
        for _ in range(50):
            outages.failed(ConnectionRefusedError("refused"))
    assert caplog.text.count("unavailable") == 1


HOOK_SCRIPT = textwrap.dedent(
    """
    from gevent import monkey

    monkey.patch_all()

    import logging
    import sys

    import sqlalchemy.exc
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from gevent.server import StreamServer

    from authserver.operations import Operations
    from authserver.services.common import register_hello
    from authserver.transport.sigmai_endpoint import SigmaiEndpoint
    from mobilesdk.channel import open_channel
    from sigmai import DeviceIdentity, ServerIdentity

    logging.basicConfig(level=logging.INFO, stream=sys.stdout)
    identity = ServerIdentity(ed25519.Ed25519PrivateKey.generate())
    operations = Operations()
    register_hello(operations, "sfs", "test")
    failing = {"on": True}

    def seen(_peer):
        if failing["on"]:
            raise sqlalchemy.exc.OperationalError("INSERT", {}, ConnectionRefusedError("db down"))

    endpoint = SigmaiEndpoint(
        "sfs", {identity.key_hash: identity}.get, operations, max_message=65536, handshake_timeout=5,
        on_handshake=seen,
    )
    server = StreamServer(("127.0.0.1", 0), endpoint)
    server.start()
    uri = f"ws://127.0.0.1:{server.server_port}/"
    device = DeviceIdentity(ed25519.Ed25519PrivateKey.generate())
    for _ in range(3):
        try:
            with open_channel(uri, device, identity.key_hash, timeout=5) as channel:
                channel.request("hello")
            print("RESULT served during the outage")
        except Exception as exc:
            print("RESULT refused", type(exc).__name__)
    failing["on"] = False
    with open_channel(uri, device, identity.key_hash, timeout=5) as channel:
        print("RESULT after", channel.request("hello")["component"])
    """
)


def test_a_database_error_in_the_handshake_hook_refuses_the_channel_cleanly(tmp_path: Path) -> None:
    script = tmp_path / "hook.py"
    script.write_text(HOOK_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert output.count("RESULT refused") == 3, output
    assert "RESULT after sfs" in output
    assert "Traceback" not in output
    assert output.count("a backing service is unavailable") == 1, output


def test_a_sigmai_operation_answers_unavailable_during_an_outage(caplog: pytest.LogCaptureFixture) -> None:
    operations = Operations()

    @operations.register("needs.db")
    def needs_db(_context: Any, _params: dict[str, Any]) -> dict[str, Any]:
        raise sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("db down"))

    @operations.register("buggy")
    def buggy(_context: Any, _params: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("a bug")

    context: Any = None
    with caplog.at_level(logging.WARNING, "nextauth.operations"):
        answer = operations.dispatch(context, {"id": 1, "op": "needs.db"})
        assert answer["error"]["code"] == "unavailable"
        assert "Traceback" not in caplog.text
    # A bug is still a bug: internal_error, with its traceback in the log.
    context = type("Context", (), {"peer": type("Peer", (), {"thumbprint": lambda self: "t"})()})()
    assert operations.dispatch(context, {"id": 2, "op": "buggy"})["error"]["code"] == "internal_error"
