"""Numbers from outside are ASCII digits (nextauth_core.digits), and no code reads them with isdigit."""

import re
from pathlib import Path

import pytest

from nextauth_core.digits import only_digits

REPO = Path(__file__).resolve().parents[2]
OUR_CODE = ("authserver", "idp", "nextauth", "nextauth_core", "sigmai", "mobilesdk", "bench", "tools")


@pytest.mark.parametrize("text", ["0", "7", "0042", "36500"])
def test_ascii_digits_are_digits(text: str) -> None:
    assert only_digits(text)


@pytest.mark.parametrize("text", ["", " 1", "1 ", "-1", "+1", "1.5", "1e3", "²", "1²", "٣", "\uff11", "7x"])
def test_anything_else_is_not(text: str) -> None:
    assert not only_digits(text)


def test_no_code_of_ours_checks_numbers_with_isdigit() -> None:
    """str.isdigit takes "²", which int() then refuses with a ValueError: a traceback where an error
    message was due. only_digits is the check."""
    offenders = [
        f"{path.relative_to(REPO)}:{number}"
        for top in OUR_CODE
        for path in sorted((REPO / top).rglob("*.py"))
        if path != REPO / "nextauth_core" / "digits.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"\.isdigit\(\)", line)
    ]
    assert offenders == []
