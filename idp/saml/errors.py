"""Why the IdP refuses a SAML message: one exception that carries what the user may read."""

from typing import Any


class SamlError(Exception):
    """A refused request. ``message`` is shown on the error page, so it names the problem and what to do
    about it, never internals; ``detail`` goes only to the log.

    ``message`` is English (the log and SAML status messages keep it so); the page translates ``text``, a
    catalog entry marked with ``N_``, and fills in ``params`` afterwards.
    """

    def __init__(
        self, message: str, *, status: int = 400, detail: str = "", params: dict[str, Any] | None = None
    ) -> None:
        self.text = message
        self.params = params or {}
        self.message = message % self.params if self.params else message
        super().__init__(self.message)
        self.status = status
        self.detail = detail
