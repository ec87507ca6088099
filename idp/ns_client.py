"""The IdP's client for the ns REST API: the IdP is one more integrated application of ns.

Connections are kept open and reused (an OIDC authorize request, a login page and its completion each ask
ns something; a new TCP connection per call cost more than the call). The pool belongs to the process that
made it: a worker forked after a call starts its own.
"""

import json
import os
import ssl
import threading
import urllib.parse
from typing import Any

import httpx

from nextauth_core import jsonlimits

MAX_ANSWER_BYTES = 4 * 1024 * 1024
POOL_CONNECTIONS = 32


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
        self._client: httpx.Client | None = None
        self._client_pid = 0
        self._client_lock = threading.Lock()

    def _http(self) -> httpx.Client:
        pid = os.getpid()
        client = self._client
        if client is not None and self._client_pid == pid:
            return client
        with self._client_lock:
            if self._client is None or self._client_pid != pid:
                # The system's trust store, as urllib used: an operator's internal CA keeps working.
                self._client = httpx.Client(
                    verify=ssl.create_default_context(),
                    limits=httpx.Limits(max_connections=POOL_CONNECTIONS, keepalive_expiry=30.0),
                    follow_redirects=False,
                )
                self._client_pid = pid
            return self._client

    def close(self) -> None:
        if self._client is not None and self._client_pid == os.getpid():
            self._client.close()
        self._client = None

    def _call(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        server = f"/v1/servers/{urllib.parse.quote(self.server_id, safe='')}"
        return self._request(method, server + path, headers, body, timeout=timeout)

    def _request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        try:
            response = self._http().request(
                method,
                f"{self._base}{path}",
                content=data,
                headers={
                    "X-apikey": self._api_key,
                    **({"Content-Type": "application/json"} if data else {}),
                    **(headers or {}),
                },
                timeout=timeout or self._timeout,
            )
        except httpx.HTTPError as exc:  # refused, reset, timed out, TLS: ns is not there for us
            raise NsError(503, "unreachable", "The authentication server cannot be reached.") from exc
        content = response.content[: MAX_ANSWER_BYTES + 1]
        if response.status_code >= 400:
            try:
                detail = jsonlimits.loads(content)
            except ValueError:
                detail = {}
            if not isinstance(detail, dict):
                detail = {}
            raise NsError(response.status_code, detail.get("error", "error"), detail.get("message", ""))
        if len(content) > MAX_ANSWER_BYTES:
            raise NsError(502, "too_large", "The authentication server's answer was too large.")
        return jsonlimits.loads(content)

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

    # -- a person's own phones (the "My account" pages, ``idp.web.account``; sessions are below) ----------

    def user_accounts(self, user_id: str) -> list[dict[str, Any]]:
        """The user's accounts (one per enrolled phone); none when ns knows no account of theirs."""
        try:
            answer = self._call("GET", f"/users/{_segment(user_id)}")
        except NsError as exc:
            if exc.status == 404:
                return []
            raise
        return list(answer.get("accounts", []))

    def create_invite(self, user_id: str, ttl: float | None = None) -> dict[str, Any]:
        """A single-use invite for one more phone of this user: its ``token`` (shown once), ``expires_at``;
        ``ttl`` None: ns's own lifetime (``NEXTAUTH_NS_INVITE_TTL``)."""
        body: dict[str, Any] = {} if ttl is None else {"ttl": ttl}
        return dict(self._call("POST", f"/users/{_segment(user_id)}/invites", body=body))

    def audit_events(
        self, user_id: str, types: list[str], since: str, *, cursor: Any = None, limit: int = 1000
    ) -> Any:
        """One page of ns's audit trail for this user on the IdP's server, oldest first (role ``audit``)."""
        query: dict[str, Any] = {"user": user_id, "server": self.server_id, "type": ",".join(types)}
        query.update(since=since, limit=limit, **({"cursor": cursor} if cursor is not None else {}))
        query_text = urllib.parse.urlencode(query)
        return self._request("GET", f"/v1/audit-events?{query_text}")

    # -- management, for the admin console (``idp.console``); each needs a role the IdP's key may lack --

    def servers(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "/v1/servers").get("servers", []))

    def update_server(self, server_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        return dict(self._request("PATCH", f"/v1/servers/{_segment(server_id)}", body=changes))

    def accounts(self, *, user: str = "", sort: str = "userid", offset: int = 0, limit: int = 50) -> Any:
        query = urllib.parse.urlencode({"user": user, "sort": sort, "offset": offset, "limit": limit})
        return self._call("GET", f"/accounts?{query}")

    def block_account(self, account_id: str, blocked: bool) -> None:
        self._call("POST", f"/accounts/{_segment(account_id)}/{'block' if blocked else 'unblock'}")

    def delete_account(self, account_id: str) -> None:
        self._call("DELETE", f"/accounts/{_segment(account_id)}")

    def user_sessions(self, user_id: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/users/{_segment(user_id)}/sessions").get("sessions", []))

    def end_session(self, hsid: str) -> bool:
        try:
            return bool(self._call("DELETE", f"/sessions/{_segment(hsid)}").get("loggedout"))
        except NsError as exc:
            if exc.status == 404:  # ended meanwhile: what the caller wanted
                return False
            raise

    def api_keys(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "/v1/apikeys").get("apikeys", []))

    def create_api_key(self, name: str, roles: list[str], server: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "roles": roles}
        if server:
            body["server"] = server
        return dict(self._request("POST", "/v1/apikeys", body=body))

    def revoke_api_key(self, key_id: int) -> None:
        self._request("DELETE", f"/v1/apikeys/{int(key_id)}")

    def client_certificates(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "/v1/clientcerts").get("clientcerts", []))

    def add_client_certificate(
        self, name: str, roles: list[str], server: str | None, certificate_pem: str
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "roles": roles, "certificate": certificate_pem}
        if server:
            body["server"] = server
        return dict(self._request("POST", "/v1/clientcerts", body=body))

    def revoke_client_certificate(self, certificate_id: int) -> None:
        self._request("DELETE", f"/v1/clientcerts/{int(certificate_id)}")

    def audit_page(self, query: dict[str, str]) -> dict[str, Any]:
        """A page of the audit trail (``GET /v1/audit-events``; the key needs ``audit`` or ``root``)."""
        return dict(self._request("GET", "/v1/audit-events?" + urllib.parse.urlencode(query)))


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")
