"""The login page never shows a dead code: with codes that live 8 s, the page is sampled for several
lifetimes in headless Chromium and every code it shows is younger than its lifetime; a late scan of a code
that expired is explained on the page."""

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.flows import PIN, enrol
from tests.fixtures.system import RunningSystem, run_app, start_system, stop_system

playwright_api = pytest.importorskip("playwright.sync_api")

LIFETIME = 8.0  # NEXTAUTH_NS_LOGIN_QR_TTL for this module's system


@pytest.fixture(scope="module")
def short_codes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    running = start_system(
        tmp_path_factory.mktemp("short-codes"), extra_env={"NEXTAUTH_NS_LOGIN_QR_TTL": str(int(LIFETIME))}
    )
    yield running
    stop_system(running)


@pytest.fixture(scope="module")
def phone(short_codes: RunningSystem, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("short-codes-phone")
    run_app(home, "init", "--config", str(short_codes.data_dir / "app-config.json"))
    assert run_app(home, "register", "--pin", PIN)[0] == 0
    enrol(short_codes, home, "quick-quinn")
    return home


def shown(page: object) -> dict[str, object]:
    return page.evaluate(  # type: ignore[attr-defined, no-any-return]
        """() => {
          const qr = document.getElementById("qr");
          return {visible: !qr.hidden && qr.querySelector("svg") !== null,
                  code: qr.getAttribute("data-qrdata"),
                  text: document.getElementById("qr-text").textContent,
                  expiry: document.getElementById("expiry").textContent};
        }"""
    )


def test_every_code_on_screen_is_within_its_lifetime(short_codes: RunningSystem, browser: object) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(f"http://127.0.0.1:{short_codes.port('idp', 'http')}/login")
    page.wait_for_selector("#qr svg")
    # A code is issued when the page asks for it, and the page shows it at once: first seen is at most a
    # sample's interval after its birth, so its end is no later than first seen + lifetime.
    first_seen: dict[str, float] = {}
    seconds_shown: list[int] = []
    # Three codes are enough to see the page renew twice: sample until a second into the third.
    now = time.monotonic()
    end = now + 3.2 * LIFETIME
    while time.monotonic() < end and not (len(first_seen) >= 3 and now - max(first_seen.values()) > 1):
        sample = shown(page)
        now = time.monotonic()
        if sample["visible"]:
            code = str(sample["code"])
            born = first_seen.setdefault(code, now)
            assert now - born < LIFETIME - 0.5, f"a code was on screen {now - born:.1f} s after it came"
            assert sample["text"] == code
            left = re.search(r"(\d+) s", str(sample["expiry"]))
            assert left is not None, sample["expiry"]
            assert int(left.group(1)) <= LIFETIME
            seconds_shown.append(int(left.group(1)))
        page.wait_for_timeout(200)
    assert len(first_seen) >= 3, "the page did not renew its code"
    assert max(seconds_shown) >= LIFETIME - 2 and min(seconds_shown) <= 3  # the countdown counts down
    page.close()


def test_a_scan_of_an_expired_code_is_explained_on_the_page(
    short_codes: RunningSystem, browser: object, phone: Path
) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(f"http://127.0.0.1:{short_codes.port('idp', 'http')}/login?next=/whoami")
    page.wait_for_selector("#qr svg")
    old = str(page.get_attribute("#qr", "data-qrdata"))
    time.sleep(LIFETIME + 1)  # a photo of the code, scanned too late
    assert page.get_attribute("#qr", "data-qrdata") != old
    code, answer = run_app(phone, "scan", old, "--pin", PIN)
    assert code == 1 and answer["code"] == "expired"
    playwright_api.expect(page.locator("#status")).to_contain_text("had expired", timeout=10000)
    # The code on screen now is live: scanning it logs in.
    code, answer = run_app(phone, "scan", str(page.get_attribute("#qr", "data-qrdata")), "--pin", PIN)
    assert code == 0, answer
    page.wait_for_url(lambda url: url.endswith("/whoami"), timeout=15000)
    page.close()
