"""The stock table's local state: one RocksDB per partition that only ever holds a changelog prefix.

Each partition a worker owns keeps its table in a RocksDB of its own, with the changelog offset
it holds, so a restarted worker (or one that gets a partition back) replays only the changelog's
tail instead of all of it (a full replay of 100,000 SKUs took about two minutes with faust's
per-record recovery, bench/README.md).

The owner writes a batch here only after its transaction committed (``streams/partition/owner.py``),
together with the offset it reached, in one atomic ``WriteBatch``; recovery applies the
changelog's committed records the same way. The local database is therefore always a prefix of
the committed changelog, also after a kill -9.

Keys and values are stored exactly as they travel on the changelog (compact JSON).

A data directory belongs to one Kafka cluster, and to a recent past (``claim_data_dir``): state
built from another cluster's changelog, or too old for the changelog to complete it, is
discarded and rebuilt.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from rocksdict import Options, Rdict, WriteBatch

from streams.partition.batch import DELETED

__all__ = ["PartitionState", "claim_data_dir", "encode", "open_partition", "stored_offset",
           "changelog_records", "apply_changelog"]

log = logging.getLogger(__name__)


def encode(value: Any) -> bytes:
    """A changelog key or value as bytes: compact JSON."""
    return json.dumps(value, separators=(",", ":")).encode()


class PartitionState(Mapping[str, Any]):
    """Read access to one partition's acknowledged state, by key."""

    def __init__(self, db: Rdict) -> None:
        self.db = db

    def __getitem__(self, key: str) -> Any:
        raw = self.db.get(encode(key))
        if raw is None:
            raise KeyError(key)
        return json.loads(raw)

    def items_between(self, low: str, high: str) -> Iterator[tuple[str, Any]]:
        """The items with keys in [low, high], in key order (a RocksDB range read)."""
        # Compared as stored (JSON strings sort like the strings for the index's plain ASCII
        # bounds), so the loop stops before keys that are not JSON, such as faust's offset key.
        end = encode(high)
        for raw_key, raw in self.db.items(from_key=encode(low)):
            if raw_key > end:
                return
            yield json.loads(raw_key), json.loads(raw)

    def __iter__(self) -> Iterator[str]:
        raise TypeError("the stock table is read by key only, or by range (items_between)")

    def __len__(self) -> int:
        raise TypeError("the stock table is read by key only")


# Sorts before every JSON key ('"...'), so no range read of the table ever meets it.
OFFSET_KEY = b"\x00changelog-offset"


def open_partition(path: Path) -> Rdict:
    """One partition's database, created if absent; keys and values are raw bytes."""
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    # Modest buffers: the state is small per SKU, and several workers may share a machine.
    options.set_write_buffer_size(16 * 1024**2)
    options.set_max_write_buffer_number(2)
    path.parent.mkdir(parents=True, exist_ok=True)
    return Rdict(str(path), options)


def stored_offset(db: Rdict) -> int | None:
    """The changelog offset the local state holds everything up to, or None: nothing yet."""
    raw = db.get(OFFSET_KEY)
    return None if raw is None else int(raw)


def changelog_records(writes: Sequence[tuple[str, Any]]) -> list[tuple[bytes, bytes | None]]:
    """A batch's table writes as changelog records (key, value or None for a deletion), encoded
    once: the same bytes go to the changelog and, once committed, to the local state."""
    return [(encode(key), None if value is DELETED else encode(value)) for key, value in writes]


def apply_changelog(db: Rdict, records: Sequence[tuple[bytes, bytes | None, int]]) -> None:
    """Apply committed changelog records (key, value or None for a deletion, offset), in order."""
    if not records:
        return
    batch = WriteBatch(raw_mode=True)
    for key, value, _ in records:
        if value is None:
            batch.delete(key)
        else:
            batch.put(key, value)
    batch.put(OFFSET_KEY, str(records[-1][2]).encode())
    db.write(batch)


def claim_data_dir(path: Path, cluster_id: str, max_age_s: float) -> bool:
    """Keep ``path`` only if its state can still be completed; returns whether it was discarded.

    - From another cluster (a re-created broker starts its changelog at offset 0 again, and
      faust would replay it on top of the old state).
    - Last written more than ``max_age_s`` ago, the changelog's ``delete.retention.ms``: the
      compaction may since have dropped tombstones (deleted keys) this state never saw."""
    marker = path / "kafka-cluster-id"
    reason = _unusable(path, marker, cluster_id, max_age_s)
    discarded = reason is not None and path.is_dir() and any(path.iterdir())
    if discarded:
        log.warning("discarding the local state; it is rebuilt from the changelog",
                    extra={"data_dir": str(path), "reason": reason})
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    marker.write_text(cluster_id + "\n")
    return discarded


def _unusable(path: Path, marker: Path, cluster_id: str, max_age_s: float) -> str | None:
    if not marker.is_file() or marker.read_text().strip() != cluster_id:
        return "not from this Kafka cluster"
    written = [f.stat().st_mtime for f in path.rglob("*") if f.is_file() and f != marker]
    if written and time.time() - max(written) > max_age_s:
        return "older than the changelog keeps its tombstones"
    return None
