"""The services on real PostgreSQL, MariaDB and Redis; readiness when a backend is down; TLS endpoints."""

import datetime
import hashlib
import ipaddress
import socket
import ssl
import time
from pathlib import Path

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID
from psycopg import sql
from sqlalchemy import make_url

from tests.fixtures.system import free_port, run_app, start_system, stop_system


def _hello_all(system, home: Path) -> None:  # type: ignore[no-untyped-def]
    code, init = run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))
    assert code == 0, init
    for component in ("sfs", "mc"):
        code, answer = run_app(home, "hello", component)
        assert code == 0, answer
        assert answer["server"]["component"] == component
    code, answer = run_app(
        home, "hello", "--uri", system.sigmai_uri("ns"), "--key-hash", system.key_hash("ns")
    )
    assert code == 0, answer


@pytest.mark.parametrize("database", ["postgres", "mariadb"])
def test_system_on_real_database_and_redis(
    database: str, request: pytest.FixtureRequest, redis_uri: str, tmp_path: Path
) -> None:
    db_uri = request.getfixturevalue(f"{database}_uri")
    system = start_system(
        tmp_path / "data", extra_env={"NEXTAUTH_DB_URI": db_uri, "NEXTAUTH_KV_URI": redis_uri}
    )
    try:
        _hello_all(system, tmp_path / "phone")
        first_keys = {name: system.key_hash(name) for name in ("ns", "sfs", "mc")}
    finally:
        stop_system(system)
    assert system.process.returncode == 0, system.log()
    # A restart on the same database keeps every service key: apps' pins stay valid.
    again = start_system(
        tmp_path / "data", extra_env={"NEXTAUTH_DB_URI": db_uri, "NEXTAUTH_KV_URI": redis_uri}
    )
    try:
        assert {name: again.key_hash(name) for name in ("ns", "sfs", "mc")} == first_keys
        _hello_all(again, tmp_path / "phone")
    finally:
        stop_system(again)


def test_readiness_is_false_while_redis_is_unreachable(tmp_path: Path) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    system = start_system(
        tmp_path, command=("sfs",), extra_env={"NEXTAUTH_SFS_KV_URI": dead_redis}, wait_ready=False
    )
    try:
        for _ in range(100):
            try:
                status, body = system.get("sfs", "admin", "/readyz")
                break
            except OSError:
                time.sleep(0.1)
        assert status == 503, body
        assert body["checks"] == {"accepting": True, "database": True, "store": False}
        assert system.get("sfs", "admin", "/livez")[0] == 200
    finally:
        stop_system(system)


def test_bad_configuration_fails_at_start_naming_the_variable(tmp_path: Path) -> None:
    system = start_system(
        tmp_path, command=("ns",), extra_env={"NEXTAUTH_NS_HTTP_LISTEN": "no-port-here"}, wait_ready=False
    )
    assert system.process.wait(timeout=30) == 2
    assert "NEXTAUTH_NS_HTTP_LISTEN" in system.log()
    assert "Traceback" not in system.log()


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = tmp_path / "tls.key", tmp_path / "tls.crt"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def test_sigmai_over_tls13_and_tls12_refused(tmp_path: Path) -> None:
    key_path, cert_path = _self_signed(tmp_path)
    identity = ed25519.Ed25519PrivateKey.generate()
    identity_path = tmp_path / "identity.pem"
    identity_path.write_bytes(
        identity.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    system = start_system(
        tmp_path / "data",
        command=("sfs",),
        extra_env={
            "NEXTAUTH_SFS_SIGMAI_TLS_KEY_FILE": str(key_path),
            "NEXTAUTH_SFS_SIGMAI_TLS_CERTIFICATE_FILE": str(cert_path),
            "NEXTAUTH_SFS_IDENTITY_KEY_FILE": str(identity_path),
        },
    )
    try:
        port = system.port("sfs", "sigmai")
        key_hash = hashlib.sha256(identity.public_key().public_bytes_raw()).hexdigest()
        home = tmp_path / "phone"
        run_app(home, "init")
        code, answer = run_app(
            home,
            "--cafile",
            str(cert_path),
            "hello",
            "--uri",
            f"wss://127.0.0.1:{port}/",
            "--key-hash",
            key_hash,
        )
        assert code == 0, answer
        assert answer["server"]["component"] == "sfs"

        old_client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old_client.load_verify_locations(cert_path)
        old_client.maximum_version = ssl.TLSVersion.TLSv1_2
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with pytest.raises(ssl.SSLError):
                old_client.wrap_socket(raw, server_hostname="127.0.0.1")
    finally:
        stop_system(system)


def test_readiness_follows_the_database(tmp_path: Path, postgres_uri: str) -> None:
    system = start_system(tmp_path, command=("sfs",), extra_env={"NEXTAUTH_SFS_DB_URI": postgres_uri})
    try:
        assert system.get("sfs", "admin", "/readyz")[0] == 200
        url = make_url(postgres_uri)
        with psycopg.connect(
            host=url.host, port=url.port, user=url.username, dbname="postgres", autocommit=True
        ) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(url.database)))
        deadline = time.monotonic() + 20
        while (status := system.get("sfs", "admin", "/readyz"))[0] != 503:
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        assert status[1]["checks"]["database"] is False
        assert system.get("sfs", "admin", "/livez")[0] == 200
    finally:
        stop_system(system)
