"""The admin console's access rules in-process: who is let in, what the help desk may not do (on the
POST, not only the link), the CSRF token on every form, confirmations, and the settings.

ns is not needed for any of this: the checks come first. Where a request does get past them, the IdP's
ns client points at a closed port and the console answers 502, which is how these tests see that a request
was let through."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from authserver.config import ConfigError
from authserver.storage import db
from authserver.storage.kv import open_kv
from idp.console.base import csrf_token, csrf_valid
from idp.context import IdpServices
from idp.directory import Directory, Profile
from idp.keys import KeyRing
from idp.models import Consent
from idp.ns_client import NsClient
from idp.oidc.clients import build_metadata
from idp.oidc.endpoints import provider
from idp.server import load_settings
from idp.sessions import SessionManager
from idp.web import create_app

ISSUER = "http://idp.example.test"
CLOSED_NS = "http://127.0.0.1:9"  # the discard port: nothing answers there


@pytest.fixture
def services(tmp_path: Path) -> Iterator[IdpServices]:
    engine = db.create_engine_for(f"sqlite:///{tmp_path / 'idp.db'}")
    db.upgrade(engine)
    kv = open_kv(None)
    keys = KeyRing(engine, issuer=ISSUER)
    yield IdpServices(
        ns=NsClient(CLOSED_NS, "na_unused", "default", timeout=2),
        engine=engine,
        kv=kv,
        keys=keys,
        directory=Directory(engine),
        sessions=SessionManager(engine, kv, keys, issuer=ISSUER),
        issuer=ISSUER,
        admin_group="ops",
        helpdesk_group="desk",
    )
    engine.dispose()


@pytest.fixture
def app(services: IdpServices) -> Flask:
    return create_app(services, secret_key=b"s" * 32, websocket_url="ws://ns.example.test/ns/websocket")


def signed_in(app: Flask, services: IdpServices, user_id: str, groups: tuple[str, ...]) -> FlaskClient:
    profile = services.directory.put(Profile(user_id=user_id, groups=groups))
    token = services.sessions.start(ns_nonce="n" * 22, profile=profile, second_factor="pin", method="qr")
    client = app.test_client()
    client.set_cookie(services.cookie_name, token, domain="localhost")
    return client


@pytest.fixture
def admin(app: Flask, services: IdpServices) -> FlaskClient:
    return signed_in(app, services, "ada", ("staff", "ops"))


@pytest.fixture
def helpdesk(app: Flask, services: IdpServices) -> FlaskClient:
    return signed_in(app, services, "hal", ("desk",))


def token_of(client: FlaskClient) -> str:
    """The token the console's forms carry for this client's session (its pages with forms need ns)."""
    app = client.application
    services: IdpServices = app.extensions["nextauth_idp"]
    cookie = client.get_cookie(services.cookie_name, domain="localhost")
    assert cookie is not None
    user = services.sessions.verify(cookie.value)
    assert user is not None
    with app.test_request_context():
        return csrf_token(user.sid)


def test_a_visitor_who_is_not_logged_in_goes_to_the_login_page(app: Flask) -> None:
    answer = app.test_client().get("/admin/users?q=al")
    assert answer.status_code == 302
    assert answer.headers["Location"] == f"{ISSUER}/login?next=%2Fadmin%2Fusers%3Fq%3Dal"
    posted = app.test_client().post("/admin/keys", data={"name": "x", "roles": "root"})
    assert posted.status_code == 302 and posted.headers["Location"].endswith("next=%2Fadmin%2F")


def test_a_user_in_neither_group_gets_the_403_page(app: Flask, services: IdpServices) -> None:
    client = signed_in(app, services, "eve", ("staff",))
    for path in ("/admin/", "/admin/users", "/admin/keys"):
        answer = client.get(path)
        assert answer.status_code == 403
        assert "Not allowed" in answer.get_data(as_text=True)
        assert "console.css" in answer.get_data(as_text=True)  # the styled page, not a bare error
    assert client.post("/admin/user/block", data={"user": "x", "account": "y"}).status_code == 403


def test_membership_is_read_from_the_directory_on_each_request(
    app: Flask, services: IdpServices, admin: FlaskClient
) -> None:
    assert admin.get("/admin/").status_code == 200
    services.directory.put(Profile(user_id="ada", groups=("staff",)))  # the session token still says ops
    assert admin.get("/admin/").status_code == 403


def test_the_admin_sees_every_page_link_and_the_help_desk_only_users(
    admin: FlaskClient, helpdesk: FlaskClient
) -> None:
    everything = admin.get("/admin/").get_data(as_text=True)
    desk = helpdesk.get("/admin/").get_data(as_text=True)
    for link in (
        "/admin/keys",
        "/admin/certificates",
        "/admin/clients",
        "/admin/saml",
        "/admin/servers",
        "/admin/consents",
        "/admin/audit",
    ):
        assert link in everything and link not in desk
    assert "/admin/users" in desk


HELPDESK_REFUSED_POSTS = [
    ("/admin/keys", {"name": "k", "roles": "root"}),
    ("/admin/keys/revoke", {"key": "1", "confirm": "yes"}),
    ("/admin/certificates", {"name": "c", "roles": "root", "certificate": "-----BEGIN CERTIFICATE-----"}),
    ("/admin/certificates/revoke", {"certificate": "1", "confirm": "yes"}),
    ("/admin/servers/edit", {"server": "default", "name": "x", "login_pin_timeout": "0"}),
    ("/admin/client/state", {"client": "c", "disabled": "true"}),
    ("/admin/client/remove", {"client": "c", "confirm": "yes"}),
    ("/admin/saml/remove", {"entity": "https://sp.example/", "confirm": "yes"}),
    ("/admin/user/delete-account", {"user": "u", "account": "a", "confirm": "yes"}),
    ("/admin/user/profile", {"user": "hal", "groups": "ops"}),
    ("/admin/consents/revoke", {"user": "u", "client": "c", "confirm": "yes"}),
]


@pytest.mark.parametrize(("path", "form"), HELPDESK_REFUSED_POSTS, ids=[p for p, _ in HELPDESK_REFUSED_POSTS])
def test_the_help_desk_is_refused_admin_posts(
    helpdesk: FlaskClient, services: IdpServices, path: str, form: dict[str, str]
) -> None:
    answer = helpdesk.post(path, data={**form, "csrf": token_of(helpdesk)})
    assert answer.status_code == 403, answer.get_data(as_text=True)[:300]
    assert "admin group" in answer.get_data(as_text=True)
    assert services.directory.get("hal").groups == ("desk",)  # and nothing changed


@pytest.mark.parametrize(
    "path",
    [
        "/admin/keys",
        "/admin/certificates",
        "/admin/servers",
        "/admin/clients",
        "/admin/saml",
        "/admin/consents",
        "/admin/audit",
    ],
)
def test_the_help_desk_is_refused_admin_pages(helpdesk: FlaskClient, path: str) -> None:
    assert helpdesk.get(path).status_code == 403


def test_the_help_desk_may_block_and_end_sessions(helpdesk: FlaskClient) -> None:
    csrf = token_of(helpdesk)
    # Let through to ns, which is not there: 502 rather than 403 or 400.
    for path, form in (
        ("/admin/user/block", {"user": "u", "account": "a"}),
        ("/admin/user/end-session", {"user": "u", "hsid": "h"}),
        ("/admin/user/end-all-sessions", {"user": "u"}),
        ("/admin/user/invite", {"user": "u"}),
    ):
        answer = helpdesk.post(path, data={**form, "csrf": csrf})
        assert answer.status_code == 502, (path, answer.get_data(as_text=True)[:300])


def test_the_admin_reads_the_audit_log_through_ns(admin: FlaskClient) -> None:
    assert admin.get("/admin/audit?user=u&type=login.failed").status_code == 502  # let through to ns


def test_an_invite_needs_the_csrf_token(helpdesk: FlaskClient) -> None:
    assert helpdesk.post("/admin/user/invite", data={"user": "u"}).status_code == 400


@pytest.mark.parametrize("sent", [None, "", "wrong", "x" * 43])
def test_a_form_without_the_right_csrf_token_is_refused(admin: FlaskClient, sent: str | None) -> None:
    form = {"user": "u", "account": "a"} | ({"csrf": sent} if sent is not None else {})
    answer = admin.post("/admin/user/block", data=form)
    assert answer.status_code == 400
    assert "out of date" in answer.get_data(as_text=True)


def test_a_csrf_token_of_another_session_is_refused(
    app: Flask, services: IdpServices, admin: FlaskClient
) -> None:
    other = signed_in(app, services, "ada", ("ops",))  # the same person, another login
    theirs = token_of(other)
    assert theirs != token_of(admin)
    assert (
        admin.post("/admin/user/block", data={"user": "u", "account": "a", "csrf": theirs}).status_code == 400
    )
    assert (
        admin.post(
            "/admin/user/block", data={"user": "u", "account": "a", "csrf": token_of(admin)}
        ).status_code
        == 502
    )


def test_csrf_tokens_depend_on_the_session_and_the_key(app: Flask) -> None:
    with app.test_request_context():
        token = csrf_token("sid-1")
        assert csrf_valid("sid-1", token)
        assert not csrf_valid("sid-2", token)
        assert not csrf_valid("sid-1", token[:-1] + ("A" if token[-1] != "A" else "B"))
        assert not csrf_valid("sid-1", None)
        app.secret_key = b"t" * 32
        assert not csrf_valid("sid-1", token)


def test_pages_are_not_cached(admin: FlaskClient) -> None:
    answer = admin.get("/admin/")
    assert answer.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
    assert "<script" not in answer.get_data(as_text=True)


def add_client(app: Flask, name: str = "Wiki") -> str:
    with app.app_context():
        client, _ = provider().clients.add(name, build_metadata(redirect_uris=["https://wiki.example/cb"]))
    return str(client.client_id)


def test_removing_a_client_asks_first(app: Flask, admin: FlaskClient) -> None:
    client_id = add_client(app)
    csrf = token_of(admin)
    asked = admin.post("/admin/client/remove", data={"client": client_id, "csrf": csrf})
    assert asked.status_code == 200 and "Remove OIDC client" in asked.get_data(as_text=True)
    with app.app_context():
        assert provider().clients.get(client_id) is not None
    done = admin.post("/admin/client/remove", data={"client": client_id, "csrf": csrf, "confirm": "yes"})
    assert done.status_code == 303
    with app.app_context():
        assert all(c.client_id != client_id for c in provider().clients.all())


def test_disabling_a_client_hides_it_from_the_endpoints_until_enabled(app: Flask, admin: FlaskClient) -> None:
    client_id = add_client(app)
    csrf = token_of(admin)
    assert (
        admin.post(
            "/admin/client/state", data={"client": client_id, "disabled": "true", "csrf": csrf}
        ).status_code
        == 303
    )
    with app.app_context():
        assert provider().clients.get(client_id) is None
    assert "disabled" in admin.get(f"/admin/client?id={client_id}").get_data(as_text=True)
    admin.post("/admin/client/state", data={"client": client_id, "disabled": "false", "csrf": csrf})
    with app.app_context():
        assert provider().clients.get(client_id) is not None


def test_a_client_page_never_shows_its_signing_secret(app: Flask, admin: FlaskClient) -> None:
    with app.app_context():
        metadata = build_metadata(redirect_uris=["https://wiki.example/cb"], auth_method="client_secret_jwt")
        client, secret = provider().clients.add("Jwt", metadata)
    assert secret
    page = admin.get(f"/admin/client?id={client.client_id}").get_data(as_text=True)
    assert client.client_id in page and secret not in page


def test_the_admin_edits_a_directory_profile(admin: FlaskClient, services: IdpServices) -> None:
    services.directory.put(Profile(user_id="bob", email="bob@example.test", email_verified=True))
    csrf = token_of(admin)
    form = {"user": "bob", "name": "Bob", "email": "bob@example.test", "groups": "desk, staff", "csrf": csrf}
    assert admin.post("/admin/user/profile", data=form).status_code == 303
    bob = services.directory.get("bob")
    assert (bob.name, bob.groups, bob.email_verified) == ("Bob", ("desk", "staff"), True)
    form["email"] = "other@example.test"  # a new address is nobody's verified one
    admin.post("/admin/user/profile", data=form)
    assert services.directory.get("bob").email_verified is False


def test_group_settings(tmp_path: Path) -> None:
    base = {
        "NEXTAUTH_IDP_NS_WEBSOCKET_URL": "ws://127.0.0.1:1/ns/websocket",
        "NEXTAUTH_IDP_NS_API_URL": "http://127.0.0.1:1",
        "NEXTAUTH_IDP_NS_API_KEY": "k",
    }
    default = load_settings(base, data_dir=tmp_path, embedded=True)
    assert (default.admin_group, default.helpdesk_group) == ("nextauth-admins", "nextauth-helpdesk")
    chosen = load_settings(
        base | {"NEXTAUTH_IDP_ADMIN_GROUP": "it-ops", "NEXTAUTH_IDP_HELPDESK_GROUP": "support"},
        data_dir=tmp_path,
        embedded=True,
    )
    assert (chosen.admin_group, chosen.helpdesk_group) == ("it-ops", "support")
    for bad in ("a,b", "x" * 101):
        with pytest.raises(ConfigError, match="ADMIN_GROUP"):
            load_settings(base | {"NEXTAUTH_IDP_ADMIN_GROUP": bad}, data_dir=tmp_path, embedded=True)


DESTRUCTIVE = [
    ("/admin/user/delete-account", {"user": "u", "account": "a"}, "Delete account a of u?"),
    ("/admin/keys/revoke", {"key": "7", "name": "webshop"}, "Revoke API key 7 (webshop)?"),
    ("/admin/consents/revoke", {"user": "u", "client": "c"}, "Revoke u&#39;s consent to c?"),
    ("/admin/saml/remove", {"entity": "https://sp.example/"}, "Remove SAML service provider"),
]


@pytest.mark.parametrize(("path", "form", "question"), DESTRUCTIVE, ids=[p for p, _, _ in DESTRUCTIVE])
def test_destructive_forms_ask_before_doing_anything(
    admin: FlaskClient, path: str, form: dict[str, str], question: str
) -> None:
    # Without confirm=yes nothing reaches ns (which is not there: that would be 502).
    asked = admin.post(path, data={**form, "csrf": token_of(admin)})
    assert asked.status_code == 200
    page = asked.get_data(as_text=True)
    assert question in page and 'name="confirm" value="yes"' in page
    assert f'name="csrf" value="{token_of(admin)}"' in page


def test_a_user_id_with_a_line_break_is_refused(admin: FlaskClient) -> None:
    answer = admin.post("/admin/user/end-all-sessions", data={"user": "a\nb", "csrf": token_of(admin)})
    assert answer.status_code == 400


def test_the_admin_lists_and_revokes_a_users_consent(
    app: Flask, admin: FlaskClient, services: IdpServices
) -> None:
    client_id = add_client(app, "Wiki")
    with Session(services.engine) as db, db.begin():
        db.add(Consent(user_id="bob", client_id=client_id, scope="openid profile"))
    listed = admin.get("/admin/consents?user=bob").get_data(as_text=True)
    assert "Wiki" in listed and "openid profile" in listed
    form = {"user": "bob", "client": client_id, "csrf": token_of(admin), "confirm": "yes"}
    assert admin.post("/admin/consents/revoke", data=form).status_code == 303
    assert "bob has given no consents" in admin.get("/admin/consents?user=bob").get_data(as_text=True)


def test_the_admin_pages_of_the_idps_registries_render(app: Flask, admin: FlaskClient) -> None:
    client_id = add_client(app, "Intranet")
    clients = admin.get("/admin/clients").get_data(as_text=True)
    assert "Intranet" in clients and client_id in clients
    assert "No service providers" in admin.get("/admin/saml").get_data(as_text=True)
    assert admin.get("/admin/client?id=nope").status_code == 404
