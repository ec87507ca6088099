"""IdP administration in the audit trail: OIDC clients and SAML service providers added, disabled,
enabled or removed, from the console or the command line.

The events are stored in the IdP's own database (``audit_events``, component ``idp``; when ns shares that
database, ns's REST API and ``nextauth audit list`` show them too) and sent to the webhook sinks of
``NEXTAUTH_IDP_AUDIT_WEBHOOK_*``, or the shared ``NEXTAUTH_AUDIT_*``, like ns's events.
"""

import os
from typing import Any

from sqlalchemy import Engine

DRAIN_SECONDS = 10.0  # a command waits this long at most for its events to reach the sinks


def console_actor(user_id: str) -> str:
    """Who acted, as the events name a console operator: their user id, marked as the console's."""
    return f"{user_id} (console)"


def record_from_command_line(engine: Engine, kind: str, data: dict[str, Any]) -> None:
    """One event of a ``nextauth`` command, delivered to the sinks before the command exits (a running
    IdP's sinks never see it). The trail's modules load here: listing clients need not pay for them."""
    from authserver.audit import AuditTrail
    from authserver.audit import settings as audit_settings

    trail = AuditTrail(engine, "idp", sinks=audit_settings.sinks("idp", os.environ))
    trail.start()
    try:
        trail.record(kind, actor="command line", data=data)
    finally:
        trail.drain(DRAIN_SECONDS)
        trail.stop()
