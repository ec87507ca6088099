"""Pictures of the IdP's login, consent and My account pages for the docs: light and dark, phone and desktop.

Starts the whole system on loopback (embedded defaults, a temporary folder), enrols a phone (the simulator),
registers the example OIDC client, and photographs the pages in headless Chromium as a person meets them.

    .venv/bin/python docs/images/make_screenshots.py [--out docs/images] [--lang en]

Needs Chromium (Debian package 'chromium') and the dev extras (Playwright).
"""

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.fixtures.page_tour import tour  # noqa: E402
from tests.fixtures.system import start_system, stop_system  # noqa: E402

VIEWS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
SCHEMES = ("light", "dark")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def photograph(page: object, name: str, out: Path) -> list[Path]:
    """The page as it is, in every view and colour scheme (emulation applies without a reload)."""
    made = []
    for view, size in VIEWS.items():
        for scheme in SCHEMES:
            page.set_viewport_size(size)  # type: ignore[attr-defined]
            page.emulate_media(color_scheme=scheme)  # type: ignore[attr-defined]
            target = out / f"{name}-{scheme}-{view}.png"
            page.screenshot(path=str(target), full_page=True)  # type: ignore[attr-defined]
            made.append(target)
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--lang", choices=("en", "de", "fr"), default="en")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="nextauth-screenshots-") as scratch:
        system = start_system(Path(scratch) / "system")
        try:
            with tour(system, Path(scratch) / "phone") as pages, sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                context = browser.new_context(device_scale_factor=1)
                context.add_cookies([{"name": "lang", "value": args.lang, "url": pages.idp}])
                page = context.new_page()
                page.goto(f"{pages.idp}/login")
                page.wait_for_selector("#qr svg")
                made = photograph(page, "login", args.out)
                pages.consent(page)
                made += photograph(page, "consent", args.out)
                # Allowed: the application is listed on My account beside the phone and the session.
                page.click("button[value=allow]")
                page.wait_for_selector("#hello", timeout=15000)
                page.goto(f"{pages.idp}/account/")
                page.wait_for_selector("#devices")
                made += photograph(page, "account", args.out)
                browser.close()
        finally:
            stop_system(system)
    for path in made:
        print(path)


if __name__ == "__main__":
    main()
