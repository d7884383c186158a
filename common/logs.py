"""Structured (one JSON object per line) logging for every process, and the request id that
follows a request from the API's log into the workers' (``REQUEST_ID_HEADER`` on every command
record the API produces; api/observability.py, streams/partition/agent.py)."""
from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Iterable

__all__ = ["configure_logging", "faust_logging_config", "JsonFormatter", "REQUEST_ID_HEADER",
           "request_id_from_headers"]

# The Kafka record header that carries the id of the API request a command came from.
REQUEST_ID_HEADER = "request-id"

# Record attributes that are not extra fields; uvicorn's ``color_message`` is its message again
# with terminal colour codes.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def request_id_from_headers(headers: Iterable[tuple[str, bytes]] | None) -> str | None:
    """The request id among a Kafka record's headers, if any."""
    for name, value in headers or ():
        if name == REQUEST_ID_HEADER:
            return value.decode("utf-8", "replace")
    return None


def faust_logging_config() -> dict[str, Any]:
    """faust's worker replaces the root handler when it starts (mode's ``setup_logging``) with a
    plain-text one that drops every extra field; merged into its configuration, this keeps its
    level (``--loglevel``) and swaps the handler for the JSON one."""
    return {
        "merge": True,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "json",
                                 "stream": "ext://sys.stderr"}},
    }


def configure_logging(level: str = "INFO", json_lines: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The Kafka clients log every rebalance step at INFO; keep them to warnings and worse.
    for noisy in ("aiokafka", "faust", "mode"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
