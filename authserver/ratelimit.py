"""Rate limits shared by ns, the SFS, the MC and the IdP: who may ask how often, and where that is counted.

Counting is the ``limits`` library's moving window: on Redis when the component's store is Redis (every
instance behind a load balancer sees the same counts), in the process otherwise. A limit is written in
that library's notation (``10/minute``, ``5 per 5 minutes``, several joined by ``;``) or ``off``.

Clients are keyed by IP address: the direct peer's, or the address a trusted proxy put in
``X-Forwarded-For`` when (and only when) the direct peer is one of the trusted proxies. IPv6 clients count
per /64, as one host usually holds a whole /64. A refusal carries the seconds until the window lets the
next request through, is counted in ``nextauth_rate_limited_total`` and logged at WARNING once per
client and limit while the refusal lasts, so that a flood does not flood the log as well.
"""

import functools
import ipaddress
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter
from prometheus_client import Counter

from authserver.config import ConfigError, Network, parse_networks, read_setting
from authserver.storage import sentinel
from authserver.storage.kv import DEFAULT_PREFIX

log = logging.getLogger("nextauth.ratelimit")
security_log = logging.getLogger("nextauth.security")  # refusals: where operators watch for attacks

REFUSED = Counter("nextauth_rate_limited_total", "Requests refused by a rate limit", ["component", "limit"])
_LOGGED_MAX = 10_000


class RateLimited(Exception):
    """A request over a limit; ``retry_after`` whole seconds until one more would pass."""

    def __init__(self, limit: str, retry_after: int) -> None:
        super().__init__(f"rate limit {limit} reached; retry after {retry_after} s")
        self.limit = limit
        self.retry_after = retry_after


@dataclass(frozen=True)
class Rule:
    """A named limit: ``name`` appears in metrics, logs and store keys; no ``items`` means off."""

    name: str
    items: tuple[RateLimitItem, ...]

    @property
    def enabled(self) -> bool:
        return bool(self.items)


def parse_rule(name: str, variable: str, value: str) -> Rule:
    if value.strip().lower() == "off":
        return Rule(name, ())
    try:
        items = tuple(parse_many(value))
    except ValueError as exc:
        raise ConfigError(
            f"{variable}: expected a limit such as 10/minute or '5 per 5 minutes' (several joined by ;), "
            f"or off; got {value!r}"
        ) from exc
    if not items:
        raise ConfigError(f"{variable}: expected a limit such as 10/minute, or off")
    return Rule(name, items)


def rule_setting(
    environ: Mapping[str, str], variable: str, name: str, default: str, *, fallback: str | None = None
) -> Rule:
    """The rule in ``variable`` (or ``fallback``), else ``default``."""
    value = read_setting(variable, environ)
    if value is None and fallback is not None:
        value = read_setting(fallback, environ)
        variable = fallback if value is not None else variable
    return parse_rule(name, variable, value if value is not None else default)


def trusted_proxies_setting(environ: Mapping[str, str], variable: str) -> tuple[Network, ...]:
    """``variable`` (a component's own), else the shared ``NEXTAUTH_TRUSTED_PROXIES``."""
    value = read_setting(variable, environ)
    if value is None:
        variable = "NEXTAUTH_TRUSTED_PROXIES"
        value = read_setting(variable, environ)
    return parse_networks(variable, value)


# Every request parses its peer's address, mostly the same few (a proxy's, a load balancer's): remembered,
# bounded, since the text may come from a client's X-Forwarded-For.
@functools.lru_cache(maxsize=4096)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, trusted: Sequence[Network]) -> bool:
    return any(address.version == network.version and address in network for network in trusted)


def client_ip(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy; then the right-most address
    in X-Forwarded-For that is not itself a trusted proxy. A client can write anything at the left of
    that header, so reading from the right up to the first untrusted hop is the only reading it cannot
    forge."""
    direct = _address(peer or "")
    if direct is None:
        return peer or ""
    if not forwarded_for or not trusted or not _trusted(direct, trusted):
        return str(direct)
    hops = [hop for hop in forwarded_for.split(",") if hop.strip()]
    found = direct
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break  # garbage from the client side: the last good hop is the client
        found = address
        if not _trusted(address, trusted):
            break
    return str(found)


def client_key(ip: str) -> str:
    """What a per-client limit counts: the address, or its /64 for IPv6."""
    address = _address(ip)
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address) if address is not None else ip[:64]


def open_storage(kv_uri: str | None, *, prefix: str = DEFAULT_PREFIX) -> Storage:
    if sentinel.is_sentinel(kv_uri):
        assert kv_uri is not None
        return cast(
            Storage,
            sentinel.limits_storage(
                kv_uri, key_prefix=f"{prefix}limits", connect_timeout=1.0, socket_timeout=2.0
            ),
        )
    if kv_uri and kv_uri.split("://", 1)[0].lower() in ("redis", "rediss", "unix"):
        uri = kv_uri if not kv_uri.startswith("unix://") else "redis+" + kv_uri
        return RedisStorage(uri, key_prefix=f"{prefix}limits", socket_connect_timeout=1.0, socket_timeout=2.0)
    return MemoryStorage()


class RateLimiter:
    """Counts and refuses for one component (``ns``, ``sfs``, ``mc``, ``idp``).

    If the store cannot be reached the request passes and a warning is logged: the component cannot do
    much without its store anyway, and a limit must not turn a store hiccup into refused logins."""

    def __init__(self, component: str, storage: Storage) -> None:
        self.component = component
        self._limiter = MovingWindowRateLimiter(storage)
        self._logged: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_store(cls, component: str, kv_uri: str | None, *, prefix: str = DEFAULT_PREFIX) -> "RateLimiter":
        return cls(component, open_storage(kv_uri, prefix=prefix))

    def hit(self, rule: Rule, key: str, *, client: str = "", what: str = "") -> None:
        """Count one request of ``key`` against ``rule``; raises ``RateLimited`` when over it (the refused
        request is not counted)."""
        self._apply(rule, key, self._limiter.hit, client, what)

    def check(self, rule: Rule, key: str, *, client: str = "", what: str = "") -> None:
        """Raise ``RateLimited`` if ``key`` has used up ``rule``, without counting: for limits on failures,
        looked at before the work that may fail and counted (``count``) only when it did."""
        self._apply(rule, key, self._limiter.test, client, what)

    def count(self, rule: Rule, key: str) -> None:
        self._apply(rule, key, self._limiter.hit, refuse=False)

    def _apply(
        self,
        rule: Rule,
        key: str,
        probe: Callable[[RateLimitItem, str, str], bool],
        client: str = "",
        what: str = "",
        *,
        refuse: bool = True,
    ) -> None:
        for item in rule.items:
            try:
                allowed = probe(item, rule.name, key)
            except Exception as exc:
                self._store_failed(exc)
                return
            if refuse and not allowed:
                self._refuse(rule, item, key, client, what)

    def _refuse(self, rule: Rule, item: RateLimitItem, key: str, client: str, what: str) -> None:
        try:
            reset = self._limiter.get_window_stats(item, rule.name, key).reset_time
        except Exception:
            reset = time.time() + item.get_expiry()
        retry_after = max(1, math.ceil(reset - time.time()))
        REFUSED.labels(self.component, rule.name).inc()
        now = time.monotonic()
        with self._lock:
            first = self._logged.get((rule.name, key), 0.0) <= now
            if first:
                if len(self._logged) >= _LOGGED_MAX:
                    self._logged = {k: v for k, v in self._logged.items() if v > now}
                    if len(self._logged) >= _LOGGED_MAX:
                        self._logged.clear()
                self._logged[(rule.name, key)] = now + retry_after
        security_log.log(
            logging.WARNING if first else logging.DEBUG,
            "rate limit %s (%s) reached%s by client %s; refusing for %d s",
            rule.name,
            item,
            f" ({what})" if what else "",
            client or "?",
            retry_after,
        )
        raise RateLimited(rule.name, retry_after)

    @staticmethod
    def _store_failed(exc: Exception) -> None:
        # The type only: a Redis error's text can carry the URI with its password.
        log.warning("rate limit store unavailable (%s); request let through", type(exc).__name__)


def describe(rules: Iterable[Rule]) -> str:
    """For the start-up log: what is limited and how."""
    return ", ".join(f"{r.name}={';'.join(str(i) for i in r.items) or 'off'}" for r in rules)


def client_guard(
    limiter: RateLimiter, per_client: Rule, overall: Rule | None = None
) -> Callable[[Any], None]:
    """A sigmai operation guard: ``per_client`` counts by the app's address, ``overall`` all apps together
    (after the per-client rule, so one flooding client is refused before it uses up everyone's budget)."""

    def check(context: Any) -> None:
        ip = str(context.client_ip)
        limiter.hit(per_client, client_key(ip), client=ip)
        if overall is not None:
            limiter.hit(overall, "all", client=ip, what="all clients together")

    return check


# A client found under its budget of failures is not looked up in the store again for this long, unless one
# of its failures is counted in this process meanwhile.
UNDER_BUDGET_SECONDS = 1.0
UNDER_BUDGET_MAX = 4096  # clients remembered at most (all forgotten at once past it)


class FailureBudget:
    """A budget of failures per client address (wrong API keys, wrong client credentials): ``check`` before
    the work that may fail refuses a client that has used it up (``RateLimited``), even when this request
    would succeed, or guessing would go on; ``failed`` counts one failure.

    The store is asked at most once per ``UNDER_BUDGET_SECONDS`` for a client whose requests succeeded
    (a round trip on every request otherwise), and again on the next request after one of its failures.
    Failures another process counts reach this one within that time."""

    def __init__(self, limiter: RateLimiter, rule: Rule, what: str) -> None:
        self.limiter = limiter
        self.rule = rule
        self._what = what
        self._under: dict[str, float] = {}  # client key -> until when (monotonic) it counts as under

    def check(self, client: str) -> None:
        if not self.rule.enabled:
            return
        key = client_key(client)
        if self._under.get(key, 0.0) > time.monotonic():
            return
        self.limiter.check(self.rule, key, client=client, what=self._what)
        if len(self._under) >= UNDER_BUDGET_MAX:
            self._under.clear()
        self._under[key] = time.monotonic() + UNDER_BUDGET_SECONDS

    def failed(self, client: str) -> None:
        if not self.rule.enabled:
            return
        key = client_key(client)
        self._under.pop(key, None)  # its next request is checked against the store, whatever it carries
        self.limiter.count(self.rule, key)
