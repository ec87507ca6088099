"""What the login pages share, kept on the Flask app beside the IdP's services (``idp.context``)."""

from dataclasses import dataclass

from flask import current_app

from idp.login_binding import LoginBindings

EXTENSION = "nextauth_idp_web"


@dataclass(frozen=True)
class WebState:
    bindings: LoginBindings  # which login page may complete which login (``idp.login_binding``)
    websocket_url: str  # ns's browser WebSocket: the login page waits on it, the CSP lets it connect
    session_seconds: int  # the IdP session's lifetime, and the pre-login cookie's


def web_state() -> WebState:
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]
