"""streams/tuning.py's correction of faust's offset gaps, on faust's own consumer (not started):
a partition written in transactions (a commit marker after each) is committed to its end at once."""
from __future__ import annotations

import faust
import pytest
from faust.transport import consumer as faust_consumer
from faust.types import TP

from streams.tuning import commit_across_offset_gaps

TOPIC = TP("stock-events", 0)


async def _committable(records: list[int], add_gap) -> int | None:
    """What faust would commit after reading and acknowledging ``records`` (offsets, in order), its
    drain loop recording each gap between two of them with ``add_gap``."""
    consumer = faust.App("tuning-test", broker="kafka://127.0.0.1:1").consumer  # never started
    last = None
    for offset in records:
        if last is not None and offset - last > 1:
            await add_gap(consumer, TOPIC, last + 1, offset)  # as Consumer._drain_messages does
        last = offset
    for offset in records:
        consumer._acked[TOPIC].append(offset)
        consumer._acked_index[TOPIC].add(offset)
    return consumer._new_offset(TOPIC)


# Three transactions: records 0-2, marker 3, records 4-6, marker 7, records 8-9.
TRANSACTIONS = [0, 1, 2, 4, 5, 6, 8, 9]


@pytest.fixture
def corrected():
    commit_across_offset_gaps()
    return faust_consumer.Consumer._add_gap


async def test_faust_alone_commits_one_transaction_at_a_time():
    """faust's own gap (it includes the next record's offset): the commit stops at 5. If this ever
    fails, faust has fixed it and ``commit_across_offset_gaps`` can go."""
    commit_across_offset_gaps()
    original = faust_consumer.Consumer._add_gap.__wrapped__
    assert await _committable(TRANSACTIONS, original) == 5


async def test_corrected_a_partition_of_transactions_is_committed_to_its_end(corrected):
    assert await _committable(TRANSACTIONS, corrected) == 10


async def test_corrected_without_gaps_or_with_a_compacted_run_it_commits_to_the_end(corrected):
    assert await _committable(list(range(10)), corrected) == 10
    assert await _committable([0, 1, 7, 8, 20], corrected) == 21


async def test_applying_it_twice_wraps_faust_once(corrected):
    commit_across_offset_gaps()
    assert faust_consumer.Consumer._add_gap.__wrapped__.__qualname__ == "Consumer._add_gap"
    assert await _committable(TRANSACTIONS, faust_consumer.Consumer._add_gap) == 10


async def test_corrected_a_partition_read_again_after_a_seek_back_is_still_committed_to_its_end(corrected):
    consumer = faust.App("tuning-test", broker="kafka://127.0.0.1:1").consumer
    for offset_from, offset_to in ((3, 4), (7, 8), (3, 4), (7, 8)):  # both gaps seen twice
        await corrected(consumer, TOPIC, offset_from, offset_to)
    assert [(i.begin, i.end) for i in sorted(consumer._gap[TOPIC])] == [(3, 4), (7, 8)]
    for offset in TRANSACTIONS:
        consumer._acked[TOPIC].append(offset)
        consumer._acked_index[TOPIC].add(offset)
    assert consumer._new_offset(TOPIC) == 10
