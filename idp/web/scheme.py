"""The IdP's scheme is its public URL's, not the one of the connection that reached it.

In production TLS ends at a proxy and the IdP is spoken to in plain HTTP; every URL the IdP writes already
comes from NEXTAUTH_IDP_PUBLIC_URL, but Authlib checks the scheme of the request itself and refuses OAuth
over "http" (RFC 6749 3.1). With an https:// public URL the operator has said a TLS proxy stands in front, so
requests are marked https here: from configuration, never from a header a client could send.
"""

from collections.abc import Callable, Iterable
from typing import Any

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class PublicScheme:
    def __init__(self, app: WsgiApp, scheme: str) -> None:
        self._app = app
        self._scheme = scheme

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        environ["wsgi.url_scheme"] = self._scheme
        return self._app(environ, start_response)
