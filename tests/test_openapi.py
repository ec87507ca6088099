"""The OpenAPI document of the ns REST API against the code: a valid OpenAPI 3.1 document, the same routes
as the Flask app, and every answer of a running system (each operation, its errors included) checked
against it with openapi-core. An answer the document does not describe (a status, a member, a content
type, an error code) fails here, so the document integrators build on cannot drift from the server."""

import http.client
import json
import re
import secrets
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from flask import Flask
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_spec_validator import validate as validate_spec

from authserver.ns.api import make_api
from authserver.ns.openapi import add_openapi_routes, load_document, to_yaml
from tests.fixtures import forked_commands
from tests.fixtures.system import RunningSystem, run_app
from tests.fixtures.tls import issue, make_ca

PIN = "2468"
ROOT = "<root>"  # stands for the system's root API key in Contract.call
ROLES = ("sessions", "users", "accounts", "servers", "createserver", "audit")
# Statuses a healthy system gives only when something outside the caller's control breaks.
UNREACHABLE_STATUSES = {"500", "502", "503"}
SCENARIOS = {
    "test_meta_and_answers_outside_operations",
    "test_every_operation_refuses_missing_credentials_and_unknown_servers",
    "test_roles_of_every_operation_match_the_document",
    "test_servers",
    "test_api_keys",
    "test_update_server",
    "test_enrolment",
    "test_invites",
    "test_qr_login_sessions_and_qr_images",
    "test_transactions_and_evidence",
    "test_push_login",
    "test_login_context_and_refusals",
    "test_accounts",
    "test_account_listing_and_move",
    "test_audit_events",
    "test_openapi_routes_on_a_bare_app",
    "test_permissions_per_server",
    "test_attributes",
    "test_client_certificates",
}


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Contract:
    """A business application's REST client that checks every answer against the document and records
    which operations and statuses the tests reached."""

    document: dict[str, Any]
    host: str
    port: int
    root_key: str
    seen: set[tuple[str, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.openapi = OpenAPI.from_dict(self.document)
        # Concrete paths before templated ones, as OpenAPI matches them (…/sessions/logout, not {hsid}).
        self._templates = sorted(
            (
                (
                    template.count("{"),
                    re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"),
                    template,
                )
                for template in self.document["paths"]
            ),
            key=lambda item: item[0],
        )

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        for _count, pattern, template in self._templates:
            if pattern.match(path):
                operation = self.document["paths"][template].get(method.lower())
                assert operation is not None, f"{method} {template} is not in the document"
                return template, operation
        raise AssertionError(f"{method} {path}: no path of the document matches")

    def call(
        self,
        method: str,
        path: str,
        *,
        key: str | None = ROOT,
        nonce: str | None = None,
        headers: dict[str, str] | None = None,
        body: Any = None,
        raw: bytes | None = None,
        content_type: str | None = None,
        query: dict[str, str] | None = None,
    ) -> Answer:
        sent = dict(headers or {})
        if key is not None:
            sent["X-apikey"] = self.root_key if key == ROOT else key
        if nonce is not None:
            sent["X-nonce"] = nonce
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            sent["Content-Type"] = content_type or "application/json"
        url = path + ("?" + urllib.parse.urlencode(query) if query else "")
        connection = http.client.HTTPConnection(self.host, self.port, timeout=15)
        try:
            connection.request(method, url, body=data, headers=sent)
            response = connection.getresponse()
            answer = Answer(
                response.status,
                (response.getheader("Content-Type") or "").lower(),
                response.read(),
                {name.lower(): value for name, value in response.getheaders()},
            )
        finally:
            connection.close()
        self.check(method, path, answer, headers=sent, query=query, data=data)
        return answer

    def check(
        self,
        method: str,
        path: str,
        answer: Answer,
        *,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> None:
        """The answer must be one the document describes for this operation: status, content type, body."""
        _template, operation = self.operation(method, path)
        request = MockRequest(
            self.base_url,
            method,
            path,
            args=query,
            headers=headers,
            data=data,
            content_type=(headers or {}).get("Content-Type", ""),
        )
        response = MockResponse(answer.body, answer.status, answer.headers, content_type=answer.content_type)
        self.openapi.validate_response(request, response)
        media = answer.content_type.split(";")[0].strip()
        if media == "application/json":
            json.loads(answer.body)
        elif media == "image/png":
            assert answer.body.startswith(b"\x89PNG\r\n\x1a\n")
        elif media == "image/svg+xml":
            assert b"<svg" in answer.body
        if 200 <= answer.status < 300:
            # What the code accepted, the document must accept too.
            self.openapi.validate_request(request)
        self.seen.add((operation["operationId"], str(answer.status)))

    def expect(self, status: int, method: str, path: str, **kwargs: Any) -> Any:
        """Call, insist on ``status``, and give back the JSON body (or the raw bytes of an image)."""
        answer = self.call(method, path, **kwargs)
        assert answer.status == status, (method, path, answer.status, answer.body[:300])
        return answer.json() if answer.content_type.startswith("application/json") else answer.body

    def error(self, status: int, code: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        answer = self.expect(status, method, path, **kwargs)
        assert answer["error"] == code, answer
        return dict(answer)

    def operations(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        for template, item in self.document["paths"].items():
            for method, operation in item.items():
                yield method.upper(), template, operation


def concrete(template: str, sid: str = "default") -> str:
    """A path for an operation with made-up ids: enough to reach the authorisation and server checks."""
    return (
        template.replace("{sid}", sid)
        .replace("{uid}", "nobody")
        .replace("{hsid}", "x" * 43)
        .replace("{eid}", "no-enrolment")
        .replace("{tid}", "no-transaction")
        .replace("{aid}", "no-account")
        .replace("{kid}", "0")
        .replace("{iid}", "no-invite")
        .replace("{roleid}", "apikey-0")
        .replace("{role}", "users")
        .replace("{key}", "nothing")
        .replace("{cid}", "0")
    )


# -- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def system_env() -> dict[str, str]:
    """The contract tests send a wrong key to every operation (two each): more than the default budget of
    wrong keys per client address, whose 429 is tested in tests/test_rate_limits.py."""
    return {"NEXTAUTH_NS_RATE_LIMIT_API_KEY_FAILURES": "1000/minute"}


@pytest.fixture(scope="module")
def contract(system: RunningSystem) -> Contract:
    root_key = (system.data_dir / "ns-root-api-key").read_text().strip()
    return Contract(load_document(), "127.0.0.1", system.port("ns", "http"), root_key)


def _create_key(system: RunningSystem, name: str, roles: str, server: str | None = None) -> str:
    """API keys through the operator's command line (the first key of a deployment comes from there)."""
    args = ["apikey", "--name", name, "--roles", roles]
    if server:
        args += ["--server", server]
    done = forked_commands.run("nextauth.cli", args, env=system.env, check=True)
    return str(json.loads(done.stdout)["api_key"])


@pytest.fixture(scope="module")
def role_keys(system: RunningSystem) -> dict[str, str]:
    keys = {role: _create_key(system, f"only-{role}", role) for role in ROLES}
    keys["sessions@default"] = _create_key(system, "default-sessions", "sessions", "default")
    keys["servers@default"] = _create_key(system, "default-servers", "servers,createserver", "default")
    keys["audit@default"] = _create_key(system, "default-audit", "audit", "default")
    return keys


@pytest.fixture(scope="module")
def phone(system: RunningSystem, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A phone with a PIN and a mailbox at the message center, so it can also receive push requests."""
    home = tmp_path_factory.mktemp("openapi-phone")
    code, answer = run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))
    assert code == 0, answer
    code, answer = run_app(home, "register", "--pin", PIN)
    assert code == 0 and answer["mailbox"], answer
    return home


def enrol(contract: Contract, phone: Path, user: str) -> str:
    created = contract.expect(201, "POST", f"/v1/servers/default/users/{user}/enrolments")
    code, scanned = run_app(phone, "scan", created["qrdata"], "--pin", PIN)
    assert code == 0, scanned
    path = f"/v1/servers/default/enrolments/{created['enrolment']}/confirm"
    done = contract.expect(200, "POST", path, body={"code": scanned["confirmation_code"]})
    return str(done["accountid"])


def log_in(contract: Contract, phone: Path, account: str) -> str:
    nonce = new_nonce()
    view = contract.expect(200, "GET", "/v1/servers/default/sessions/", nonce=nonce)
    code, answer = run_app(phone, "scan", view["loginqrdata"], "--pin", PIN, f"--account={account}")
    assert code == 0, answer
    return nonce


# -- the document itself -------------------------------------------------------------------------------


def test_document_is_valid_openapi_3_1() -> None:
    document = load_document()
    assert document["openapi"].startswith("3.1.")
    validate_spec(document)


def test_document_has_the_routes_of_the_flask_app() -> None:
    """Every route the API registers is documented, and nothing else is (``/info`` comes from
    ``add_info_route``, which needs a running component, so it is added by hand)."""
    app = make_api(None, None, None, None, None, None, None, audit=None)  # type: ignore[arg-type]  # routes only
    add_openapi_routes(app)
    routes = {
        (method, re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    routes.add(("GET", "/info"))
    documented = {
        (method.upper(), path) for path, item in load_document()["paths"].items() for method in item
    }
    assert routes == documented


def test_every_operation_says_who_may_call_it() -> None:
    for path, item in load_document()["paths"].items():
        for method, operation in item.items():
            if operation.get("security") == []:
                assert "x-required-role" not in operation, (method, path)
            else:
                roles = operation["x-required-role"]
                assert roles and set(roles) <= {*ROLES, "root"}, (method, path)
                assert all(f"`{role}`" in operation["description"] for role in roles), (method, path)


def test_yaml_form_reads_back_to_the_same_document() -> None:
    document = load_document()
    assert yaml.safe_load(to_yaml(document)) == document
    tricky = {
        "yes": "no",
        "a": ["", {}, [], None, True, 1.5, "two\nlines\n", "x: y", "\u2713"],
        "b": {"c": []},
    }
    assert yaml.safe_load(to_yaml(tricky)) == tricky


# -- the running system --------------------------------------------------------------------------------


def test_meta_and_answers_outside_operations(contract: Contract) -> None:
    info = contract.expect(200, "GET", "/info", key=None)
    assert info["component"] == "ns"
    assert contract.expect(200, "GET", "/v1/roles", key=None)["roles"][-1] == "root"
    # Unknown paths and methods are no operation of the document, but keep the shared error shape.
    error_schema = contract.document["components"]["schemas"]["Error"]
    for method, path, status in (("GET", "/v1/no/such/thing", 404), ("PUT", "/v1/servers", 405)):
        connection = http.client.HTTPConnection(contract.host, contract.port, timeout=10)
        connection.request(method, path, headers={"X-apikey": contract.root_key})
        response = connection.getresponse()
        assert response.status == status
        assert response.getheader("Content-Type") == "application/json"
        jsonschema.validate(json.loads(response.read()), error_schema)
        connection.close()


def test_every_operation_refuses_missing_credentials_and_unknown_servers(contract: Contract) -> None:
    for method, template, operation in contract.operations():
        if operation.get("security") == []:
            continue
        path = concrete(template)
        contract.error(401, "unauthenticated", method, path, key=None)
        contract.error(401, "unauthenticated", method, path, key="na_" + "A" * 43)
        if "{sid}" in template:
            contract.error(404, "unknown_server", method, concrete(template, "no-such-server"))


def test_roles_of_every_operation_match_the_document(contract: Contract, role_keys: dict[str, str]) -> None:
    """Each single-role key is refused exactly where the document says it lacks the role."""
    for method, template, operation in contract.operations():
        if operation.get("security") == []:
            continue
        wanted = set(operation["x-required-role"])
        for role in ROLES:
            answer = contract.call(method, concrete(template), key=role_keys[role], nonce=new_nonce())
            if role in wanted:
                assert answer.status not in (401, 403), (method, template, role, answer.body)
            else:
                assert answer.status == 403, (method, template, role, answer.status)
                assert answer.json()["error"] == "forbidden"
    # A key limited to one server works there and nowhere else; operations about no single server
    # (verifying evidence) it may call, and they keep to what it may see.
    scoped = role_keys["sessions@default"]
    contract.expect(200, "GET", "/v1/servers/default/sessions/", key=scoped, nonce=new_nonce())
    contract.error(403, "forbidden", "GET", "/v1/servers/other/sessions/", key=scoped, nonce=new_nonce())
    contract.error(400, "bad_request", "POST", "/v1/evidence/verify", key=scoped, body={})


def test_a_key_scoped_to_one_server_cannot_create_or_list_servers(
    contract: Contract, role_keys: dict[str, str]
) -> None:
    """Creating a server and listing all of them are operations over the whole ns: a key holding
    `createserver` and `servers` for one server only is refused both, and still reads its own server."""
    scoped = role_keys["servers@default"]
    refused = contract.error(403, "forbidden", "POST", "/v1/servers", key=scoped, body={"name": "Rogue"})
    assert "limited to one server" in refused["message"]
    contract.error(403, "forbidden", "GET", "/v1/servers", key=scoped)
    assert contract.expect(200, "GET", "/v1/servers/default", key=scoped)["id"] == "default"
    names = [server["name"] for server in contract.expect(200, "GET", "/v1/servers")["servers"]]
    assert "Rogue" not in names


def test_servers(contract: Contract) -> None:
    created = contract.expect(
        201,
        "POST",
        "/v1/servers",
        body={
            "name": "Shop",
            "announce": {"Support": "+32 2 555 01 00"},
            "logo_url": "https://shop.example/l.png",
        },
    )
    assert contract.expect(200, "GET", f"/v1/servers/{created['id']}") == created
    listed = contract.expect(200, "GET", "/v1/servers")["servers"]
    assert created in listed and listed[0]["id"] == "default"
    for bad in (
        {"name": ""},
        {"name": "x" * 201},
        {"name": "x", "announce": {"a": 1}},
        {"name": "x", "logo_url": "http://insecure.example/"},
        {},
    ):
        contract.error(400, "bad_request", "POST", "/v1/servers", body=bad)
    contract.error(400, "bad_json", "POST", "/v1/servers", raw=b"{not json")
    contract.error(400, "bad_json", "POST", "/v1/servers", body=["a list"])
    contract.error(400, "bad_json", "POST", "/v1/servers", raw=b'{"name": "x"}', content_type="text/plain")
    contract.error(413, "request_entity_too_large", "POST", "/v1/servers", body={"name": "x" * 70_000})


def test_enrolment(contract: Contract, phone: Path) -> None:
    created = contract.expect(201, "POST", "/v1/servers/default/users/olga/enrolments")
    eid = created["enrolment"]
    path = f"/v1/servers/default/enrolments/{eid}"
    assert contract.expect(200, "GET", path)["state"] == "pending"
    contract.error(409, "not_confirmable", "POST", f"{path}/confirm", body={"code": "123456"})
    code, scanned = run_app(phone, "scan", created["qrdata"], "--pin", PIN)
    assert code == 0, scanned
    waiting = contract.expect(200, "GET", path)
    assert waiting["state"] == "awaiting_confirmation" and waiting["accountid"] is None
    right = scanned["confirmation_code"]
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    contract.error(400, "bad_request", "POST", f"{path}/confirm", body={"code": "12ab56"})
    contract.error(400, "bad_request", "POST", f"{path}/confirm", body={})
    contract.error(400, "bad_json", "POST", f"{path}/confirm", raw=b"123456")
    contract.error(413, "request_entity_too_large", "POST", f"{path}/confirm", body={"code": "1" * 70_000})
    contract.error(400, "wrong_code", "POST", f"{path}/confirm", body={"code": wrong})
    done = contract.expect(200, "POST", f"{path}/confirm", body={"code": right})
    assert done == {"enrolment": eid, "state": "completed", "userid": "olga", "accountid": done["accountid"]}
    assert contract.expect(200, "GET", path)["accountid"] == done["accountid"]
    contract.error(409, "not_confirmable", "POST", f"{path}/confirm", body={"code": right})
    contract.error(404, "not_found", "GET", "/v1/servers/default/enrolments/no-such-enrolment")
    contract.error(
        404, "not_found", "POST", "/v1/servers/default/enrolments/nope/confirm", body={"code": right}
    )
    contract.error(400, "bad_request", "POST", f"/v1/servers/default/users/{'u' * 256}/enrolments")
    # Three wrong codes end an enrolment.
    created = contract.expect(201, "POST", "/v1/servers/default/users/olga/enrolments")
    assert run_app(phone, "scan", created["qrdata"], "--pin", PIN)[0] == 0
    path = f"/v1/servers/default/enrolments/{created['enrolment']}"
    for _ in range(2):
        contract.error(400, "wrong_code", "POST", f"{path}/confirm", body={"code": "000000"})
    contract.error(409, "failed", "POST", f"{path}/confirm", body={"code": "000000"})
    assert contract.expect(200, "GET", path)["state"] == "failed"
    user = contract.expect(200, "GET", "/v1/servers/default/users/olga")
    assert [a["accountid"] for a in user["accounts"]] == [done["accountid"]]
    contract.error(404, "not_found", "GET", "/v1/servers/default/users/nobody-here")


def test_invites(contract: Contract, phone: Path) -> None:
    invites = "/v1/servers/default/invites"
    created = contract.expect(201, "POST", "/v1/servers/default/users/paula/invites")
    assert created["link"] is not None and created["link"].endswith("/enrol/" + created["token"])
    token = created["token"]
    status = contract.expect(200, "POST", f"{invites}/status", body={"token": token})
    assert status["state"] == "valid" and status["userid"] == "paula"
    assert contract.expect(200, "POST", f"{invites}/status", body={"token": "x"}) == {"state": "unknown"}
    contract.error(400, "bad_json", "POST", f"{invites}/status", raw=b"[1]")
    contract.error(400, "bad_request", "POST", f"{invites}/status", body={"token": 7})
    contract.error(400, "bad_request", "POST", f"{invites}/redeem", body={})
    contract.error(413, "request_entity_too_large", "POST", f"{invites}/status", body={"token": "1" * 70_000})
    contract.error(400, "bad_json", "POST", f"{invites}/redeem", raw=b"token")
    contract.error(413, "request_entity_too_large", "POST", f"{invites}/redeem", body={"token": "1" * 70_000})
    contract.error(404, "not_found", "POST", f"{invites}/redeem", body={"token": token + "x"})
    started = contract.expect(201, "POST", f"{invites}/redeem", body={"token": token})
    assert started["userid"] == "paula" and started["invite"] == created["invite"]
    contract.error(409, "invite_used", "POST", f"{invites}/redeem", body={"token": token})
    assert contract.expect(200, "POST", f"{invites}/status", body={"token": token}) == {"state": "used"}
    code, scanned = run_app(phone, "scan", started["qrdata"], "--pin", PIN)
    assert code == 0, scanned
    path = f"/v1/servers/default/enrolments/{started['enrolment']}"
    contract.expect(200, "POST", f"{path}/confirm", body={"code": scanned["confirmation_code"]})
    # An invite's own id is no enrolment.
    contract.error(404, "not_found", "GET", f"/v1/servers/default/enrolments/{created['invite']}")
    contract.error(409, "not_revocable", "DELETE", f"{invites}/{created['invite']}")
    contract.error(404, "not_found", "DELETE", f"{invites}/no-such-invite")
    short = contract.expect(201, "POST", "/v1/servers/default/users/paula/invites", body={"ttl": 1})
    revoked = contract.expect(201, "POST", "/v1/servers/default/users/paula/invites", body={"ttl": 600})
    assert contract.expect(200, "DELETE", f"{invites}/{revoked['invite']}")["state"] == "revoked"
    contract.error(404, "not_found", "POST", f"{invites}/redeem", body={"token": revoked["token"]})
    time.sleep(1.2)
    contract.error(410, "invite_expired", "POST", f"{invites}/redeem", body={"token": short["token"]})
    users = "/v1/servers/default/users"
    contract.error(400, "bad_request", "POST", f"{users}/paula/invites", body={"ttl": "soon"})
    contract.error(400, "bad_request", "POST", f"{users}/{'u' * 256}/invites")
    contract.error(400, "bad_json", "POST", f"{users}/paula/invites", raw=b"ttl")
    big = {"x": "1" * 70_000}
    contract.error(413, "request_entity_too_large", "POST", f"{users}/paula/invites", body=big)


def test_qr_login_sessions_and_qr_images(contract: Contract, phone: Path) -> None:
    account = enrol(contract, phone, "quentin")
    sessions = "/v1/servers/default/sessions"
    contract.error(400, "bad_nonce", "GET", f"{sessions}/")
    contract.error(400, "bad_nonce", "GET", f"{sessions}/", nonce="too-short")
    nonce = new_nonce()
    browser = {"X-client-ip": "192.0.2.7", "X-user-agent": "Firefox on Linux", "X-client-location": "Ghent"}
    view = contract.expect(200, "GET", f"{sessions}/", nonce=nonce, headers=browser)
    assert view["loggedin"] is False and view["canprovoke"] is False
    qr = contract.expect(200, "GET", f"{sessions}/qr/login", nonce=nonce)
    assert qr == {"qrdata": view["loginqrdata"], "hsid": view["hsid"]}
    for fmt in ("png", "svg"):
        contract.expect(200, "GET", f"{sessions}/qr/login", nonce=nonce, query={"format": fmt})
        contract.expect(200, "GET", "/v1/servers/default/qr", query={"data": qr["qrdata"], "format": fmt})
    contract.expect(200, "GET", "/v1/servers/default/qr", query={"data": qr["qrdata"]})
    contract.error(400, "bad_request", "GET", f"{sessions}/qr/login", nonce=nonce, query={"format": "gif"})
    contract.error(400, "bad_nonce", "GET", f"{sessions}/qr/login")
    contract.error(400, "bad_request", "GET", "/v1/servers/default/qr")
    contract.error(400, "bad_request", "GET", "/v1/servers/default/qr", query={"data": "NA1.garbage"})
    contract.error(
        400, "bad_request", "GET", "/v1/servers/default/qr", query={"data": qr["qrdata"], "format": "gif"}
    )
    other = contract.expect(201, "POST", "/v1/servers", body={"name": "Elsewhere"})
    contract.error(400, "bad_request", "GET", f"/v1/servers/{other['id']}/qr", query={"data": qr["qrdata"]})

    code, answer = run_app(phone, "scan", view["loginqrdata"], "--pin", PIN, f"--account={account}")
    assert code == 0 and answer["requester"] == {
        "ip": "192.0.2.7",
        "user_agent": "Firefox on Linux",
        "location": "Ghent",
    }, answer
    session = contract.expect(200, "GET", f"{sessions}/", nonce=nonce)
    assert session == {
        "loggedin": True,
        "hsid": view["hsid"],
        "userid": "quentin",
        "accountid": account,
        "method": "qr",
        "second_factor": "pin",
        "canprovoke": False,
    }
    contract.error(409, "logged_in", "GET", f"{sessions}/qr/login", nonce=nonce)
    listed = contract.expect(200, "GET", "/v1/servers/default/users/quentin/sessions")["sessions"]
    assert [s["hsid"] for s in listed] == [view["hsid"]]
    stranger = "x" * 43
    asked = contract.expect(200, "POST", f"{sessions}/active", body={"hsids": [stranger, view["hsid"]]})
    assert asked == {"active": [view["hsid"]]}
    contract.error(400, "bad_request", "POST", f"{sessions}/active", body={"hsids": "all"})
    contract.error(400, "bad_request", "POST", f"{sessions}/active", body={"hsids": ["x"] * 501})
    contract.error(400, "bad_request", "POST", f"{sessions}/active", body={})
    contract.error(400, "bad_nonce", "POST", f"{sessions}/logout")
    assert contract.expect(200, "POST", f"{sessions}/logout", nonce=nonce) == {"loggedout": True}
    assert contract.expect(200, "POST", f"{sessions}/logout", nonce=nonce) == {"loggedout": False}
    assert contract.expect(200, "POST", f"{sessions}/active", body={"hsids": [view["hsid"]]}) == {
        "active": []
    }
    # The back office ends a session by its hsid.
    second = log_in(contract, phone, account)
    hsid = contract.expect(200, "GET", f"{sessions}/", nonce=second)["hsid"]
    assert contract.expect(200, "DELETE", f"{sessions}/{hsid}") == {"loggedout": True}
    contract.error(404, "not_found", "DELETE", f"{sessions}/{hsid}")
    assert contract.expect(200, "GET", "/v1/servers/default/users/quentin/sessions")["sessions"] == []


def test_transactions_and_evidence(contract: Contract, phone: Path) -> None:
    account = enrol(contract, phone, "tessa")
    thumbprint = contract.expect(200, "GET", "/v1/servers/default/users/tessa")["accounts"][0]["thumbprint"]
    nonce = log_in(contract, phone, account)
    path = "/v1/servers/default/sessions/transactions"
    fields = {"amount": "EUR 1,250.00", "beneficiary": "BE71 0961 2345 6769", "description": "Invoice 42 ✓"}
    contract.error(409, "not_logged_in", "POST", path, nonce=new_nonce(), body=fields)
    contract.error(400, "bad_nonce", "POST", path, body=fields)
    contract.error(400, "bad_request", "POST", path, nonce=nonce, body={**fields, "amount": 5})
    contract.error(400, "bad_request", "POST", path, nonce=nonce, body={**fields, "iban": "x"})
    contract.error(400, "bad_json", "POST", path, nonce=nonce, raw=b"[]")
    contract.error(413, "request_entity_too_large", "POST", path, nonce=nonce, body={"amount": "1" * 70_000})
    submitted = contract.expect(201, "POST", path, nonce=nonce, body=fields)
    transaction = f"/v1/servers/default/transactions/{submitted['tid']}"
    pending = contract.expect(200, "GET", transaction)
    assert pending["status"] == "new" and "evidence" not in pending and pending["content"]["fields"] == fields
    code, signed = run_app(phone, "scan", submitted["qrdata"], "--pin", PIN)
    assert code == 0 and signed["result"] == "approved", signed
    record = contract.expect(200, "GET", transaction)
    assert record["status"] == "approved" and record["accountid"] == account
    evidence = record["evidence"]
    verify = "/v1/evidence/verify"
    checked = contract.expect(200, "POST", verify, body={"evidence": evidence, "thumbprint": thumbprint})
    assert checked == {
        "valid": True,
        "checks": {
            "account_signature": "valid",
            "ns_signature": "valid",
            "content": "valid",
            "attestation": "valid",
        },
        "decision": "approved",
        "content": record["content"],
        "accountid": account,
        "server": "default",
    }
    # Well formed and correctly signed, but by a key that is no account here: not evidence.
    stranger = contract.expect(200, "POST", verify, body={"evidence": _self_signed_record(b'{"a": 1}')})
    assert stranger["valid"] is False and stranger["checks"]["account_signature"] == "invalid"
    assert (
        contract.expect(200, "POST", verify, body={"evidence": evidence, "thumbprint": "other"})["valid"]
        is False
    )
    tampered = {**evidence, "decision": "declined"}
    assert contract.expect(200, "POST", verify, body={"evidence": tampered})["valid"] is False
    contract.error(400, "bad_request", "POST", verify, body={"evidence": "not a record"})
    contract.error(400, "bad_request", "POST", verify)
    contract.error(400, "bad_json", "POST", verify, raw=b"nonsense")
    contract.error(413, "request_entity_too_large", "POST", verify, body={"evidence": "x" * 70_000})
    contract.error(404, "not_found", "GET", "/v1/servers/default/transactions/no-such-transaction")


def _self_signed_record(content: bytes) -> dict[str, Any]:
    """A well-formed record over arbitrary bytes, signed by a key of our own (as anyone can make)."""
    import os

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from nextauth_core import evidence
    from sigmai import PeerKey
    from sigmai.constants import KEY_TYPE_ED25519

    private = ed25519.Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    challenge = os.urandom(32)
    signature = private.sign(evidence.signing_statement(content, challenge, "approved"))
    return evidence.record(
        content=content,
        ns_challenge=challenge,
        signature=signature,
        key=PeerKey.parse(KEY_TYPE_ED25519, raw),
        attestation=None,
        decision="approved",
    )


def _signed_transaction(contract: Contract, phone: Path, user: str) -> tuple[str, dict[str, Any]]:
    account = enrol(contract, phone, user)
    nonce = log_in(contract, phone, account)
    fields = {"amount": "EUR 10.00", "beneficiary": "BE71 0961 2345 6769", "description": "Books"}
    path = "/v1/servers/default/sessions/transactions"
    submitted = contract.expect(201, "POST", path, nonce=nonce, body=fields)
    code, signed = run_app(phone, "scan", submitted["qrdata"], "--pin", PIN)
    assert code == 0 and signed["result"] == "approved", signed
    record = contract.expect(200, "GET", f"/v1/servers/default/transactions/{submitted['tid']}")
    return account, record


def test_evidence_with_a_garbage_attestation_is_not_valid(contract: Contract, phone: Path) -> None:
    _, record = _signed_transaction(contract, phone, "gerda")
    evidence = record["evidence"]
    verify = "/v1/evidence/verify"
    for garbage in ("garbage", "eyJhbGciOiJub25lIn0.e30.", None):
        answer = contract.expect(200, "POST", verify, body={"evidence": {**evidence, "attestation": garbage}})
        assert answer["valid"] is False, garbage
        assert answer["checks"]["account_signature"] == "valid"
        assert answer["checks"]["attestation"] == ("missing" if garbage is None else "invalid")
        # ns signed the attestation it accepted: another in its place breaks ns's signature too.
        assert answer["checks"]["ns_signature"] == "invalid"


def test_evidence_over_content_ns_never_issued_is_not_valid(contract: Contract, phone: Path) -> None:
    """The account's key (a copy of the phone's files) signs content ns never issued: not evidence."""
    from mobilesdk.store import AccountStore
    from nextauth_core import evidence as records
    from nextauth_core.encoding import unb64url

    account, record = _signed_transaction(contract, phone, "ingrid")
    issued = record["evidence"]
    store = AccountStore(phone)
    key = store.account_key(next(a for a in store.accounts() if a.id == account))
    forged_content = dict(record["content"], fields={**record["content"]["fields"], "amount": "EUR 9,999.00"})
    content = records.canonical(forged_content)
    challenge = unb64url(issued["ns_challenge"])
    forged = records.record(
        content=content,
        ns_challenge=challenge,
        signature=key.sign(records.signing_statement(content, challenge, "approved")),
        key=key.peer_key,
        attestation=issued["attestation"],
        decision="approved",
    )
    answer = contract.expect(200, "POST", "/v1/evidence/verify", body={"evidence": forged})
    assert answer["valid"] is False
    assert answer["checks"]["account_signature"] == "valid"
    assert answer["checks"]["content"] == "invalid"
    assert answer["checks"]["ns_signature"] == "missing"
    # A record of ns's, but with its signature taken off (as records made before ns signed them).
    unsigned = {name: value for name, value in issued.items() if name != "ns_signature"}
    answer = contract.expect(200, "POST", "/v1/evidence/verify", body={"evidence": unsigned})
    assert answer["valid"] is False and answer["checks"]["ns_signature"] == "missing"
    assert answer["checks"]["content"] == "valid" and answer["checks"]["attestation"] == "valid"


def test_json_bodies_beyond_the_limits_are_a_400_not_a_500(contract: Contract, system: RunningSystem) -> None:
    deep = b'{"evidence": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    for raw in (deep, b'{"name": NaN}', b'{"name": 1e400}', b'{"name": Infinity}'):
        contract.error(400, "bad_json", "POST", "/v1/evidence/verify", raw=raw)
        contract.error(400, "bad_json", "POST", "/v1/servers", raw=raw)
    # The message center's REST API (reached by any ns with a mailbox token) reads bodies the same way.
    connection = http.client.HTTPConnection("127.0.0.1", system.port("mc", "http"), timeout=10)
    try:
        connection.request(
            "POST",
            "/v1/mailboxes/nobody/messages",
            body=deep,
            headers={"Authorization": "Bearer x", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        assert response.status == 400 and json.loads(response.read())["error"] == "bad_request"
    finally:
        connection.close()
    assert "RecursionError" not in system.log()


def test_transaction_text_with_bidi_or_control_characters_is_refused(contract: Contract, phone: Path) -> None:
    account = enrol(contract, phone, "bianca")
    nonce = log_in(contract, phone, account)
    path = "/v1/servers/default/sessions/transactions"
    fields = {"amount": "EUR 1.00", "beneficiary": "Shop", "description": "Order 7"}
    for name, bad in (
        ("amount", "EUR 1\u202e00,000"),
        ("beneficiary", "\u2067Shop\u2069"),
        ("description", "Order 7\nAmount: EUR 1.00"),
        ("description", "Order\r7"),
        ("description", "Order\t7"),
        ("beneficiary", "Shop\u2028Other"),
        ("amount", "EUR \u200f1"),
    ):
        refused = contract.error(400, "bad_request", "POST", path, nonce=nonce, body={**fields, name: bad})
        assert name in refused["message"] and "one line" in refused["message"], refused
    assert contract.expect(201, "POST", path, nonce=nonce, body={**fields, "beneficiary": "Café ✓ 東京"})


def test_user_ids_are_normalised_and_look_alikes_refused(contract: Contract, phone: Path) -> None:
    def user(uid: str) -> str:
        return "/v1/servers/default/users/" + urllib.parse.quote(uid)

    # Fullwidth forms are the ordinary characters; NFD is NFC: the same user, under one id.
    created = contract.expect(201, "POST", user("\uff4e\uff4f\uff52\uff41") + "/enrolments")
    assert created["userid"] == "nora"
    account = enrol(contract, phone, urllib.parse.quote("Zoe\u0301"))
    assert contract.expect(200, "GET", user("Zo\u00e9"))["accounts"][0]["accountid"] == account
    assert contract.expect(200, "GET", user("\uff3a\uff4f\u00e9"))["userid"] == "Zo\u00e9"
    # A Cyrillic "a" among Latin letters, invisible characters, spaces: refused with the reason.
    for bad, why in (("\u0430lice", "several scripts"), ("\ufb01x", "compatibility"), ("al ice", "space")):
        refused = contract.error(400, "bad_request", "POST", user(bad) + "/enrolments")
        assert why in refused["message"], refused
        contract.error(404, "not_found", "GET", user(bad))


def test_low_entropy_nonces_are_refused(contract: Contract) -> None:
    sessions = "/v1/servers/default/sessions/"
    for weak in ("a" * 22, "ab" * 16, "0123456789abcdef01234", "0123456789abcdef" * 1 + "0" * 15):
        contract.error(400, "bad_nonce", "GET", sessions, nonce=weak)
    for strong in (secrets.token_urlsafe(16), secrets.token_hex(16), secrets.token_urlsafe(32) + "=="):
        contract.expect(200, "GET", sessions, nonce=strong)


def test_evidence_over_content_that_is_no_json_object_is_invalid_not_a_failure(contract: Contract) -> None:
    answer = contract.call("POST", "/v1/evidence/verify", body={"evidence": _self_signed_record(b"not json")})
    assert answer.status == 200 and answer.json()["valid"] is False


def test_push_login(contract: Contract, phone: Path) -> None:
    account = enrol(contract, phone, "petra")
    sessions = "/v1/servers/default/sessions"
    nonce = log_in(contract, phone, account)
    contract.expect(200, "POST", f"{sessions}/logout", nonce=nonce)
    view = contract.expect(200, "GET", f"{sessions}/", nonce=nonce)
    assert view["loggedin"] is False and view["canprovoke"] is True
    contract.error(400, "bad_nonce", "POST", f"{sessions}/provokelogin")
    contract.error(409, "cannot_provoke", "POST", f"{sessions}/provokelogin", nonce=new_nonce())
    provoked = contract.expect(
        200, "POST", f"{sessions}/provokelogin", nonce=nonce, headers={"X-client-ip": "198.51.100.4"}
    )
    assert provoked["hsid"] == view["hsid"]
    _, inbox = run_app(phone, "inbox")
    request = next(m for m in inbox["messages"] if m["account"] == account and m["type"] == "login")
    # Ids are base64url and may start with "-": keep argparse from reading them as options.
    number = f"--number={provoked['number']}"
    code, answer = run_app(phone, "approve", number, "--pin", PIN, "--", request["id"])
    assert code == 0, answer
    session = contract.expect(200, "GET", f"{sessions}/", nonce=nonce)
    assert session["loggedin"] is True and session["method"] == "push"
    # A user the application identified by other means.
    users = "/v1/servers/default/users"
    contract.error(400, "bad_nonce", "POST", f"{users}/petra/provokelogin")
    contract.error(404, "no_accounts", "POST", f"{users}/nobody-here/provokelogin", nonce=new_nonce())
    pushed = contract.expect(
        200, "POST", f"{users}/petra/provokelogin", nonce=new_nonce(), headers={"X-user-agent": "Safari"}
    )
    assert pushed["accounts"] == 1


def test_login_context_and_refusals(contract: Contract, phone: Path) -> None:
    """Who asks travels to the phone (QR login and push); a refusal on the phone shows in the status."""
    account = enrol(contract, phone, "quentin")
    sessions = "/v1/servers/default/sessions"
    nonce = new_nonce()
    context = {"client_name": "Example TV", "user_code": "BCDF-GHJK"}
    set_to = contract.expect(200, "PUT", f"{sessions}/context", nonce=nonce, body={"context": context})
    assert set_to["context"] == context
    contract.error(400, "bad_nonce", "PUT", f"{sessions}/context", body={"context": context})
    for bad in (
        {"client_name": "x" * 101},
        {"message": "two\nlines"},
        {"message": "EUR 1\u202e00"},
        {"colour": "red"},
        {"user_code": 12345},
        "text",
    ):
        contract.error(400, "bad_context", "PUT", f"{sessions}/context", nonce=nonce, body={"context": bad})
    contract.error(
        400, "bad_json", "PUT", f"{sessions}/context", nonce=nonce, raw=b"[1", content_type="application/json"
    )
    view = contract.expect(200, "GET", f"{sessions}/", nonce=nonce)
    code, answer = run_app(phone, "scan", view["loginqrdata"], "--decline", f"--account={account}")
    assert code == 0 and answer["result"] == "declined", answer
    assert answer["context"] == context
    assert answer["shows"] == ["Example TV asks you to log in", "Code on the device: BCDF-GHJK"]
    refused = contract.expect(200, "GET", f"{sessions}/", nonce=nonce)
    assert refused["loggedin"] is False and refused["cancelled"] == "declined"
    # A new scan clears the refusal; logging in works as before.
    code, answer = run_app(phone, "scan", refused["loginqrdata"], "--pin", PIN, f"--account={account}")
    assert code == 0 and answer["result"] == "logged_in", answer
    assert contract.expect(200, "GET", f"{sessions}/", nonce=nonce)["loggedin"] is True
    # Clearing: an empty context.
    other = new_nonce()
    contract.expect(200, "PUT", f"{sessions}/context", nonce=other, body={"context": {}})
    # A push to a user with its own context and a number the application chose.
    users = "/v1/servers/default/users"
    pushed = contract.expect(
        200,
        "POST",
        f"{users}/quentin/provokelogin",
        nonce=other,
        body={"context": {"client_name": "Example Bank", "message": "Pay EUR 5"}, "number": 42},
    )
    assert pushed["number"] == 42
    _, inbox = run_app(phone, "inbox")
    request = next(m for m in inbox["messages"] if m.get("context", {}).get("message") == "Pay EUR 5")
    assert 42 in request["numbers"] and request["shows"] == ["Example Bank asks: Pay EUR 5"]
    code, answer = run_app(phone, "approve", "--decline", "--", request["id"])
    assert code == 0 and answer["result"] == "declined", answer
    assert contract.expect(200, "GET", f"{sessions}/", nonce=other)["cancelled"] == "declined"
    for number in (9, 100, "42", True):
        contract.error(
            400, "bad_request", "POST", f"{users}/quentin/provokelogin", nonce=other, body={"number": number}
        )
    contract.error(
        400, "bad_context", "POST", f"{users}/quentin/provokelogin", nonce=other, body={"context": []}
    )
    contract.error(
        400, "bad_context", "POST", f"{sessions}/provokelogin", nonce=other, body={"context": {"x": "y"}}
    )


def test_accounts(contract: Contract, phone: Path) -> None:
    account = enrol(contract, phone, "anton")
    accounts = "/v1/servers/default/accounts"
    assert contract.expect(200, "POST", f"{accounts}/{account}/block") == {
        "accountid": account,
        "blocked": True,
    }
    user = contract.expect(200, "GET", "/v1/servers/default/users/anton")
    assert user["accounts"][0]["blocked"] is True
    assert contract.expect(200, "POST", f"{accounts}/{account}/unblock") == {
        "accountid": account,
        "blocked": False,
    }
    assert contract.expect(200, "DELETE", f"{accounts}/{account}") == {"accountid": account, "deleted": True}
    for method, suffix in (("POST", "/block"), ("POST", "/unblock"), ("DELETE", "")):
        contract.error(404, "not_found", method, f"{accounts}/{account}{suffix}")
    contract.error(404, "not_found", "GET", "/v1/servers/default/users/anton")


def test_account_listing_and_move(contract: Contract, phone: Path) -> None:
    accounts = "/v1/servers/default/accounts"
    made = [enrol(contract, phone, f"lister-{name}") for name in ("b", "a", "c")]
    page = contract.expect(200, "GET", accounts, query={"user": "lister-"})
    assert [a["accountid"] for a in page["accounts"]] == made and page["total"] == 3
    assert page["next_offset"] is None
    assert [a["userid"] for a in page["accounts"]] == ["lister-b", "lister-a", "lister-c"]
    by_user = contract.expect(200, "GET", accounts, query={"user": "lister-", "sort": "userid"})
    assert [a["userid"] for a in by_user["accounts"]] == ["lister-a", "lister-b", "lister-c"]
    newest = contract.expect(
        200, "GET", accounts, query={"user": "lister-", "sort": "-created_at", "limit": "2"}
    )
    assert [a["accountid"] for a in newest["accounts"]] == made[::-1][:2] and newest["next_offset"] == 2
    rest = contract.expect(
        200, "GET", accounts, query={"user": "lister-", "sort": "-created_at", "offset": "2"}
    )
    assert [a["accountid"] for a in rest["accounts"]] == [made[0]]
    contract.expect(200, "POST", f"{accounts}/{made[1]}/block")
    blocked = contract.expect(200, "GET", accounts, query={"user": "lister-", "blocked": "true"})
    assert [a["accountid"] for a in blocked["accounts"]] == [made[1]]
    assert contract.expect(200, "GET", accounts, query={"user": "lister-", "blocked": "false"})["total"] == 2
    # LIKE wildcards in the prefix are text, not patterns.
    for wildcard in ("lister_", "lister%", "%"):
        assert contract.expect(200, "GET", accounts, query={"user": wildcard})["total"] == 0
    for bad in (
        {"limit": "0"},
        {"limit": "201"},
        {"sort": "thumbprint"},
        {"blocked": "yes"},
        {"page": "2"},
        {"offset": "-1"},
    ):
        contract.error(400, "bad_request", "GET", accounts, query=bad)

    moved = contract.expect(200, "POST", f"{accounts}/{made[2]}/move", body={"userid": "lister-z"})
    assert moved["userid"] == "lister-z" and moved["accountid"] == made[2]
    assert [
        a["accountid"] for a in contract.expect(200, "GET", "/v1/servers/default/users/lister-z")["accounts"]
    ] == [made[2]]
    contract.error(404, "not_found", "GET", "/v1/servers/default/users/lister-c")
    for bad_body in ({}, {"userid": ""}, {"userid": "u" * 300}, {"userid": 7}):
        contract.error(400, "bad_request", "POST", f"{accounts}/{made[2]}/move", body=bad_body)
    contract.error(400, "bad_json", "POST", f"{accounts}/{made[2]}/move", raw=b"[")
    contract.error(
        413, "request_entity_too_large", "POST", f"{accounts}/{made[2]}/move", body={"userid": "x" * 70_000}
    )
    contract.error(404, "not_found", "POST", f"{accounts}/no-such-account/move", body={"userid": "lister-z"})


def test_audit_events(contract: Contract, phone: Path, role_keys: dict[str, str]) -> None:
    account = enrol(contract, phone, "berta")
    contract.expect(200, "POST", f"/v1/servers/default/accounts/{account}/block")
    path = "/v1/audit-events"
    blocked = contract.expect(
        200, "GET", path, key=role_keys["audit"], query={"type": "account.blocked", "user": "berta"}
    )
    assert [e["data"] for e in blocked["events"]] == [{"account": account}]
    assert blocked["events"][0]["actor"] == "root (configured)" and blocked["next_cursor"] is None
    first = contract.expect(200, "GET", path, query={"limit": "1"})
    assert len(first["events"]) == 1 and first["next_cursor"] is not None
    after = contract.expect(200, "GET", path, query={"limit": "1", "cursor": str(first["next_cursor"])})
    assert after["events"][0]["cursor"] > first["events"][0]["cursor"]
    for query in (
        {"type": "no.such.type"},
        {"since": "yesterday"},
        {"limit": "0"},
        {"limit": "1001"},
        {"cursor": "-1"},
    ):
        contract.error(400, "bad_request", "GET", path, query=query)
    refused = contract.error(403, "forbidden", "GET", path, key=role_keys["audit@default"])
    assert "limited to one server" in refused["message"]


# -- the document as served ----------------------------------------------------------------------------


def test_openapi_routes_on_a_bare_app(contract: Contract) -> None:
    """``add_openapi_routes`` on a Flask app of its own, its answers checked like the live ones."""
    app = Flask("openapi-test")
    add_openapi_routes(app)
    client = app.test_client()
    for path, media in (("/v1/openapi.json", "application/json"), ("/v1/openapi.yaml", "application/yaml")):
        served = client.get(path)
        answer = Answer(served.status_code, served.content_type, served.data, dict(served.headers))
        contract.check("GET", path, answer)
        assert answer.status == 200 and answer.content_type.startswith(media)
        parsed = json.loads(answer.body) if media == "application/json" else yaml.safe_load(answer.body)
        assert parsed == contract.document


def test_live_server_serves_the_document(contract: Contract) -> None:
    connection = http.client.HTTPConnection(contract.host, contract.port, timeout=10)
    connection.request("GET", "/v1/openapi.json")
    response = connection.getresponse()
    response.read()
    connection.close()
    if response.status == 404:
        pytest.skip("authserver/services/ns.py does not call add_openapi_routes(api) yet")
    served = contract.expect(200, "GET", "/v1/openapi.json", key=None)
    assert served == contract.document
    assert yaml.safe_load(contract.expect(200, "GET", "/v1/openapi.yaml", key=None)) == contract.document


def test_api_keys(contract: Contract, role_keys: dict[str, str]) -> None:
    created = contract.expect(
        201,
        "POST",
        "/v1/apikeys",
        body={"name": "billing", "roles": ["users", "servers"], "server": "default"},
    )
    key = created.pop("api_key")
    assert created["roles"] == ["servers", "users"] and created["server"] == "default"
    listed = contract.expect(200, "GET", "/v1/apikeys")["apikeys"]
    assert created in listed and key not in json.dumps(listed)
    assert contract.expect(200, "GET", "/v1/servers/default", key=key)["id"] == "default"
    contract.error(403, "forbidden", "GET", "/v1/servers", key=key)

    assert contract.expect(200, "DELETE", f"/v1/apikeys/{created['id']}") == {
        "id": created["id"],
        "revoked": True,
    }
    contract.error(401, "unauthenticated", "GET", "/v1/servers/default", key=key)
    contract.error(404, "not_found", "DELETE", f"/v1/apikeys/{created['id']}")
    revoked = [k for k in contract.expect(200, "GET", "/v1/apikeys")["apikeys"] if k["id"] == created["id"]]
    assert revoked[0]["revoked_at"] is not None

    for bad in (
        {"name": "x", "roles": []},
        {"name": "x", "roles": ["wizard"]},
        {"name": "x", "roles": "root"},
        {"name": "", "roles": ["users"]},
        {"name": "x", "roles": ["users"], "server": "no-such-server"},
        {"roles": ["users"]},
    ):
        contract.error(400, "bad_request", "POST", "/v1/apikeys", body=bad)
    contract.error(413, "request_entity_too_large", "POST", "/v1/apikeys", body={"name": "x" * 70_000})
    # A root key limited to one server cannot mint keys, not even for its own server.
    scoped_root = contract.expect(
        201, "POST", "/v1/apikeys", body={"name": "tenant-root", "roles": ["root"], "server": "default"}
    )["api_key"]
    refused = contract.error(
        403, "forbidden", "POST", "/v1/apikeys", key=scoped_root, body={"name": "y", "roles": ["root"]}
    )
    assert "limited to one server" in refused["message"]
    contract.error(403, "forbidden", "GET", "/v1/apikeys", key=scoped_root)
    contract.error(403, "forbidden", "GET", "/v1/apikeys", key=role_keys["servers"])


def test_update_server(contract: Contract) -> None:
    server = contract.expect(201, "POST", "/v1/servers", body={"name": "Bakery"})
    assert server["login_pin_timeout"] == 0 and server["transaction_pin_timeout"] == 0
    path = f"/v1/servers/{server['id']}"
    changed = contract.expect(
        200,
        "PATCH",
        path,
        body={"name": "Bakery & Co", "announce": {"Help": "+32 2 555 01 01"}, "login_pin_timeout": 300},
    )
    assert changed == {
        **server,
        "name": "Bakery & Co",
        "announce": {"Help": "+32 2 555 01 01"},
        "login_pin_timeout": 300,
    }
    assert contract.expect(200, "GET", path) == changed
    assert contract.expect(200, "PATCH", path, body={"logo_url": None})["name"] == "Bakery & Co"
    for bad in (
        {},
        {"key_hash": "00" * 32},
        {"login_pin_timeout": -2},
        {"login_pin_timeout": 86_401},
        {"transaction_pin_timeout": True},
        {"transaction_pin_timeout": "5"},
        {"name": ""},
        {"logo_url": "http://insecure.example/"},
    ):
        contract.error(400, "bad_request", "PATCH", path, body=bad)
    contract.error(404, "unknown_server", "PATCH", "/v1/servers/no-such-server", body={"name": "x"})
    contract.error(413, "request_entity_too_large", "PATCH", path, body={"name": "x" * 70_000})


def test_permissions_per_server(contract: Contract, role_keys: dict[str, str]) -> None:
    """Roles granted on one server: only `root` there grants them, they count on that server alone, never
    for operations over the whole ns, and each change is in the audit trail."""
    other = contract.expect(201, "POST", "/v1/servers", body={"name": "Other shop"})["id"]
    probe = contract.expect(201, "POST", "/v1/apikeys", body={"name": "probe", "roles": ["audit"]})
    key, roleid = probe["api_key"], f"apikey-{probe['id']}"
    tenant = contract.expect(
        201, "POST", "/v1/apikeys", body={"name": "tenant", "roles": ["root"], "server": "default"}
    )["api_key"]
    here, there = "/v1/servers/default/permissions", f"/v1/servers/{other}/permissions"
    contract.error(403, "forbidden", "GET", "/v1/servers/default/users/nobody", key=key)

    # Without `root` on the server, nobody grants: not a key with every other role, not one from elsewhere.
    for refused in (role_keys["users"], role_keys["servers@default"], role_keys["createserver"]):
        contract.error(403, "forbidden", "POST", f"{here}/{roleid}", key=refused, body={"roles": ["users"]})
    contract.error(403, "forbidden", "POST", f"{there}/{roleid}", key=tenant, body={"roles": ["users"]})
    contract.error(403, "forbidden", "GET", there, key=tenant)
    contract.error(403, "forbidden", "GET", f"/v1/servers/{other}", key=tenant)  # root only where held

    granted = contract.expect(
        200, "POST", f"{here}/{roleid}", key=tenant, body={"roles": ["users", "sessions"]}
    )
    assert granted == {
        "roleid": roleid,
        "name": "probe",
        "server": None,
        "own_roles": ["audit"],
        "granted": ["sessions", "users"],
        "roles": ["audit", "sessions", "users"],
    }
    contract.error(404, "not_found", "GET", "/v1/servers/default/users/nobody", key=key)  # allowed now
    contract.error(403, "forbidden", "GET", f"/v1/servers/{other}/users/nobody", key=key)  # not there
    assert contract.expect(200, "GET", f"{there}/{roleid}")["granted"] == []
    assert contract.expect(200, "GET", f"{here}/{roleid}", key=tenant) == granted
    listed = contract.expect(200, "GET", here, key=tenant)
    assert listed["server"] == "default" and granted in listed["permissions"]
    elsewhere_roles = {e["roleid"]: e for e in contract.expect(200, "GET", there)["permissions"]}
    assert elsewhere_roles[roleid]["granted"] == [] and elsewhere_roles[roleid]["roles"] == ["audit"]

    added = contract.expect(200, "PUT", f"{here}/{roleid}", body={"roles": ["accounts"]})
    assert added["granted"] == ["accounts", "sessions", "users"]
    assert contract.expect(200, "DELETE", f"{here}/{roleid}/accounts")["granted"] == ["sessions", "users"]
    contract.error(404, "not_found", "DELETE", f"{here}/{roleid}/accounts")
    contract.error(404, "not_found", "DELETE", f"{here}/{roleid}/createserver")
    # `root` granted on one server is root there only: nothing over the whole ns.
    contract.expect(200, "POST", f"{here}/{roleid}", body={"roles": ["root"]})
    contract.error(403, "forbidden", "GET", "/v1/servers", key=key)
    contract.error(403, "forbidden", "GET", "/v1/apikeys", key=key)
    assert contract.expect(200, "GET", here, key=key)["server"] == "default"
    assert contract.expect(200, "DELETE", f"{here}/{roleid}")["granted"] == []
    contract.error(403, "forbidden", "GET", "/v1/servers/default/users/nobody", key=key)

    for bad in ({"roles": ["createserver"]}, {"roles": ["audit"]}, {"roles": "root"}, {}, {"roles": [1]}):
        contract.error(400, "bad_request", "POST", f"{here}/{roleid}", body=bad)
        contract.error(400, "bad_request", "PUT", f"{here}/{roleid}", body=bad)
    contract.error(400, "bad_json", "POST", f"{here}/{roleid}", raw=b"{not json")
    contract.error(400, "bad_json", "PUT", f"{here}/{roleid}", raw=b"[]")
    contract.error(
        413, "request_entity_too_large", "POST", f"{here}/{roleid}", body={"roles": ["x" * 70_000]}
    )
    contract.error(413, "request_entity_too_large", "PUT", f"{here}/{roleid}", body={"roles": ["x" * 70_000]})
    # Unknown, malformed, and limited to another server: the same 404.
    elsewhere = contract.expect(
        201, "POST", "/v1/apikeys", body={"name": "elsewhere", "roles": ["users"], "server": other}
    )["id"]
    for unknown in ("apikey-999999", "root", f"apikey-{elsewhere}", "clientcert-999999"):
        contract.error(404, "not_found", "GET", f"{here}/{unknown}")
        contract.error(404, "not_found", "POST", f"{here}/{unknown}", body={"roles": ["users"]})
        contract.error(404, "not_found", "PUT", f"{here}/{unknown}", body={"roles": ["users"]})
        contract.error(404, "not_found", "DELETE", f"{here}/{unknown}")

    events = contract.expect(
        200,
        "GET",
        "/v1/audit-events",
        query={"type": "permission.granted,permission.revoked", "server": "default"},
    )["events"]
    changes = [
        (e["type"].removeprefix("io.nextauth."), e["data"]["roles"])
        for e in events
        if e["data"]["principal"] == roleid
    ]
    assert changes == [
        ("permission.granted", ["sessions", "users"]),
        ("permission.granted", ["accounts"]),
        ("permission.revoked", ["accounts"]),
        ("permission.granted", ["root"]),
        ("permission.revoked", ["sessions", "users"]),
        ("permission.revoked", ["root"]),
    ]
    assert {e["actor"] for e in events if e["data"]["principal"] == roleid} == {"tenant", "root (configured)"}


def test_attributes(contract: Contract, role_keys: dict[str, str]) -> None:
    """The four attribute sets: replace, merge, read, remove one, empty; names and values checked; each set
    apart from the others; privileged ones out of reach of a server's own keys; changes audited without
    their values."""
    paths = {
        "global": "/v1/attributes",
        "server": "/v1/servers/default/attributes",
        "privileged": "/v1/servers/default/privilegedattributes",
        "user": "/v1/servers/default/users/zoe/attributes",
    }
    too_many = {f"a{i}": "v" for i in range(101)}
    refused: list[Any] = [
        {"9lives": "x"},
        {"Plan": "x"},
        {"a b": "x"},
        {"x": 1},
        {"x": "a" * 1025},
        {"x": "\x00"},
    ]
    refused += [{"x": "\x1b[31m"}, too_many, {"x" * 65: "y"}]
    for scope, path in paths.items():
        assert contract.expect(200, "POST", path, body={"colour": "blue", "size": "L"}) == {
            "colour": "blue",
            "size": "L",
        }
        merged = contract.expect(200, "PUT", path, body={"size": "XL", "note": f"{scope}\tline\nline"})
        assert merged == {"colour": "blue", "note": f"{scope}\tline\nline", "size": "XL"}
        assert contract.expect(200, "GET", path) == merged
        assert contract.expect(200, "DELETE", f"{path}/colour") == {"note": merged["note"], "size": "XL"}
        contract.error(404, "not_found", "DELETE", f"{path}/colour")
        contract.error(404, "not_found", "DELETE", f"{path}/9lives")
        for bad in refused:
            contract.error(400, "bad_request", "POST", path, body=bad)
            contract.error(400, "bad_request", "PUT", path, body=bad)
        contract.error(400, "bad_request", "POST", path)  # no body: not "replace with nothing"
        contract.error(400, "bad_json", "PUT", path, raw=b"{no json")
        contract.error(413, "request_entity_too_large", "POST", path, body={"x": "y" * 70_000})
        contract.error(413, "request_entity_too_large", "PUT", path, body={"x": "y" * 70_000})
        assert contract.expect(200, "GET", path)["size"] == "XL"  # nothing refused changed anything
    # Each set stands apart: another server, another user, the server's plain and privileged sets.
    assert contract.expect(200, "GET", "/v1/servers/default/users/yann/attributes") == {}
    other = contract.expect(201, "POST", "/v1/servers", body={"name": "Attribute shop"})["id"]
    assert contract.expect(200, "GET", f"/v1/servers/{other}/attributes") == {}
    assert contract.expect(200, "GET", f"/v1/servers/{other}/privilegedattributes") == {}
    contract.expect(200, "PUT", paths["privileged"], body={"token": "s3cret"})
    assert "token" not in contract.expect(200, "GET", paths["server"])
    # A set never grows past 100, merging included.
    contract.expect(200, "POST", paths["server"], body={f"a{i}": "v" for i in range(100)})
    contract.error(400, "bad_request", "PUT", paths["server"], body={"one_more": "v"})
    contract.expect(200, "PUT", paths["server"], body={"a0": "changed"})

    # Who may: a server's own keys, `root` included, never reach its privileged attributes.
    tenant_root = contract.expect(
        201, "POST", "/v1/apikeys", body={"name": "attr-tenant", "roles": ["root"], "server": "default"}
    )["api_key"]
    for key in (tenant_root, role_keys["servers@default"]):
        assert contract.expect(200, "GET", paths["server"], key=key)["a0"] == "changed"
        contract.error(403, "forbidden", "GET", paths["privileged"], key=key)
        contract.error(403, "forbidden", "PUT", paths["privileged"], key=key, body={"token": "mine"})
        contract.error(403, "forbidden", "PUT", paths["global"], key=key, body={"x": "y"})
        contract.error(403, "forbidden", "GET", f"/v1/servers/{other}/attributes", key=key)
    assert contract.expect(200, "GET", paths["global"], key=role_keys["servers@default"])["size"] == "XL"
    assert contract.expect(200, "GET", paths["privileged"], key=role_keys["servers"])["token"] == "s3cret"
    # A user's: read with `sessions`, written with `users` only.
    assert contract.expect(200, "GET", paths["user"], key=role_keys["sessions"])["size"] == "XL"
    contract.error(403, "forbidden", "PUT", paths["user"], key=role_keys["sessions"], body={"x": "y"})
    contract.expect(200, "PUT", paths["user"], key=role_keys["users"], body={"x": "y"})
    # A user id outside the user-id rule has no attributes and gets none.
    for method in ("GET", "POST", "PUT", "DELETE"):
        contract.error(
            404, "not_found", method, "/v1/servers/default/users/a%20b/attributes", body={"x": "y"}
        )
    for path in paths.values():
        assert contract.expect(200, "DELETE", path) == {}

    events = contract.expect(200, "GET", "/v1/audit-events", query={"type": "attributes.changed"})["events"]
    assert "blue" not in json.dumps(events) and "s3cret" not in json.dumps(events)
    first = next(e for e in events if e["data"]["scope"] == "user")
    assert first["subject"] == "zoe" and first["server"] == "default"
    assert first["data"]["set"] == ["colour", "size"] and "removed" not in first["data"]
    assert {e["data"]["scope"] for e in events} == {"global", "server", "privileged", "user"}


def test_client_certificates(contract: Contract, role_keys: dict[str, str]) -> None:
    """Listing a certificate from PEM, its roles per server like a key's, revoking it; each audited."""
    ca_key, ca_pem = make_ca()
    pem = issue(ca_key, ca_pem, "billing-client")[1]
    added = contract.expect(
        201,
        "POST",
        "/v1/clientcerts",
        body={"name": "billing", "roles": ["sessions"], "server": "default", "certificate": pem},
    )
    assert added["roles"] == ["sessions"] and added["server"] == "default" and len(added["sha256"]) == 64
    assert added in contract.expect(200, "GET", "/v1/clientcerts")["clientcerts"]
    roleid = f"clientcert-{added['id']}"
    granted = contract.expect(
        200, "PUT", f"/v1/servers/default/permissions/{roleid}", body={"roles": ["users"]}
    )
    assert granted["roles"] == ["sessions", "users"] and granted["name"] == "billing"
    contract.error(
        409,
        "conflict",
        "POST",
        "/v1/clientcerts",
        body={"name": "again", "roles": ["root"], "certificate": pem},
    )
    for bad in (
        {"name": "x", "roles": ["sessions"]},
        {"name": "x", "roles": ["sessions"], "certificate": "not a pem"},
        {
            "name": "x",
            "roles": ["sessions"],
            "certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        },
        {"name": "x", "roles": [], "certificate": pem},
        {"name": "", "roles": ["sessions"], "certificate": pem},
        {"name": "x", "roles": ["sessions"], "server": "no-such-server", "certificate": pem},
    ):
        contract.error(400, "bad_request", "POST", "/v1/clientcerts", body=bad)
    contract.error(400, "bad_json", "POST", "/v1/clientcerts", raw=b"{oops")
    contract.error(
        413, "request_entity_too_large", "POST", "/v1/clientcerts", body={"certificate": "x" * 70_000}
    )
    for key in (role_keys["servers"], role_keys["servers@default"]):
        contract.error(403, "forbidden", "GET", "/v1/clientcerts", key=key)
        contract.error(
            403,
            "forbidden",
            "POST",
            "/v1/clientcerts",
            key=key,
            body={"name": "x", "roles": ["root"], "certificate": pem},
        )

    assert contract.expect(200, "DELETE", f"/v1/clientcerts/{added['id']}") == {
        "id": added["id"],
        "revoked": True,
    }
    contract.error(404, "not_found", "DELETE", f"/v1/clientcerts/{added['id']}")
    contract.error(404, "not_found", "DELETE", "/v1/clientcerts/abc")
    contract.error(404, "not_found", "GET", f"/v1/servers/default/permissions/{roleid}")  # revoked: no holder
    # A revoked certificate stays revoked: listing it again is refused, not a quiet comeback.
    contract.error(
        409,
        "conflict",
        "POST",
        "/v1/clientcerts",
        body={"name": "back", "roles": ["root"], "certificate": pem},
    )
    events = contract.expect(
        200, "GET", "/v1/audit-events", query={"type": "clientcert.created,clientcert.revoked"}
    )
    mine = [
        (e["type"], e["data"]["name"]) for e in events["events"] if e["data"]["sha256"] == added["sha256"]
    ]
    assert mine == [
        ("io.nextauth.clientcert.created", "billing"),
        ("io.nextauth.clientcert.revoked", "billing"),
    ]


def test_every_operation_and_status_was_exercised(contract: Contract, request: pytest.FixtureRequest) -> None:
    selected = {item.name.split("[")[0] for item in request.session.items}
    if not SCENARIOS <= selected or request.session.testsfailed:
        pytest.skip("coverage is judged only on a full, green run of this module")
    documented = {
        (operation["operationId"], status)
        for _method, _template, operation in contract.operations()
        for status in operation["responses"]
    }
    assert {op for op, _ in documented} - {op for op, _ in contract.seen} == set()
    missing = {
        (op, status) for op, status in documented - contract.seen if status not in UNREACHABLE_STATUSES
    }
    assert missing == set()
    assert contract.seen <= documented


def test_other_scripts_digits_are_a_400_or_a_404_not_a_500(contract: Contract, system: RunningSystem) -> None:
    """str.isdigit is true for "²", which int() refuses, and for "٣", which it reads: numbers in query
    parameters and paths are ASCII digits, and anything else is refused as any other bad number."""
    for bad in ({"limit": "²"}, {"offset": "²"}, {"limit": "٣"}):
        contract.error(400, "bad_request", "GET", "/v1/servers/default/accounts", query=bad)
    for bad in ({"limit": "²"}, {"cursor": "²"}):
        contract.error(400, "bad_request", "GET", "/v1/audit-events", query=bad)
    contract.error(404, "not_found", "DELETE", "/v1/apikeys/%C2%B2")
    contract.error(404, "not_found", "DELETE", "/v1/clientcerts/%C2%B2")
    assert "ValueError" not in system.log()
