"""PostgreSQL URIs naming several hosts, as libpq writes them:
``postgresql://user:password@db1:5432,db2:5432/nextauth?target_session_attrs=read-write``.

SQLAlchemy's URL parser takes one host and port; its psycopg dialect takes several as repeated ``host``
query parameters instead. This turns the first form into the second, keeping every other query parameter
(``target_session_attrs=read-write`` makes libpq try the hosts in turn and keep the one that accepts
writes, i.e. the primary after a failover; ``primary`` and ``any`` work too). The URI, password included,
is otherwise left as written.
"""

from urllib.parse import quote

POSTGRES_SCHEMES = ("postgres", "postgresql", "postgresql+psycopg")


def rewrite(uri: str) -> str:
    """``uri`` with its host list moved into ``host`` parameters, or ``uri`` itself when it has one host."""
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme.lower() not in POSTGRES_SCHEMES:
        return uri
    authority, _, tail = rest.partition("/")
    userinfo, at, hosts = authority.rpartition("@")
    if not at:
        userinfo, hosts = "", authority
    if "," not in hosts:
        return uri
    path, _, query = tail.partition("?")
    params = [f"host={quote(host.strip(), safe=':[]')}" for host in hosts.split(",") if host.strip()]
    if query:
        params.append(query)
    return f"{scheme}://{userinfo}{at}/{path}?{'&'.join(params)}"
