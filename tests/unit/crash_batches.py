"""The crash-inside-a-batch check every single-writer store must pass (shared by the warehouse
and order store tests): a batch of commands decided through a ``TableBatch``, any prefix of its
writes reaching the changelog, then the batch and the rest redelivered, equals no crash."""
from __future__ import annotations

import json
from typing import Any, Callable, Iterable

from hypothesis import strategies as st

from streams.partition.batch import DELETED, TableBatch

__all__ = ["replay", "check_crash_inside_a_batch"]


def replay(base: dict, writes: Iterable[tuple[str, Any]]) -> dict:
    """The table recovered from a changelog holding ``base`` and then ``writes`` (as JSON, the
    changelog's and the local state's encoding)."""
    table = dict(base)
    for key, value in writes:
        if value is DELETED:
            table.pop(key, None)
        else:
            table[key] = json.loads(json.dumps(value))
    return table


def check_crash_inside_a_batch(store: Callable[[Any], Any], setup: Callable[[dict], None], commands: list,
                               data: st.DataObject, window: int, state_of: Callable[[Any, str], Any],
                               keys: Iterable[str]) -> None:
    clean: dict = {}
    setup(clean)
    expected = [store(clean).handle(c) for c in commands]

    start = data.draw(st.integers(0, len(commands) - 1), label="batch start")
    # A redelivery repeats at most a window's worth of one key's commands.
    size = data.draw(st.integers(1, min(window, len(commands) - start)), label="batch size")
    table: dict = {}
    setup(table)
    for c in commands[:start]:
        store(table).handle(c)
    batch = TableBatch(table)
    batched = store(batch)
    assert [batched.handle(c) for c in commands[start:start + size]] == expected[start:start + size]
    writes = batch.writes()
    kept = data.draw(st.integers(0, len(writes)), label="writes that reached the changelog")

    # The worker dies; its successor recovers the table and gets the batch (and the rest) again.
    recovered = store(replay(table, writes[:kept]))
    assert [recovered.handle(c) for c in commands[start:]] == expected[start:]
    assert recovered.table == clean
    for key in keys:
        assert state_of(recovered, key) == state_of(store(clean), key)
