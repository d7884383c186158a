"""A table of single-writer entities (a warehouse's ledger, an order), each command exactly once.

The layout and the crash discipline every such area shares (the stock store, with its
reservations and clock, keeps its own in ``streams/stock/store.py``):

- ``s:<key>``            the entity's state, and ``n``: how many commands it recorded
- ``c:<key>:<command>``  a decided command: its events, so a retry gets the same answer
- ``k:<key>:<slot>``     the command id in slot ``n % window``: the window of remembered ids

A command's record is written before the state (``TableBatch`` writes ``s:`` keys last), so a
crash between them leaves a record whose state write is missing; its redelivery completes it. A
redelivered command answers with its remembered events, so a saga sends the same next steps,
which their receivers ignore by id.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterable, MutableMapping, TypeVar

__all__ = ["Rules", "KeyedStore"]

log = logging.getLogger(__name__)
S = TypeVar("S")
C = TypeVar("C")
E = TypeVar("E")


@dataclass(frozen=True)
class Rules(Generic[S, C, E]):
    """An area's pure core and how its state and events are kept as plain JSON."""

    decide: Callable[[S, C], list[E]]
    fold: Callable[[S, Iterable[E]], S]
    load: Callable[[str, dict[str, Any] | None], S]  # None: the entity does not exist yet
    dump: Callable[[S], dict[str, Any]]
    event_to_json: Callable[[E], dict[str, Any]]
    event_from_json: Callable[[dict[str, Any]], E]


class KeyedStore(Generic[S, C, E]):
    """Decides an area's commands against one partition's table, each command exactly once."""

    def __init__(self, table: MutableMapping[str, Any], rules: Rules[S, C, E], window: int = 10_000) -> None:
        self.table = table
        self.rules = rules
        self.window = window

    def state(self, key: str) -> S:
        return self.rules.load(key, self.table.get(f"s:{key}"))

    def handle(self, key: str, command_id: str, command: C) -> list[E]:
        """The events of ``command``: decided now, or the remembered ones if it was seen before."""
        data = self.table.get(f"s:{key}")
        state, recorded = self.rules.load(key, data), (data or {}).get("n", 0)
        record = self.table.get(f"c:{key}:{command_id}")
        if record is not None:
            return self._redeliver(key, command_id, state, recorded, record)
        events = self.rules.decide(state, command)
        number = recorded + 1
        record = {"n": number, "events": [self.rules.event_to_json(e) for e in events],
                  "evict": self.table.get(f"k:{key}:{number % self.window}")}
        self.table[f"c:{key}:{command_id}"] = record
        self._write(key, self.rules.fold(state, events), command_id, record)
        return events

    def _redeliver(self, key: str, command_id: str, state: S, recorded: int,
                   record: dict[str, Any]) -> list[E]:
        events = [self.rules.event_from_json(e) for e in record["events"]]
        if recorded < record["n"]:  # the crash came between the record and the state write
            log.warning("completing a partly written command", extra={"command_id": command_id})
            self._write(key, self.rules.fold(state, events), command_id, record)
        elif recorded == record["n"] and record["evict"]:  # its eviction may not have been written
            self.table.pop(f"c:{key}:{record['evict']}", None)
        return events

    def _write(self, key: str, after: S, command_id: str, record: dict[str, Any]) -> None:
        self.table[f"k:{key}:{record['n'] % self.window}"] = command_id
        self.table[f"s:{key}"] = {**self.rules.dump(after), "n": record["n"]}
        if record["evict"]:
            self.table.pop(f"c:{key}:{record['evict']}", None)
