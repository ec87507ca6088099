"""The forward-auth decision against the table the Traefik plugin's Go tests read too
(traefik-plugin/nextauth/testdata/decisions.json): both sides must decide every case alike, without a
Traefik run (tests/test_traefik.py compares them through a real one)."""

import json
from pathlib import Path
from typing import Any

import pytest

from idp.forwardauth.decision import decide
from idp.forwardauth.forwarded import Forwarded, Unusable, describe
from idp.forwardauth.rules import AccessRules, Rule, normalize_host, normalize_path, parse_rules
from idp.forwardauth.settings import ForwardAuthSettings, HostPattern
from idp.sessions import SignedInUser

TABLE = Path(__file__).resolve().parent.parent / "traefik-plugin" / "nextauth" / "testdata" / "decisions.json"
DOCUMENT = json.loads(TABLE.read_text(encoding="utf-8"))
LISTS = ("hosts", "paths", "methods", "users", "groups")


def published_rule(spec: dict[str, Any]) -> Rule:
    return Rule(policy=spec["policy"], **{key: tuple(spec.get(key, ())) for key in LISTS})


def rule_set(name: str) -> AccessRules:
    published = DOCUMENT["rule_sets"][name]
    return AccessRules(
        rules=tuple(published_rule(spec) for spec in published["rules"]),
        default=published_rule(published["default"]),
    )


def signed_in(user: dict[str, Any]) -> SignedInUser:
    return SignedInUser(
        sid="sid-" + user["sub"],
        sub=user["sub"],
        name=None,
        email=None,
        email_verified=False,
        groups=tuple(user["groups"]),
        amr=("swk", "pin"),
        acr="mfa",
        method="qr",
        auth_time=0,
        expires_at=2**31,
    )


@pytest.mark.parametrize("name", sorted(DOCUMENT["rule_sets"]))
def test_each_rule_set_is_one_an_operator_can_write(name: str) -> None:
    """The published form round-trips, and the document an operator would write for it reads the same."""
    rules = rule_set(name)
    published = DOCUMENT["rule_sets"][name]
    written = {
        "default": published["default"],
        "rules": [
            {{"hosts": "host", "paths": "path"}.get(key, key): value for key, value in spec.items()}
            for spec in published["rules"]
        ],
    }
    assert parse_rules(json.dumps(written)) == rules
    complete = {key: [] for key in LISTS}
    assert rules.to_json() == {
        "default": {**complete, **published["default"]},
        "rules": [{**complete, **spec} for spec in published["rules"]],
    }


@pytest.mark.parametrize("case", DOCUMENT["cases"], ids=[case["name"] for case in DOCUMENT["cases"]])
def test_decision_table(case: dict[str, Any]) -> None:
    rules = rule_set(case["rules"])
    user = signed_in(case["user"]) if case["user"] is not None else None
    looked = []

    def session() -> SignedInUser | None:
        looked.append(True)
        return user

    outcome = decide(
        rules, normalize_host(case["host"]), normalize_path(case["uri"]), case["method"], session
    )
    assert outcome.verdict == case["verdict"]
    expected = rules.default if case["rule"] == "default" else rules.rules[case["rule"]]
    assert outcome.rule is expected
    assert bool(looked) == case["reads_session"]
    # The user travels with the outcome whenever the session was read and had one.
    assert outcome.user == (user if looked and case["verdict"] != "unauthenticated" else None)


def test_the_table_covers_every_verdict_and_policy() -> None:
    cases = DOCUMENT["cases"]
    assert {case["verdict"] for case in cases} == {"allow", "unauthenticated", "forbidden"}
    decided = {
        rule_set(case["rules"]).default.policy
        if case["rule"] == "default"
        else rule_set(case["rules"]).rules[case["rule"]].policy
        for case in cases
    }
    assert decided == {"public", "authenticated", "deny"}


@pytest.mark.parametrize(("uri", "path"), DOCUMENT["normalize"]["paths"])
def test_path_normalisation_table(uri: str, path: str) -> None:
    assert normalize_path(uri) == path


@pytest.mark.parametrize(("host", "normalised"), DOCUMENT["normalize"]["hosts"])
def test_host_normalisation_table(host: str, normalised: str) -> None:
    assert normalize_host(host) == normalised


@pytest.mark.parametrize("case", DOCUMENT["forwarded"], ids=[case["name"] for case in DOCUMENT["forwarded"]])
def test_forwarded_headers_table(case: dict[str, Any]) -> None:
    def values(name: str) -> list[str]:
        return [value for key, value in case["headers"] if key.lower() == name.lower()]

    if case["refused"] is not None:
        with pytest.raises(Unusable) as refused:
            describe(values)
        assert refused.value.header == case["refused"]
    else:
        assert describe(values) == Forwarded(**case["request"])


def test_the_forwarded_table_fails_closed_and_reads_both_conventions() -> None:
    cases = DOCUMENT["forwarded"]
    refused = {case["refused"] for case in cases if case["refused"]}
    assert {"X-Forwarded-Uri", "X-Forwarded-Method", "X-Forwarded-Host"} <= refused
    names = {name for case in cases if case["request"] for name, _ in case["headers"]}
    assert {"X-Original-URL", "X-Original-Method", "X-Forwarded-Uri", "X-Forwarded-Method"} <= names


@pytest.mark.parametrize(("host", "scheme", "admitted"), DOCUMENT["known_hosts"]["cases"])
def test_known_hosts_table(host: str, scheme: str, admitted: bool) -> None:
    settings = ForwardAuthSettings(
        return_hosts=tuple(HostPattern.parse(p) for p in DOCUMENT["known_hosts"]["patterns"]),
        unknown_hosts="deny",
    )
    assert settings.admits_host(normalize_host(host), Forwarded("GET", scheme, host, "/")) is admitted
    published = [pattern.to_text() for pattern in settings.return_hosts]
    assert published == DOCUMENT["known_hosts"]["patterns"]
