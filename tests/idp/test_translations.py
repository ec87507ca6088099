"""The IdP's pages in English, German and French: the catalogs are complete and compiled from what is
committed, a page speaks the language the cookie or the browser asks for, and the language switcher goes
back only to a path on this site. Also the IdP's own error pages (ns is not running here: port 9)."""

import gettext
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, render_template
from flask.testing import FlaskClient

from idp.i18n import LANGUAGES, TRANSLATIONS, _here
from idp.web import create_app
from tests.fixtures.idp_offline import offline_idp_services

ROOT = Path(__file__).resolve().parents[2]
CATALOGS = {lang: TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po" for lang in LANGUAGES if lang != "en"}
PLACEHOLDER = re.compile(r"%\(\w+\)s|\{\w+\}|<[^>]+>")


def read_catalog(lang: str):  # type: ignore[no-untyped-def]
    with CATALOGS[lang].open("rb") as f:
        return read_po(f, locale=lang)


def source_msgids() -> set[str]:
    """What the templates and the IdP's Python mark, read as `make translations` reads them."""
    ids: set[str] = set()
    for method, pattern in (("python", "idp/**.py"), ("jinja2", "templates/**.html")):
        options = {"trimmed": "true"} if method == "jinja2" else {}
        method_map = [(pattern, method)]
        keywords = {"_": None, "gettext": None, "N_": None, "ngettext": (1, 2)}
        for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, {pattern: options}, keywords=keywords
        ):
            ids.add(message if isinstance(message, str) else message[0])
    return ids


@pytest.mark.parametrize("lang", sorted(CATALOGS))
def test_every_entry_is_translated_and_keeps_its_placeholders(lang: str) -> None:
    catalog = read_catalog(lang)
    entries = [m for m in catalog if m.id]
    assert len(entries) > 150
    for message in entries:
        assert message.string, f"{lang}: not translated: {message.id!r}"
        assert not message.fuzzy, f"{lang}: marked fuzzy: {message.id!r}"
        assert sorted(PLACEHOLDER.findall(message.string)) == sorted(PLACEHOLDER.findall(message.id)), (
            f"{lang}: placeholders or markup differ: {message.id!r}"
        )


@pytest.mark.parametrize("lang", sorted(CATALOGS))
def test_the_catalog_holds_every_marked_text(lang: str) -> None:
    """A text marked in the code but missing from the catalog would show in English: `make translations`."""
    marked = source_msgids()
    assert "Log in" in marked and "The SAML message is too large." in marked
    in_catalog = {m.id for m in read_catalog(lang) if m.id}
    assert marked - in_catalog == set(), "run `make translations` and translate the new entries"
    assert in_catalog - marked == set(), "the catalog keeps texts no page uses: run `make translations`"


@pytest.mark.parametrize("lang", sorted(CATALOGS))
def test_the_committed_mo_matches_its_po(lang: str) -> None:
    compiled = io.BytesIO()
    write_mo(compiled, read_catalog(lang))
    compiled.seek(0)
    expected = gettext.GNUTranslations(compiled)
    with CATALOGS[lang].with_suffix(".mo").open("rb") as f:
        committed = gettext.GNUTranslations(f)
    assert committed._catalog == expected._catalog  # type: ignore[attr-defined]


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    services = offline_idp_services(tmp_path / "idp.db", "http://idp.example.test")
    yield create_app(services, secret_key=b"k" * 32, websocket_url="ws://ns.example.test/ws")
    services.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def test_the_browser_language_chooses_without_a_cookie(client: FlaskClient) -> None:
    german = client.get("/logout", headers={"Accept-Language": "de-CH,de;q=0.9,en;q=0.5"})
    assert '<html lang="de">' in german.get_data(as_text=True)
    assert "Sie sind nicht angemeldet." in german.get_data(as_text=True)
    assert "Accept-Language" in german.headers["Vary"]
    french = client.get("/logout", headers={"Accept-Language": "fr-FR"})
    assert "Vous n\u2019êtes pas connecté." in french.get_data(as_text=True)
    other = client.get("/logout", headers={"Accept-Language": "ja"})
    assert '<html lang="en">' in other.get_data(as_text=True)
    assert "You are not logged in." in other.get_data(as_text=True)


def test_the_switcher_sets_the_cookie_and_goes_back(client: FlaskClient) -> None:
    page = client.get("/logout?x=1").get_data(as_text=True)
    assert 'href="/lang/fr?next=/logout?x%3D1"' in page
    assert 'aria-current="true" lang="en"' in page
    answer = client.get("/lang/fr?next=/logout?x%3D1")
    assert answer.status_code == 302 and answer.headers["Location"] == "/logout?x=1"
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("lang=fr;") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    # The cookie wins over the browser's language.
    page = client.get("/logout", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert '<html lang="fr">' in page and "Vous n\u2019êtes pas connecté." in page


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", "", "evil"],
)
def test_the_switcher_never_leaves_the_site(client: FlaskClient, target: str) -> None:
    answer = client.get("/lang/de", query_string={"next": target})
    assert answer.status_code == 302 and answer.headers["Location"] == "/login"


def test_a_page_drawn_for_a_post_switches_back_to_a_page_that_gets(client: FlaskClient) -> None:
    # The logout page answers GET and POST alike; a POST-only address would lead to the login page.
    with client.application.test_request_context("/login/push", method="POST"):
        assert _here() == "/login"
    with client.application.test_request_context("/logout?x=1", method="POST"):
        assert _here() == "/logout"


def test_an_unknown_language_sets_nothing(client: FlaskClient) -> None:
    answer = client.get("/lang/xx?next=/logout")
    assert answer.status_code == 302 and "Set-Cookie" not in answer.headers
    client.set_cookie("lang", "xx")
    assert '<html lang="en">' in client.get("/logout").get_data(as_text=True)


def test_error_pages_are_the_idps_own(client: FlaskClient) -> None:
    missing = client.get("/no/such/page", headers={"Accept-Language": "de"})
    text = missing.get_data(as_text=True)
    assert missing.status_code == 404 and "Seite nicht gefunden" in text
    assert "Prüfen Sie die Adresse" in text and 'href="/login"' in text
    wrong = client.delete("/logout")
    assert wrong.status_code == 405 and "This page cannot be used this way" in wrong.get_data(as_text=True)
    assert set(wrong.headers["Allow"].split(", ")) >= {"GET", "POST"}
    # ns is not running (port 9): the login page cannot be drawn.
    down = client.get("/login", headers={"Accept-Language": "fr"})
    text = down.get_data(as_text=True)
    assert down.status_code == 503 and "Le service de connexion est injoignable" in text
    assert "Traceback" not in text and "NsError" not in text


def test_an_unhandled_error_shows_no_trace(app: Flask) -> None:
    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("secret internals")

    app.config["PROPAGATE_EXCEPTIONS"] = False
    answer = app.test_client().get("/boom", headers={"Accept-Language": "de"})
    text = answer.get_data(as_text=True)
    assert answer.status_code == 500 and "Etwas ist schiefgegangen" in text
    assert "secret internals" not in text and "RuntimeError" not in text
    assert "Versuchen Sie es gleich noch einmal" in text


def test_the_login_page_hands_its_script_texts_over_as_data(app: Flask) -> None:
    """The script's texts come from the page (a JSON block), so they follow the language too."""
    with app.test_request_context(headers={"Accept-Language": "fr"}):
        page = render_template(
            "login.html",
            qr="",
            qrdata="q",
            hsid="h",
            server_id="s",
            websocket_url="ws://x",
            next="/",
            login_key="k",
            expires_in=42.0,
            renew_in=27.0,
        )
    block = re.search(r'<script type="application/json" id="login-texts">(.*?)</script>', page, re.S)
    assert block is not None
    texts = json.loads(block.group(1))
    assert texts["declined"].startswith("La connexion a été refusée")
    assert texts["valid_for"] == "Ce code est valable encore {seconds} s."
    assert "Ce code est valable encore 42 s." in page
    assert "nextauth-app" not in page
