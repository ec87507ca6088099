"""Who may open what behind the proxy: access rules per host and path, first match wins.

The rules come from a YAML or JSON document (``NEXTAUTH_IDP_FORWARD_AUTH_RULES``, usually given as
``..._RULES_FILE``)::

    default: authenticated            # public | authenticated | deny, or a mapping like a rule's
    rules:
      - host: "*.example.com"         # or a list; "*." matches any subdomain; no host: every host
        path: /static                 # or a list; a prefix on segment boundaries; no path: every path
        policy: public
      - host: wiki.example.com
        path: [/admin, /settings]
        methods: [POST, PUT]          # optional
        groups: [wiki-admins]         # any of these groups ...
        users: [alice]                # ... or any of these users

The same evaluation runs in the Traefik plugin (traefik-plugin/nextauth/rules.go), on the JSON form that
``AccessRules.to_json`` publishes. Both sides normalise the request path the same way before matching
(percent-decoding, ``.``/``..``, repeated slashes, backslashes, ``;`` parameters), so that a request
cannot reach a protected path through a spelling the application reads differently from the rules.
"""

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from authserver.config import ConfigError

POLICIES = ("public", "authenticated", "deny")
RULE_KEYS = {"host", "path", "methods", "policy", "users", "groups"}
MAX_RULES = 1000
_HEX = "0123456789abcdefABCDEF"


def normalize_path(uri: str) -> str:
    """The path of a request URI as the rules see it: decoded once, dot segments resolved, no empty
    segments, no ``;parameters``. Always starts with ``/``."""
    path = uri.split("?", 1)[0].split("#", 1)[0]
    if path.isascii() and "%" not in path:
        text = path.replace("\\", "/")  # nothing to decode: what the loop below would give back
    else:
        raw = path.encode("utf-8", "surrogateescape")
        decoded = bytearray()
        i = 0
        while i < len(raw):
            if raw[i] == 0x25 and i + 2 < len(raw) and chr(raw[i + 1]) in _HEX and chr(raw[i + 2]) in _HEX:
                decoded.append(int(raw[i + 1 : i + 3], 16))
                i += 3
            else:
                decoded.append(raw[i])
                i += 1
        text = decoded.decode("utf-8", "replace").replace("\\", "/")
    stack: list[str] = []
    for segment in text.split("/"):
        segment = segment.split(";", 1)[0]
        if segment in ("", "."):
            continue
        if segment == "..":
            if stack:
                stack.pop()
            continue
        stack.append(segment)
    return "/" + "/".join(stack)


def normalize_host(host: str) -> str:
    """Lower case, without the port and without a trailing dot; IPv6 literals keep their brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        host = host[: end + 1] if end > 0 else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def host_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        suffix = pattern[1:]
        return host.endswith(suffix) and len(host) > len(suffix)
    return host == pattern


def path_matches(prefix: str, path: str) -> bool:
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


@dataclass(frozen=True)
class Rule:
    policy: str
    hosts: tuple[str, ...] = ()  # empty: every host
    paths: tuple[str, ...] = ()  # empty: every path
    methods: tuple[str, ...] = ()  # empty: every method
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    def matches(self, host: str, path: str, method: str) -> bool:
        return (
            (not self.hosts or any(host_matches(pattern, host) for pattern in self.hosts))
            and (not self.paths or any(path_matches(prefix, path) for prefix in self.paths))
            and (not self.methods or method.upper() in self.methods)
        )

    @property
    def restricted(self) -> bool:
        """Only some logged-in users: those named, or in a named group."""
        return bool(self.users or self.groups)

    def admits(self, user: str, groups: Iterable[str]) -> bool:
        if not self.restricted:
            return True
        return user in self.users or any(group in self.groups for group in groups)

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "hosts": list(self.hosts),
            "paths": list(self.paths),
            "methods": list(self.methods),
            "users": list(self.users),
            "groups": list(self.groups),
        }


@dataclass(frozen=True)
class AccessRules:
    rules: tuple[Rule, ...] = ()
    default: Rule = field(default_factory=lambda: Rule("authenticated"))

    def decide(self, host: str, path: str, method: str) -> Rule:
        """The first rule that matches the (normalised) host and path, else the default."""
        for rule in self.rules:
            if rule.matches(host, path, method):
                return rule
        return self.default

    def to_json(self) -> dict[str, Any]:
        return {"default": self.default.to_json(), "rules": [rule.to_json() for rule in self.rules]}

    @property
    def hosts(self) -> tuple[str, ...]:
        """Every host pattern a rule names."""
        return tuple(dict.fromkeys(pattern for rule in self.rules for pattern in rule.hosts))


# -- reading the document --------------------------------------------------------------------------------


def _strings(where: str, value: Any, *, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) and item.strip() for item in items):
        raise ConfigError(f"{where}: {key} must be a string or a list of non-empty strings")
    return tuple(item.strip() for item in items)


def _host_pattern(where: str, pattern: str) -> str:
    pattern = pattern.lower().rstrip(".")
    bare = pattern[2:] if pattern.startswith("*.") else pattern
    if not bare or "*" in bare or any(c in bare for c in "/:?#@ \\") or bare.startswith("."):
        raise ConfigError(
            f"{where}: host {pattern!r}: expected a host name such as app.example.com or "
            "*.example.com (no scheme, port or path)"
        )
    return pattern


def _path_prefix(where: str, prefix: str) -> str:
    if not prefix.startswith("/"):
        raise ConfigError(f"{where}: path {prefix!r} must start with /")
    return normalize_path(prefix)


def _rule(where: str, spec: Any, *, matchers: bool = True) -> Rule:
    if isinstance(spec, str):
        spec = {"policy": spec}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: expected a mapping")
    allowed = RULE_KEYS if matchers else {"policy", "users", "groups"}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; known: {sorted(allowed)}")
    users = _strings(where, spec.get("users"), key="users")
    groups = _strings(where, spec.get("groups"), key="groups")
    policy = spec.get("policy", "authenticated")
    if policy not in POLICIES:
        raise ConfigError(f"{where}: policy {policy!r}: expected one of {', '.join(POLICIES)}")
    if (users or groups) and policy != "authenticated":
        raise ConfigError(f"{where}: users and groups only go with the policy authenticated")
    methods = tuple(method.upper() for method in _strings(where, spec.get("methods"), key="methods"))
    return Rule(
        policy=policy,
        hosts=tuple(_host_pattern(where, p) for p in _strings(where, spec.get("host"), key="host")),
        paths=tuple(_path_prefix(where, p) for p in _strings(where, spec.get("path"), key="path")),
        methods=methods,
        users=users,
        groups=groups,
    )


def parse_rules(text: str, *, source: str = "rules") -> AccessRules:
    """Rules from YAML or JSON text; a ConfigError says where the document is wrong."""
    document = _load_document(text, source)
    if document is None:
        return AccessRules()
    if not isinstance(document, Mapping):
        raise ConfigError(f"{source}: expected a mapping with `rules` and `default`")
    unknown = sorted(set(document) - {"rules", "default"})
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(map(str, unknown))}; known: default, rules")
    specs = document.get("rules") or []
    if not isinstance(specs, list) or len(specs) > MAX_RULES:
        raise ConfigError(f"{source}: rules must be a list of at most {MAX_RULES} rules")
    rules = tuple(_rule(f"{source}: rule {n}", spec) for n, spec in enumerate(specs, start=1))
    default = _rule(f"{source}: default", document.get("default", "authenticated"), matchers=False)
    return AccessRules(rules=rules, default=default)


def _load_document(text: str, source: str) -> Any:
    stripped = text.strip()
    if not stripped:
        return None
    if stripped.startswith("{"):
        try:
            return json.loads(stripped)
        except ValueError as exc:
            raise ConfigError(f"{source}: not valid JSON ({exc})") from None
    try:
        import yaml  # only YAML documents need it; JSON works without PyYAML
    except ImportError:
        raise ConfigError(f"{source}: YAML needs PyYAML (pip install pyyaml), or write it as JSON") from None
    try:
        return yaml.safe_load(stripped)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}: not valid YAML{where}") from None
