"""Structure of docker-compose.yml and the Dockerfile it builds (nothing here runs Docker)."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PACKAGES = ("common", "streams", "api", "storage", "schemas")
SERVICES = ("kafka", "postgres", "redis", "migrate", "worker", "ledger", "api")
APP_ENV = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "REDIS_URL")


# ------------------------------------------------------------------ helpers

def _compose() -> dict:
    assert COMPOSE_FILE.is_file(), f"{COMPOSE_FILE} is missing"
    # safe_load resolves anchors, aliases and `<<` merge keys (x-app-env).
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict), "docker-compose.yml must be a mapping"
    return data


def _services() -> dict:
    services = _compose().get("services")
    assert isinstance(services, dict) and services, "docker-compose.yml has no services mapping"
    return services


def _env(service: str) -> dict[str, str]:
    env = _services()[service].get("environment") or {}
    if isinstance(env, list):  # ["KEY=value", ...]
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    assert isinstance(env, dict), f"{service}: environment must be a mapping or a list"
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _command(service: str) -> list[str]:
    command = _services()[service].get("command")
    assert command, f"{service}: no command"
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def _build_contexts() -> dict[str, tuple[Path, Path]]:
    """service -> (context dir, Dockerfile path) for every service that builds."""
    out = {}
    for name, service in _services().items():
        build = service.get("build")
        if build is None:
            continue
        if isinstance(build, str):
            context, dockerfile = build, "Dockerfile"
        else:
            context, dockerfile = build.get("context", "."), build.get("dockerfile", "Dockerfile")
        context_dir = (ROOT / context).resolve()
        out[name] = (context_dir, (context_dir / dockerfile).resolve())
    return out


def _published(port) -> tuple[str | None, str]:
    """(host ip or None, text) of one `ports` entry, short or long syntax."""
    if isinstance(port, dict):
        return port.get("host_ip"), json.dumps(port)
    text = str(port)
    parts = text.split(":")
    # "ip:host:container" has an address; "host:container" and "container" bind all interfaces.
    return (":".join(parts[:-2]) if len(parts) >= 3 else None), text


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and continuation lines joined."""
    out, pending = [], ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, args = line.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def _copies(dockerfile: Path) -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY, flags such as --chown dropped."""
    out = []
    for keyword, args in _instructions(dockerfile):
        if keyword != "COPY":
            continue
        words = json.loads(args) if args.startswith("[") else shlex.split(args)
        words = [w for w in words if not w.startswith("--")]
        if len(words) >= 2:
            out.append((words[:-1], words[-1]))
    return out


def _norm(path: str) -> str:
    return path.strip().rstrip("/").removeprefix("./") or "."


# ------------------------------------------------------------------ compose

def test_all_services_exist():
    missing = [s for s in SERVICES if s not in _services()]
    assert not missing, f"docker-compose.yml lacks services: {missing}"


def test_no_obsolete_version_key():
    assert "version" not in _compose(), "the Compose spec has no top-level `version:` key"


def test_kafka_is_kraft_single_node():
    kafka = _services()["kafka"]
    assert str(kafka.get("image", "")).startswith("apache/kafka:3.9"), (
        f"kafka image should be apache/kafka:3.9.x, got {kafka.get('image')!r}")
    roles = {r.strip() for r in _env("kafka").get("KAFKA_PROCESS_ROLES", "").split(",")}
    assert {"broker", "controller"} <= roles, (
        f"KAFKA_PROCESS_ROLES must hold broker and controller (KRaft), got {roles}")


def test_kafka_publishes_no_port():
    # It advertises kafka:9092, which a client on the host could not resolve.
    assert not _services()["kafka"].get("ports"), "kafka must not publish ports"


def test_published_ports_are_loopback_only():
    for name in ("postgres", "redis", "api"):
        ports = _services()[name].get("ports") or []
        assert ports, f"{name} should publish a port on 127.0.0.1"
        for port in ports:
            host_ip, text = _published(port)
            assert host_ip == "127.0.0.1", f"{name} publishes {text!r} beyond 127.0.0.1"


def test_app_services_get_server_addresses():
    for name in ("worker", "ledger", "api"):
        env = _env(name)
        missing = [key for key in APP_ENV if not env.get(key)]
        assert not missing, f"{name} environment lacks {missing} (after resolving x-app-env)"
    assert _env("migrate").get("DATABASE_URL"), "migrate environment lacks DATABASE_URL"


def test_app_services_build_from_repo_root():
    for name in ("worker", "ledger", "api"):
        contexts = _build_contexts()
        assert name in contexts, f"{name} has no build"
        assert contexts[name][0] == ROOT, f"{name} should build from `.`, got {contexts[name][0]}"


def test_commands():
    for name, role in (("worker", "stock"), ("ledger", "ledger")):
        command = _command(name)
        assert "streams" in command and role in command, \
            f"{name} command should run `python -m streams {role}`, got {command}"
    api = _command("api")
    assert api[-2:] == ["-m", "api"], f"api command should run `python -m api`, got {api}"
    assert _env("api").get("INVENTORY_API_HOST") == "0.0.0.0", \
        "in a container the API must listen beyond loopback (the port is published on 127.0.0.1)"


def test_api_depends_on_servers_and_migration():
    depends_on = _services()["api"].get("depends_on")
    assert isinstance(depends_on, dict), "api depends_on must be a mapping with conditions"
    expected = {
        "kafka": "service_healthy",
        "postgres": "service_healthy",
        "redis": "service_healthy",
        "migrate": "service_completed_successfully",
    }
    for dependency, condition in expected.items():
        assert dependency in depends_on, f"api does not depend on {dependency}"
        got = (depends_on[dependency] or {}).get("condition")
        assert got == condition, f"api depends on {dependency} with {got!r}, expected {condition!r}"


def test_dependencies_have_healthchecks():
    services = _services()
    for name in ("kafka", "postgres", "redis"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name, service in services.items():
        depends_on = service.get("depends_on") or {}
        if isinstance(depends_on, list):
            depends_on = {d: {} for d in depends_on}
        for dependency, spec in depends_on.items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            if (spec or {}).get("condition") == "service_healthy":
                assert services[dependency].get("healthcheck", {}).get("test"), (
                    f"{name} waits for {dependency} to be healthy, but it has no healthcheck")


# ------------------------------------------------------------------ Dockerfile

def test_dockerfile_installs_pinned_and_runs_unprivileged():
    assert DOCKERFILE.is_file(), f"{DOCKERFILE} is missing"
    instructions = _instructions(DOCKERFILE)
    runs = [args for keyword, args in instructions if keyword == "RUN"]
    assert any("pip install" in r and "-c constraints.txt" in r for r in runs), (
        "the Dockerfile should `pip install -c constraints.txt`")
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users, "the Dockerfile has no USER line: the container would run as root"
    user = users[-1].split(":")[0].strip()
    assert user not in ("root", "0"), f"the Dockerfile's last USER is {users[-1]!r}, i.e. root"


def test_every_build_copies_every_package():
    packages = [p for p in PACKAGES if (ROOT / p).is_dir()]
    contexts = _build_contexts()
    assert contexts, "no service builds an image"
    for name, (context, dockerfile) in contexts.items():
        assert dockerfile.is_file(), f"{name} builds with {dockerfile}, which does not exist"
        copies = _copies(dockerfile)
        for package in packages:
            assert (context / package).is_dir(), f"{name}: {package}/ is not in context {context}"
            # A COPY with several directory sources merges their contents into the destination,
            # so each package needs a COPY of its own onto a directory of its own name.
            assert any([_norm(s) for s in sources] == [package]
                       and _norm(dest).rsplit("/", 1)[-1] == package
                       for sources, dest in copies), (
                f"{dockerfile.name} of {name} does not COPY {package}/ to a {package}/ directory")


def test_the_stock_worker_is_restarted_when_it_stops():
    # It stops on purpose (exit code 70) when a batch did not commit (streams/partition/owner.py).
    assert _services()["worker"].get("restart") in ("unless-stopped", "always", "on-failure")


def test_the_analytics_worker_weighs_less_for_the_cpu_than_the_reservation_path():
    services = _compose()["services"]
    assert services["analytics"]["cpu_shares"] < 1024  # Docker's default, which the others keep
    assert all("cpu_shares" not in services[name] for name in ("worker", "ledger", "api"))
