"""Pictures of the web authenticator (``/app/``) for the README and docs/web-authenticator.md, in light and
dark at a phone's size: set-up, the account list, a pushed login with number matching, and the login page
as a phone shows it (with "Open in the app on this phone").

Starts the whole system on loopback (embedded defaults, a temporary folder), sets the app up in headless
Chromium, enrols "alice" through an enrolment code, and asks for a push login from the login page.

    .venv/bin/python tools/web_authenticator_screenshots.py [--out docs/images]

Needs Chromium (Debian package 'chromium') and the dev extras (Playwright).
"""

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.fixtures.system import RunningSystem, ns_api, start_system, stop_system  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PIN = "1234"
USER = "alice"
# A phone, so that the login page offers "Open in the app on this phone" as it does on one.
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 1,
    "is_mobile": True,
    "has_touch": True,
    "user_agent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36",
}


def photograph(page: Any, name: str, out: Path) -> list[Path]:
    made = []
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        target = out / f"{name}-{scheme}-phone.png"
        page.screenshot(path=str(target))
        made.append(target)
    return made


def screen(page: Any, name: str) -> None:
    page.wait_for_selector(f'section[data-screen="{name}"]:not([hidden])', timeout=30000)


def enrol(system: RunningSystem, app: Any) -> None:
    api = ns_api(system)
    status, created = api.call("POST", f"/v1/servers/default/users/{USER}/enrolments")
    if status != 201:
        raise SystemExit(f"ns refused the enrolment: {created}")
    app.click("#to-paste")
    app.fill("#code", created["qrdata"])
    app.click("#paste-form button[type=submit]")
    screen(app, "enrol")
    app.fill("#enrol-pin", PIN)
    app.click("#enrol-form button[type=submit]")
    screen(app, "enrolled")
    code = app.inner_text("#confirmation-code").strip()
    status, done = api.call(
        "POST", f"/v1/servers/default/enrolments/{created['enrolment']}/confirm", {"code": code}
    )
    if status != 200:
        raise SystemExit(f"ns refused the confirmation: {done}")
    app.click('section[data-screen="enrolled"] button[data-home]')
    screen(app, "accounts")


def shoot(system: RunningSystem, browser: Any, out: Path) -> list[Path]:
    base = f"http://127.0.0.1:{system.port('idp', 'http')}"
    phone = browser.new_context(**PHONE)
    app = phone.new_page()
    app.goto(base + "/app/")
    app.wait_for_selector("html[data-ready=yes]", state="attached", timeout=15000)
    screen(app, "welcome")
    made = photograph(app, "app-welcome", out)
    app.fill("#new-pin", PIN)
    app.fill("#new-pin-again", PIN)
    app.click("#register-form button[type=submit]")
    screen(app, "accounts")
    enrol(system, app)
    app.evaluate("document.getElementById('notice').hidden = true")  # the set-up's note, shown once
    made += photograph(app, "app-accounts", out)
    # A push login asked for on a computer: the app shows who asks and the numbers to pick from.
    desktop = browser.new_page()
    desktop.goto(base + "/login")
    desktop.click("#push-option summary")
    desktop.fill("#username", USER)
    desktop.click("#push button[type=submit]")
    desktop.wait_for_selector("#push-number:not([hidden])", timeout=15000)
    app.click("#check-inbox")
    screen(app, "inbox")
    app.click("#inbox-list li:last-child button")
    screen(app, "approve")
    made += photograph(app, "app-approve", out)
    desktop.close()
    # The login page on the phone itself: "Open in the app on this phone".
    login = phone.new_page()
    login.goto(base + "/login")
    login.wait_for_selector("#open-in-app", state="visible")
    made += photograph(login, "login-open-in-app", out)
    phone.close()
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="nextauth-app-screenshots-") as scratch:
        system = start_system(Path(scratch) / "system")
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                try:
                    made = shoot(system, browser, args.out)
                finally:
                    browser.close()
        finally:
            stop_system(system)
    for path in made:
        print(path.relative_to(REPO) if path.is_relative_to(REPO) else path)


if __name__ == "__main__":
    main()
