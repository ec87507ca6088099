"""Every audit event type, with its outcome and the fields of its data: the contract sinks and queries
rely on, and the source of the catalogue in docs/operations.md (a test keeps the two together).

Besides these fields, every event's data carries ``outcome`` and, when known, ``server`` (the virtual
server) and ``actor`` (who caused it): the names below never reuse those three.
"""

from dataclasses import dataclass

TYPE_PREFIX = "io.nextauth."


@dataclass(frozen=True)
class EventType:
    component: str
    outcome: str  # success or failure
    fields: tuple[str, ...]


EVENT_TYPES: dict[str, EventType] = {
    # ns: logins (QR and push) and the sessions they make
    "login.succeeded": EventType("ns", "success", ("account", "session", "method", "second_factor")),
    "login.failed": EventType("ns", "failure", ("account", "session", "reason")),
    "session.ended": EventType("ns", "success", ("account", "session", "ended_by")),
    # ns: enrolment and the accounts (one per app instance) it makes
    "enrolment.started": EventType("ns", "success", ("enrolment",)),
    "enrolment.completed": EventType("ns", "success", ("account", "enrolment")),
    "account.blocked": EventType("ns", "success", ("account",)),
    "account.unblocked": EventType("ns", "success", ("account",)),
    "account.deleted": EventType("ns", "success", ("account",)),
    "account.moved": EventType("ns", "success", ("account", "from_user")),
    # ns: administration through the REST API and the command line
    "server.created": EventType("ns", "success", ("name",)),
    "server.updated": EventType("ns", "success", ("changed",)),
    "apikey.created": EventType("ns", "success", ("key", "name", "roles")),
    "apikey.revoked": EventType("ns", "success", ("key", "name")),
    "apikey.refused": EventType("ns", "failure", ("client",)),
    "clientcert.created": EventType("ns", "success", ("certificate", "name", "roles", "sha256")),
    "clientcert.revoked": EventType("ns", "success", ("certificate", "name", "sha256")),
    "permission.granted": EventType("ns", "success", ("principal", "name", "roles")),
    "permission.revoked": EventType("ns", "success", ("principal", "name", "roles")),
    "attributes.changed": EventType("ns", "success", ("scope", "set", "removed")),
    # idp: administration of the applications that log in through it (console and command line)
    "oidc_client.added": EventType("idp", "success", ("client", "name")),
    "oidc_client.disabled": EventType("idp", "success", ("client",)),
    "oidc_client.enabled": EventType("idp", "success", ("client",)),
    "oidc_client.removed": EventType("idp", "success", ("client",)),
    "saml_sp.added": EventType("idp", "success", ("entity", "replaced")),
    "saml_sp.removed": EventType("idp", "success", ("entity",)),
    # sfs: the second factor
    "pin.wrong": EventType("sfs", "failure", ("device", "attempts_left")),
    "app.locked": EventType("sfs", "failure", ("device", "max_attempts")),
}

# Why a login failed (login.failed's reason): the phone declined, the PIN was wrong or the app locked,
# the code had expired or the login took too long, the account is blocked, the number did not match,
# or the signature or second factor was not accepted.
LOGIN_FAILURE_REASONS = (
    "declined",
    "wrong_pin",
    "locked",
    "expired",
    "timeout",
    "blocked",
    "wrong_number",
    "bad_signature",
    "second_factor",
    "second_factor_device_mismatch",
    "reenrol_required",
)
