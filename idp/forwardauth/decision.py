"""The forward-auth decision for one request, apart from HTTP: the Traefik plugin makes the same one in Go
(traefik-plugin/nextauth/nextauth.go), in the same order.

1. The first matching rule (or the default) names the policy.
2. ``deny``: nobody, logged in or not (403); the session is not even looked at.
3. ``public``: everyone; a logged-in user's identity still travels, an anonymous request gets empty
   identity headers.
4. ``authenticated``: no valid session -> log in (browsers) or 401 (API clients); a session whose user
   the rule does not admit -> 403.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from idp.forwardauth.rules import AccessRules, Rule
from idp.sessions import SignedInUser

Verdict = Literal["allow", "unauthenticated", "forbidden"]


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    rule: Rule
    user: SignedInUser | None = None


def decide(
    rules: AccessRules, host: str, path: str, method: str, user: Callable[[], SignedInUser | None]
) -> Outcome:
    """``host`` and ``path`` normalised (``normalize_host``, ``normalize_path``); ``user`` reads the
    session only when the rule needs it."""
    rule = rules.decide(host, path, method)
    if rule.policy == "deny":
        return Outcome("forbidden", rule)
    who = user()
    if rule.policy == "public":
        return Outcome("allow", rule, who)
    if who is None:
        return Outcome("unauthenticated", rule)
    if not rule.admits(who.sub, who.groups):
        return Outcome("forbidden", rule, who)
    return Outcome("allow", rule, who)
