"""Every address and knob of the platform, in one pydantic-settings class.

Variables use the ``INVENTORY_`` prefix; the three server addresses also accept the plain names
the local stack and docker-compose export (``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``,
``REDIS_URL``). No secret has a default: the database password comes with ``DATABASE_URL``.
"""
from __future__ import annotations

from functools import lru_cache

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings", "DEFAULT_SECRET", "InsecureSettingsError"]

#: The placeholder of every secret: accepted in development only (``Settings.check_secrets``).
DEFAULT_SECRET = "changethis"


class InsecureSettingsError(ValueError):
    """A secret still has its placeholder value outside development."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INVENTORY_", extra="ignore")

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:19092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "INVENTORY_KAFKA_BOOTSTRAP_SERVERS"),
    )
    database_url: str = Field(
        "postgresql+asyncpg://inventory@127.0.0.1:15432/inventory",
        validation_alias=AliasChoices("DATABASE_URL", "INVENTORY_DATABASE_URL"),
    )
    redis_url: str = Field(
        "redis://127.0.0.1:16379/0",
        validation_alias=AliasChoices("REDIS_URL", "INVENTORY_REDIS_URL"),
    )

    # Streams
    app_id: str = "inventory"
    topic_partitions: int = 4
    topic_replication_factor: int = 1
    # Commands remembered per SKU for exactly-once effects; an id older than this many later
    # commands on the same SKU is forgotten (its reservation, if ended, too).
    dedup_window: int = 10_000
    # How long the compacted changelog keeps a deleted key's tombstone; a worker's local state
    # last written longer ago than this is rebuilt from scratch (streams/partition/local.py).
    changelog_delete_retention_s: float = 86_400.0
    # How often a stock worker asks again whether the broker finished its previous transaction
    # (streams/partition/owner.py): shorter waits less, but every ask costs the broker a request
    # (bench/README.md, point 9: 2 ms doubled the broker's CPU per decision).
    transaction_retry_backoff_s: float = 0.01
    # How long a starting worker waits for the broker before it gives up.
    broker_wait_s: float = 120.0
    # A killed worker's partitions move after this long without heartbeats.
    broker_session_timeout_s: float = 10.0
    worker_web_port: int = 6066
    worker_data_dir: str = ".local/worker"
    # The stock agent decides commands in batches of up to this many, waiting at most this long
    # for a batch to fill: a hot SKU's state is written once per batch (streams/partition/batch.py),
    # and each partition's batch is one transaction, which costs the broker the same whatever
    # its size (bench/README.md, point 9: 10 ms kept the rate of 20 ms at 256 clients without
    # its cost at 16).
    command_batch_size: int = 500
    command_batch_seconds: float = 0.01
    # How often each worker writes the clock into its partitions: reservations expire at the
    # first tick at or after their deadline (streams/stock/clock.py).
    expiry_tick_s: float = 1.0
    # The ledger worker persists up to this many events per PostgreSQL transaction, gathering a
    # batch for at most this long.
    sink_batch_size: int = 500
    sink_batch_seconds: float = 0.05
    # Producer batching: a few milliseconds of linger turns one request per message into one per
    # batch. The stock agent waits for each batch's acknowledgement (streams/partition/local.py), so
    # the linger adds to every batch's wait: 1 ms cut the p99 at 400/s from 162 to 76 ms, but
    # more than doubled the broker's CPU per decision, which lowers the peak (bench/README.md).
    producer_linger_s: float = 0.005
    producer_batch_bytes: int = 262_144
    # How long the broker may hold the worker's fetch when its partitions are quiet (streams/tuning.py).
    consumer_fetch_max_wait_ms: int = 10
    # How often a worker commits its offsets (each commit first flushes the producer).
    commit_interval_s: float = 0.5

    # API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Idle keep-alive connections are closed after this long: longer than clients keep them
    # (httpx 5 s, aiohttp 15 s), so a client never reuses one the server is closing (api/__main__.py).
    api_keep_alive_s: int = 75
    command_timeout_s: float = 10.0
    # A reservation made through the API expires after this long unless committed or released.
    reservation_ttl_s: int = 900
    default_warehouse: str = "default"
    # The stock worker creates the default warehouse at start (streams/admin.py), so a fresh
    # install can receive stock at once; its capacity is this many units (practically unlimited).
    default_warehouse_capacity: int = 1_000_000_000_000

    # How an order line is spread over warehouses after the preferred one (streams/stock/allocation.py):
    # "priority" (the warehouses in `warehouse_priority` order, then the others by name) or
    # "most_stock" (the most available first). A JSON list in the environment.
    allocation_strategy: str = "priority"
    warehouse_priority: list[str] = Field(default_factory=list)

    log_level: str = "INFO"
    log_json: bool = True

    # Metrics (streams/metrics.py): the stock worker and the ledger each serve Prometheus'
    # /metrics on a port of their own (0: off), on this host; the API serves it on its own port.
    # Several workers on one machine need distinct ports, or 0 (chaos and bench pass 0).
    metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = 9101
    ledger_metrics_port: int = 9102

    # Security (api/security.py). Outside development the API refuses to start while a secret
    # has its placeholder value: `make run` sets development, `make test` real random secrets.
    environment: Literal["development", "production"] = "production"
    jwt_secret: SecretStr = SecretStr(DEFAULT_SECRET)
    jwt_ttl_s: int = 3600
    # The first administrator, created (or its password reset) when the API starts.
    admin_username: str = "admin"
    admin_password: SecretStr = SecretStr(DEFAULT_SECRET)
    # Requests per client (a user, or an API key unless the key has its own limit), and login
    # attempts per client address, in the `limits` notation ("100/second", "1000 per minute").
    rate_limit: str = "100/second"
    login_rate_limit: str = "20/minute"
    # How long the API trusts an API key it looked up: a revoked key stops working within this.
    api_key_cache_s: float = 5.0

    # Read cache of GET /inventory/{product_id} in Redis (api/cache.py): an entry lives this long
    # at most (0: no caching); entries are invalidated by the ledger, so this only frees memory.
    read_cache_ttl_s: int = 300
    # A Redis call of the read path that takes longer is given up: PostgreSQL answers instead.
    read_cache_timeout_s: float = 0.5
    # How long the ledger's write lease of a SKU (held from before its batch's commit to after)
    # outlives a crash; it must exceed a COMMIT's duration (storage/sink.py, ReadCacheInvalidator).
    read_cache_write_lease_s: float = 60.0

    # Idempotency-Key (api/idempotency.py): how long Redis keeps a POST's final answer under its
    # key, replayed to a retry; after that a retry reaches the stream, which still dedups it by
    # command id within its dedup window.
    idempotency_ttl_s: int = 86_400

    # --- Resumable subscriptions and as-of reads (api/events.py, api/routes/ws.py).
    # A subscriber resuming from an offset gets at most this many missed events replayed; one
    # further behind is refused and should re-read the levels instead.
    subscription_replay_max: int = 100_000

    # --- gRPC (api/grpc/): served beside the REST API by the same process; port 0: off.
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    # At shutdown, how long running calls may finish before they are cancelled (watches never
    # finish on their own: their clients resume from the last offset they saw).
    grpc_stop_grace_s: float = 2.0

    # --- Stream analytics (streams/analytics/): a worker of its own, off the reservation path.
    analytics_app_id: str = "inventory-analytics"
    analytics_data_dir: str = ".local/analytics"
    analytics_metrics_port: int = 9103
    # The worker's CPU priority (nice, 0-19): on a machine it shares with the stock worker, the
    # ledger and the API, its own CPU comes after theirs. The broker and PostgreSQL work its
    # records cause is not lowered by it (bench/README.md, "The analytics worker").
    analytics_nice: int = Field(10, ge=0, le=19)
    # How long after a window ended its cell stays in the worker's tables (faust's ``expires``,
    # by wall clock). An event of a window that old is not counted (a late event would otherwise
    # start a partial cell that overwrites the complete one); PostgreSQL keeps every cell.
    analytics_hour_retention_days: float = 7
    analytics_day_retention_days: float = 62
    # Stock events folded per batch, and the longest wait for one. Each cell a batch touches is
    # written and published once, so a longer batch costs the broker and PostgreSQL less per event
    # and makes the figures that much later (bench/README.md, "The analytics worker").
    analytics_batch_size: int = Field(10_000, ge=1)
    analytics_batch_s: float = Field(5.0, gt=0)
    # Its consumer's fetches: the broker answers once it has this many bytes or this wait is over.
    analytics_fetch_max_wait_ms: int = Field(500, ge=0)
    analytics_fetch_min_bytes: int = Field(65_536, ge=1)
    # The sink into analytics_windows: cells per PostgreSQL transaction, and the longest wait for one.
    analytics_sink_batch_size: int = 500
    analytics_sink_batch_s: float = 0.5

    # --- Forecasting (streams/analytics/forecast.py, GET /analytics/forecast/{sku}).
    # The probability of not running out during a replenishment lead time, which sets the
    # safety stock; the lead time in days; how far the forecast looks; how much history it reads.
    forecast_service_level: float = 0.95
    forecast_lead_time_days: int = 7
    forecast_horizon_days: int = 90
    forecast_history_days: int = 365

    def check_secrets(self) -> None:
        """Raise InsecureSettingsError when a secret has its placeholder outside development."""
        if self.environment == "development":
            return
        defaults = [name for name in ("jwt_secret", "admin_password")
                    if getattr(self, name).get_secret_value() == DEFAULT_SECRET]
        if defaults:
            raise InsecureSettingsError(
                f"{', '.join(defaults)} still {DEFAULT_SECRET!r} in {self.environment}: set "
                + ", ".join(f"INVENTORY_{n.upper()}" for n in defaults))
        if len(self.jwt_secret.get_secret_value()) < 32:
            raise InsecureSettingsError("INVENTORY_JWT_SECRET needs at least 32 characters")


@lru_cache
def get_settings() -> Settings:
    return Settings()
