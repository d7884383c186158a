"""A batch of commands decided against one partition's table, its writes sent in one go.

``TableBatch`` is the ``MutableMapping`` a ``StockStore`` writes through while it decides a batch
of one partition's commands: reads see the batch's own writes, and the writes are kept in order.
``writes()`` is what goes to the changelog, in this order:

1. every other record (command records, reservations, window slots, expiry entries, ticks and
   deletions), in the order they were made;
2. then each SKU's state, once, with its value after the whole batch.

The store's rule (a command's record before its SKU's state) still holds for every command, so a
crash after any prefix of these writes leaves what a crash between single commands leaves:
commands whose records survived without their SKU write, completed on redelivery in log order
(``tests/unit/test_store.py`` checks every prefix). A hot SKU decided 100 times in a batch is
written once instead of 100 times.

Like the store's window itself, this assumes a SKU's window (``dedup_window``) is larger than
the commands a redelivery can repeat (those since the last offset commit), a batch included.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping, MutableMapping

__all__ = ["TableBatch", "DELETED", "items_between"]


class _Deleted:
    def __repr__(self) -> str:
        return "DELETED"


DELETED: Any = _Deleted()
_STATE_PREFIX = "s:"


def items_between(base: Mapping[str, Any], low: str, high: str) -> list[tuple[str, Any]]:
    """``base``'s items with keys in [low, high] in key order; a plain dict (tests) is scanned."""
    scan = getattr(base, "items_between", None)
    if scan is not None:
        return list(scan(low, high))
    return sorted((key, value) for key, value in base.items() if low <= key <= high)


class TableBatch(MutableMapping[str, Any]):
    def __init__(self, base: Mapping[str, Any]) -> None:
        self.base = base
        self.overlay: dict[str, Any] = {}
        self._ordered: list[tuple[str, Any]] = []
        self._states: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key in self.overlay:
            value = self.overlay[key]
            if value is DELETED:
                raise KeyError(key)
            return value
        return self.base[key]

    def get(self, key: str, default: Any = None) -> Any:
        if key not in self.overlay:
            return self.base.get(key, default)
        value = self.overlay[key]
        return default if value is DELETED else value

    def __setitem__(self, key: str, value: Any) -> None:
        self._record(key, value)

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self._record(key, DELETED)

    def pop(self, key: str, *default: Any) -> Any:
        if key in self:
            value = self[key]
            self._record(key, DELETED)
            return value
        if default:
            return default[0]
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        if key in self.overlay:
            return self.overlay[key] is not DELETED
        return key in self.base

    def __iter__(self) -> Iterator[str]:
        raise TypeError("a batch is read by key only")

    def __len__(self) -> int:
        raise TypeError("a batch is read by key only")

    def items_between(self, low: str, high: str) -> list[tuple[str, Any]]:
        """The items with keys in [low, high] in key order, the batch's own writes included."""
        merged = dict(items_between(self.base, low, high))
        merged.update((k, v) for k, v in self.overlay.items() if low <= k <= high)
        return sorted((k, v) for k, v in merged.items() if v is not DELETED)

    def _record(self, key: str, value: Any) -> None:
        self.overlay[key] = value
        if key.startswith(_STATE_PREFIX):
            self._states[key] = value
        else:
            self._ordered.append((key, value))

    def writes(self) -> list[tuple[str, Any]]:
        """The changelog records of the batch, in the order that keeps crashes recoverable."""
        return [*self._ordered, *self._states.items()]
