"""The metrics' labels stay bounded, the IdP's outcomes read right, its admin port setting is checked, and
the Grafana dashboard (docs/grafana-dashboard.json) queries only metrics and labels the code registers."""

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response
from prometheus_client import REGISTRY
from werkzeug.test import Client

import authserver.metrics as metrics
import authserver.purge  # these three register collectors that must be documented too
import authserver.ratelimit
import authserver.transport.sigmai_endpoint  # noqa: F401
import idp.metrics as idp_metrics
from authserver.config import ConfigError, Listen
from idp.server import load_settings

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"
CONFIGURATION_DOC = ROOT / "docs" / "configuration.md"

# PromQL words that look like metric names but are functions, keywords or aggregation modifiers.
PROMQL_WORDS = {"sum", "rate", "increase", "histogram_quantile", "by", "without", "le", "max", "avg", "min"}
NAME = re.compile(r"\b(nextauth_[a-z0-9_]+)\b")
SELECTOR = re.compile(r"\b(nextauth_[a-z0-9_]+)\{([^}]*)\}")
MATCHER = re.compile(r"([a-z_]+)\s*(?:=~|!~|!=|=)")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def registered() -> dict[str, tuple[str, ...]]:
    """Every sample name our collectors can produce, with the collector's label names."""
    found: dict[str, tuple[str, ...]] = {}
    for name, collector in REGISTRY._names_to_collectors.items():
        if name.startswith("nextauth_"):
            found[name] = tuple(getattr(collector, "_labelnames", ()))
    return found


def dashboard_expressions(dashboard: dict[str, Any]) -> Iterator[str]:
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield target["expr"]


def dashboard_problems(dashboard: dict[str, Any]) -> list[str]:
    known = registered()
    problems = []
    for expression in dashboard_expressions(dashboard):
        for name in NAME.findall(expression):
            if name not in known:
                problems.append(f"{name}: no such metric in the code ({expression})")
        for name, matchers in SELECTOR.findall(expression):
            for label in MATCHER.findall(matchers):
                if name in known and label not in (*known[name], "le"):
                    problems.append(f"{name}: no label {label!r} ({expression})")
    return problems


# -- the dashboard ---------------------------------------------------------------------------------------


def test_the_dashboard_queries_only_what_the_code_registers() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert list(dashboard_expressions(dashboard)), "the dashboard has no queries"
    assert dashboard_problems(dashboard) == []


def test_the_dashboard_shows_what_the_operator_needs() -> None:
    queried = " ".join(dashboard_expressions(json.loads(DASHBOARD.read_text())))
    for name in (
        "nextauth_logins_total",
        "nextauth_login_duration_seconds_bucket",
        "nextauth_sfs_wrong_pins_total",
        "nextauth_sfs_lockouts_total",
        "nextauth_pushes_total",
        "nextauth_rest_requests_total",
        "nextauth_idp_oidc_requests_total",
    ):
        assert name in queried


def test_a_misspelt_metric_or_label_in_the_dashboard_is_caught() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    dashboard["panels"][0]["targets"][0]["expr"] = "sum(rate(nextauth_login_total[5m]))"
    dashboard["panels"][1]["targets"][0]["expr"] = 'sum(rate(nextauth_pushes_total{result="failed"}[5m]))'
    problems = dashboard_problems(dashboard)
    assert any(p.startswith("nextauth_login_total: no such metric") for p in problems)
    assert any(p.startswith("nextauth_pushes_total: no label 'result'") for p in problems)


def test_every_metric_is_documented() -> None:
    documented = CONFIGURATION_DOC.read_text()
    for name in {family.name for family in REGISTRY.collect() if family.name.startswith("nextauth_")}:
        typed = name + "_total" if f"`{name}_total`" in documented else name
        assert f"`{typed}`" in documented, f"{name} is not in docs/configuration.md"


# -- bounded labels --------------------------------------------------------------------------------------


def test_bounded_keeps_known_values_and_maps_the_rest_to_one_label() -> None:
    assert metrics.bounded("qr", metrics.LOGIN_METHODS) == "qr"
    assert metrics.bounded("QR", metrics.LOGIN_METHODS) == "other"
    assert metrics.bounded(None, metrics.LOGIN_METHODS) == "other"
    assert metrics.bounded(["qr"], metrics.LOGIN_METHODS) == "other"


def test_an_unknown_login_method_or_outcome_does_not_make_a_new_series() -> None:
    before_other = sample("nextauth_logins_total", method="other", outcome="error")
    metrics.count_login("sms-from-an-attacker", "pwned")
    assert sample("nextauth_logins_total", method="other", outcome="error") == before_other + 1
    assert (
        REGISTRY.get_sample_value(
            "nextauth_logins_total", {"method": "sms-from-an-attacker", "outcome": "pwned"}
        )
        is None
    )


def test_pushes_and_enrolments_are_bounded_too() -> None:
    before = sample("nextauth_pushes_total", provider="other", outcome="failed")
    metrics.count_push("webpush-token-AAAA", False)
    assert sample("nextauth_pushes_total", provider="other", outcome="failed") == before + 1
    before = sample("nextauth_pushes_total", provider="webpush", outcome="sent") or 0
    metrics.count_push("webpush", True)
    assert sample("nextauth_pushes_total", provider="webpush", outcome="sent") == before + 1
    before = sample("nextauth_enrolments_total", stage="other")
    metrics.count_enrolment("whatever")
    assert sample("nextauth_enrolments_total", stage="other") == before + 1


def _flask_app(component: str) -> Flask:
    app = Flask("metrics-test")

    @app.get("/v1/things/<thing>")
    def thing(thing: str) -> Response:
        return Response(thing, status=200 if thing != "broken" else 503)

    return metrics.instrument_flask(app, component)


def test_rest_requests_are_counted_by_route_template_not_by_path() -> None:
    client = Client(_flask_app("test-route"))
    labels = {"component": "test-route", "route": "/v1/things/<thing>", "method": "GET"}
    before = sample("nextauth_rest_requests_total", **labels, status="200")
    client.get("/v1/things/a")
    client.get("/v1/things/b")
    assert sample("nextauth_rest_requests_total", **labels, status="200") == before + 2
    client.get("/v1/things/broken")
    assert sample("nextauth_rest_requests_total", **labels, status="503") >= 1
    assert (
        sample("nextauth_rest_request_seconds_count", component="test-route", route="/v1/things/<thing>") >= 3
    )
    assert (
        REGISTRY.get_sample_value(
            "nextauth_rest_requests_total", {**labels, "route": "/v1/things/a", "status": "200"}
        )
        is None
    )


def test_an_unknown_route_or_method_maps_to_a_fixed_label() -> None:
    client = Client(_flask_app("test-unmatched"))
    for path in ("/secret-admin", "/v1/things/a/b", "/%00"):
        client.get(path)
    client.open("/v1/things/a", method="BREW")
    assert (
        sample(
            "nextauth_rest_requests_total",
            component="test-unmatched",
            route="unmatched",
            method="GET",
            status="404",
        )
        == 3
    )
    assert (
        sample(
            "nextauth_rest_requests_total",
            component="test-unmatched",
            route="unmatched",  # a method the route does not take fails before routing
            method="other",
            status="405",
        )
        == 1
    )


# -- the IdP's outcomes ----------------------------------------------------------------------------------


def _response(status: int, location: str | None = None, body: Any = None) -> Response:
    if body is not None:
        response = Response(json.dumps(body), status=status, mimetype="application/json")
    else:
        response = Response("", status=status)
    if location is not None:
        response.headers["Location"] = location
    return response


def test_oidc_outcomes() -> None:
    assert idp_metrics.oidc_outcome(_response(200)) == "ok"
    assert idp_metrics.oidc_outcome(_response(302, "https://rp.test/cb?code=abc&state=x")) == "ok"
    assert idp_metrics.oidc_outcome(_response(302, "https://rp.test/cb?error=access_denied")) == "refused"
    assert idp_metrics.oidc_outcome(_response(302, "https://rp.test/cb#error=login_required")) == "refused"
    assert idp_metrics.oidc_outcome(_response(302, "/login?next=%2Foidc%2Fauthorize")) == "login"
    assert idp_metrics.oidc_outcome(_response(400)) == "refused"
    assert idp_metrics.oidc_outcome(_response(500)) == "error"


def test_token_grant_outcomes_and_types() -> None:
    assert idp_metrics.grant_outcome(_response(200, body={"access_token": "x"})) == "issued"
    assert idp_metrics.grant_outcome(_response(400, body={"error": "authorization_pending"})) == "pending"
    assert idp_metrics.grant_outcome(_response(400, body={"error": "slow_down"})) == "pending"
    assert idp_metrics.grant_outcome(_response(400, body={"error": "invalid_grant"})) == "refused"
    assert idp_metrics.grant_outcome(_response(503, body={"error": "temporarily_unavailable"})) == "error"
    assert idp_metrics.grant_type_label("urn:ietf:params:oauth:grant-type:device_code") == "device_code"
    assert idp_metrics.grant_type_label("urn:openid:params:grant-type:ciba") == "ciba"
    assert idp_metrics.grant_type_label("password") == "other"
    assert idp_metrics.grant_type_label(None) == "other"


def test_saml_and_forward_auth_outcomes() -> None:
    assert idp_metrics.saml_outcome("sso_redirect", 303) is None  # counted once, when answered
    assert idp_metrics.saml_outcome("sso_post", 400) == "refused"
    assert idp_metrics.saml_outcome("sso_continue", 200) == "answered"
    assert idp_metrics.saml_outcome("sso_continue", 302) == "login"
    assert idp_metrics.saml_outcome("slo_redirect", 302) == "answered"
    assert idp_metrics.saml_outcome("slo_post", 500) == "error"
    decisions = {s: idp_metrics.forward_auth_decision(s) for s in (200, 302, 401, 403, 400, 500, 418)}
    assert decisions == {
        200: "allowed", 302: "login", 401: "login", 403: "denied", 400: "refused", 500: "error", 418: "error",
    }  # fmt: skip


# -- the IdP's admin port setting ------------------------------------------------------------------------

BASE = {
    "NEXTAUTH_IDP_NS_API_URL": "http://ns:8080",
    "NEXTAUTH_IDP_NS_API_KEY": "k" * 32,
    "NEXTAUTH_IDP_NS_WEBSOCKET_URL": "wss://auth.example.com/ns/websocket",
    "NEXTAUTH_IDP_SECRET_KEY": "s" * 40,
}


@pytest.mark.parametrize(
    ("value", "embedded", "expected"),
    [
        (None, False, Listen("0.0.0.0", 9613)),
        (None, True, Listen("127.0.0.1", 9616)),
        ("9700", False, Listen("0.0.0.0", 9700)),
        ("127.0.0.1:9700", False, Listen("127.0.0.1", 9700)),
        ("off", False, None),
    ],
)
def test_the_idp_admin_port(
    tmp_path: Path, value: str | None, embedded: bool, expected: Listen | None
) -> None:
    environ = dict(BASE) | ({"NEXTAUTH_IDP_ADMIN_PORT": value} if value is not None else {})
    assert load_settings(environ, data_dir=tmp_path, embedded=embedded).admin_listen == expected


@pytest.mark.parametrize("value", ["8000", "10.0.0.1:8000", "70000", "nine", "host:"])
def test_the_idp_admin_port_is_never_the_public_port_nor_nonsense(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="NEXTAUTH_IDP_ADMIN_PORT"):
        load_settings(BASE | {"NEXTAUTH_IDP_ADMIN_PORT": value}, data_dir=tmp_path)


CHANNEL_METRICS_SCRIPT = """
from gevent import monkey

monkey.patch_all()

from cryptography.hazmat.primitives.asymmetric import ed25519
from gevent.server import StreamServer
from prometheus_client import REGISTRY

from authserver.operations import Operations
from authserver.services.common import register_hello
from authserver.transport.sigmai_endpoint import SigmaiEndpoint
from mobilesdk.channel import RemoteError, open_channel
from sigmai import DeviceIdentity, ServerIdentity

identity = ServerIdentity(ed25519.Ed25519PrivateKey.generate())
operations = Operations()
register_hello(operations, "sfs", "test")
keys = {identity.key_hash: identity}.get
endpoint = SigmaiEndpoint("sfs", keys, operations, max_message=65536, handshake_timeout=5)
server = StreamServer(("127.0.0.1", 0), endpoint)
server.start()
device = DeviceIdentity(ed25519.Ed25519PrivateKey.generate())
with open_channel(f"ws://127.0.0.1:{server.server_port}/", device, identity.key_hash, timeout=5) as channel:
    channel.request("hello")
    channel.request("hello")
    for op in ("no.such.op", "another.made.up"):
        try:
            channel.request(op)
        except RemoteError:
            pass
    open_now = REGISTRY.get_sample_value("nextauth_sigmai_open_channels", {"component": "sfs"})
count = "nextauth_sigmai_request_seconds_count"
print("hello", REGISTRY.get_sample_value(count, {"component": "sfs", "op": "hello"}))
print("unknown", REGISTRY.get_sample_value(count, {"component": "sfs", "op": "?"}))
print("made_up", REGISTRY.get_sample_value(count, {"component": "sfs", "op": "no.such.op"}))
handshakes = "nextauth_sigmai_handshakes_total"
print("ok", REGISTRY.get_sample_value(handshakes, {"component": "sfs", "outcome": "ok"}))
print("open", open_now)
"""


def test_channel_requests_are_timed_by_offered_operation_and_the_rest_share_one_label(tmp_path: Path) -> None:
    script = tmp_path / "channel_metrics.py"
    script.write_text(CHANNEL_METRICS_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.strip().splitlines()[-5:])
    assert lines == {"hello": "2.0", "unknown": "2.0", "made_up": "None", "ok": "1.0", "open": "1.0"}
