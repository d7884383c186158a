"""The chaos checker must flag what it is there to flag (and nothing in a clean history)."""
from __future__ import annotations

from chaos.model import check


def _cmd(cid, body, accepted=True, outcome="ok", kind=""):
    return {"op": "command", "id": cid, "sku": "S", "body": body, "accepted": accepted,
            "outcome": outcome, "kind": kind}


def _event(cid, kind, seq, wh="", on_hand=0, reserved=0):
    return {"command_id": cid, "sku": "S", "type": kind, "seq": seq, "warehouse": wh,
            "on_hand": on_hand, "reserved": reserved}


def _clean():
    calls = [
        _cmd("c1", {"type": "CreateProduct"}, kind="ProductCreated"),
        _cmd("c2", {"type": "AdjustStock", "warehouse": "w", "quantity": 2}, kind="StockAdjusted"),
        _cmd("c3", {"type": "Reserve", "reservation_id": "r1", "warehouse": "w", "quantity": 2}, kind="Reserved"),
        _cmd("c4", {"type": "Reserve", "reservation_id": "r2", "warehouse": "w", "quantity": 1},
             outcome="fail", kind="ReservationRejected"),
        {"op": "read", "sku": "S", "levels": [["w", 2, 2, 3]]},
    ]
    events = [_event("c1", "ProductCreated", 1), _event("c2", "StockAdjusted", 2, "w", 2, 0),
              _event("c3", "Reserved", 3, "w", 2, 2), _event("c4", "ReservationRejected", 3, "w", 2, 2)]
    return calls, events, {"r1": ("S", "PENDING")}


def test_a_clean_history_has_no_anomalies():
    report = check(*_clean())
    assert (report.lost, report.duplicated, report.history_anomalies) == (0, 0, 0), report.examples


def test_a_redelivered_identical_decision_is_not_a_duplicate():
    calls, events, table = _clean()
    report = check(calls, events + [events[2]], table)
    assert report.duplicated == 0


def test_flags_lost_duplicated_oversold_stale_reads_and_vanished_reservations():
    calls, events, table = _clean()
    calls.append(_cmd("c5", {"type": "AdjustStock", "warehouse": "w", "quantity": 1}))
    assert check(calls, events, table).lost == 1

    calls, events, table = _clean()
    assert check(calls, events + [_event("c3", "Reserved", 4, "w", 2, 2)], table).duplicated == 1

    calls, events, table = _clean()
    events[3] = _event("c4", "Reserved", 4, "w", 2, 3)  # would oversell
    assert check(calls, events, table).history_anomalies >= 1

    calls, events, table = _clean()
    calls[4]["levels"] = [["w", 2, 1, 3]]  # a state the model never had
    assert check(calls, events, table).history_anomalies == 1

    calls, events, _ = _clean()
    assert check(calls, events, {}).history_anomalies == 1  # pending r1 vanished
