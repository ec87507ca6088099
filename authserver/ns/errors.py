"""The one error a ns service raises for its caller to see: an HTTP status, a short code, a sentence.

The REST API answers it as ``{"error": code, "message": message}`` with ``status`` (one handler, in
``authserver.ns.api``); the codes and statuses are part of the documented API (``openapi.json``).
"""


class ServiceError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
