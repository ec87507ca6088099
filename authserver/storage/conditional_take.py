"""Take a JSON record only if it is the one expected: compare and delete in one step.

A single-use value (an authorization code, say) is checked against what the request presents before it is
used up, so that a request that fails the check leaves it for the one that will answer the refusal. Read,
check, then take costs two round trips to Redis; here the check goes to Redis with the take (a script), or
runs under the in-process store's lock: one step, atomic, whoever else asks meanwhile.

The conditions are on members of the record, named by a path (``"grant.client_id"``: member ``client_id``
of member ``grant``; names have no dots):

- ``equal``: the member is that text; None: the member is absent or null.
- ``words_within``: the member is words separated by single spaces (or empty), each one of the words given
  (separated by spaces).

What is compared is what the request sent against what the record holds (no secret of the record is sent:
a client's secret, a PKCE verifier's preimage stay out), so a comparison's timing tells nothing.

What the record is taken for can be written in the same step (``ThenSet``: what an authorization code was
exchanged for), so that a record taken and what it was taken for are one round trip, never one without the
other. Such a value may hold the record taken, verbatim: its parts are joined by it.
"""

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ThenSet:
    """``key`` set, once the record is taken, to ``parts`` joined by the record taken (one part: that value
    as it is), for ``ttl`` seconds."""

    key: str
    parts: tuple[bytes, ...]
    ttl: float

    def value(self, taken: bytes) -> bytes:
        return taken.join(self.parts)


# KEYS[1]: the record; KEYS[2..]: the keys to set once it is taken. ARGV: how many ``equal`` conditions, how
# many ``words_within`` ones; path and '=' .. text or '-' for each ``equal`` one, path and allowed words for
# each ``words_within`` one; then for each key to set: its lifetime in milliseconds, how many parts, the
# parts. Replies nil (no record), or {1 if taken else 0, raw}.
SCRIPT = """
local raw = redis.call('GET', KEYS[1])
if not raw then return false end
local decoded, record = pcall(cjson.decode, raw)
-- an object, not an array (both decode to a table)
local matches = decoded and type(record) == 'table' and string.match(raw, '^%s*{') ~= nil
local function at(path)
  local node = record
  for name in string.gmatch(path, '[^.]+') do
    if type(node) ~= 'table' then return nil end
    node = node[name]
  end
  if node == cjson.null then return nil end
  return node
end
local equal, within = tonumber(ARGV[1]), tonumber(ARGV[2])
local i = 3
for _ = 1, equal do
  if matches then
    local value, want = at(ARGV[i]), ARGV[i + 1]
    if want == '-' then
      matches = value == nil
    else
      matches = type(value) == 'string' and '=' .. value == want
    end
  end
  i = i + 2
end
for _ = 1, within do
  if matches then
    local value = at(ARGV[i])
    local allowed = {}
    for word in string.gmatch(ARGV[i + 1], '[^ ]+') do allowed[word] = true end
    if type(value) ~= 'string' then
      matches = false
    elseif value ~= '' then
      for word in string.gmatch(value .. ' ', '(.-) ') do
        if word == '' or not allowed[word] then
          matches = false
          break
        end
      end
    end
  end
  i = i + 2
end
if not matches then return {0, raw} end
redis.call('DEL', KEYS[1])
for k = 2, #KEYS do
  local ttl, count = ARGV[i], tonumber(ARGV[i + 1])
  local parts = {}
  for p = 1, count do parts[p] = ARGV[i + 1 + p] end
  redis.call('SET', KEYS[k], table.concat(parts, raw), 'PX', ttl)
  i = i + 2 + count
end
return {1, raw}
"""


def script_arguments(
    equal: Mapping[str, str | None], words_within: Mapping[str, str], then_set: Sequence[ThenSet] = ()
) -> list[str | bytes]:
    """ARGV for ``SCRIPT``; the keys of ``then_set`` go to KEYS after the record's, in the same order."""
    arguments: list[str | bytes] = [str(len(equal)), str(len(words_within))]
    for path, want in equal.items():
        arguments += [path, "-" if want is None else "=" + want]
    for path, allowed in words_within.items():
        arguments += [path, allowed]
    for setting in then_set:
        arguments += [str(max(1, math.ceil(setting.ttl * 1000))), str(len(setting.parts)), *setting.parts]
    return arguments


def matches(raw: bytes, equal: Mapping[str, str | None], words_within: Mapping[str, str]) -> bool:
    """What the script decides, in Python (the in-process store)."""
    try:
        record = json.loads(raw)
    except ValueError:
        return False
    if not isinstance(record, dict):
        return False
    for path, want in equal.items():
        value = _at(record, path)
        if want is None and value is not None:
            return False
        if want is not None and (not isinstance(value, str) or value != want):
            return False
    for path, allowed in words_within.items():
        value = _at(record, path)
        if not isinstance(value, str):
            return False
        if value:
            words = {word for word in allowed.split(" ") if word}
            if any(not word or word not in words for word in value.split(" ")):
                return False
    return True


def _at(record: dict[str, Any], path: str) -> Any:
    node: Any = record
    for name in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(name)
    return node
