"""Shared pytest configuration: fixtures live in tests/fixtures/ as plugins.

Tests that start real services (a running system, Traefik, Chromium, push servers, listeners) are marked
``e2e`` here, so ``pytest -m "not e2e"`` is the fast set a developer runs while working.
"""

import pytest

pytest_plugins = [
    "tests.fixtures.chromium",
    "tests.fixtures.databases",
    "tests.fixtures.ns_services",
    "tests.fixtures.system",
]

# The fixtures that start a whole system (ns, sfs, mc, IdP) or headless Chromium for a test or a module.
E2E_FIXTURES = frozenset({"system", "browser"})
# Modules whose tests start servers themselves (start_system, Traefik, Chromium, local push servers, TLS
# listeners) rather than through a fixture above, or run the command line in subprocesses.
E2E_MODULES = frozenset(
    {
        "tests.test_api_access",
        "tests.test_cli",
        "tests.test_cluster",
        "tests.test_device_binding",
        "tests.test_flows",
        "tests.test_login_page",
        "tests.test_metrics_endpoints",
        "tests.test_drain",
        "tests.test_nodelay",
        "tests.test_rate_limits",
        "tests.test_resilience",
        "tests.test_saml",
        "tests.test_system_backends",
        "tests.test_tls_contexts",
        "tests.test_traefik",
        "tests.push.test_apns",
        "tests.push.test_fcm",
        "tests.push.test_webpush_delivery",
        "tests.push.test_webpush_mailbox",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = getattr(item, "module", None)
        uses_system = E2E_FIXTURES & set(getattr(item, "fixturenames", ()))
        if uses_system or (module is not None and module.__name__ in E2E_MODULES):
            item.add_marker(pytest.mark.e2e)


LOG_LINES_SHOWN = 150


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    """A failing test's report ends with the last lines of the log of every system it used: what the
    servers said is often the only clue to a failure seen once in CI."""
    from tests.fixtures.system import RunningSystem  # here: a plugin, imported by pytest_plugins first

    report: pytest.TestReport = yield
    if report.when == "call" and report.failed:
        for name, value in getattr(item, "funcargs", {}).items():
            if isinstance(value, RunningSystem):
                try:
                    lines = value.log().splitlines()[-LOG_LINES_SHOWN:]
                except OSError as exc:
                    lines = [f"(log not readable: {exc})"]
                report.sections.append((f"log of {name} (last {len(lines)} lines)", "\n".join(lines)))
    return report
