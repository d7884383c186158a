"""The API's Prometheus metrics, declared in one place (served by ``GET /metrics``, api/observability.py).

Requests are labelled by their route's template (``/inventory/{product_id}``), never the raw
path: one series per product would grow without bound. Commands are labelled by topic; an
answer is ``decided`` (the deciding event came in time) or ``pending`` (202: in the log,
undecided within ``command_timeout_s``).
"""
from __future__ import annotations

from prometheus_client import Counter, Histogram

from streams.metrics import labelled  # label children resolved once per (bounded) label set

__all__ = ["REQUESTS", "REQUEST_LATENCY", "COMMANDS_SENT", "COMMANDS_ANSWERED", "observe_request",
           "command_sent", "command_answered"]

REQUESTS = Counter("inventory_api_requests_total", "HTTP requests answered, by method, route template and status",
                   ["method", "route", "status"])
REQUEST_LATENCY = Histogram(
    "inventory_api_request_duration_seconds", "Time to answer an HTTP request, by method, route template and status",
    ["method", "route", "status"],
    buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))
COMMANDS_SENT = Counter("inventory_api_commands_sent_total", "Commands the API produced, by topic", ["topic"])
COMMANDS_ANSWERED = Counter(
    "inventory_api_commands_answered_total",
    "Commands the API answered: decided (the deciding event came in time) or pending (202)",
    ["topic", "outcome"])



def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    code = str(status)
    labelled(REQUESTS, method, route, code).inc()
    labelled(REQUEST_LATENCY, method, route, code).observe(seconds)


def command_sent(topic: str) -> None:
    labelled(COMMANDS_SENT, topic).inc()


def command_answered(topic: str, decided: bool) -> None:
    labelled(COMMANDS_ANSWERED, topic, "decided" if decided else "pending").inc()
