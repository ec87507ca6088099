"""How an authorization response reaches the client: the issuer added to it (RFC 9207), then delivered in
the response mode the client asked for (OAuth 2.0 Multiple Response Types 2.1, OAuth 2.0 Form Post
Response Mode).

Authlib builds every authorization response, success or error, as a redirect with its parameters in the
query of the redirect URI. This module takes that redirect apart again and delivers the same parameters
as the client asked: in the query (the default for ``code``), in the fragment, or as an auto-submitted
form POSTed to the redirect URI. A mode we do not speak is refused before anything else happens.
"""

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from authlib.oauth2.rfc9207 import IssuerParameter
from flask import make_response, render_template

QUERY, FRAGMENT, FORM_POST = "query", "fragment", "form_post"
# Every mode is safe for ``code``, the only response type: the code is useless without its PKCE verifier.
SUPPORTED = (QUERY, FRAGMENT, FORM_POST)


class UnsupportedResponseMode(ValueError):
    """The request names a response mode we do not deliver."""


def requested_mode(args: Any) -> str:
    """The response mode of an authorization request: ``query`` unless it names a supported other."""
    mode = args.get("response_mode") or QUERY
    if mode not in SUPPORTED:
        raise UnsupportedResponseMode(mode)
    return str(mode)


class Issuer(IssuerParameter):  # type: ignore[misc]
    """RFC 9207: every authorization response names its issuer, so a client talking to several
    authorization servers can tell which one answered (mix-up attacks)."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer

    def get_issuer(self) -> str:
        return self.issuer


def deliver(response: Any, redirect_uri: str, mode: str, issuer: str) -> Any:
    """Add ``iss`` to a redirect back to the client at ``redirect_uri`` and deliver it in ``mode``.
    Anything that is not such a redirect (an error page, a page of ours) passes unchanged."""
    location = response.headers.get("Location", "") if response.status_code == 302 else ""
    if not redirect_uri or not location.startswith(redirect_uri):
        return response
    Issuer(issuer).add_issuer_parameter(None, response)
    location = response.headers["Location"]
    # Authlib appended the response's parameters after those the registered redirect URI has itself.
    own = parse_qsl(urlsplit(redirect_uri).query, keep_blank_values=True)
    params = parse_qsl(urlsplit(location).query, keep_blank_values=True)[len(own) :]
    if mode == FRAGMENT:
        response.headers["Location"] = f"{redirect_uri}#{urlencode(params)}"
    elif mode == FORM_POST:
        page = make_response(render_template("oidc_form_post.html", action=redirect_uri, fields=params))
        page.headers["Cache-Control"] = "no-store"
        page.headers["Pragma"] = "no-cache"
        return page
    return response
