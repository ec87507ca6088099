"""Redis behind Sentinel: ``redis+sentinel://[[user]:password@]host:port[,host:port...]/<service>[/<db>]``.

The hosts are Sentinels, ``<service>`` the name they monitor (``sentinel monitor <service> ...``), ``<db>``
the database number (0 unless given). The password in the user part is the Redis servers' own; Sentinels
that require one of theirs get it from the query, ``?sentinel_password=...``.

redis-py asks the Sentinels where the master is whenever it opens a connection, and drops a connection to
a server that has become a replica, so after a failover the next command (and a pub/sub subscription,
when it reconnects) reaches the new master: no restart of ours. The rate limits (``limits``) use its
Sentinel storage, which is built on the same redis-py class, with reads from the master only: counts
read from a replica that lags would let requests through twice.
"""

from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qs, unquote

import redis
from redis.sentinel import Sentinel

from nextauth_core.digits import only_digits

SCHEME = "redis+sentinel"
DEFAULT_PORT = 26379


@dataclass(frozen=True)
class SentinelURI:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)


def is_sentinel(uri: str | None) -> bool:
    return bool(uri) and str(uri).lower().startswith(SCHEME + "://")


def _host_port(item: str) -> tuple[str, int]:
    host, colon, port = item.rpartition(":") if not item.endswith("]") else (item, "", "")
    if not colon:
        host, port = item, str(DEFAULT_PORT)
    host = host.strip("[]")
    if not host or not only_digits(port) or not 1 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT for each Sentinel, got {item!r}")
    return host, int(port)


def parse(uri: str) -> SentinelURI:
    """The parts of a ``redis+sentinel://`` URI; ValueError (never showing the password) if malformed."""
    scheme, sep, rest = uri.partition("://")
    if scheme.lower() != SCHEME or not sep:
        raise ValueError(f"expected a {SCHEME}:// URI")
    rest, _, query = rest.partition("?")
    authority, _, path = rest.partition("/")
    userinfo, at, hosts = authority.rpartition("@")
    if not at:
        userinfo, hosts = "", authority
    username, colon, password = userinfo.partition(":")
    parts = [part for part in path.split("/") if part]
    if not 1 <= len(parts) <= 2 or (len(parts) == 2 and not only_digits(parts[1])):
        raise ValueError(f"expected {SCHEME}://HOST:PORT[,HOST:PORT...]/SERVICE[/DB]")
    options = parse_qs(query)
    unknown = set(options) - {"sentinel_password"}
    if unknown:
        raise ValueError(f"unknown option {sorted(unknown)[0]!r} (only sentinel_password)")
    sentinel_password = options.get("sentinel_password", [None])[-1]
    return SentinelURI(
        sentinels=tuple(_host_port(item.strip()) for item in hosts.split(",") if item.strip())
        or (("localhost", DEFAULT_PORT),),
        service=unquote(parts[0]),
        db=int(parts[1]) if len(parts) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) if colon else None,
        sentinel_password=sentinel_password,
    )


def master_client(uri: str, *, connect_timeout: float, socket_timeout: float, **options: Any) -> redis.Redis:
    """A client that always talks to the service's current master."""
    where = parse(uri)
    sentinel = Sentinel(
        list(where.sentinels),
        sentinel_kwargs={
            "password": where.sentinel_password,
            "socket_connect_timeout": connect_timeout,
            "socket_timeout": socket_timeout,
        },
    )
    return cast(
        redis.Redis,
        sentinel.master_for(
            where.service,
            db=where.db,
            username=where.username,
            password=where.password,
            socket_connect_timeout=connect_timeout,
            socket_timeout=socket_timeout,
            **options,
        ),
    )


def limits_storage(uri: str, *, key_prefix: str, connect_timeout: float, socket_timeout: float) -> Any:
    """The ``limits`` storage for rate counts behind Sentinel."""
    from limits.storage import RedisSentinelStorage

    where = parse(uri)
    hosts = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in where.sentinels)
    sentinel_options: dict[str, float | str | bool] = {
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": socket_timeout,
    }
    auth: dict[str, Any] = {}
    if where.sentinel_password is not None:
        sentinel_options["password"] = where.sentinel_password
    if where.username:
        auth["username"] = where.username
    if where.password is not None:
        auth["password"] = where.password
    return RedisSentinelStorage(
        f"{SCHEME}://{hosts}/{where.service}",
        use_replicas=False,
        key_prefix=key_prefix,
        # After the servers' password, which limits would otherwise send to the Sentinels too.
        sentinel_kwargs={"password": "", **sentinel_options} if where.password else sentinel_options,
        db=where.db,
        socket_connect_timeout=connect_timeout,
        socket_timeout=socket_timeout,
        **auth,
    )
