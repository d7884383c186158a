"""The stock table's local state: one RocksDB per partition that only ever holds a changelog prefix.

faust's RocksDB store (with the rocksdict driver) keeps each partition of the table on disk and
remembers the changelog offset it holds, so a restarted worker replays only the changelog's tail
instead of all of it (a full replay of 100,000 SKUs took about two minutes, bench/README.md).

faust writes a value to the local database as soon as an agent sets it and stores the offset
later, when the changelog send is acknowledged. A kill -9 in between leaves local values that
the changelog never got, and a local state that disagrees with the one any other worker rebuilds.
So the stock agent does not write through faust: it sends a batch's changelog records, waits for
the broker to acknowledge them, and only then writes them here together with their offset, in one
atomic ``WriteBatch``. The local database is therefore always a prefix of the changelog, and
faust's recovery, which replays the changelog from the stored offset, completes it.

Keys and values are stored exactly as they travel on the changelog (compact JSON), which is also
what faust's recovery writes when it replays records.

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

from rocksdict import Rdict, WriteBatch

from streams.stock.batch import DELETED

__all__ = ["PartitionState", "claim_data_dir", "encode", "write_acknowledged"]

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


def write_acknowledged(db: Rdict, offset_key: bytes, writes: Sequence[tuple[str, Any]],
                       offsets: Sequence[int]) -> None:
    """Store a batch the broker has acknowledged, and the highest changelog offset it reached."""
    if not writes:
        return
    batch = WriteBatch(raw_mode=True)
    for key, value in writes:
        if value is DELETED:
            batch.delete(encode(key))
        else:
            batch.put(encode(key), encode(value))
    # faust's own format for the offset it resumes the changelog after (Store.persisted_offset).
    batch.put(offset_key, str(max(offsets)).encode())
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
