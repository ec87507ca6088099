"""Attributes: global (``/attributes``), per server (``/servers/{sid}/attributes``), privileged per
server (``/servers/{sid}/privilegedattributes``) and per user (``/servers/{sid}/users/{uid}/attributes``).
Each set answers ``GET`` (the object), ``POST`` (replace it), ``PUT`` (merge into it), ``DELETE`` (empty
it) and ``DELETE …/{key}`` (one attribute), as in the original product's v2.2 API.

Who may: global ones are read with ``servers`` and written with ``servers`` held for every server; a
server's with ``servers`` there; privileged ones only with ``servers`` held for every server, reading
included, so a server's own administrators never see them; a user's are read with ``sessions`` or
``users`` and written with ``users``.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, g, jsonify, request

from authserver.ns.attributes import checked, valid_name
from authserver.ns.errors import ServiceError
from authserver.ns.rest.context import services
from authserver.ns.rest.requests import body, requires
from authserver.ns.servers import VirtualServer
from nextauth_core import userids

blueprint = Blueprint("attributes", __name__)


@dataclass(frozen=True)
class Scope:
    name: str
    path: str
    read: tuple[str, ...]
    write: tuple[str, ...]
    read_global: bool
    write_global: bool


SCOPES = (
    Scope("global", "/attributes", ("servers",), ("servers",), False, True),
    Scope("server", "/servers/<sid>/attributes", ("servers",), ("servers",), False, False),
    Scope("privileged", "/servers/<sid>/privilegedattributes", ("servers",), ("servers",), True, True),
    Scope("user", "/servers/<sid>/users/<uid>/attributes", ("sessions", "users"), ("users",), False, False),
)


def _owner(sid: VirtualServer | None, uid: str | None) -> tuple[str, str]:
    if uid is None:
        return (sid.id if sid is not None else ""), ""
    try:
        user = userids.normalise(uid)
    except userids.UserIdError as exc:
        raise ServiceError(404, "not_found", "No such user id (see the user-id rule in the docs).") from exc
    assert sid is not None
    return sid.id, user


def _sent() -> dict[str, str]:
    """The attributes in the body; a missing body is refused, or a bare POST would empty the set."""
    if not request.content_length:
        raise ServiceError(400, "bad_request", "Send the attributes as a JSON object of names to text.")
    return checked(body())


def _views(scope: Scope) -> None:
    def read(sid: VirtualServer | None = None, uid: str | None = None) -> Any:
        return jsonify(services().attributes.get(scope.name, *_owner(sid, uid)))

    def change(
        put: dict[str, str], remove: set[str] | None, sid: VirtualServer | None, uid: str | None
    ) -> Any:
        server_id, user_id = _owner(sid, uid)
        changed = services().attributes.change(
            scope.name, server_id, user_id, put=put, remove=remove, actor=g.grant.name
        )
        return jsonify(changed)

    def replace(sid: VirtualServer | None = None, uid: str | None = None) -> Any:
        return change(_sent(), None, sid, uid)

    def merge(sid: VirtualServer | None = None, uid: str | None = None) -> Any:
        return change(_sent(), set(), sid, uid)

    def clear(sid: VirtualServer | None = None, uid: str | None = None) -> Any:
        return change({}, None, sid, uid)

    def remove_one(key: str, sid: VirtualServer | None = None, uid: str | None = None) -> Any:
        if not valid_name(key):
            raise ServiceError(404, "not_found", "No such attribute here.")
        return change({}, {key}, sid, uid)

    routes: list[tuple[str, str, Callable[..., Any], bool]] = [
        ("GET", "", read, False),
        ("POST", "", replace, True),
        ("PUT", "", merge, True),
        ("DELETE", "", clear, True),
        ("DELETE", "/<key>", remove_one, True),
    ]
    for method, tail, view, writes in routes:
        roles, whole_ns = (scope.write, scope.write_global) if writes else (scope.read, scope.read_global)
        endpoint = f"{scope.name}_{view.__name__}"
        blueprint.add_url_rule(
            scope.path + tail,
            endpoint,
            requires(*roles, global_operation=whole_ns)(view),
            methods=[method],
        )


for _scope in SCOPES:
    _views(_scope)
