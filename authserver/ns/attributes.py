"""Key/value attributes integrators keep at ns, as in the original product: global, per server,
privileged per server (readable and writable only with ``servers`` held for every server), and per user.

An attribute set is a JSON object of names to text. Names follow ``NAME`` (so they are safe in paths,
logs and the console; lower case, since MariaDB compares text without regard to case and "Plan" and
"plan" would collide there but not elsewhere), values are text of at most ``MAX_VALUE`` characters
without control characters other than tab and newline, and one set holds at most ``MAX_ATTRIBUTES``:
ns is no general store.
Every change is an audit event naming the attributes set and removed, never their values (privileged
ones may be secrets).
"""

import re
import unicodedata
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from authserver.audit import AuditTrail
from authserver.ns.conflicts import retried_on_conflict
from authserver.ns.errors import ServiceError
from authserver.storage.admin_models import Attribute
from authserver.storage.models import utcnow

SCOPES = ("global", "server", "privileged", "user")
NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
MAX_VALUE = 1024
MAX_ATTRIBUTES = 100


def checked(values: Any) -> dict[str, str]:
    """The attributes sent, or a 400 saying which rule the first bad one breaks."""
    if not isinstance(values, dict):
        raise ServiceError(400, "bad_request", "Send the attributes as a JSON object of names to text.")
    if len(values) > MAX_ATTRIBUTES:
        raise ServiceError(400, "bad_request", f"At most {MAX_ATTRIBUTES} attributes.")
    for name, value in values.items():
        if not NAME.match(name):
            raise ServiceError(
                400,
                "bad_request",
                f"Attribute name {name[:70]!r}: a lower-case letter, then up to 63 of a-z 0-9 _ . -",
            )
        if not isinstance(value, str) or len(value) > MAX_VALUE:
            raise ServiceError(
                400, "bad_request", f"Attribute {name}: text of at most {MAX_VALUE} characters."
            )
        if any(unicodedata.category(char) in ("Cc", "Cs") and char not in "\t\n" for char in value):
            raise ServiceError(
                400, "bad_request", f"Attribute {name}: no control characters but tab and newline."
            )
    return values


def valid_name(name: str) -> bool:
    return bool(NAME.match(name))


class Attributes:
    def __init__(self, engine: Engine, audit: AuditTrail) -> None:
        self._engine = engine
        self._audit = audit

    @staticmethod
    def _where(scope: str, server_id: str, user_id: str) -> tuple[Any, ...]:
        assert scope in SCOPES
        return (Attribute.scope == scope, Attribute.server_id == server_id, Attribute.user_id == user_id)

    def get(self, scope: str, server_id: str = "", user_id: str = "") -> dict[str, str]:
        with Session(self._engine) as db:
            rows = db.execute(
                select(Attribute.name, Attribute.value)
                .where(*self._where(scope, server_id, user_id))
                .order_by(Attribute.name)
            )
            return {name: value for name, value in rows}

    def change(
        self,
        scope: str,
        server_id: str,
        user_id: str,
        *,
        put: dict[str, str],
        remove: set[str] | None,
        actor: str,
    ) -> dict[str, str]:
        """Set ``put`` and remove ``remove`` (None: every attribute not in ``put``, a replacement); the
        set as it is afterwards. Removing a name that is not there is 404 ``not_found``."""
        after, changed, removed = retried_on_conflict(
            lambda: self._apply(scope, server_id, user_id, put, remove), "These attributes"
        )
        if changed or removed:
            self._audit.record(
                "attributes.changed",
                subject=user_id or None,
                server_id=server_id or None,
                actor=actor,
                data={"scope": scope, "set": changed or None, "removed": sorted(removed) or None},
            )
        return dict(sorted(after.items()))

    def _apply(
        self, scope: str, server_id: str, user_id: str, put: dict[str, str], remove: set[str] | None
    ) -> tuple[dict[str, str], list[str], set[str]]:
        with Session(self._engine) as db, db.begin():
            rows = {
                row.name: row
                for row in db.scalars(select(Attribute).where(*self._where(scope, server_id, user_id)))
            }
            removed = (set(rows) - set(put)) if remove is None else set(remove)
            missing = removed - set(rows)
            if missing:
                raise ServiceError(404, "not_found", f"No attribute {sorted(missing)[0]!r} here.")
            if len((set(rows) - removed) | set(put)) > MAX_ATTRIBUTES:
                raise ServiceError(400, "bad_request", f"At most {MAX_ATTRIBUTES} attributes.")
            if removed:
                db.execute(
                    delete(Attribute).where(
                        *self._where(scope, server_id, user_id), Attribute.name.in_(sorted(removed))
                    )
                )
            changed = []
            for name, value in sorted(put.items()):
                row = rows.get(name)
                if row is None:
                    db.add(
                        Attribute(scope=scope, server_id=server_id, user_id=user_id, name=name, value=value)
                    )
                elif row.value != value:
                    row.value, row.updated_at = value, utcnow()
                else:
                    continue
                changed.append(name)
            after = {name: row.value for name, row in rows.items() if name not in removed} | put
        return after, changed, removed
