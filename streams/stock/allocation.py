"""Where an order line's units come from: a pure plan over the units available per warehouse.

The warehouses with units available are tried in order: the preferred one first, then by the
strategy (``"priority"``: the ``priority`` list, then the others by name; ``"most_stock"``: the
most units available first, ties by name). Each gives what it has until the line is covered, so
a line is split across warehouses only when the ones before could not cover it. When all of them
together cannot, there is no plan: nothing is held.
"""
from __future__ import annotations

from typing import Mapping, Sequence

__all__ = ["STRATEGIES", "plan", "reservation_id_for"]

STRATEGIES = ("priority", "most_stock")


def reservation_id_for(order_id: str, line: int, warehouse: str) -> str:
    """The reservation of one part of an order line: one per warehouse, derived from the line."""
    return f"{order_id}:{line}:{warehouse}"


def _order(available: Mapping[str, int], preferred: str, strategy: str,
           priority: Sequence[str]) -> list[str]:
    candidates = {wh for wh, units in available.items() if units > 0}
    if strategy == "priority":
        ranked = [*dict.fromkeys(wh for wh in priority if wh in candidates),
                  *sorted(candidates.difference(priority))]
    elif strategy == "most_stock":
        ranked = sorted(candidates, key=lambda wh: (-available[wh], wh))
    else:
        raise ValueError(f"unknown strategy {strategy!r}: one of {', '.join(STRATEGIES)}")
    if preferred in candidates:
        ranked.remove(preferred)
        ranked.insert(0, preferred)
    return ranked


def plan(available: Mapping[str, int], quantity: int, preferred: str = "", strategy: str = "priority",
         priority: Sequence[str] = ()) -> list[tuple[str, int]] | None:
    """``[(warehouse, units), ...]`` covering ``quantity`` (> 0), or None when the warehouses
    together have fewer units available."""
    if quantity <= 0:
        raise ValueError(f"quantity must be positive, got {quantity}")
    parts: list[tuple[str, int]] = []
    remaining = quantity
    for warehouse in _order(available, preferred, strategy, priority):
        if remaining == 0:
            break
        take = min(available[warehouse], remaining)
        parts.append((warehouse, take))
        remaining -= take
    return None if remaining else parts
