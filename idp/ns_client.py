"""The IdP's client for the ns REST API: the IdP is one more integrated application of ns."""

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from nextauth_core import jsonlimits


class NsError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class NsClient:
    def __init__(self, base_url: str, api_key: str, server_id: str, *, timeout: float = 10.0) -> None:
        self._base = base_url.rstrip("/")
        self._api_key = api_key
        self.server_id = server_id
        self._timeout = timeout

    def _call(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - the URL comes from the IdP's configuration
            f"{self._base}/v1/servers/{urllib.parse.quote(self.server_id, safe='')}{path}",
            data=data,
            method=method,
            headers={
                "X-apikey": self._api_key,
                **({"Content-Type": "application/json"} if data else {}),
                **(headers or {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout or self._timeout) as response:  # noqa: S310
                return jsonlimits.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                detail = jsonlimits.loads(exc.read())
            except ValueError:
                detail = {}
            raise NsError(exc.code, detail.get("error", "error"), detail.get("message", "")) from exc
        except OSError as exc:
            raise NsError(503, "unreachable", "The authentication server cannot be reached.") from exc

    def session(self, nonce: str, *, client_ip: str = "", user_agent: str = "") -> dict[str, Any]:
        headers = {"X-nonce": nonce}
        if client_ip:
            headers["X-client-ip"] = client_ip[:64]
        if user_agent:
            headers["X-user-agent"] = user_agent[:256]
        return dict(self._call("GET", "/sessions/", headers))

    def active(self, hsids: list[str]) -> set[str]:
        """Which of these ns sessions are logged in (up to 500 per call)."""
        return set(self._call("POST", "/sessions/active", body={"hsids": hsids}).get("active", []))

    def check(self, timeout: float = 3.0) -> None:
        """Raises ``NsError`` unless ns answers, for this IdP's API key and server, the call the session
        watch (``idp.ns_watch``) makes: for readiness, so a wrong key counts as well as a dead ns."""
        self._call("POST", "/sessions/active", body={"hsids": []}, timeout=timeout)

    def logout(self, nonce: str) -> bool:
        return bool(self._call("POST", "/sessions/logout", {"X-nonce": nonce}).get("loggedout"))

    def provoke_user(
        self,
        user_id: str,
        nonce: str,
        *,
        client_ip: str = "",
        user_agent: str = "",
        context: dict[str, str] | None = None,
        number: int | None = None,
    ) -> dict[str, Any]:
        """A push login request to the user's phones for this browser's session; returns the number the
        person must pick on the phone (``number`` if given). ``context``: who asks, shown on the phone."""
        headers = {"X-nonce": nonce}
        if client_ip:
            headers["X-client-ip"] = client_ip[:64]
        if user_agent:
            headers["X-user-agent"] = user_agent[:256]
        body: dict[str, Any] = {}
        if context:
            body["context"] = context
        if number is not None:
            body["number"] = number
        path = f"/users/{urllib.parse.quote(user_id, safe='')}/provokelogin"
        return dict(self._call("POST", path, headers, body or None))

    def set_context(self, nonce: str, context: dict[str, str] | None) -> None:
        """What the phone shows of who asks, for logins on this nonce's session (QR or push)."""
        self._call("PUT", "/sessions/context", {"X-nonce": nonce}, {"context": context or {}})

    def provoke(self, nonce: str) -> dict[str, Any]:
        return dict(self._call("POST", "/sessions/provokelogin", {"X-nonce": nonce}))

    def invite_status(self, token: str) -> dict[str, Any]:
        """``valid`` (with the user id), ``used``, ``expired`` or ``unknown`` (revoked ones too)."""
        return dict(self._call("POST", "/invites/status", body={"token": token}))

    def redeem_invite(self, token: str) -> dict[str, Any]:
        """Use the invite up; the enrolment it starts, with the server's name and public key."""
        return dict(self._call("POST", "/invites/redeem", body={"token": token}))

    def enrolment(self, enrolment_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/enrolments/{urllib.parse.quote(enrolment_id, safe='')}"))

    def confirm_enrolment(self, enrolment_id: str, code: str) -> dict[str, Any]:
        path = f"/enrolments/{urllib.parse.quote(enrolment_id, safe='')}/confirm"
        return dict(self._call("POST", path, body={"code": code}))

    # -- a person's own accounts and sessions (the "My account" pages, ``idp.web.account``) ---------------

    def user_accounts(self, user_id: str) -> list[dict[str, Any]]:
        """The user's accounts (one per enrolled phone); none when ns knows no account of theirs."""
        try:
            answer = self._call("GET", f"/users/{urllib.parse.quote(user_id, safe='')}")
        except NsError as exc:
            if exc.status == 404:
                return []
            raise
        return list(answer.get("accounts", []))

    def user_sessions(self, user_id: str) -> list[dict[str, Any]]:
        """The user's sessions at ns that have neither ended nor expired."""
        answer = self._call("GET", f"/users/{urllib.parse.quote(user_id, safe='')}/sessions")
        return list(answer.get("sessions", []))

    def end_session(self, hsid: str) -> bool:
        """False when ns has no running session by that id (ended meanwhile)."""
        try:
            self._call("DELETE", f"/sessions/{urllib.parse.quote(hsid, safe='')}")
        except NsError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def delete_account(self, account_id: str) -> None:
        self._call("DELETE", f"/accounts/{urllib.parse.quote(account_id, safe='')}")

    def create_invite(self, user_id: str, ttl: int) -> dict[str, Any]:
        """A single-use invite for one more phone of this user; its token is shown once."""
        path = f"/users/{urllib.parse.quote(user_id, safe='')}/invites"
        return dict(self._call("POST", path, body={"ttl": ttl}))
