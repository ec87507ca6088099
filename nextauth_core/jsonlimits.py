"""JSON from outside, parsed within bounds: size, nesting depth, and numbers that are numbers.

Python's ``json`` recurses once per nesting level: 2 KB of ``[`` raise ``RecursionError`` (not a
``ValueError``), which escapes every ``except ValueError`` and reaches the log as a traceback or the client
as a 500. It also reads ``NaN``, ``Infinity`` and ``1e400`` (a float overflowing to infinity), none of which
is JSON, and writes them back out as ``Infinity``. Every parser of outside input (sigmai messages, the REST
bodies of ns and the MC, evidence content, QR payloads) goes through ``loads`` here instead, which refuses
all of that with ``JSONLimitError``, a ``ValueError``, so the callers' existing handling applies.
"""

import json
import math
import re
from typing import Any

MAX_DEPTH = 32
MAX_BYTES = 1024 * 1024

# The only tokens that matter for nesting: an escape (inside a string, so that \" does not end it), a quote
# (entering or leaving a string: brackets inside strings do not nest) and a bracket. One linear pass.
_TOKEN = re.compile(r'\\.|["\[\]{}]', re.DOTALL)


class JSONLimitError(ValueError):
    """The text is not JSON within the limits; the message says which limit (no content quoted)."""


def depth(text: str, limit: int | None = None) -> int:
    """The deepest nesting of arrays and objects in ``text`` (0 for a scalar), counted without recursion;
    stops counting once past ``limit`` (the caller refuses the text then anyway)."""
    level = deepest = 0
    in_string = False
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token == '"':  # noqa: S105 - a JSON token, not a password
            in_string = not in_string
        elif in_string or token[0] == "\\":
            continue
        elif token in "[{":  # noqa: S105
            level += 1
            if level > deepest:
                deepest = level
                if limit is not None and deepest > limit:
                    break
        else:
            level -= 1
    return deepest


def _refuse_constant(name: str) -> Any:
    raise JSONLimitError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONLimitError("a number is too large")
    return value


# One decoder for all texts: json.loads with hooks builds a new one (and its scanner) per call.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def loads(data: str | bytes, *, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES) -> Any:
    """Parse ``data`` (UTF-8 if bytes) as strict JSON of at most ``max_bytes`` and ``max_depth`` levels."""
    if len(data) > max_bytes:
        raise JSONLimitError(f"JSON text larger than {max_bytes} bytes")
    if isinstance(data, bytes | bytearray):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONLimitError("JSON text is not UTF-8") from exc
    else:
        text = data
    # No text nests deeper than it has opening brackets (those inside strings count too): counting them,
    # in C, settles the usual message, with a few, without the token walk.
    if text.count("[") + text.count("{") > max_depth and depth(text, max_depth) > max_depth:
        raise JSONLimitError(f"JSON nests deeper than {max_depth} levels")
    try:
        return _DECODER.decode(text)
    except JSONLimitError:
        raise
    # ValueError also covers integers of more than 4,300 digits; RecursionError is belt and braces.
    except (ValueError, RecursionError) as exc:
        raise JSONLimitError("not valid JSON") from exc
