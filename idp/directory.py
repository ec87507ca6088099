"""The IdP's user directory: what applications learn about a user id that ns logs in.

A user id without an entry is still a user: applications get the id (as ``sub`` and username) and nothing
more. Operators fill the directory with ``nextauth user set``.
"""

import functools
import json
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from idp.models import DirectoryUser
from nextauth_core import userids

MAX_GROUPS = 100


@dataclass(frozen=True)
class Profile:
    user_id: str
    name: str | None = None
    email: str | None = None
    email_verified: bool = False
    groups: tuple[str, ...] = field(default_factory=tuple)


def _profile(row: DirectoryUser) -> Profile:
    return Profile(
        user_id=row.user_id,
        name=row.name,
        email=row.email,
        email_verified=row.email_verified,
        groups=tuple(json.loads(row.groups)),
    )


@functools.lru_cache(maxsize=4096)
def _lookup_form(user_id: str) -> str:
    """The canonical form to look an id up by; an id outside the rule as given (it matches nothing put since
    the rule, and still finds an entry stored before it). Remembered: every token a user gets looks the
    same id up again, and the rule's checks cost as much as the rest of the lookup."""
    try:
        return userids.normalise(user_id)
    except userids.UserIdError:
        return user_id


def _check(profile: Profile) -> Profile:
    """The profile, its user id in canonical form (the rule ns applies), or ValueError saying why not."""
    try:
        profile = replace(profile, user_id=userids.normalise(profile.user_id))
    except userids.UserIdError as exc:
        raise ValueError(f"user id: {exc}") from exc
    if profile.email is not None and ("@" not in profile.email or len(profile.email) > 320):
        raise ValueError(f"e-mail {profile.email!r}: not an address")
    if profile.name is not None and len(profile.name) > 200:
        raise ValueError("name: at most 200 characters")
    if len(profile.groups) > MAX_GROUPS:
        raise ValueError(f"groups: at most {MAX_GROUPS}")
    for group in profile.groups:
        if not group or len(group) > 100 or any(c in group for c in ",\r\n"):
            raise ValueError(f"group {group!r}: 1 to 100 characters, no commas or line breaks")
    return profile


class Directory:
    """``cache_seconds``: how long a running IdP may answer from memory (token endpoints read a profile
    per request); the commands use 0."""

    def __init__(self, engine: Engine, *, cache_seconds: float = 0.0) -> None:
        self._engine = engine
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Profile]] = {}

    def get(self, user_id: str) -> Profile:
        user_id = _lookup_form(user_id)
        now = time.monotonic()
        cached = self._cache.get(user_id)
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        with Session(self._engine) as db:
            row = db.get(DirectoryUser, user_id)
            profile = _profile(row) if row is not None else Profile(user_id=user_id)
        if self._cache_seconds > 0:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[user_id] = (now, profile)
        return profile

    def put(self, profile: Profile) -> Profile:
        profile = _check(profile)
        with Session(self._engine) as db, db.begin():
            row = db.get(DirectoryUser, profile.user_id)
            if row is None:
                row = DirectoryUser(user_id=profile.user_id)
                db.add(row)
            row.name = profile.name
            row.email = profile.email
            row.email_verified = profile.email_verified
            row.groups = json.dumps(list(profile.groups))
            row.updated_at = datetime.now(UTC)
        self._cache.pop(profile.user_id, None)
        return profile

    def delete(self, user_id: str) -> bool:
        user_id = _lookup_form(user_id)
        with Session(self._engine) as db, db.begin():
            row = db.get(DirectoryUser, user_id)
            if row is None:
                return False
            db.delete(row)
            return True

    def all(self) -> list[Profile]:
        with Session(self._engine) as db:
            rows = db.scalars(select(DirectoryUser).order_by(DirectoryUser.user_id))
            return [_profile(row) for row in rows]
