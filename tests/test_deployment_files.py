"""The deployment files agree with the code: docker-compose.yml, traefik-plugin/dynamic.yml, Dockerfile.

Nothing here runs Docker or Traefik. Each file is parsed and held against what the code defines: the
variables `authserver.config` knows, the `nextauth` subcommands, `DEFAULT_PORTS["standalone"]`, and the
seed's routing table. The checks return lists of problems, so the tests at the end can show that each
check catches what it is for (a misspelled variable, a wrong port, a missing route).
"""

import copy
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from authserver.config import COMPONENTS, DEFAULT_PORTS, load_config, unknown_variables
from authserver.ns.common import parse_trusted_sfs_keys
from authserver.ns.mc_client import parse_message_centers
from sigmai import ServerIdentity

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DYNAMIC = ROOT / "traefik-plugin" / "dynamic.yml"
DOCKERFILE = ROOT / "Dockerfile"
DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"
STANDALONE = DEFAULT_PORTS["standalone"]

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
}

RULE = re.compile(r"^Host\(`(?P<host>[^`]+)`\)(?: && PathPrefix\(`(?P<path>/[^`]*)`\))?$")
HOST_PLACEHOLDERS = ("${PUBLIC_HOST}", '{{ env "PUBLIC_HOST" }}')
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?P<rest>[^}]*)\}")
HEALTH_URL = re.compile(r"http://(?:127\.0\.0\.1|localhost):(?P<port>\d+)/(?P<path>livez|readyz)\b")


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
        [sys.executable, "-m", "authserver.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=True,
    )
    match = re.search(r"\{([a-z,]+)\}", result.stdout)
    assert match, result.stdout
    return set(match.group(1).split(","))


# -- docker-compose.yml --------------------------------------------------------------------------------------


def nextauth_services(compose: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The services built from this repository's Dockerfile (ns, sfs, mc)."""
    return {name: service for name, service in compose["services"].items() if "build" in service}


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
    return INTERPOLATION.sub(lambda m: variables[m.group("name")], value)


def command_problems(compose: Mapping[str, Any], subcommands: set[str]) -> list[str]:
    problems = []
    services = nextauth_services(compose)
    if set(services) != set(COMPONENTS):
        problems.append(f"services built from the Dockerfile are {sorted(services)}, expected {COMPONENTS}")
    for name, service in services.items():
        argv = command(service)
        if not argv or argv[0] not in subcommands:
            problems.append(f"{name}: command {argv} is not a nextauth subcommand ({sorted(subcommands)})")
        elif argv != [name]:
            problems.append(f"{name}: runs {argv}, expected [{name!r}]")
    images = {service.get("image") for service in services.values()}
    if len(images) != 1:
        problems.append(f"ns, sfs and mc should share one image, got {images}")
    return problems


def environment_problems(compose: Mapping[str, Any]) -> list[str]:
    problems = []
    shared = {f"NEXTAUTH_{flag}" for flag in ("DB_URI", "KV_URI", "LOG_LEVEL", "LOG_FORMAT", "DATA_DIR")}
    for name, service in compose["services"].items():
        env = environment(service)
        for variable in unknown_variables(env):
            problems.append(f"{name}: {variable} is not a setting the code knows")
        for variable in env:
            if not variable.startswith("NEXTAUTH_"):
                continue
            base = variable.removesuffix("_FILE")
            if name not in COMPONENTS:
                problems.append(f"{name}: sets {variable}, but only ns, sfs and mc read NEXTAUTH_ settings")
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
        for variable, value in environment(service).items():
            if not variable.endswith("_FILE"):
                continue
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
        if int(match.group("port")) != STANDALONE[name]["admin"]:
            problems.append(
                f"{name}: health check on port {match.group('port')}, admin is {STANDALONE[name]['admin']}"
            )
        if match.group("path") not in paths:
            problems.append(f"{name}: health check on /{match.group('path')}, expected one of {paths}")
    return problems


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
        if url.scheme != "http" or url.hostname not in COMPONENTS or url.port is None:
            problems.append(
                f"service {spec['service']}: {servers[0]['url']} is not http://<ns|sfs|mc>:<port>"
            )
            continue
        routes[parsed] = (url.hostname, url.port)
    return routes, problems


def dynamic_health_problems(dynamic: Mapping[str, Any]) -> list[str]:
    problems = []
    for name, service in (dynamic.get("http") or {}).get("services", {}).items():
        host = urlsplit(service["loadBalancer"]["servers"][0]["url"]).hostname
        check = service["loadBalancer"].get("healthCheck") or {}
        if (
            host not in STANDALONE
            or check.get("port") != STANDALONE[host]["admin"]
            or check.get("path") != "/readyz"
        ):
            problems.append(f"service {name}: health check should be /readyz on {host}'s admin port")
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
    admin_ports = {ports["admin"] for ports in STANDALONE.values()}
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
    for name in COMPONENTS:
        assert f"NEXTAUTH_{name.upper()}_DB_URI_FILE" in environment(services[name])
    for name in ("sfs", "mc"):
        assert f"NEXTAUTH_{name.upper()}_IDENTITY_KEY_FILE" in environment(services[name])


def test_compose_health_checks_use_the_admin_port(compose: dict) -> None:
    assert health_problems(nextauth_services(compose), ("livez", "readyz")) == []


def test_compose_routes_match_the_seed_table_and_the_ports(compose: dict) -> None:
    routes, problems = compose_routes(compose)
    assert problems == []
    assert route_problems(routes) == []


def test_compose_traefik_finds_the_routed_containers(compose: dict) -> None:
    assert traefik_problems(compose) == []


def test_compose_ns_points_at_its_peers(compose: dict) -> None:
    services = compose["services"]
    variables = {"PUBLIC_HOST": "auth.example.com", "MC_KEY_HASH": "ab" * 32, "SFS_PUBLIC_KEY": "00" * 32}
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


def test_compose_configuration_loads(compose: dict, tmp_path: Path) -> None:
    """Each component's environment, with its secrets made real, passes the code's own start checks."""
    keys = {name: ed25519.Ed25519PrivateKey.generate() for name in ("sfs", "mc")}
    pem = {
        name: key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        for name, key in keys.items()
    }
    variables = {
        "PUBLIC_HOST": "auth.example.com",
        "ACME_EMAIL": "ops@example.com",
        "SFS_PUBLIC_KEY": ServerIdentity(keys["sfs"]).public_raw.hex(),
        "MC_KEY_HASH": ServerIdentity(keys["mc"]).key_hash.hex(),
    }
    secret_content = {
        "DB_URI": lambda component: f"sqlite:///{tmp_path / component}.db",
        "ROOT_API_KEY": lambda component: "k" * 40,
        "IDENTITY_KEY": lambda component: pem[component],
    }
    for name, service in nextauth_services(compose).items():
        env = {key: interpolate(value, variables) for key, value in environment(service).items()}
        for variable, path in list(env.items()):
            if variable.endswith("_FILE"):
                flag = variable.removeprefix(f"NEXTAUTH_{name.upper()}_").removesuffix("_FILE")
                secret = tmp_path / path.removeprefix("/run/secrets/")
                secret.write_text(secret_content[flag](name) + "\n")
                env[variable] = str(secret)
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
