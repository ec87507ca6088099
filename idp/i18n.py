"""The languages of the IdP's pages: English, German and French (Flask-Babel).

A ``lang`` cookie chooses, set by the footer's switcher (``GET /lang/<code>``); without it the browser's
``Accept-Language`` does. Catalogs live in ``idp/translations`` (``make translations`` rebuilds them).

Messages made before a page is drawn (a refused SAML message, say) are marked with ``N_`` and translated
where they are shown, so logs and protocol answers keep the English text.
"""

from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, current_app, redirect, request, url_for
from flask_babel import Babel, get_locale, gettext
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

LANGUAGES = {"en": "English", "de": "Deutsch", "fr": "Français"}
DEFAULT = "en"
COOKIE = "lang"
COOKIE_SECONDS = 365 * 24 * 3600
TRANSLATIONS = Path(__file__).resolve().parent / "translations"

blueprint = Blueprint("i18n", __name__)


def N_(text: str) -> str:
    """Marks ``text`` for the catalogs; the page that shows it translates it."""
    return text


def translate(text: str | None) -> str:
    """A message marked elsewhere (``N_``), in the page's language; an unknown text stays as it is."""
    # gettext without arguments formats nothing, so a '%' in a message from outside is harmless.
    return gettext(text) if text else ""


def select_locale() -> str:
    chosen = request.cookies.get(COOKIE, "")
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES.keys()) or DEFAULT


@blueprint.get("/lang/<code>")
def choose(code: str) -> Response:
    """Sets the language and goes back to the page the link was on (a path on this site, nothing else)."""
    # Imported here: idp.web imports this module while it builds the app.
    from idp.context import services
    from idp.web.login import safe_next

    target = safe_next(request.args.get("next"))
    # The IdP has no page at "/", where safe_next sends anything doubtful: the login page instead.
    response = redirect(url_for("login.login") if target == "/" else target)
    if code in LANGUAGES:
        secure = services().secure_cookies  # like the IdP's other cookies, though this one holds no secret
        response.set_cookie(
            COOKIE, code, max_age=COOKIE_SECONDS, httponly=True, samesite="Lax", secure=secure
        )
    return response


def _here() -> str:
    """Where the switcher returns to: this page, when a GET brings it back (a page drawn for a POST, say
    the login page after a push without script, comes back as the login page)."""
    if request.method == "GET":
        return request.full_path.rstrip("?")
    try:
        current_app.url_map.bind("").match(request.path, method="GET")
    except HTTPException:
        return url_for("login.login")
    return request.path


def _page_language() -> dict[str, Any]:
    here = _here() if request else "/"
    return {
        "page_lang": str(get_locale() or DEFAULT),
        "languages": LANGUAGES,
        "here": here,
    }


def register(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS)
    Babel(app, locale_selector=select_locale)
    # A {% trans %} block's line breaks are layout, not text: one catalog entry whatever the wrapping.
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    app.register_blueprint(blueprint)
    app.context_processor(_page_language)
    app.jinja_env.filters["translate"] = translate
    # Answers differ by language: a shared cache must keep them apart.
    app.after_request(_vary)


def _vary(response: Response) -> Response:
    if response.mimetype == "text/html":
        response.vary.add("Accept-Language")
        response.vary.add("Cookie")
    return response
