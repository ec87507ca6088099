"""Branding of the IdP's pages: a name, a logo, an accent colour per palette, and a help link
("Lost your phone?"), from settings (``NEXTAUTH_IDP_BRAND_*``, ``NEXTAUTH_IDP_HELP_*``).

The pages allow no inline styles (CSP ``style-src 'self'``), so colours arrive as a small stylesheet of
their own (``/brand.css``), and the logo is served by the IdP itself (``/brand/logo``): no page loads
anything from another origin. A colour that would make buttons or links hard to read is refused at start:
the accessibility the default palette has (WCAG AA, 4.5:1) is not the operator's to lose by accident.
"""

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, current_app, request

from authserver.config import ConfigError

# The grounds the accent must stand out from, and the text on it (templates/static/nextauth.css).
LIGHT_CARD, LIGHT_ON_ACCENT = "#ffffff", "#ffffff"
DARK_CARD, DARK_ON_ACCENT = "#1a1f27", "#0b1a33"
MIN_CONTRAST = 4.5
MAX_LOGO_BYTES = 256 * 1024
LOGO_TYPES = {b"\x89PNG\r\n\x1a\n": "image/png", b"<svg": "image/svg+xml", b"<?xml": "image/svg+xml"}
_COLOUR = re.compile(r"^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
EXTENSION = "nextauth_idp_branding"

blueprint = Blueprint("branding", __name__)


@dataclass(frozen=True)
class Branding:
    name: str = "nextAuth"
    logo: bytes | None = None
    logo_type: str | None = None
    colour: str | None = None  # light palette accent, #rrggbb
    colour_dark: str | None = None
    help_url: str | None = None
    help_text: str | None = None  # None: the translated "Lost your phone?"

    @property
    def stylesheet(self) -> str | None:
        rules = []
        if self.colour:
            rules.append(f":root {{ --accent: {self.colour}; --link: {self.colour}; }}")
        if self.colour_dark:
            rules.append(
                "@media (prefers-color-scheme: dark) {"
                f" :root {{ --accent: {self.colour_dark}; --link: {self.colour_dark}; }} }}"
            )
        return "\n".join(rules) + "\n" if rules else None

    @property
    def version(self) -> str:
        """Changes with the logo and colours, so browsers fetch them again after a change."""
        digest = hashlib.sha256((self.stylesheet or "").encode() + (self.logo or b""))
        return digest.hexdigest()[:12]

    def template_values(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "logo": self.logo is not None,
            "stylesheet": self.stylesheet is not None,
            "version": self.version,
            "help_url": self.help_url,
            "help_text": self.help_text,
        }


def _luminance(colour: str) -> float:
    digits = colour[1:]
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    channels = []
    for i in (0, 2, 4):
        c = int(digits[i : i + 2], 16) / 255
        channels.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    r, g, b = channels
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """The WCAG 2.1 contrast ratio of two sRGB colours (1 to 21)."""
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _colour(name: str, value: str | None, card: str, on_accent: str) -> str | None:
    if value is None or not value.strip():
        return None
    value = value.strip()
    if not _COLOUR.match(value):
        raise ConfigError(f"{name}: expected a colour as #rrggbb, got {value!r}")
    worst = min(contrast(value, card), contrast(value, on_accent))
    if worst < MIN_CONTRAST:
        raise ConfigError(
            f"{name}: {value} has a contrast of {worst:.1f}:1 with the page ({card}) or the text on buttons"
            f" ({on_accent}); at least {MIN_CONTRAST}:1 is needed to stay readable (WCAG AA)"
        )
    return value.lower()


def _logo(name: str, path: str | None) -> tuple[bytes | None, str | None]:
    if not path:
        return None, None
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from exc
    if len(data) > MAX_LOGO_BYTES:
        raise ConfigError(f"{name}: {path} is over {MAX_LOGO_BYTES // 1024} KiB")
    head = data.lstrip()[:8]
    for magic, media in LOGO_TYPES.items():
        if head.startswith(magic):
            return data, media
    raise ConfigError(f"{name}: {path} is neither a PNG nor an SVG file")


def load_branding(get: Any) -> Branding:
    """``get(flag)``: the IdP's setting reader (``idp.server.load_settings``)."""
    name = (get("BRAND_NAME") or "nextAuth").strip()
    if not 1 <= len(name) <= 60 or not name.isprintable():
        raise ConfigError("NEXTAUTH_IDP_BRAND_NAME: 1 to 60 printable characters")
    help_url = (get("HELP_URL") or "").strip() or None
    if help_url is not None and not (
        help_url.startswith(("https://", "http://", "/", "mailto:"))
        and not help_url.startswith("//")
        and help_url.isprintable()
        and len(help_url) <= 500
    ):
        raise ConfigError("NEXTAUTH_IDP_HELP_URL: an https://, http:// or mailto: URL, or a path on the IdP")
    help_text = (get("HELP_TEXT") or "").strip() or None
    if help_text is not None and (len(help_text) > 80 or not help_text.isprintable()):
        raise ConfigError("NEXTAUTH_IDP_HELP_TEXT: at most 80 printable characters")
    logo, logo_type = _logo("NEXTAUTH_IDP_BRAND_LOGO", get("BRAND_LOGO"))
    return Branding(
        name=name,
        logo=logo,
        logo_type=logo_type,
        colour=_colour("NEXTAUTH_IDP_BRAND_COLOR", get("BRAND_COLOR"), LIGHT_CARD, LIGHT_ON_ACCENT),
        colour_dark=_colour(
            "NEXTAUTH_IDP_BRAND_COLOR_DARK", get("BRAND_COLOR_DARK"), DARK_CARD, DARK_ON_ACCENT
        ),
        help_url=help_url,
        help_text=help_text,
    )


def branding() -> Branding:
    return current_app.extensions.get(EXTENSION) or Branding()


def register(app: Any, brand: Branding) -> None:
    app.extensions[EXTENSION] = brand
    app.register_blueprint(blueprint)

    @app.context_processor
    def brand_values() -> dict[str, Any]:
        return {"brand": brand.template_values()}


def _cached(response: Response) -> Response:
    # Versioned URLs (?v=...): safe to keep for a day.
    response.headers["Cache-Control"] = "public, max-age=86400" if request.args.get("v") else "no-cache"
    return response


@blueprint.get("/brand.css")
def stylesheet() -> Response:
    css = branding().stylesheet
    if css is None:
        abort(404)
    return _cached(Response(css, mimetype="text/css"))


@blueprint.get("/brand/logo")
def logo() -> Response:
    brand = branding()
    if brand.logo is None:
        abort(404)
    response = Response(brand.logo, mimetype=brand.logo_type)
    # An SVG opened on its own must not run anything or load anything.
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    return _cached(response)
