"""Why the IdP refuses a SAML message: one exception that carries what the user may read."""


class SamlError(Exception):
    """A refused request. ``message`` is shown on the error page, so it names the problem and what to do
    about it, never internals; ``detail`` goes only to the log."""

    def __init__(self, message: str, *, status: int = 400, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.detail = detail
