"""Roles granted per server and attribute sets on each database: what the REST contract tests show on
SQLite holds on PostgreSQL and MariaDB too (constraints, cascades, text that is not ASCII)."""

import threading

import pytest
from sqlalchemy import Engine, delete
from sqlalchemy.orm import Session

from authserver.audit import AuditTrail
from authserver.ns.access import AccessControl
from authserver.ns.attributes import Attributes
from authserver.ns.errors import ServiceError
from authserver.ns.permissions import Permissions
from authserver.storage.flow_models import Server


def _servers(engine: Engine, *ids: str) -> None:
    with Session(engine) as db:
        db.add_all(Server(id=server_id, name=server_id.title()) for server_id in ids)
        db.commit()


def test_granted_roles_count_on_their_server_only_and_go_with_it(engine: Engine) -> None:
    _servers(engine, "shop", "bakery")
    trail = AuditTrail(engine, "ns")
    access = AccessControl(engine, "ns", None, trail)
    permissions = Permissions(engine, access, trail)
    key_id, key = access.create_key_with_id("probe", ["audit"])
    roleid = f"apikey-{key_id}"
    changed = permissions.change("shop", roleid, grant={"users", "root"}, revoke=None, actor="test")
    assert changed["roles"] == ["audit", "root", "users"] and changed["granted"] == ["root", "users"]
    grant = access.authenticate(key)
    assert grant is not None
    assert grant.allows("users", "shop") and grant.allows("accounts", "shop")  # root there
    assert not grant.allows("users", "bakery")
    assert not grant.allows("servers", None, global_operation=True)
    assert grant.allows("audit", None, global_operation=True)  # its own role, held everywhere
    assert [entry["roleid"] for entry in permissions.list("shop")] == [roleid]

    limited_id, _ = access.create_key_with_id("bakery-only", ["users"], "bakery")
    for refused in ({"createserver"}, {"audit"}, {"wizard"}):
        with pytest.raises(ServiceError) as bad:
            permissions.change("shop", roleid, grant=refused, revoke=None, actor="test")
        assert bad.value.status == 400
    for unknown in (f"apikey-{limited_id}", "apikey-99999", "clientcert-1", "apikey-x"):
        with pytest.raises(ServiceError) as missing:
            permissions.get("shop", unknown)
        assert missing.value.status == 404

    with Session(engine) as db:
        db.execute(delete(Server).where(Server.id == "shop"))
        db.commit()
    access.forget_cached()
    after = access.authenticate(key)
    assert after is not None and after.granted == frozenset()
    kinds = [event["type"] for event in trail.query(types=["permission.granted", "permission.revoked"])[0]]
    assert kinds == ["io.nextauth.permission.granted"]


def test_attribute_sets_stay_apart_and_keep_their_text(engine: Engine) -> None:
    trail = AuditTrail(engine, "ns")
    attributes = Attributes(engine, trail)
    text = "Zürich ✓ 東京\tline\nline"
    assert attributes.change(
        "user", "shop", "alice", put={"city": text, "plan": "gold"}, remove=None, actor="t"
    ) == {
        "city": text,
        "plan": "gold",
    }
    attributes.change("user", "shop", "bob", put={"plan": "silver"}, remove=None, actor="t")
    attributes.change("server", "shop", "", put={"plan": "tenant"}, remove=None, actor="t")
    attributes.change("privileged", "shop", "", put={"plan": "secret"}, remove=None, actor="t")
    attributes.change("global", "", "", put={"plan": "all"}, remove=None, actor="t")
    assert attributes.get("user", "shop", "alice") == {"city": text, "plan": "gold"}
    assert attributes.get("user", "shop", "bob") == {"plan": "silver"}
    assert attributes.get("server", "shop") == {"plan": "tenant"}
    assert attributes.get("privileged", "shop") == {"plan": "secret"}
    assert attributes.get("global") == {"plan": "all"}
    assert attributes.get("user", "other", "alice") == {}

    merged = attributes.change("user", "shop", "alice", put={"plan": "platinum"}, remove=set(), actor="t")
    assert merged == {"city": text, "plan": "platinum"}
    with pytest.raises(ServiceError) as missing:
        attributes.change("user", "shop", "alice", put={}, remove={"nothing"}, actor="t")
    assert missing.value.status == 404
    attributes.change("server", "shop", "", put={f"a{i}": "v" for i in range(100)}, remove=None, actor="t")
    with pytest.raises(ServiceError) as full:
        attributes.change("server", "shop", "", put={"more": "v"}, remove=set(), actor="t")
    assert full.value.status == 400 and len(attributes.get("server", "shop")) == 100
    assert attributes.change("user", "shop", "alice", put={}, remove=None, actor="t") == {}

    events = trail.query(types=["attributes.changed"], subject="alice")[0]
    assert [(e["data"].get("set"), e["data"].get("removed")) for e in events] == [
        (["city", "plan"], None),
        (["plan"], None),
        (None, ["city", "plan"]),
    ]


def test_the_same_attribute_added_at_once_by_many_requests(engine: Engine) -> None:
    """Each request sees the name missing and inserts it; all but one meet the unique key and run again,
    finding the row: no request fails, and the set holds one value."""
    _servers(engine, "shop")
    attributes = Attributes(engine, AuditTrail(engine, "ns"))
    barrier = threading.Barrier(6)
    failures: list[BaseException] = []

    def add(value: str) -> None:
        barrier.wait()
        try:
            attributes.change("server", "shop", "", put={"plan": value}, remove=set(), actor="test")
        except BaseException as exc:  # every failure is the finding
            failures.append(exc)

    threads = [threading.Thread(target=add, args=(f"v{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert set(attributes.get("server", "shop")) == {"plan"}
    assert attributes.get("server", "shop")["plan"] in {f"v{n}" for n in range(6)}
