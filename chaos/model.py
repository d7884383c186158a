"""A sequential model of each SKU, to check a chaos run's log of decisions and its history.

Independent of the production logic on purpose (a second, small implementation of the rules):
every decision in the log, taken in log order per SKU, must be what the model decides for that
command in that state, and every read of the read model must be a state the model passed through.

``check`` returns the counts the chaos run reports:

- ``lost``: commands the broker acknowledged that never got a decision in the log;
- ``duplicated``: commands decided more than once with different results (re-announcing the
  same decision after a crash is fine: its event id is the same);
- ``history_anomalies``: decisions the model would not make, gaps in a SKU's versions, answers a
  client saw that the log does not hold, reads of states the model never had, acknowledged
  reservations that vanished from the table, reservations long past their deadline that never
  expired.

Time is the commands' own (``occurred_at`` of the decision, its command's ``issued_at``): an
expiry (command id ``expire:...``, sent by the worker's clock, not by a client) must
come at or after the reservation's deadline, and a commit at or after it is refused.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

__all__ = ["SkuModel", "Report", "check"]

_REJECTED = {"ReservationRejected", "CommandRejected"}
_ENDED = {"Released": "RELEASED", "Committed": "COMMITTED", "Expired": "EXPIRED"}
_EXPIRE = "expire:"
# A reservation this long past its deadline at the end of a run should have expired (the clock
# ticks every second; a killed worker's partitions move within the session timeout).
EXPIRY_SLACK_MS = 60_000


@dataclass
class SkuModel:
    exists: bool = False
    seq: int = 0
    levels: dict[str, tuple[int, int]] = field(default_factory=dict)
    # id -> [warehouse, qty, state, deadline (epoch ms, 0: none)]
    reservations: dict[str, list[Any]] = field(default_factory=dict)
    snapshots: dict[int, dict[str, tuple[int, int]]] = field(default_factory=lambda: {0: {}})

    def level(self, warehouse: str) -> tuple[int, int]:
        return self.levels.get(warehouse, (0, 0))

    def decide(self, body: dict[str, Any], at: int) -> tuple[str, str, tuple[int, int]]:
        """(event type, warehouse, level after) for the command ``body`` issued at ``at``."""
        kind = body["type"]
        if kind == "CreateProduct":
            return ("CommandRejected", "", (0, 0)) if self.exists else ("ProductCreated", "", (0, 0))
        if kind == "AdjustStock":
            return self._adjust(body)
        if kind == "Reserve":
            return self._reserve(body)
        return self._end(body, at)

    def _adjust(self, body: dict[str, Any]) -> tuple[str, str, tuple[int, int]]:
        warehouse, quantity = body["warehouse"], body["quantity"]
        on_hand, reserved = self.level(warehouse)
        if not self.exists or quantity == 0 or not warehouse or on_hand + quantity < reserved:
            return "CommandRejected", warehouse, (on_hand, reserved)
        return "StockAdjusted", warehouse, (on_hand + quantity, reserved)

    def _reserve(self, body: dict[str, Any]) -> tuple[str, str, tuple[int, int]]:
        warehouse, quantity = body["warehouse"], body["quantity"]
        on_hand, reserved = self.level(warehouse)
        if (not self.exists or quantity <= 0 or not warehouse
                or body["reservation_id"] in self.reservations or on_hand - reserved < quantity):
            return "ReservationRejected", warehouse, (on_hand, reserved)
        return "Reserved", warehouse, (on_hand, reserved + quantity)

    def _end(self, body: dict[str, Any], at: int) -> tuple[str, str, tuple[int, int]]:
        held = self.reservations.get(body["reservation_id"])
        if held is None or held[2] != "PENDING":
            return "CommandRejected", "", (0, 0)
        warehouse, quantity, _, deadline = held
        on_hand, reserved = self.level(warehouse)
        due = 0 < deadline <= at
        if body["type"] == "Expire":
            return ("Expired", warehouse, (on_hand, reserved - quantity)) if due else \
                ("CommandRejected", warehouse, (on_hand, reserved))
        if body["type"] == "Commit":
            if due:
                return "CommandRejected", warehouse, (on_hand, reserved)
            return "Committed", warehouse, (on_hand - quantity, reserved - quantity)
        return "Released", warehouse, (on_hand, reserved - quantity)

    def apply(self, body: dict[str, Any], kind: str, warehouse: str, level: tuple[int, int],
              at: int) -> None:
        self.seq += 1
        if kind == "ProductCreated":
            self.exists = True
        else:
            self.levels[warehouse] = level
        if kind == "Reserved":
            ttl = body.get("ttl_ms", 0)
            self.reservations[body["reservation_id"]] = [warehouse, body["quantity"], "PENDING",
                                                         at + ttl if ttl else 0]
        elif kind in _ENDED:
            self.reservations[body["reservation_id"]][2] = _ENDED[kind]
        self.snapshots[self.seq] = dict(self.levels)


@dataclass
class Report:
    lost: int = 0
    duplicated: int = 0
    history_anomalies: int = 0
    examples: list[str] = field(default_factory=list)

    def anomaly(self, what: str) -> None:
        self.history_anomalies += 1
        self._example(what)

    def _example(self, what: str) -> None:
        if len(self.examples) < 20:
            self.examples.append(what)


def _first_decisions(events: Iterable[dict[str, Any]], report: Report) -> list[dict[str, Any]]:
    """Each command's decision once, in log order; a command decided twice differently counts."""
    first: dict[str, dict[str, Any]] = {}
    ordered = []
    for event in events:
        seen = first.get(event["command_id"])
        if seen is None:
            first[event["command_id"]] = event
            ordered.append(event)
        elif _outcome(seen) != _outcome(event):
            report.duplicated += 1
            report._example(f"command {event['command_id']} decided twice: {_outcome(seen)} then {_outcome(event)}")
    return ordered


def _outcome(event: dict[str, Any]) -> tuple:
    return event["type"], event["seq"], event["warehouse"], event["on_hand"], event["reserved"]


def _replay(model: SkuModel, event: dict[str, Any], body: dict[str, Any] | None, report: Report) -> None:
    if body is None:
        report.anomaly(f"{event['sku']}: a decision for command {event['command_id']} nobody sent")
        return
    kind, warehouse, level = model.decide(body, event["occurred_at"])
    if kind != event["type"]:
        report.anomaly(f"{event['sku']}: {body['type']} {event['command_id']} decided {event['type']}, "
                       f"the model says {kind}")
        return
    if kind in _REJECTED:
        return
    if event["seq"] != model.seq + 1:
        report.anomaly(f"{event['sku']}: version {event['seq']} follows {model.seq}")
    if kind != "ProductCreated" and (event["on_hand"], event["reserved"]) != level:
        report.anomaly(f"{event['sku']}: {kind} left {(event['on_hand'], event['reserved'])}, model {level}")
    if kind == "Reserved" and event["body"][1].get("expires_at", 0) != model_deadline(body, event):
        report.anomaly(f"{event['sku']}: reservation {body['reservation_id']} got deadline "
                       f"{event['body'][1].get('expires_at')}, the model {model_deadline(body, event)}")
    model.apply(body, kind, warehouse, level, event["occurred_at"])


def model_deadline(body: dict[str, Any], event: dict[str, Any]) -> int:
    ttl = body.get("ttl_ms", 0)
    return event["occurred_at"] + ttl if ttl else 0


def _body_of(event: dict[str, Any], commands: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The command a decision answers: a client's, or an expiry the worker's clock decided."""
    command_id = event["command_id"]
    if command_id in commands:
        return commands[command_id].get("body")
    if command_id.startswith(_EXPIRE) and event.get("sender") == "clock":
        return {"type": "Expire", "reservation_id": event["body"][1]["reservation_id"]}
    return None


def check(calls: list[dict[str, Any]], events: list[dict[str, Any]],
          table_reservations: dict[str, tuple[str, str]], now_ms: int | None = None) -> Report:
    """Checks the log (``events`` in log order) against the history ``calls`` and the table;
    with ``now_ms``, also that reservations long past their deadline have expired."""
    report = Report()
    commands = {c["id"]: c for c in calls if c["op"] == "command"}
    models: dict[str, SkuModel] = {}
    decided: dict[str, str] = {}
    for event in _first_decisions(events, report):
        body = _body_of(event, commands)
        _replay(models.setdefault(event["sku"], SkuModel()), event, body, report)
        decided[event["command_id"]] = event["type"]
    for call in commands.values():
        _check_answer(call, decided.get(call["id"]), report)
    for call in calls:
        if call["op"] == "read":
            _check_read(call, models.get(call["sku"]), report)
    _check_reservations(models, table_reservations, report)
    if now_ms is not None:
        _check_expired(models, now_ms, report)
    return report


def _check_expired(models: dict[str, SkuModel], now_ms: int, report: Report) -> None:
    for sku, model in models.items():
        for reservation_id, (_, _, state, deadline) in model.reservations.items():
            if state == "PENDING" and 0 < deadline < now_ms - EXPIRY_SLACK_MS:
                report.anomaly(f"reservation {reservation_id} of {sku} due at {deadline} never expired")


def _check_answer(call: dict[str, Any], logged: str | None, report: Report) -> None:
    if logged is None:
        if call["accepted"]:
            report.lost += 1
            report._example(f"command {call['id']} was acknowledged by the broker and never decided")
        return
    if call["outcome"] != "unknown" and call["kind"] != logged:
        report.anomaly(f"command {call['id']}: the client was answered {call['kind']}, the log holds {logged}")


def _check_read(call: dict[str, Any], model: SkuModel | None, report: Report) -> None:
    for warehouse, on_hand, reserved, version in call["levels"]:
        snapshot = None if model is None else model.snapshots.get(version)
        if snapshot is None or snapshot.get(warehouse, (0, 0)) != (on_hand, reserved):
            report.anomaly(f"read of {call['sku']}/{warehouse} at version {version} saw "
                           f"{(on_hand, reserved)}, the model had {snapshot and snapshot.get(warehouse)}")


def _check_reservations(models: dict[str, SkuModel], table: dict[str, tuple[str, str]],
                        report: Report) -> None:
    for sku, model in models.items():
        for reservation_id, (_, _, state, _) in model.reservations.items():
            held = table.get(reservation_id)
            if held is None and state == "PENDING":
                report.anomaly(f"pending reservation {reservation_id} of {sku} vanished from the table")
            elif held is not None and held != (sku, state):
                report.anomaly(f"reservation {reservation_id}: table {held}, model {(sku, state)}")
