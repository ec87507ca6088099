"""Requests whose URL is too long: the IdP's own error page instead of gevent's bare 414.

gevent's WSGI server reads at most 8 KiB of a request line (``gevent.pywsgi.MAX_REQUEST_LINE``, the same
bound as Apache's ``LimitRequestLine``) and answers anything longer with an empty 414 before the
application sees it. A browser lands there when an SP sends an AuthnRequest with the HTTP-Redirect binding
that does not fit in a URL, and the user would see a blank page. This handler reads such a line to its end
(up to ``MAX_DISCARDED`` more bytes, so nothing unread is left to reset the connection), and hands the
application a short request for ``TOO_LONG_PATH`` instead, which answers the styled page, with status 414,
the usual headers, and the connection closed.
"""

from typing import Any

from flask import Flask, render_template, request
from flask_babel import gettext
from gevent import pywsgi

from authserver.transport.wsgi import NoDelayHandler
from idp.i18n import N_

MAX_REQUEST_LINE = pywsgi.MAX_REQUEST_LINE
MAX_DISCARDED = 1024 * 1024  # browsers send URLs up to about 2 MB; past this the connection just closes
TOO_LONG_PATH = "/error/url-too-long"

GENERAL = N_(
    "This link is too long for the IdP (it accepts {limit} KiB). Go back to the application you came from "
    "and try again; if it keeps happening, tell the application's administrator."
)
SAML = N_(
    "The application sent a login or logout request that is too long for a link (the IdP accepts {limit} "
    "KiB). Go back to the application and try again. Its administrator can fix this by sending requests "
    "to the IdP with the HTTP-POST binding, or by making them smaller."
)


class IdpHandler(NoDelayHandler):
    def read_requestline(self) -> str:
        line: bytes = self.rfile.readline(MAX_REQUEST_LINE)
        if len(line) < MAX_REQUEST_LINE:
            return line.decode("latin-1")
        if not line.endswith(b"\n") and not self._discard_rest_of_line():
            return ""  # no end in sight: gevent closes the connection
        target = line.split(b" ", 2)[1] if line.count(b" ") else b""
        topic = "saml" if target.startswith(b"/saml/") else "general"
        # HTTP/1.0: the connection closes after the answer, so nothing else is read from it.
        return f"GET {TOO_LONG_PATH}?about={topic} HTTP/1.0\r\n"

    def _discard_rest_of_line(self) -> bool:
        discarded = 0
        while discarded < MAX_DISCARDED:
            chunk: bytes = self.rfile.readline(MAX_REQUEST_LINE)
            if not chunk:
                return False
            discarded += len(chunk)
            if chunk.endswith(b"\n"):
                return True
        return False


def url_too_long() -> Any:
    template = SAML if request.args.get("about") == "saml" else GENERAL
    message = gettext(template).format(limit=MAX_REQUEST_LINE // 1024)
    page = render_template("error.html", message=message)
    return page, 414, {"Connection": "close", "Cache-Control": "no-store"}


def register(app: Flask) -> None:
    app.add_url_rule(TOO_LONG_PATH, "url_too_long", url_too_long, methods=["GET"])
