"""The chaos checker must flag what it is there to flag (and nothing in a clean history)."""
from __future__ import annotations

from chaos.model import check


def _cmd(cid, body, accepted=True, outcome="ok", kind=""):
    return {"op": "command", "id": cid, "sku": "S", "body": body, "accepted": accepted,
            "outcome": outcome, "kind": kind}


def _event(cid, kind, seq, wh="", on_hand=0, reserved=0, at=0, expires_at=0, sender="chaos",
           reservation_id=""):
    return {"command_id": cid, "sku": "S", "type": kind, "seq": seq, "warehouse": wh,
            "on_hand": on_hand, "reserved": reserved, "occurred_at": at, "sender": sender,
            "body": (f"inventory.events.{kind}", {"expires_at": expires_at,
                                                   "reservation_id": reservation_id})}


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


def _expiring(expire_at: int, commit_at: int | None = None):
    """r1 (2 units, TTL 1 s from t=1000), then the clock's expiry at ``expire_at``."""
    calls, events, _ = _clean()
    calls[2]["body"]["ttl_ms"] = 1_000
    events[2] = _event("c3", "Reserved", 3, "w", 2, 2, at=1_000, expires_at=2_000)
    events.append(_event("expire:0000000002000:S:r1", "Expired", 4, "w", 2, 0, at=expire_at,
                         sender="clock", reservation_id="r1"))
    if commit_at is not None:
        calls.append(_cmd("c5", {"type": "Commit", "reservation_id": "r1"}, kind="Committed"))
        events.insert(4, _event("c5", "Committed", 4, "w", 0, 0, at=commit_at))
    return calls, events, {"r1": ("S", "EXPIRED")}


def test_an_expiry_at_or_after_the_deadline_is_clean_and_before_it_is_flagged():
    report = check(*_expiring(2_000), now_ms=10**9)
    assert (report.lost, report.duplicated, report.history_anomalies) == (0, 0, 0), report.examples
    assert check(*_expiring(1_999)).history_anomalies >= 1


def test_a_commit_after_the_deadline_must_be_refused():
    report = check(*_expiring(2_500, commit_at=2_000))
    assert any("decided Committed, the model says CommandRejected" in e for e in report.examples), \
        report.examples


def test_a_reservation_long_past_its_deadline_that_never_expired_is_flagged():
    calls, events, _ = _expiring(2_000)
    events.pop()
    table = {"r1": ("S", "PENDING")}
    assert check(calls, events, table, now_ms=2_000 + 30_000).history_anomalies == 0
    report = check(calls, events, table, now_ms=2_000 + 120_000)
    assert report.history_anomalies == 1 and "never expired" in report.examples[0]


def test_the_history_records_every_command_body_as_json():
    """A product's attributes are a read-only mapping, which asdict cannot copy (make chaos broke
    on its first CreateProduct when variants added them)."""
    import json

    from chaos.clients import body_to_json
    from streams.stock.records import CreateProduct

    body = body_to_json(CreateProduct("shirt", parent="p", attributes={"size": "L"}))
    assert json.loads(json.dumps(body)) == {"type": "CreateProduct", "name": "shirt", "description": "",
                                            "category": "", "parent": "p", "attributes": {"size": "L"},
                                            "components": {}}
