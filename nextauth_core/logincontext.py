"""A login's context: who asks, and why, shown on the phone next to the requester.

An application may tell the phone more than "a browser at this address": its own name (``client_name``),
a short message (an OIDC CIBA ``binding_message``) and a code the person compares with the one on another
screen (an RFC 8628 ``user_code``). It travels application -> ns -> (QR login start, or the sealed push
envelope) -> app. Each field is one line of plain text with a hard length limit, checked with the same rule
as text shown for signing: what the person reads is what the application sent.
"""

from typing import Any

from nextauth_core.evidence import display_text_problem

LIMITS = {"client_name": 100, "message": 200, "user_code": 32}


class LoginContextError(ValueError):
    pass


def checked(value: Any) -> dict[str, str] | None:
    """The context as given, checked; None for none (absent or empty)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise LoginContextError("context must be a JSON object")
    unknown = sorted(set(value) - set(LIMITS))
    if unknown:
        raise LoginContextError(f"context: unknown member {unknown[0]!r} (allowed: {', '.join(LIMITS)})")
    result: dict[str, str] = {}
    for name, limit in LIMITS.items():
        text = value.get(name)
        if text is None or text == "":
            continue
        if not isinstance(text, str) or len(text) > limit:
            raise LoginContextError(f"context.{name}: text of up to {limit} characters")
        problem = display_text_problem(text)
        if problem is not None:
            raise LoginContextError(f"context.{name} {problem}")
        result[name] = text
    return result or None
