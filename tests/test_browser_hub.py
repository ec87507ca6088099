"""The browser hub and its pages, without sockets: what a page is sent when the hub stops, and LOGIN once."""

from typing import Any

import gevent
import gevent.event

from authserver.ns.browser import _Page
from authserver.ns.browser_hub import BrowserHub, encode
from authserver.storage.kv import MemoryStore


class _Socket:
    """What a page needs of simple_websocket's server socket: it records what is sent and the close."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed_with: int | None = None
        self.connected = True
        self.event = gevent.event.Event()

    def send(self, data: str) -> None:
        self.sent.append(data)

    def close(self, reason: int | None = None) -> None:
        self.closed_with = reason
        self.connected = False


class _Login:
    """Answers whether a session is logged in, as LoginService.active_session does, and counts the asks."""

    def __init__(self, logged_in: set[str]) -> None:
        self.logged_in = logged_in
        self.asked: list[str] = []

    def active_session(self, server_id: str, hsid: str) -> Any:
        self.asked.append(hsid)
        return {"hsid": hsid} if hsid in self.logged_in else None


def _page(hsid: str, login: _Login) -> tuple[_Page, _Socket]:
    ws = _Socket()
    return _Page(ws, "default", hsid, login), ws  # type: ignore[arg-type]


def test_a_stopping_hub_tells_a_logged_in_page_before_closing_it() -> None:
    # A login finished by another process just before this one stops: its event has not come through
    # the subscription, and without a catch-up the page would be closed without ever hearing LOGIN.
    login = _Login(logged_in={"done"})
    hub = BrowserHub(MemoryStore())
    finished, finished_ws = _page("done", login)
    waiting, waiting_ws = _page("waiting", login)
    hub.add("done", finished)
    hub.add("waiting", waiting)

    hub.stop()

    assert finished_ws.sent == ["LOGIN"] and finished_ws.closed_with == 1012
    assert waiting_ws.sent == [] and waiting_ws.closed_with == 1012
    assert sorted(login.asked) == ["done", "waiting"]


def test_a_page_hears_login_once_whoever_brings_it() -> None:
    login = _Login(logged_in={"done"})
    hub = BrowserHub(MemoryStore())
    page, ws = _page("done", login)
    hub.add("done", page)
    # The event as the subscription hands it over (the in-process store's queue would block this
    # test's unpatched thread; the subscription itself is tested in the system tests).
    hub._dispatch(encode("done", "LOGIN"))
    gevent.sleep(0.01)
    assert ws.sent == ["LOGIN"]

    page.catch_up()  # the subscription was lost and came back
    hub.stop()  # and then the process stops
    assert ws.sent == ["LOGIN"] and ws.closed_with == 1012
    assert login.asked == [], "a page that heard LOGIN needs no lookup"


def test_other_events_still_reach_the_page_after_login() -> None:
    page, ws = _page("done", _Login(logged_in=set()))
    page.deliver("CONFIRMSCAN")
    page.deliver("LOGIN")
    page.deliver("LOGOUT")
    assert ws.sent == ["CONFIRMSCAN", "LOGIN", "LOGOUT"]
