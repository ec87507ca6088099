"""The ``nextauth`` command line: quick help, version, keys and certificates listed and revoked, and a
``user set`` that changes only what it is given. Each command runs in its own process, as an operator
runs it (the command patches the standard library with gevent): forked from one that imported it
(tests/fixtures/forked_commands.py), and the help and version probe in a process started afresh."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from authserver.config import COMPONENTS, load_config
from authserver.ns import access
from authserver.storage import db
from idp import commands as idp_commands
from nextauth import commandline as cli
from tests.fixtures import forked_commands
from tests.fixtures.system import REPO
from tests.fixtures.tls import issue, make_ca


def run_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "NEXTAUTH_DATA_DIR": str(data_dir)}
    return forked_commands.run("nextauth.cli", args, env=env, text=True)


def ok(data_dir: Path, *args: str) -> Any:
    done = run_cli(data_dir, *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_tables_match_what_they_name() -> None:
    assert cli.COMPONENTS == COMPONENTS
    assert cli.ROLES == access.ROLES
    assert set(cli.IDP_COMMANDS) == set(idp_commands.commands())


def test_help_and_version_import_no_service() -> None:
    probe = (
        "import sys\n"
        "from nextauth import cli\n"
        "for argv in (['--help'], ['--version'], ['apikey', '--help'], ['audit', 'list', '--help']):\n"
        "    try:\n"
        "        cli.main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = ('sqlalchemy', 'saml2', 'flask', 'authlib', 'grpc', 'idp.server')\n"
        "print('HEAVY', sorted(m for m in heavy if m in sys.modules))\n"
        "print('HEAVY', heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout, done.stdout
    assert "nextauth 0.1.0" in done.stdout or "nextauth " in done.stdout
    assert "docs/configuration.md" in done.stdout


def test_version(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "--version")
    assert done.returncode == 0 and done.stdout.strip() == f"nextauth {cli.version()}"
    assert cli.version()[0].isdigit()


def test_api_keys_listed_without_secret_and_revoked(tmp_path: Path) -> None:
    first = ok(tmp_path, "apikey", "--name", "web", "--roles", "sessions")
    second = ok(
        tmp_path, "apikey", "create", "--name", "billing", "--roles", "users,accounts", "--server", "s1"
    )
    listed = ok(tmp_path, "apikey", "list")
    assert [(k["name"], k["roles"], k["server"], k["revoked_at"]) for k in listed] == [
        ("web", ["sessions"], None, None),
        ("billing", ["accounts", "users"], "s1", None),
    ]
    assert first["api_key"] not in json.dumps(listed) and second["api_key"] not in json.dumps(listed)
    assert [k["name"] for k in ok(tmp_path, "apikey", "list", "--server", "s1")] == ["billing"]

    assert ok(tmp_path, "apikey", "revoke", str(listed[0]["id"])) == {"revoked": True}
    again = run_cli(tmp_path, "apikey", "revoke", str(listed[0]["id"]))
    assert again.returncode == 2 and "already revoked" in again.stderr
    assert run_cli(tmp_path, "apikey", "revoke", "999").returncode == 2
    assert "a number" in run_cli(tmp_path, "apikey", "revoke", "web").stderr

    engine = db.create_engine_for(load_config("ns", {"NEXTAUTH_DATA_DIR": str(tmp_path)}).db_uri)
    control = access.AccessControl(engine, "ns", None)
    assert control.authenticate(first["api_key"]) is None
    grant = control.authenticate(second["api_key"])
    assert grant is not None and grant.roles == {"users", "accounts"}
    assert ok(tmp_path, "apikey", "list")[0]["revoked_at"] is not None
    engine.dispose()


def test_audit_list_shows_key_changes_made_here(tmp_path: Path) -> None:
    made = ok(tmp_path, "apikey", "--name", "siem", "--roles", "audit")
    key_id = str(ok(tmp_path, "apikey", "list")[0]["id"])
    ok(tmp_path, "apikey", "revoke", key_id)
    listed = ok(tmp_path, "audit", "list")
    assert [(e["type"], e["actor"], e["data"]) for e in listed["events"]] == [
        ("io.nextauth.apikey.created", "command line", {"key": key_id, "name": "siem", "roles": ["audit"]}),
        ("io.nextauth.apikey.revoked", "command line", {"key": key_id, "name": "siem"}),
    ]
    assert made["api_key"] not in json.dumps(listed)
    only = ok(tmp_path, "audit", "list", "--type", "apikey.revoked", "--since", "2000-01-01T00:00:00")
    assert [e["type"] for e in only["events"]] == ["io.nextauth.apikey.revoked"]
    assert ok(tmp_path, "audit", "list", "--user", "nobody") == {"events": [], "next_cursor": None}
    page = ok(tmp_path, "audit", "list", "--limit", "1")
    assert len(page["events"]) == 1 and page["next_cursor"] is not None
    for bad in (("--type", "login.maybe"), ("--since", "yesterday"), ("--limit", "0")):
        done = run_cli(tmp_path, "audit", "list", *bad)
        assert done.returncode == 2 and bad[0] in done.stderr


def test_api_key_needs_name_and_roles(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "apikey", "--name", "web")
    assert done.returncode == 2 and "--roles required" in done.stderr
    done = run_cli(tmp_path, "apikey", "--name", "web", "--roles", "wizard")
    assert done.returncode == 2 and "roles must be among" in done.stderr


def test_client_certificates_revoked_by_fingerprint(tmp_path: Path) -> None:
    ca_key, ca = make_ca()
    (tmp_path / "app.pem").write_text(issue(ca_key, ca, "billing-app")[1])
    added = ok(
        tmp_path,
        "clientcert",
        "--name",
        "billing",
        "--roles",
        "servers",
        "--certificate",
        str(tmp_path / "app.pem"),
    )
    (listed,) = ok(tmp_path, "clientcert", "list")
    assert listed["sha256"] == added["sha256"] and listed["revoked_at"] is None
    colons = ":".join(added["sha256"][i : i + 2] for i in range(0, 64, 2)).upper()
    assert ok(tmp_path, "clientcert", "revoke", colons) == {"revoked": True}
    engine = db.create_engine_for(load_config("ns", {"NEXTAUTH_DATA_DIR": str(tmp_path)}).db_uri)
    assert access.AccessControl(engine, "ns", None).authenticate_certificate(added["sha256"]) is None
    engine.dispose()
    assert run_cli(tmp_path, "clientcert", "revoke", added["sha256"]).returncode == 2


def test_user_set_changes_only_what_it_is_given(tmp_path: Path) -> None:
    ok(
        tmp_path,
        "user",
        "set",
        "alice",
        "--name",
        "Alice",
        "--email",
        "a@example.com",
        "--email-verified",
        "--groups",
        "staff,ops",
    )
    after = ok(tmp_path, "user", "set", "alice", "--groups", "staff")
    assert after == {
        "user_id": "alice",
        "name": "Alice",
        "email": "a@example.com",
        "email_verified": True,
        "groups": ["staff"],
    }
    # The same address again keeps its mark; a new one is unverified until vouched for.
    assert ok(tmp_path, "user", "set", "alice", "--email", "a@example.com")["email_verified"] is True
    moved = ok(tmp_path, "user", "set", "alice", "--email", "alice@example.org")
    assert moved["email_verified"] is False and moved["name"] == "Alice"
    assert ok(tmp_path, "user", "set", "alice", "--email-verified")["email_verified"] is True
    cleared = ok(tmp_path, "user", "set", "alice", "--name", "")
    assert cleared["name"] is None and cleared["groups"] == ["staff"]
    assert ok(tmp_path, "user", "show", "alice") == cleared


def test_server_commands_point_to_settings() -> None:
    for name in (*cli.COMPONENTS, "idp"):
        assert cli.SETTINGS_DOC in cli.COMMANDS[name]
    assert (REPO / cli.SETTINGS_DOC).is_file()
