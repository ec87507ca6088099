"""Commands forked from a process that imported them (tests/fixtures/forked_commands.py) answer as the same
commands started afresh with ``python -m``: same exit status, output and errors, with their own
environment, working directory and input."""

import json
from pathlib import Path

import pytest

from tests.fixtures import forked_commands


def both(monkeypatch: pytest.MonkeyPatch, module: str, args: list[str], **kwargs: object) -> tuple:
    forked = forked_commands.run(module, args, text=True, **kwargs)  # type: ignore[arg-type]
    monkeypatch.setenv("NEXTAUTH_TEST_FORK_COMMANDS", "0")
    fresh = forked_commands.run(module, args, text=True, **kwargs)  # type: ignore[arg-type]
    monkeypatch.delenv("NEXTAUTH_TEST_FORK_COMMANDS")
    return forked, fresh


@pytest.mark.parametrize(
    "args",
    [["--version"], ["apikey", "list"], ["apikey", "revoke", "web"], ["no-such-command"]],
)
def test_nextauth_commands_answer_as_when_started_afresh(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str]
) -> None:
    env = {"PATH": "/usr/bin:/bin", "NEXTAUTH_DATA_DIR": str(tmp_path)}
    forked, fresh = both(monkeypatch, "nextauth.cli", args, env=env)
    assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)


def test_a_command_has_its_own_environment_and_directory(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for data_dir in (first, second):
        done = forked_commands.run(
            "nextauth.cli",
            ["apikey", "--name", data_dir.name, "--roles", "sessions"],
            env={"PATH": "/usr/bin:/bin", "NEXTAUTH_DATA_DIR": str(data_dir)},
            check=True,
        )
        assert json.loads(done.stdout)["name"] == data_dir.name
    for data_dir in (first, second):  # each database holds only its own command's key
        listed = forked_commands.run(
            "nextauth.cli", ["apikey", "list"], env={"NEXTAUTH_DATA_DIR": str(data_dir)}, check=True
        )
        assert [key["name"] for key in json.loads(listed.stdout)] == [data_dir.name]
    # A relative data directory is found from the command's own working directory.
    relative = forked_commands.run(
        "nextauth.cli", ["apikey", "list"], env={"NEXTAUTH_DATA_DIR": "first"}, cwd=tmp_path, check=True
    )
    assert [key["name"] for key in json.loads(relative.stdout)] == ["first"]


def test_the_phone_simulator_reads_its_home_and_reports_errors(tmp_path: Path) -> None:
    done = forked_commands.run("mobilesdk.cli", ["--home", str(tmp_path / "phone"), "status"])
    assert done.returncode == 1 and "nextauth-app init" in json.loads(done.stdout)["error"]
