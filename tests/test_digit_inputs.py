"""Numbers read from settings, headers and parameters are ASCII digits: "²" (which str.isdigit takes and
int() refuses) and "٣" (which int() reads as 3) are refused with the setting's own message, or read as no
number, never a ValueError."""

from types import SimpleNamespace
from typing import Any

import flask
import pytest

from authserver.audit import settings as audit_settings
from authserver.config import ConfigError, Listen, seconds_in_range, whole_number_in_range
from authserver.ns import retention
from authserver.push.base import parse_retry_after
from authserver.services import mc, sfs
from authserver.storage import sentinel
from authserver.workers import WorkersError, workers_setting
from idp.forwardauth.settings import request_port
from idp.oidc import endpoints
from idp.server import _admin_listen

OTHER_DIGITS = ["²", "٣", "\uff11"]

SETTINGS = [
    ("NEXTAUTH_NS_RETENTION_DAYS", lambda env: retention.retention(env)),
    ("NEXTAUTH_SFS_PIN_MAX_ATTEMPTS", lambda env: sfs._max_attempts(env)),
    ("NEXTAUTH_SFS_UNFINISHED_REGISTRATION_SECONDS", lambda env: sfs._unfinished_seconds(env)),
    ("NEXTAUTH_SFS_PIN_CHANGE_SECONDS", lambda env: sfs._pin_change_seconds(env)),
    ("NEXTAUTH_MC_UNUSED_MAILBOX_DAYS", lambda env: mc._unused_mailbox_days(env)),
    ("NEXTAUTH_AUDIT_RETENTION_DAYS", lambda env: audit_settings.retention("ns", env)),
]


@pytest.mark.parametrize(("name", "read"), SETTINGS, ids=[name for name, _ in SETTINGS])
@pytest.mark.parametrize("value", OTHER_DIGITS)
def test_count_settings_refuse_other_digits_by_name(name: str, read: Any, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name}: expected a whole number"):
        read({name: value})


@pytest.mark.parametrize(("name", "read"), SETTINGS, ids=[name for name, _ in SETTINGS])
def test_count_settings_still_read_ascii_digits(name: str, read: Any) -> None:
    assert read({name: " 75 \n"}) == read({name: "75"})


def test_whole_number_in_range_says_what_and_shows_a_bounded_value() -> None:
    assert whole_number_in_range("N", None, default=9, high=10) == 9
    assert whole_number_in_range("N", "60", default=9, high=600, low=60, unit="seconds") == 60
    expected = r"^N: expected a whole number of seconds from 60 to 600, got '59'$"
    with pytest.raises(ConfigError, match=expected):
        whole_number_in_range("N", "59", default=9, high=600, low=60, unit="seconds")
    with pytest.raises(ConfigError) as refused:
        whole_number_in_range("N", "9" * 500, default=9, high=10)
    assert len(str(refused.value)) < 120


@pytest.mark.parametrize("value", OTHER_DIGITS)
def test_workers_and_admin_port_refuse_other_digits(value: str) -> None:
    with pytest.raises(WorkersError, match=r"^W: expected auto or a whole number"):
        workers_setting("W", value, kv_uri=None, db_uri="sqlite:///x.db", kv_variable="K")
    with pytest.raises(ConfigError):
        _admin_listen(value, Listen("127.0.0.1", 9000), False)


@pytest.mark.parametrize("value", OTHER_DIGITS)
def test_ports_in_other_digits_are_no_ports(value: str) -> None:
    assert request_port(f"app.example:{value}", "https") is None
    assert request_port("app.example:8443", "https") == 8443
    with pytest.raises(ValueError, match="expected HOST:PORT"):
        sentinel.parse(f"redis+sentinel://sentinel.example:{value}/mymaster")


@pytest.mark.parametrize("value", OTHER_DIGITS)
def test_retry_after_in_other_digits_is_no_delay(value: str) -> None:
    assert parse_retry_after(value, 5.0) == 5.0
    assert parse_retry_after("7", 5.0) == 7.0


@pytest.mark.parametrize("value", OTHER_DIGITS)
def test_oidc_max_age_in_other_digits_is_no_max_age(value: str) -> None:
    user: Any = SimpleNamespace(auth_time=0, authenticated_at=0.0)
    with flask.Flask(__name__).test_request_context("/authorize"):
        assert endpoints._needs_fresh_login(user, {"max_age": value}) is False
        assert endpoints._needs_fresh_login(user, {"max_age": "60"}) is True  # logged in at 1970


@pytest.mark.parametrize("value", OTHER_DIGITS)
def test_whole_duration_settings_refuse_other_digits(value: str) -> None:
    """The IdP's whole-second settings go through the same reader as the counts."""
    with pytest.raises(ConfigError, match=r"^S: expected whole seconds"):
        seconds_in_range("S", value, 5, low=1, high=60, whole=True, expected="whole seconds from 1 to 60")
    assert seconds_in_range("S", " 7 ", 5, low=1, high=60, whole=True, expected="whole seconds") == 7
