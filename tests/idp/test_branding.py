"""Branding of the IdP's pages: settings checked at start (readable colours only), the stylesheet and the
logo served by the IdP itself, the help link on the login page."""

from dataclasses import replace
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from authserver.config import ConfigError
from idp.branding import Branding, contrast, load_branding
from idp.context import IdpServices
from idp.web import create_app

# The in-process IdP with a fake ns: its fixtures, used by name below.
from tests.idp.test_web import WEBSOCKET, ns, services  # noqa: F401

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def settings(**values: str) -> Branding:
    return load_branding(lambda flag: values.get(flag))


def test_contrast_follows_wcag() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#1a56c4", "#ffffff") == pytest.approx(6.6, abs=0.1)
    assert contrast("#fff", "#ffffff") == pytest.approx(1.0)


def test_defaults_brand_nothing() -> None:
    brand = settings()
    assert brand == Branding() and brand.stylesheet is None and brand.logo is None


def test_readable_colours_only(tmp_path: Path) -> None:
    brand = settings(BRAND_COLOR="#7B1FA2", BRAND_COLOR_DARK="#CE93D8")
    assert brand.stylesheet is not None
    assert "--accent: #7b1fa2" in brand.stylesheet and "--accent: #ce93d8" in brand.stylesheet
    with pytest.raises(ConfigError, match=r"contrast of 1\.1:1"):
        settings(BRAND_COLOR="#ffff00")  # yellow buttons with white text
    with pytest.raises(ConfigError, match="BRAND_COLOR_DARK"):
        settings(BRAND_COLOR_DARK="#303030")  # a dark accent on the dark card
    for bad in ("red", "#12345", "#1234567", "1a56c4", "#1a56c4;}body{display:none"):
        with pytest.raises(ConfigError, match="#rrggbb"):
            settings(BRAND_COLOR=bad)


def test_logo_files(tmp_path: Path) -> None:
    (tmp_path / "logo.png").write_bytes(PNG)
    (tmp_path / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    (tmp_path / "logo.gif").write_bytes(b"GIF89a")
    (tmp_path / "huge.png").write_bytes(PNG + b"\x00" * 300_000)
    assert settings(BRAND_LOGO=str(tmp_path / "logo.png")).logo_type == "image/png"
    assert settings(BRAND_LOGO=str(tmp_path / "logo.svg")).logo_type == "image/svg+xml"
    with pytest.raises(ConfigError, match="neither a PNG nor an SVG"):
        settings(BRAND_LOGO=str(tmp_path / "logo.gif"))
    with pytest.raises(ConfigError, match="over 256 KiB"):
        settings(BRAND_LOGO=str(tmp_path / "huge.png"))
    with pytest.raises(ConfigError, match="cannot read"):
        settings(BRAND_LOGO=str(tmp_path / "missing.png"))


def test_help_links_and_names() -> None:
    assert settings(HELP_URL="https://help.example/lost-phone").help_url == "https://help.example/lost-phone"
    assert settings(HELP_URL="mailto:desk@example.org").help_url == "mailto:desk@example.org"
    for bad in ("javascript:alert(1)", "//evil.example/", "data:text/html,x", "https://x/\tb"):
        with pytest.raises(ConfigError, match="HELP_URL"):
            settings(HELP_URL=bad)
    with pytest.raises(ConfigError, match="BRAND_NAME"):
        settings(BRAND_NAME="x" * 61)


@pytest.fixture
def branded(services: IdpServices, tmp_path: Path) -> FlaskClient:  # noqa: F811
    (tmp_path / "logo.png").write_bytes(PNG)
    brand = settings(
        BRAND_NAME="Acme Login",
        BRAND_LOGO=str(tmp_path / "logo.png"),
        BRAND_COLOR="#7b1fa2",
        HELP_URL="https://help.example/lost-phone",
        HELP_TEXT="Lost your phone? Call +32 2 555 01 00",
    )
    return create_app(
        replace(services, branding=brand), secret_key=b"k" * 32, websocket_url=WEBSOCKET
    ).test_client()


def test_branded_pages(branded: FlaskClient) -> None:
    page = branded.get("/login").get_data(as_text=True)
    assert "<title>Log in with Acme Login</title>" in page
    assert '<img src="/brand/logo?v=' in page and 'alt="Acme Login"' in page
    assert '<link rel="stylesheet" href="/brand.css?v=' in page
    assert '<a href="https://help.example/lost-phone">Lost your phone? Call +32 2 555 01 00</a>' in page
    css = branded.get("/brand.css?v=1")
    assert css.status_code == 200 and css.mimetype == "text/css" and "#7b1fa2" in css.get_data(as_text=True)
    assert "max-age=86400" in css.headers["Cache-Control"]
    logo = branded.get("/brand/logo")
    assert logo.status_code == 200 and logo.mimetype == "image/png" and logo.data == PNG
    assert "sandbox" in logo.headers["Content-Security-Policy"]
    assert logo.headers["Cache-Control"] == "no-cache"  # unversioned URL


def test_unbranded_pages(services: IdpServices) -> None:  # noqa: F811
    client = create_app(services, secret_key=b"k" * 32, websocket_url=WEBSOCKET).test_client()
    page = client.get("/login").get_data(as_text=True)
    assert "brand.css" not in page and "/brand/logo" not in page and 'class="help"' not in page
    assert "<title>Log in with nextAuth</title>" in page
    assert client.get("/brand.css").status_code == 404 and client.get("/brand/logo").status_code == 404
