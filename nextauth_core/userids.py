"""User ids: one rule, applied wherever a user id enters (ns REST, enrolment, the IdP directory and CLI).

Without it "alice" in Latin letters, with a Cyrillic "a" (U+0430), in fullwidth forms (U+FF41...), and an
NFD "e" + U+0301 beside an NFC U+00E9 are different users who look the same to a person. The rule follows
PRECIS (RFC 8264/8265, UsernameCasePreserved) with the script check of Unicode TS #39 "highly
restrictive", written with ``unicodedata`` only:

1. Width mapping: fullwidth and halfwidth forms become their ordinary characters (U+FF41 is "a").
2. NFC.
3. Refused (IdentifierClass): empty or longer than ``MAX_LENGTH``; spaces; control, format (bidi controls
   and zero-width characters included), private-use, unassigned and surrogate code points; symbols and
   punctuation beyond printable ASCII; characters with a compatibility form (ligatures, superscripts,
   circled letters: what NFKC would still change after step 1).
4. Refused: letters of more than one script ("paypal" with a Cyrillic U+0430), except the combinations TS #39
   allows in one word: Latin with Han, Hiragana, Katakana (Japanese), Bopomofo (Chinese) or Hangul (Korean).

Case is kept: "Alice" and "alice" stay two ids, as before (applications choose their ids).
"""

import unicodedata

MAX_LENGTH = 255

# TS #39 "highly restrictive": one script, or Latin with one of these sets.
_ALLOWED_MIXES = (
    frozenset({"LATIN", "CJK", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "CJK", "BOPOMOFO"}),
    frozenset({"LATIN", "CJK", "HANGUL"}),
)
# Letters whose Unicode name does not start with their script's name.
_SCRIPT_ALIASES = {"HALFWIDTH": "KATAKANA", "IDEOGRAPHIC": "CJK", "KATAKANA-HIRAGANA": "KATAKANA"}


class UserIdError(ValueError):
    """The user id is not acceptable; the message says why (the id itself is not repeated)."""


def _width_mapped(value: str) -> str:
    out = []
    for char in value:
        decomposition = unicodedata.decomposition(char)
        if decomposition.startswith(("<wide>", "<narrow>")):
            out.append(chr(int(decomposition.split()[1], 16)))
        else:
            out.append(char)
    return "".join(out)


def _script(char: str) -> str:
    """The script of a letter, from its Unicode name ("CYRILLIC SMALL LETTER A" -> "CYRILLIC"): Python's
    ``unicodedata`` has no Script property, and for letters the name's first word is the script."""
    first = unicodedata.name(char, "UNKNOWN").split()[0]
    return _SCRIPT_ALIASES.get(first, first)


def _refusal(char: str) -> str | None:
    category = unicodedata.category(char)
    code = f"U+{ord(char):04X}"
    if category in ("Cc", "Cf", "Co", "Cn", "Cs"):
        return f"contains the invisible, unassigned or control character {code}"
    if category.startswith("Z"):
        return "contains a space or line separator"
    if category[0] in "LMN":
        return None
    if 0x21 <= ord(char) <= 0x7E:  # ASCII punctuation and symbols: ids like first.last@example.com
        return None
    return f"contains the symbol or punctuation {code} (outside ASCII only letters, marks and digits)"


def normalise(value: object) -> str:
    """The canonical form of a user id, or ``UserIdError`` saying which rule it breaks."""
    if not isinstance(value, str):
        raise UserIdError("a user id is text")
    if len(value) > 4 * MAX_LENGTH:  # before any work: mapping never shrinks text by more than that
        raise UserIdError(f"a user id has 1 to {MAX_LENGTH} characters")
    result = unicodedata.normalize("NFC", _width_mapped(value))
    if not 1 <= len(result) <= MAX_LENGTH:
        raise UserIdError(f"a user id has 1 to {MAX_LENGTH} characters")
    for char in result:
        problem = _refusal(char)
        if problem is not None:
            raise UserIdError(f"the user id {problem}")
    if unicodedata.normalize("NFKC", result) != result:
        raise UserIdError("the user id contains a compatibility character (a ligature, superscript...)")
    scripts = {_script(char) for char in result if unicodedata.category(char).startswith("L")}
    if len(scripts) > 1 and not any(scripts <= allowed for allowed in _ALLOWED_MIXES):
        raise UserIdError("the user id mixes letters of several scripts (" + ", ".join(sorted(scripts)) + ")")
    return result
