"""Integration fixtures: the real worker and API as processes, against the stack of scripts/stack.sh.

``make test`` starts Kafka, PostgreSQL and Redis and exports their addresses; these fixtures start
the stream worker and the API (uvicorn) as child processes, so tests can kill them for real.
"""
from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from api.security import Role, issue_token
from common.settings import Settings
from storage.db import create_engine
from chaos.invariants import order_violations, stop_consumer, violations, wait_until_caught_up, warehouse_violations

__all__ = ["Process", "assert_invariants", "auth_headers", "create_stocked_product", "stop_consumer", "new_sku",
           "wait_until_serving"]

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "REDIS_URL")


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def settings() -> Settings:
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    assert not missing, f"{missing} unset: run the suite with `make test`, which starts the stack"
    # The servers run as in production: real secrets (so the API starts), limits high enough for
    # the load tests (test_ratelimit.py gives its keys their own small limits).
    for name, value in (("INVENTORY_ENVIRONMENT", "production"),
                        ("INVENTORY_JWT_SECRET", secrets.token_urlsafe(48)),
                        ("INVENTORY_ADMIN_PASSWORD", secrets.token_urlsafe(24)),
                        ("INVENTORY_RATE_LIMIT", "1000000/minute"),
                        ("INVENTORY_LOGIN_RATE_LIMIT", "1000/minute")):
        os.environ.setdefault(name, value)
    return Settings()


def auth_headers(settings: Settings, role: str = "admin", subject: str = "tests") -> dict[str, str]:
    """A bearer token of ``role``, signed with the API's secret."""
    return {"Authorization": f"Bearer {issue_token(settings, subject, Role(role))}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A child process with its output in a log file, shown when a test fails."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logdir: Path) -> None:
        self.name, self.args, self.env = name, args, env
        self.log_path = logdir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="session")
def process_env(settings, tmp_path_factory) -> dict[str, str]:
    env = dict(os.environ)
    env.update(INVENTORY_WORKER_DATA_DIR=str(tmp_path_factory.mktemp("worker-data")),
               INVENTORY_LOG_JSON="true", PYTHONUNBUFFERED="1",
               # Free ports, not the defaults a local `make run` may hold. A second stock worker
               # started with this env (test_crash.py) finds the port taken and runs without
               # metrics (streams/metrics.py).
               INVENTORY_WORKER_METRICS_PORT=str(_free_port()),
               INVENTORY_LEDGER_METRICS_PORT=str(_free_port()))
    return env


@pytest.fixture(scope="session")
def logdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
async def api(settings, process_env, logdir):
    port, grpc_port = _free_port(), _free_port()
    env = {**process_env, "INVENTORY_API_HOST": "127.0.0.1", "INVENTORY_API_PORT": str(port),
           "INVENTORY_GRPC_HOST": "127.0.0.1", "INVENTORY_GRPC_PORT": str(grpc_port)}
    proc = Process("api", [sys.executable, "-m", "api"], env, logdir)
    proc.start()
    proc.base_url = f"http://127.0.0.1:{port}"
    proc.grpc_target = f"127.0.0.1:{grpc_port}"  # the gRPC service (api/grpc/), same process
    try:
        await _wait_until_healthy(proc)
        yield proc
    finally:  # also when it never became healthy: no server outlives the session
        proc.stop()


async def _wait_until_healthy(proc: Process) -> None:
    async with httpx.AsyncClient(base_url=proc.base_url, timeout=5) as client:
        for _ in range(120):
            try:
                if (await client.get("/health")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.alive, f"API exited:\n{proc.tail()}"
            await asyncio.sleep(0.5)
        else:
            pytest.fail(f"API not healthy in 60s:\n{proc.tail()}")


@pytest.fixture(scope="session")
async def ledger(settings, process_env, logdir):
    """The PostgreSQL sink worker (its own consumer group, see streams/ledger/worker.py)."""
    proc = Process("ledger", [sys.executable, "-m", "streams", "ledger", "--loglevel", "warn"],
                   process_env, logdir)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
async def analytics(settings, process_env, logdir, tmp_path_factory):
    """The stream analytics worker (its own faust app, data dir and metrics port; streams/analytics/)."""
    env = {**process_env, "INVENTORY_ANALYTICS_DATA_DIR": str(tmp_path_factory.mktemp("analytics-data")),
           "INVENTORY_ANALYTICS_METRICS_PORT": str(_free_port())}
    proc = Process("analytics", [sys.executable, "-m", "streams", "analytics", "--loglevel", "warn"],
                   env, logdir)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
async def worker(settings, process_env, logdir, api, ledger):
    proc = Process("worker", [sys.executable, "-m", "streams", "stock", "--loglevel", "warn"],
                   process_env, logdir)
    proc.start()
    try:
        await wait_until_serving(api, proc)
        yield proc
    finally:
        proc.stop()


async def wait_until_serving(api: Process, worker: Process, timeout_s: float = 120) -> float:
    """Seconds until a command through the API is decided by the worker (its true readiness)."""
    started = time.monotonic()
    headers = auth_headers(Settings())
    async with httpx.AsyncClient(base_url=api.base_url, timeout=30, headers=headers) as client:
        while time.monotonic() - started < timeout_s:
            assert worker.alive, f"worker exited:\n{worker.tail()}"
            sku = new_sku("probe")
            response = await client.post("/products", json={"sku": sku, "name": "probe"})
            if response.status_code == 201:
                return time.monotonic() - started
            await asyncio.sleep(0.5)
    pytest.fail(f"worker not serving in {timeout_s}s:\n{worker.tail()}")


@pytest.fixture
async def client(api, worker, settings):
    """An administrator's client (every operation is open to it)."""
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    async with httpx.AsyncClient(base_url=api.base_url, timeout=60, limits=limits,
                                 headers=auth_headers(settings)) as c:
        yield c


@pytest.fixture(scope="session")
async def engine(settings):
    engine = create_engine(settings.database_url, pool_size=4)
    yield engine
    await engine.dispose()


def new_sku(prefix: str = "SKU") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def create_stocked_product(client: httpx.AsyncClient, units: int, warehouse: str = "default") -> str:
    sku = new_sku()
    response = await client.post("/products", json={"sku": sku, "name": f"product {sku}"})
    assert response.status_code == 201, response.text
    if units:
        response = await client.post(f"/inventory/{sku}/update", json={
            "quantity_change": units, "reason": "initial receipt", "warehouse": warehouse})
        assert response.status_code == 200, response.text
    return sku


# ------------------------------------------------------------------------------ invariants
async def assert_invariants(settings: Settings, engine, skus: list[str], timeout_s: float = 30) -> dict:
    """No oversell; the ledger folds to the levels; PostgreSQL equals the changelogged table;
    no command applied twice; every warehouse within its capacity, its ledger equal to its SKUs'
    units; every order with a line of ``skus`` settled and holding what its status says, as its
    log, table and PostgreSQL agree (chaos/invariants.py). Waits (bounded) for the sink to catch up."""
    table, pg, caught_up = await wait_until_caught_up(settings, engine, skus, timeout_s)
    assert caught_up, f"PostgreSQL never caught up with the table: {table['versions']} vs {pg['versions']}"
    found = violations(table, pg)
    assert not found, "\n".join(found)
    # Every warehouse: within capacity, its receipts settled, its ledger = its SKUs' units.
    found = await warehouse_violations(settings, engine, timeout_s)
    assert not found, "\n".join(found)
    found = await order_violations(settings, engine, skus, timeout_s=timeout_s)
    assert not found, "\n".join(found)
    return pg
