"""The deployment files agree with the code: docker-compose.yml, traefik-plugin/dynamic.yml, Dockerfile,
and the Traefik plugin's manifest.

Nothing here runs Docker or Traefik (tests/test_traefik.py runs Traefik with these middlewares). Each file
is parsed and held against what the code defines: the variables `authserver.config` and the IdP know, the
`nextauth` subcommands, `DEFAULT_PORTS["standalone"]`, the seed's routing table, the IdP's forward-auth
routes and identity headers. The checks return lists of problems, so the tests at the end can show that
each check catches what it is for (a misspelled variable, a wrong port, a missing route).
"""

import copy
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from flask import Flask

from authserver.config import COMPONENTS, DEFAULT_PORTS, load_config, unknown_variables
from authserver.mc.providers import providers_from_environment
from authserver.ns.common import parse_trusted_sfs_keys
from authserver.ns.mc_client import parse_message_centers
from authserver.push.webpush import WebPushProvider
from idp import server as idp_server
from idp.context import EXTENSION as IDP_EXTENSION
from idp.forwardauth import blueprint as forward_auth_blueprint
from idp.forwardauth import settings as forward_auth_settings
from idp.forwardauth.urls import safe_return
from sigmai import ServerIdentity

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DYNAMIC = ROOT / "traefik-plugin" / "dynamic.yml"
DOCKERFILE = ROOT / "Dockerfile"
DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"
PLUGIN = ROOT / "traefik-plugin" / "nextauth"
STANDALONE = DEFAULT_PORTS["standalone"]
IDP, IDP_PORT = "idp", 8000  # idp.server listens on 8000 unless told otherwise
BUILT = (*COMPONENTS, IDP)  # the services made from the Dockerfile
EXAMPLE_APP = ("whoami", 80)  # the application docker-compose.yml protects as an example
IDENTITY_HEADERS = forward_auth_settings.HeaderNames().all()
STRIP, FORWARD_AUTH, PLUGIN_MIDDLEWARE = "nextauth-strip-identity", "nextauth-forward-auth", "nextauth-plugin"

# The seed's table (network-setup.txt, "Mapping Ports"): public path -> (component, endpoint), all on the
# one public host; plus the optional REST API host.
PATH_ROUTES = {
    "/ns/websocket": ("ns", "websocket"),
    "/ns/sigmai": ("ns", "sigmai"),
    "/mc/sigmai": ("mc", "sigmai"),
    "/sfs/sigmai": ("sfs", "sigmai"),
}
HOST_ROUTES = {"ns-api.": ("ns", "http")}
HOST = "<host>"  # stands for ${PUBLIC_HOST} (compose) and {{ env "PUBLIC_HOST" }} (file provider)
EXPECTED_ROUTES = {
    **{(HOST, path): (c, STANDALONE[c][endpoint]) for path, (c, endpoint) in PATH_ROUTES.items()},
    **{(prefix + HOST, None): (c, STANDALONE[c][endpoint]) for prefix, (c, endpoint) in HOST_ROUTES.items()},
    (HOST, None): (IDP, IDP_PORT),  # the IdP takes what the paths above leave on the public host
    (f"{EXAMPLE_APP[0]}.{HOST}", None): EXAMPLE_APP,
}

RULE = re.compile(r"^Host\(`(?P<host>[^`]+)`\)(?: && PathPrefix\(`(?P<path>/[^`]*)`\))?$")
HOST_PLACEHOLDERS = ("${PUBLIC_HOST}", '{{ env "PUBLIC_HOST" }}')
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?P<rest>[^}]*)\}")
HEALTH_URL = re.compile(r"http://(?:127\.0\.0\.1|localhost):(?P<port>\d+)/(?P<path>livez|readyz)\b")
IDP_ADMIN_PORT = idp_server.ADMIN_PORT["standalone"]


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name} is not a YAML mapping"
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


@pytest.fixture(scope="module")
def dynamic() -> dict[str, Any]:
    return load_yaml(DYNAMIC)


@pytest.fixture(scope="module")
def subcommands() -> set[str]:
    """The subcommands of the real `nextauth` parser, asked in a subprocess (the CLI patches with gevent)."""
    result = subprocess.run(
        [sys.executable, "-m", "nextauth.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=True,
    )
    match = re.search(r"\{([a-z,-]+)\}", result.stdout)
    assert match, result.stdout
    return set(match.group(1).split(","))


# -- docker-compose.yml --------------------------------------------------------------------------------------


def nextauth_services(compose: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The services built from this repository's Dockerfile (ns, sfs, mc, idp)."""
    return {name: service for name, service in compose["services"].items() if "build" in service}


def component_services(compose: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """ns, sfs and mc: the services with the components' admin port (the IdP's is idp.server's)."""
    return {name: service for name, service in nextauth_services(compose).items() if name in COMPONENTS}


def idp_settings() -> set[str]:
    """The NEXTAUTH_IDP_ variables the IdP's code reads: spelled out in idp/ or the CLI (nextauth/), a flag of
    idp.server's get(), a forward-auth setting, or one idp.server.known_variables() lists."""
    names: set[str] = set()
    for path in [*(ROOT / "idp").rglob("*.py"), *(ROOT / "nextauth").rglob("*.py")]:
        names |= set(re.findall(r"NEXTAUTH_IDP_[A-Z0-9_]*[A-Z0-9]", path.read_text(encoding="utf-8")))
    server = (ROOT / "idp" / "server.py").read_text(encoding="utf-8")
    names |= {f"NEXTAUTH_IDP_{flag}" for flag in re.findall(r'\bget\("([A-Z_]+)"', server)}
    names |= {forward_auth_settings.PREFIX + flag for flag in forward_auth_settings.SETTINGS}
    names |= idp_server.known_variables()  # what the IdP declares it reads (settings, rate limits, proxies)
    return names


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(key): str(value) for key, value in env.items()}


def labels(service: Mapping[str, Any]) -> dict[str, str]:
    raw = service.get("labels") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {str(key): str(value) for key, value in raw.items()}


def command(service: Mapping[str, Any]) -> list[str]:
    value = service.get("command") or []
    return shlex.split(value) if isinstance(value, str) else [str(part) for part in value]


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:?message}, ${VAR:-default}, enough for this file."""

    def value_of(match: re.Match[str]) -> str:
        name, rest = match.group("name"), match.group("rest")
        if name not in variables and rest.startswith(":-"):
            return rest[2:]
        return variables[name]

    return INTERPOLATION.sub(value_of, value)


def command_problems(compose: Mapping[str, Any], subcommands: set[str]) -> list[str]:
    problems = []
    services = nextauth_services(compose)
    if set(services) != set(BUILT):
        problems.append(f"services built from the Dockerfile are {sorted(services)}, expected {BUILT}")
    for name, service in services.items():
        argv = command(service)
        if not argv or argv[0] not in subcommands:
            problems.append(f"{name}: command {argv} is not a nextauth subcommand ({sorted(subcommands)})")
        elif argv != [name]:
            problems.append(f"{name}: runs {argv}, expected [{name!r}]")
    images = {service.get("image") for service in services.values()}
    if len(images) != 1:
        problems.append(f"ns, sfs, mc and idp should share one image, got {images}")
    return problems


def environment_problems(compose: Mapping[str, Any]) -> list[str]:
    problems = []
    shared = {f"NEXTAUTH_{flag}" for flag in ("DB_URI", "KV_URI", "LOG_LEVEL", "LOG_FORMAT", "DATA_DIR")}
    known_to_idp = idp_settings()
    for name, service in compose["services"].items():
        env = environment(service)
        for variable in unknown_variables(env):
            problems.append(f"{name}: {variable} is not a setting the code knows")
        for variable in env:
            if not variable.startswith("NEXTAUTH_"):
                continue
            base = variable.removesuffix("_FILE")
            if name == IDP:
                if base not in known_to_idp and base not in shared:
                    problems.append(f"{name}: sets {variable}, which the IdP does not read")
            elif name not in COMPONENTS:
                problems.append(
                    f"{name}: sets {variable}, but only ns, sfs, mc and idp read NEXTAUTH_ settings"
                )
            elif not base.startswith(f"NEXTAUTH_{name.upper()}_") and base not in shared:
                problems.append(f"{name}: sets {variable}, which {name} does not read")
    return problems


def secret_problems(compose: Mapping[str, Any]) -> list[str]:
    problems = []
    declared = compose.get("secrets") or {}
    for name, definition in declared.items():
        if not isinstance(definition, dict) or "file" not in definition:
            problems.append(f"secret {name}: expected a `file:` (an operator-made file under ./secrets/)")
    for name, service in compose["services"].items():
        granted = {item if isinstance(item, str) else item["source"] for item in service.get("secrets") or []}
        for secret in granted - set(declared):
            problems.append(f"{name}: uses secret {secret}, which is not declared at the top level")
        configs = {item["target"] for item in service.get("configs") or [] if isinstance(item, dict)}
        for variable, value in environment(service).items():
            if not variable.endswith("_FILE") or value in configs:
                continue  # a compose config (not secret) mounted as a file, like the access rules
            secret = value.removeprefix("/run/secrets/")
            if secret == value:
                problems.append(f"{name}: {variable}={value} is not a Docker secret (/run/secrets/...)")
            elif secret not in granted:
                problems.append(f"{name}: {variable} reads secret {secret}, which {name} is not given")
    return problems


def health_problems(services: Mapping[str, Mapping[str, Any]], paths: tuple[str, ...]) -> list[str]:
    problems = []
    for name, service in services.items():
        test = service.get("healthcheck", {}).get("test")
        text = " ".join(test) if isinstance(test, list) else str(test or "")
        match = HEALTH_URL.search(text)
        if match is None:
            problems.append(f"{name}: no health check against the admin port's /livez or /readyz")
            continue
        admin = STANDALONE[name]["admin"] if name in STANDALONE else IDP_ADMIN_PORT
        if int(match.group("port")) != admin:
            problems.append(f"{name}: health check on port {match.group('port')}, admin is {admin}")
        if match.group("path") not in paths:
            problems.append(f"{name}: health check on /{match.group('path')}, expected one of {paths}")
    return problems


def idp_health_problems(service: Mapping[str, Any]) -> list[str]:
    """The IdP's check asks /livez on its admin port (NEXTAUTH_IDP_ADMIN_PORT, else the default), never
    its public port: /readyz would also fail while ns is down, and Traefik would then stop routing the
    IdP pages that need no ns (JWKS, token refresh); readiness is for monitoring."""
    environment = service.get("environment", {})
    configured = str(environment.get("NEXTAUTH_IDP_ADMIN_PORT", IDP_ADMIN_PORT))
    admin = int(configured.rpartition(":")[2]) if configured.rpartition(":")[2].isdigit() else None
    test = service.get("healthcheck", {}).get("test")
    text = " ".join(test) if isinstance(test, list) else str(test or "")
    match = HEALTH_URL.search(text)
    if admin is None or admin == IDP_PORT:
        return [f"idp: NEXTAUTH_IDP_ADMIN_PORT {configured!r} is not an admin port apart from {IDP_PORT}"]
    if match is None or int(match.group("port")) != admin or match.group("path") != "livez":
        return [f"idp: health check should GET http://127.0.0.1:{admin}/livez, not {text!r}"]
    return []


def parse_rule(rule: str) -> tuple[str, str | None] | None:
    for placeholder in HOST_PLACEHOLDERS:
        rule = rule.replace(placeholder, HOST)
    match = RULE.match(rule)
    return (match.group("host"), match.group("path")) if match else None


def compose_routes(
    compose: Mapping[str, Any],
) -> tuple[dict[tuple[str, str | None], tuple[str, int]], list[str]]:
    """Routes declared by Docker labels: (host, path) -> (container, port), and problems on the way."""
    routes: dict[tuple[str, str | None], tuple[str, int]] = {}
    problems = []
    for name, service in compose["services"].items():
        tags = labels(service)
        if tags.get("traefik.enable") != "true":
            continue
        ports = {
            key.split(".")[3]: int(value)
            for key, value in tags.items()
            if key.startswith("traefik.http.services.") and key.endswith(".loadbalancer.server.port")
        }
        routers = {key.split(".")[3] for key in tags if key.startswith("traefik.http.routers.")}
        for router in sorted(routers):
            prefix = f"traefik.http.routers.{router}."
            parsed = parse_rule(tags.get(prefix + "rule", ""))
            if parsed is None:
                problems.append(
                    f"{name}: router {router}: cannot read the rule {tags.get(prefix + 'rule')!r}"
                )
                continue
            target = tags.get(prefix + "service")
            if target not in ports:
                problems.append(f"{name}: router {router} names no service with a port ({target!r})")
                continue
            if tags.get(prefix + "entrypoints") != "websecure" or not tags.get(prefix + "tls.certresolver"):
                problems.append(f"{name}: router {router} is not on websecure with a certificate resolver")
            if parsed in routes:
                problems.append(f"{name}: router {router} repeats the route {parsed}")
            routes[parsed] = (name, ports[target])
    return routes, problems


def route_problems(routes: Mapping[tuple[str, str | None], tuple[str, int]]) -> list[str]:
    problems = []
    for route, target in EXPECTED_ROUTES.items():
        if route not in routes:
            problems.append(f"no route for {route} (expected to {target[0]}:{target[1]})")
        elif routes[route] != target:
            problems.append(
                f"{route} goes to {routes[route][0]}:{routes[route][1]}, expected {target[0]}:{target[1]}"
            )
    for route in routes.keys() - EXPECTED_ROUTES.keys():
        problems.append(f"unexpected route {route} -> {routes[route]}")
    return problems


def traefik_problems(compose: Mapping[str, Any]) -> list[str]:
    problems = []
    traefik = compose["services"].get("traefik")
    if traefik is None or not str(traefik.get("image", "")).startswith("traefik:v3"):
        return ["no traefik service on a traefik:v3 image"]
    flags = dict(flag.removeprefix("--").split("=", 1) for flag in command(traefik) if "=" in flag)
    if flags.get("providers.docker.exposedbydefault") != "false":
        problems.append(
            "traefik exposes every container by default; set providers.docker.exposedbydefault=false"
        )
    if "entrypoints.websecure.address" not in flags:
        problems.append("traefik has no websecure entry point")
    network = flags.get("providers.docker.network")
    networks = compose.get("networks") or {}
    named = {key: (value or {}).get("name", key) for key, value in networks.items()}
    edge = [key for key, real in named.items() if real == network]
    if not edge:
        problems.append(f"providers.docker.network={network} names none of the networks {named}")
    resolvers = {key.split(".")[1] for key in flags if key.startswith("certificatesresolvers.")}
    for name, service in compose["services"].items():
        tags = labels(service)
        if tags.get("traefik.enable") != "true":
            continue
        if edge and edge[0] not in (service.get("networks") or []):
            problems.append(f"{name}: routed by Traefik but not on its network {network}")
        for key, value in tags.items():
            if key.endswith(".tls.certresolver") and value not in resolvers:
                problems.append(f"{name}: {key}={value}, a resolver Traefik does not define ({resolvers})")
    return problems


# -- traefik-plugin/dynamic.yml ------------------------------------------------------------------------------


def dynamic_routes(
    dynamic: Mapping[str, Any],
) -> tuple[dict[tuple[str, str | None], tuple[str, int]], list[str]]:
    http = dynamic.get("http") or {}
    services = http.get("services") or {}
    routes: dict[tuple[str, str | None], tuple[str, int]] = {}
    problems = []
    for router, spec in (http.get("routers") or {}).items():
        parsed = parse_rule(spec.get("rule", ""))
        if parsed is None:
            problems.append(f"router {router} has a rule this check cannot read: {spec.get('rule')!r}")
            continue
        if spec.get("entryPoints") != ["websecure"] or "tls" not in spec:
            problems.append(f"router {router} is not on websecure with TLS")
        service = services.get(spec.get("service"))
        if service is None:
            problems.append(f"router {router} names an undefined service {spec.get('service')!r}")
            continue
        servers = service["loadBalancer"]["servers"]
        if len(servers) != 1:
            problems.append(f"service {spec['service']}: expected one server")
            continue
        url = urlsplit(servers[0]["url"])
        if url.scheme != "http" or url.hostname not in (*BUILT, EXAMPLE_APP[0]) or url.port is None:
            problems.append(
                f"service {spec['service']}: {servers[0]['url']} is not http://<ns|sfs|mc|idp|whoami>:<port>"
            )
            continue
        routes[parsed] = (url.hostname, url.port)
    return routes, problems


def dynamic_health_problems(dynamic: Mapping[str, Any]) -> list[str]:
    problems = []
    for name, service in (dynamic.get("http") or {}).get("services", {}).items():
        host = urlsplit(service["loadBalancer"]["servers"][0]["url"]).hostname
        check = service["loadBalancer"].get("healthCheck") or {}
        if host == EXAMPLE_APP[0]:
            continue
        if host == IDP:
            if check.get("port") != IDP_PORT or check.get("path") != "/auth/keys":
                problems.append(
                    f"service {name}: health check should be /auth/keys on the IdP's port {IDP_PORT}"
                )
            continue
        if (
            host not in STANDALONE
            or check.get("port") != STANDALONE[host]["admin"]
            or check.get("path") != "/readyz"
        ):
            problems.append(f"service {name}: health check should be /readyz on {host}'s admin port")
    return problems


# -- forward-auth: the middlewares, in labels and in the file provider ---------------------------------------


@dataclass
class AuthConfig:
    """The nextAuth middlewares and the routers that use them, however they were declared."""

    forward_auth: dict[str, Any]  # address, trust (bool), headers (list)
    stripped: set[str]  # header names the strip middleware removes, lower case
    plugin_idp_url: str | None
    routers: dict[str, list[str]]  # router -> middlewares, provider suffix dropped


def labels_auth(compose: Mapping[str, Any]) -> AuthConfig:
    tags: dict[str, str] = {}
    for service in compose["services"].values():
        tags.update({key.lower(): value for key, value in labels(service).items()})
    middleware = "traefik.http.middlewares."
    forward = f"{middleware}{FORWARD_AUTH}.forwardauth."
    strip = f"{middleware}{STRIP}.headers.customrequestheaders."
    routers = {
        key.split(".")[3]: [name.split("@")[0] for name in value.split(",")]
        for key, value in tags.items()
        if key.startswith("traefik.http.routers.") and key.endswith(".middlewares")
    }
    return AuthConfig(
        forward_auth={
            "address": tags.get(forward + "address"),
            "trust": tags.get(forward + "trustforwardheader", "false") == "true",
            "headers": [h for h in tags.get(forward + "authresponseheaders", "").split(",") if h],
        },
        stripped={
            key.removeprefix(strip) for key, value in tags.items() if key.startswith(strip) and value == ""
        },
        plugin_idp_url=tags.get(f"{middleware}{PLUGIN_MIDDLEWARE}.plugin.nextauth.idpurl"),
        routers=routers,
    )


def dynamic_auth(dynamic: Mapping[str, Any]) -> AuthConfig:
    middlewares = (dynamic.get("http") or {}).get("middlewares") or {}
    forward = (middlewares.get(FORWARD_AUTH) or {}).get("forwardAuth") or {}
    strip = ((middlewares.get(STRIP) or {}).get("headers") or {}).get("customRequestHeaders") or {}
    plugin = ((middlewares.get(PLUGIN_MIDDLEWARE) or {}).get("plugin") or {}).get("nextauth") or {}
    return AuthConfig(
        forward_auth={
            "address": forward.get("address"),
            "trust": bool(forward.get("trustForwardHeader", False)),
            "headers": list(forward.get("authResponseHeaders") or []),
        },
        stripped={name.lower() for name, value in strip.items() if value == ""},
        plugin_idp_url=plugin.get("idpUrl"),
        routers={
            name: [m.split("@")[0] for m in spec.get("middlewares") or []]
            for name, spec in ((dynamic.get("http") or {}).get("routers") or {}).items()
            if spec.get("middlewares")
        },
    )


def forward_auth_routes() -> set[str]:
    """The paths the IdP's forward-auth blueprint serves, from the blueprint itself."""
    app = Flask("deployment-check")
    app.extensions[IDP_EXTENSION] = type("Services", (), {"sessions": None, "keys": None})()
    app.register_blueprint(forward_auth_blueprint())
    return {rule.rule for rule in app.url_map.iter_rules()}


def auth_problems(config: AuthConfig, routes: set[str]) -> list[str]:
    problems = []
    address = urlsplit(config.forward_auth["address"] or "")
    if (address.hostname, address.port) != (IDP, IDP_PORT) or address.path not in routes:
        problems.append(
            f"{FORWARD_AUTH}: address {config.forward_auth['address']!r} is not http://{IDP}:{IDP_PORT}"
            " followed by a forward-auth path the IdP serves"
        )
    if address.path != "/auth/forward":
        problems.append(f"{FORWARD_AUTH}: address path {address.path!r}, the endpoint is /auth/forward")
    if config.forward_auth["trust"]:
        problems.append(f"{FORWARD_AUTH}: trustForwardHeader lets a client name the URL it is checked for")
    if {h.lower() for h in config.forward_auth["headers"]} != {h.lower() for h in IDENTITY_HEADERS}:
        sent = config.forward_auth["headers"]
        problems.append(f"{FORWARD_AUTH}: authResponseHeaders {sent}, the IdP sends {IDENTITY_HEADERS}")
    for header in IDENTITY_HEADERS:
        for spelling in (header, header.replace("-", "_")):
            if spelling.lower() not in config.stripped:
                problems.append(f"{STRIP}: does not remove {spelling}")
    if config.plugin_idp_url != f"http://{IDP}:{IDP_PORT}":
        problems.append(
            f"{PLUGIN_MIDDLEWARE}: idpUrl {config.plugin_idp_url!r}, the IdP is http://{IDP}:{IDP_PORT}"
        )
    protected = [
        name for name, chain in config.routers.items() if FORWARD_AUTH in chain or PLUGIN_MIDDLEWARE in chain
    ]
    if EXAMPLE_APP[0] not in protected:
        problems.append(f"router {EXAMPLE_APP[0]}: not protected by nextAuth")
    for name, chain in config.routers.items():
        if FORWARD_AUTH in chain and (
            chain.index(FORWARD_AUTH) == 0 or chain[chain.index(FORWARD_AUTH) - 1] != STRIP
        ):
            problems.append(f"router {name}: {FORWARD_AUTH} without {STRIP} right before it")
    return problems


def plugin_problems(compose: Mapping[str, Any]) -> list[str]:
    """The plugin's sources agree with their manifest, and Traefik in compose loads them from where the
    manifest says."""
    problems = []
    manifest = load_yaml(PLUGIN / ".traefik.yml")
    module = str(manifest.get("import", ""))
    go_mod = (PLUGIN / "go.mod").read_text(encoding="utf-8")
    if f"module {module}\n" not in go_mod:
        problems.append(f"go.mod does not declare module {module}")
    package = manifest.get("basePkg") or module.rsplit("/", 1)[-1]
    sources = sorted(PLUGIN.glob("*.go"))
    for source in sources:
        if not re.search(rf"^package {re.escape(package)}$", source.read_text(encoding="utf-8"), re.M):
            problems.append(f"{source.name}: not in package {package}")
    fields = set(re.findall(r'json:"(\w+)', "".join(s.read_text(encoding="utf-8") for s in sources)))
    for key in manifest.get("testData") or {}:
        if key not in fields:
            problems.append(f".traefik.yml testData: {key} is not a setting of the plugin")
    traefik = compose["services"]["traefik"]
    flags = {
        k.lower(): v for k, v in (f.removeprefix("--").split("=", 1) for f in command(traefik) if "=" in f)
    }
    if flags.get("experimental.localplugins.nextauth.modulename") != module:
        problems.append(f"traefik: experimental.localplugins.nextauth.modulename should be {module}")
    mounts = {v.split(":")[1]: v.split(":")[0] for v in traefik.get("volumes") or [] if v.startswith("./")}
    if mounts.get(f"/plugins-local/src/{module}") != "./traefik-plugin/nextauth":
        problems.append(f"traefik: ./traefik-plugin/nextauth is not mounted at /plugins-local/src/{module}")
    if flags.get("entrypoints.websecure.http.aliasheadersstrategy") != "delete":
        problems.append(
            "traefik: websecure keeps header aliases (Remote_User): set aliasheadersstrategy=delete"
        )
    return problems


# -- Dockerfile ----------------------------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def exec_form(arguments: str) -> list[str]:
    value = yaml.safe_load(arguments)  # JSON arrays are YAML flow sequences
    assert isinstance(value, list), f"not in exec form: {arguments}"
    return [str(item) for item in value]


def dockerfile_problems(text: str, subcommands: set[str]) -> list[str]:
    problems = []
    instructions = dockerfile_instructions(text)

    def arguments(name: str) -> list[str]:
        return [args for instruction, args in instructions if instruction == name]

    for base in arguments("FROM"):
        if not base.startswith("python:3.11-slim"):
            problems.append(f"FROM {base}: expected python:3.11-slim")
    exposed = {int(port.split("/")[0]) for args in arguments("EXPOSE") for port in args.split()}
    wanted = {port for ports in STANDALONE.values() for port in ports.values()}
    if exposed != wanted:
        problems.append(f"EXPOSE {sorted(exposed)}, the standalone ports are {sorted(wanted)}")
    entrypoint, cmd = arguments("ENTRYPOINT"), arguments("CMD")
    if not entrypoint or exec_form(entrypoint[-1]) != ["nextauth"]:
        problems.append('ENTRYPOINT should be ["nextauth"]')
    if not cmd or exec_form(cmd[-1])[0] not in subcommands:
        problems.append(f"CMD {cmd} is not a nextauth subcommand")
    elif exec_form(cmd[-1]) != ["ns"]:
        problems.append('CMD should be ["ns"]')
    users = arguments("USER")
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append("the image should run as a non-root USER")
    health = " ".join(arguments("HEALTHCHECK"))
    match = HEALTH_URL.search(health)
    # One image for ns, sfs, mc and the IdP: its check must hold for each of them.
    admin_ports = {ports["admin"] for ports in STANDALONE.values()} | {IDP_ADMIN_PORT}
    if match is None or match.group("path") != "livez" or {int(match.group("port"))} != admin_ports:
        problems.append(f"HEALTHCHECK should GET /livez on the admin port {admin_ports}: {health!r}")
    if "curl" in health or "wget" in health:
        problems.append("HEALTHCHECK uses a tool python:3.11-slim does not have")
    if not any("pip install ." in args for args in arguments("RUN")):
        problems.append("the image should `pip install .`")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {name.rstrip("*") for name in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = set()
    for args in arguments("COPY"):
        parts = args.split()
        if parts[0].startswith("--from"):
            continue
        for source in parts[:-1]:
            copied.add(source.rstrip("/"))
            if not (ROOT / source).exists():
                problems.append(f"COPY {source}: no such file in the repository")
    for needed in sorted(packages | {"pyproject.toml", project["project"]["readme"]}):
        if needed not in copied:
            problems.append(f"the build does not COPY {needed}, which `pip install .` needs")
    for args in arguments("ENV"):
        names = re.findall(r"(NEXTAUTH_\w+)=", args)
        for variable in unknown_variables(dict.fromkeys(names, "x")):
            problems.append(f"ENV {variable} is not a setting the code knows")
    return problems


# -- the files as they are -----------------------------------------------------------------------------------


def test_compose_runs_each_component_with_a_real_subcommand(compose: dict, subcommands: set[str]) -> None:
    assert command_problems(compose, subcommands) == []


def test_compose_sets_only_variables_the_code_reads(compose: dict) -> None:
    assert environment_problems(compose) == []


def test_compose_passes_secrets_as_file_variables(compose: dict) -> None:
    assert secret_problems(compose) == []
    services = nextauth_services(compose)
    assert "NEXTAUTH_NS_ROOT_API_KEY_FILE" in environment(services["ns"])
    for name in BUILT:
        assert f"NEXTAUTH_{name.upper()}_DB_URI_FILE" in environment(services[name])
    for flag in ("SECRET_KEY", "NS_API_KEY"):
        assert f"NEXTAUTH_IDP_{flag}_FILE" in environment(services[IDP])
    for name in ("sfs", "mc"):
        assert f"NEXTAUTH_{name.upper()}_IDENTITY_KEY_FILE" in environment(services[name])


def test_compose_health_checks_use_the_admin_port(compose: dict) -> None:
    assert health_problems(component_services(compose), ("livez", "readyz")) == []
    assert idp_health_problems(compose["services"][IDP]) == []


def test_compose_routes_match_the_seed_table_and_the_ports(compose: dict) -> None:
    routes, problems = compose_routes(compose)
    assert problems == []
    assert route_problems(routes) == []


def test_compose_traefik_finds_the_routed_containers(compose: dict) -> None:
    assert traefik_problems(compose) == []


def test_compose_ns_points_at_its_peers(compose: dict) -> None:
    services = compose["services"]
    variables = {
        "PUBLIC_HOST": "auth.example.com",
        "MC_KEY_HASH": "ab" * 32,
        "SFS_PUBLIC_KEY": "00" * 32,
        "SFS_ATTESTATION_PUBLIC_KEY": "11" * 32,
    }
    env = {key: interpolate(value, variables) for key, value in environment(services["ns"]).items()}
    public = {"NEXTAUTH_NS_DEFAULT_SIGMAI_URI": "sigmai", "NEXTAUTH_NS_DEFAULT_WEBSOCKET_URI": "websocket"}
    for variable, endpoint in public.items():
        uri = urlsplit(env[variable])
        assert uri.scheme == "wss" and uri.hostname == "auth.example.com"
        assert PATH_ROUTES[uri.path] == ("ns", endpoint)
    centers = parse_message_centers(env["NEXTAUTH_NS_MESSAGE_CENTERS"])
    assert centers == {"ab" * 32: f"grpc://mc:{STANDALONE['mc']['grpc']}"}
    assert "mc" in services
    store = urlsplit(env["NEXTAUTH_NS_KV_URI"])
    assert store.scheme == "redis" and store.hostname in services and store.port == 6379


def made_real(
    name: str, env: dict[str, str], compose: Mapping[str, Any], tmp_path: Path, secrets: dict
) -> None:
    """Point every _FILE variable at a file with plausible content: a secret, or the compose config
    mounted there."""
    configs = {
        target["target"]: compose["configs"][target["source"]]["content"]
        for target in compose["services"][name].get("configs") or []
    }
    for variable, path in list(env.items()):
        if not variable.endswith("_FILE"):
            continue
        real = tmp_path / f"{name}-{path.rsplit('/', 1)[-1]}"
        if path in configs:
            real.write_text(configs[path])
        else:
            flag = variable.removeprefix(f"NEXTAUTH_{name.upper()}_").removesuffix("_FILE")
            real.write_text(secrets[flag](name) + "\n")
        env[variable] = str(real)


def test_compose_configuration_loads(compose: dict, tmp_path: Path) -> None:
    """Each component's environment, with its secrets made real, passes the code's own start checks."""
    keys = {name: ed25519.Ed25519PrivateKey.generate() for name in ("sfs", "mc", "sfs-attestation")}
    pem = {
        name: key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        for name, key in keys.items()
    }
    vapid_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    variables = {
        "PUBLIC_HOST": "auth.example.com",
        "ACME_EMAIL": "ops@example.com",
        "SFS_PUBLIC_KEY": ServerIdentity(keys["sfs"]).public_raw.hex(),
        "SFS_ATTESTATION_PUBLIC_KEY": keys["sfs-attestation"].public_key().public_bytes_raw().hex(),
        "MC_KEY_HASH": ServerIdentity(keys["mc"]).key_hash.hex(),
    }
    secret_content = {
        "DB_URI": lambda component: f"sqlite:///{tmp_path / component}.db",
        "ROOT_API_KEY": lambda component: "k" * 40,
        "IDENTITY_KEY": lambda component: pem[component],
        "ATTESTATION_KEY": lambda component: pem[f"{component}-attestation"],
        "SECRET_KEY": lambda component: "s" * 48,
        "NS_API_KEY": lambda component: "k" * 40,
        "WEBPUSH_VAPID_PRIVATE_KEY": lambda component: vapid_pem,
    }
    resolved = {
        "configs": {
            name: {"content": interpolate(config["content"], variables)}
            for name, config in compose["configs"].items()
        }
    }
    for name, service in nextauth_services(compose).items():
        env = {key: interpolate(value, variables) for key, value in environment(service).items()}
        made_real(name, env, {**compose, **resolved}, tmp_path, secret_content)
        if name == IDP:
            continue
        config = load_config(name, env)
        assert config.db_uri.startswith("sqlite:///")
        if name in keys:
            assert config.identity_key_pem is not None
        if name == "ns":
            trusted = parse_trusted_sfs_keys(env["NEXTAUTH_NS_TRUSTED_SFS_KEYS"].split(","))
            assert list(trusted) == [ServerIdentity(keys["sfs"]).key_hash.hex()]
            assert list(parse_message_centers(env["NEXTAUTH_NS_MESSAGE_CENTERS"])) == [
                variables["MC_KEY_HASH"]
            ]
            assert config.public_sigmai_uri == "wss://auth.example.com/ns/sigmai"
        if name == "mc":
            # The push providers read their own settings; the VAPID key and subject must pass them.
            providers = providers_from_environment(env, tmp_path / "mc-data")
            try:
                webpush = providers["webpush"]
                assert isinstance(webpush, WebPushProvider) and webpush.vapid.public_key
            finally:
                for provider in providers.values():
                    provider.close()
            assert not (tmp_path / "mc-data").exists()  # the configured key, not one made on the spot


def test_compose_idp_configuration_loads(compose: dict, tmp_path: Path) -> None:
    """The IdP's environment passes its start checks, points at ns and at the public host, and its
    forward-auth sends browsers back to the example application (and not elsewhere)."""
    variables = {"PUBLIC_HOST": "auth.example.com"}
    env = {key: interpolate(value, variables) for key, value in environment(compose["services"][IDP]).items()}
    resolved = {
        **compose,
        "configs": {
            n: {"content": interpolate(c["content"], variables)} for n, c in compose["configs"].items()
        },
    }
    made_real(
        IDP, env, resolved, tmp_path,
        {"DB_URI": lambda _c: f"sqlite:///{tmp_path}/idp.db", "SECRET_KEY": lambda _c: "s" * 48,
         "NS_API_KEY": lambda _c: "k" * 40},
    )  # fmt: skip
    settings = idp_server.load_settings(env, data_dir=tmp_path)
    assert settings.listen.port == IDP_PORT
    assert settings.public_url == "https://auth.example.com"
    assert settings.cookie_domain == "auth.example.com"
    api = urlsplit(settings.ns_api_url)
    assert (api.hostname, api.port) == ("ns", STANDALONE["ns"]["http"])
    websocket = urlsplit(settings.websocket_url)
    assert websocket.hostname == "auth.example.com" and PATH_ROUTES[websocket.path] == ("ns", "websocket")
    forward_auth = forward_auth_settings.load_settings(env)
    app = f"https://{EXAMPLE_APP[0]}.auth.example.com/"
    assert safe_return(app, forward_auth.return_hosts, idp_url=settings.public_url) == app
    assert (
        safe_return("https://evil.example/", forward_auth.return_hosts, idp_url=settings.public_url) is None
    )
    assert (
        forward_auth.rules.decide(f"{EXAMPLE_APP[0]}.auth.example.com", "/health", "GET").policy == "public"
    )
    assert (
        forward_auth.rules.decide(f"{EXAMPLE_APP[0]}.auth.example.com", "/", "GET").policy == "authenticated"
    )


def test_compose_variables_are_documented(compose: dict) -> None:
    used = set(INTERPOLATION.findall(COMPOSE.read_text(encoding="utf-8")))
    doc = DEPLOYMENT_DOC.read_text(encoding="utf-8")
    assert {name for name, _rest in used if name not in doc} == set()


def test_file_provider_routes_match_the_seed_table_and_the_ports(dynamic: dict) -> None:
    routes, problems = dynamic_routes(dynamic)
    assert problems == []
    assert route_problems(routes) == []
    assert dynamic_health_problems(dynamic) == []


def test_file_provider_and_labels_declare_the_same_routes(compose: dict, dynamic: dict) -> None:
    assert dynamic_routes(dynamic)[0] == compose_routes(compose)[0]


def test_labels_and_file_provider_configure_forward_auth_as_the_idp_serves_it(
    compose: dict, dynamic: dict
) -> None:
    routes = forward_auth_routes()
    assert {"/auth/forward", "/auth/return", "/auth/keys", "/auth/ended", "/auth/policy"} <= routes
    assert auth_problems(labels_auth(compose), routes) == []
    assert auth_problems(dynamic_auth(dynamic), routes) == []


def test_compose_loads_the_plugin_from_this_repository(compose: dict) -> None:
    assert plugin_problems(compose) == []


def test_dockerfile_matches_the_code(subcommands: set[str]) -> None:
    assert dockerfile_problems(DOCKERFILE.read_text(encoding="utf-8"), subcommands) == []


# -- the checks catch what they are for ----------------------------------------------------------------------


def test_a_misspelled_variable_is_caught(compose: dict) -> None:
    broken = copy.deepcopy(compose)
    env = broken["services"]["sfs"]["environment"]
    env["NEXTAUTH_SFS_PIN_MAX_ATEMPTS"] = "3"
    env["NEXTAUTH_MC_LOG_FORMAT"] = "json"  # known, but sfs does not read mc's settings
    problems = environment_problems(broken)
    assert any("NEXTAUTH_SFS_PIN_MAX_ATEMPTS is not a setting" in p for p in problems)
    assert any("NEXTAUTH_MC_LOG_FORMAT, which sfs does not read" in p for p in problems)


def test_a_wrong_port_or_missing_route_is_caught(compose: dict, dynamic: dict) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["mc"]["labels"]["traefik.http.services.mc-sigmai.loadbalancer.server.port"] = "9090"
    del broken["services"]["ns"]["labels"]["traefik.http.routers.ns-websocket.rule"]
    routes, _ = compose_routes(broken)
    problems = route_problems(routes)
    assert any("/mc/sigmai') goes to mc:9090, expected mc:8888" in p for p in problems)
    assert any("no route for ('<host>', '/ns/websocket')" in p for p in problems)
    broken_dynamic = copy.deepcopy(dynamic)
    broken_dynamic["http"]["services"]["sfs-sigmai"]["loadBalancer"]["servers"] = [{"url": "http://sfs:8889"}]
    assert any("goes to sfs:8889" in p for p in route_problems(dynamic_routes(broken_dynamic)[0]))


def test_a_wrong_command_health_check_or_secret_is_caught(compose: dict, subcommands: set[str]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["sfs"]["command"] = ["second-factor"]
    broken["services"]["mc"]["healthcheck"] = {"test": ["CMD", "python", "-c", "http://127.0.0.1:8080/livez"]}
    broken["services"]["ns"]["environment"]["NEXTAUTH_NS_ROOT_API_KEY_FILE"] = "/run/secrets/root_key"
    assert any("second-factor" in p for p in command_problems(broken, subcommands))
    assert any(
        "mc: health check on port 8080" in p for p in health_problems(nextauth_services(broken), ("livez",))
    )
    assert any("reads secret root_key" in p for p in secret_problems(broken))


def test_a_wrong_dockerfile_is_caught(subcommands: set[str]) -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    broken = (
        text.replace("EXPOSE 8080 8888 9090 9613 9999", "EXPOSE 8080 8888 9613")
        .replace('CMD ["ns"]', 'CMD ["server"]')
        .replace("COPY sigmai ./sigmai\n", "")
        .replace("USER 10001:10001", "USER root")
    )
    assert broken != text
    problems = dockerfile_problems(broken, subcommands)
    assert any(p.startswith("EXPOSE") for p in problems)
    assert any("not a nextauth subcommand" in p for p in problems)
    assert any("does not COPY sigmai" in p for p in problems)
    assert any("non-root" in p for p in problems)


def test_a_traefik_that_cannot_reach_the_services_is_caught(compose: dict, dynamic: dict) -> None:
    broken = copy.deepcopy(compose)
    flags = broken["services"]["traefik"]["command"]
    flags[flags.index("--providers.docker.network=nextauth-edge")] = "--providers.docker.network=edge"
    broken["services"]["sfs"]["networks"] = ["backend"]
    problems = traefik_problems(broken)
    assert any("names none of the networks" in p for p in problems)
    broken = copy.deepcopy(compose)
    broken["services"]["sfs"]["networks"] = ["backend"]
    assert any("sfs: routed by Traefik but not on its network" in p for p in traefik_problems(broken))
    broken_dynamic = copy.deepcopy(dynamic)
    broken_dynamic["http"]["services"]["mc-sigmai"]["loadBalancer"]["healthCheck"]["port"] = 8888
    assert any("mc-sigmai" in p for p in dynamic_health_problems(broken_dynamic))


def test_wrong_forward_auth_settings_are_caught(compose: dict, dynamic: dict) -> None:
    routes = forward_auth_routes()
    broken = copy.deepcopy(compose)
    tags = broken["services"][IDP]["labels"]
    tags[f"traefik.http.middlewares.{FORWARD_AUTH}.forwardauth.address"] = "http://idp:8000/auth/fwd"
    tags[f"traefik.http.middlewares.{FORWARD_AUTH}.forwardauth.authresponseheaders"] = "Remote-User"
    del tags[f"traefik.http.middlewares.{STRIP}.headers.customrequestheaders.Remote_Groups"]
    broken["services"]["whoami"]["labels"]["traefik.http.routers.whoami.middlewares"] = (
        f"{FORWARD_AUTH}@docker"
    )
    problems = auth_problems(labels_auth(broken), routes)
    assert any("a forward-auth path the IdP serves" in p for p in problems)
    assert any("authResponseHeaders" in p for p in problems)
    assert any("does not remove Remote_Groups" in p for p in problems)
    assert any(f"without {STRIP} right before it" in p for p in problems)
    broken_dynamic = copy.deepcopy(dynamic)
    broken_dynamic["http"]["middlewares"][FORWARD_AUTH]["forwardAuth"]["trustForwardHeader"] = True
    broken_dynamic["http"]["middlewares"][PLUGIN_MIDDLEWARE]["plugin"]["nextauth"]["idpUrl"] = (
        "http://ns:8080"
    )
    problems = auth_problems(dynamic_auth(broken_dynamic), routes)
    assert any("trustForwardHeader" in p for p in problems)
    assert any("idpUrl" in p for p in problems)


def test_a_wrong_idp_service_is_caught(compose: dict) -> None:
    broken = copy.deepcopy(compose)
    env = broken["services"][IDP]["environment"]
    env["NEXTAUTH_IDP_FORWARD_AUTH_RULEZ_FILE"] = "/etc/rules.json"
    env["NEXTAUTH_NS_LOG_FORMAT"] = "json"
    broken["services"][IDP]["healthcheck"] = {
        "test": ["CMD", "python", "-c", f"urlopen('http://127.0.0.1:{IDP_PORT}/auth/keys')"]
    }
    problems = environment_problems(broken)
    assert any("NEXTAUTH_IDP_FORWARD_AUTH_RULEZ_FILE, which the IdP does not read" in p for p in problems)
    assert any("NEXTAUTH_NS_LOG_FORMAT, which the IdP does not read" in p for p in problems)
    assert idp_health_problems(broken["services"][IDP]) != []
    public_admin = copy.deepcopy(compose["services"][IDP])
    public_admin["environment"]["NEXTAUTH_IDP_ADMIN_PORT"] = str(IDP_PORT)
    assert any("not an admin port" in p for p in idp_health_problems(public_admin))
    readiness = copy.deepcopy(compose["services"][IDP])
    readiness["healthcheck"] = compose["services"]["ns"]["healthcheck"]  # /readyz: ns down is not dead
    assert idp_health_problems(readiness) != []
    flags = broken["services"]["traefik"]["command"]
    flags[:] = [flag for flag in flags if "aliasheadersstrategy" not in flag and "localplugins" not in flag]
    problems = plugin_problems(broken)
    assert any("modulename" in p for p in problems)
    assert any("aliasheadersstrategy" in p for p in problems)
