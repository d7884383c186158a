"""The stock table's local state (streams/partition/local.py) on a real RocksDB."""
from __future__ import annotations

import os
import time

import pytest

from streams.partition.batch import DELETED, TableBatch
from streams.partition.local import (
    PartitionState, apply_changelog, changelog_records, claim_data_dir, encode, open_partition,
    stored_offset,
)

DAY = 86_400.0


def write_acknowledged(db, writes, offsets) -> None:
    """What a partition's owner does once a batch committed (streams/partition/owner.py)."""
    apply_changelog(db, [(k, v, o) for (k, v), o in zip(changelog_records(writes), offsets)])


@pytest.fixture
def db(tmp_path):
    handle = open_partition(tmp_path / "stock-0.db")
    yield handle
    handle.close()


def test_acknowledged_writes_are_read_back_with_their_offset(db):
    state = PartitionState(db)
    assert "s:sku-1" not in state and state.get("s:sku-1") is None

    batch = TableBatch(state)
    batch["c:cmd-1"] = {"seq": 1}
    batch["s:sku-1"] = {"on_hand": 5, "reserved": 1}
    assert "s:sku-1" not in state, "nothing reaches the local state before the acknowledgement"

    assert stored_offset(db) is None
    write_acknowledged(db, batch.writes(), [41, 42])
    assert state["s:sku-1"] == {"on_hand": 5, "reserved": 1}
    assert state["c:cmd-1"] == {"seq": 1}
    assert stored_offset(db) == 42


def test_deletes_remove_keys_and_values_are_stored_as_on_the_changelog(db):
    write_acknowledged(db, [("r:sku-1:a", {"q": 1}), ("r:sku-1:b", {"q": 2})], [7, 8])
    batch = TableBatch(PartitionState(db))
    del batch["r:sku-1:a"]
    write_acknowledged(db, batch.writes(), [9])
    state = PartitionState(db)
    assert "r:sku-1:a" not in state and state["r:sku-1:b"] == {"q": 2}
    # The bytes recovery puts there when it replays the same changelog record.
    assert db.get(encode("r:sku-1:b")) == b'{"q":2}'
    assert stored_offset(db) == 9


def test_an_empty_batch_leaves_the_offset_alone(db):
    write_acknowledged(db, [("s:x", 1)], [3])
    write_acknowledged(db, [], [])
    assert stored_offset(db) == 3


def test_replayed_changelog_records_equal_the_acknowledged_writes_and_move_the_offset(tmp_path, db):
    writes = [("s:x", {"levels": {"w": [3, 1]}}), ("r:x:a", {"q": 1}), ("r:x:b", {"q": 2})]
    write_acknowledged(db, writes, [10, 11, 12])
    write_acknowledged(db, [("r:x:a", DELETED)], [13])

    replica = open_partition(tmp_path / "replica.db")
    records = [(encode(k), encode(v), o) for o, (k, v) in zip((10, 11, 12), writes)]
    apply_changelog(replica, records + [(encode("r:x:a"), None, 13)])
    assert dict(replica.items()) == dict(db.items())
    assert stored_offset(replica) == 13
    replica.close()


def test_range_reads_stop_at_the_bound_and_never_meet_the_offset(db):
    write_acknowledged(db, [("x:0000000000005:a:r", ["a", "r"]), ("x:0000000000009:b:r", ["b", "r"]),
                            ("s:a", {})], [1, 2, 3])
    state = PartitionState(db)
    assert list(state.items_between("x:", "x:0000000000005;")) == [("x:0000000000005:a:r", ["a", "r"])]
    assert [k for k, _ in state.items_between("", "~")] == [
        "s:a", "x:0000000000005:a:r", "x:0000000000009:b:r"]



def test_the_state_is_read_by_key_only(db):
    with pytest.raises(TypeError):
        len(PartitionState(db))


def test_a_data_dir_is_kept_for_its_own_cluster_and_discarded_for_another(tmp_path):
    data = tmp_path / "worker"
    assert claim_data_dir(data, "cluster-a", DAY) is False  # new and empty: nothing to discard
    (data / "v1").mkdir()
    (data / "v1" / "state").write_text("built from cluster-a")
    assert claim_data_dir(data, "cluster-a", DAY) is False
    assert (data / "v1" / "state").exists()

    assert claim_data_dir(data, "cluster-b", DAY) is True
    assert not (data / "v1").exists()
    assert claim_data_dir(data, "cluster-b", DAY) is False


def test_a_data_dir_of_unknown_origin_is_discarded(tmp_path):
    data = tmp_path / "worker"
    (data / "v1").mkdir(parents=True)
    assert claim_data_dir(data, "cluster-a", DAY) is True
    assert list(data.iterdir()) == [data / "kafka-cluster-id"]


def test_a_data_dir_last_written_before_the_tombstone_retention_is_discarded(tmp_path):
    data = tmp_path / "worker"
    claim_data_dir(data, "cluster-a", DAY)
    state = data / "v1" / "tables" / "stock-0.db" / "000001.sst"
    state.parent.mkdir(parents=True)
    state.write_text("built from cluster-a")
    hours_ago = time.time() - 3 * 3600
    os.utime(state, (hours_ago, hours_ago))
    assert claim_data_dir(data, "cluster-a", DAY) is False, "written 3 h ago: still completable"

    two_days_ago = time.time() - 2 * DAY
    os.utime(state, (two_days_ago, two_days_ago))
    assert claim_data_dir(data, "cluster-a", DAY) is True
    assert not (data / "v1").exists()
