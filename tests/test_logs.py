"""Logging setup: our debug lines are not drowned by the HTTP libraries' own."""

import logging
from collections.abc import Iterator

import pytest

from authserver.logs import setup_logging

LIBRARIES = ("httpcore", "hpack", "urllib3")


@pytest.fixture(autouse=True)
def logging_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in (*LIBRARIES, "alembic")}
    yield
    root.handlers[:], root.level = handlers, level
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)


def test_at_debug_our_lines_show_and_the_http_libraries_stay_at_info() -> None:
    setup_logging("DEBUG")
    assert logging.getLogger("nextauth.idp.sessions").isEnabledFor(logging.DEBUG)
    for name in LIBRARIES:
        assert not logging.getLogger(f"{name}.connection").isEnabledFor(logging.DEBUG), name
        assert logging.getLogger(f"{name}.connection").isEnabledFor(logging.INFO), name


def test_a_quieter_level_is_not_made_louder_for_the_libraries() -> None:
    setup_logging("WARNING")
    for name in LIBRARIES:
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
    assert logging.getLogger(LIBRARIES[0]).isEnabledFor(logging.WARNING)
