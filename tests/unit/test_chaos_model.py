"""The chaos checker must flag what it is there to flag (and nothing in a clean history)."""
from __future__ import annotations

from chaos.invariants import Holdings, conservation, holdings, order_checks, order_snapshots
from chaos.model import check, plan


def _cmd(cid, body, accepted=True, outcome="ok", kind="", sku="S", key=""):
    return {"op": "command", "id": cid, "sku": sku, "key": key, "body": body, "accepted": accepted,
            "outcome": outcome, "kind": kind}


def _event(cid, kind, seq, wh="", on_hand=0, reserved=0, at=0, sender="chaos", index=0, incoming=(0, 0, 0),
           **body):
    """``incoming``: the level's (incoming, preordered, expected_at) after the event."""
    return {"event_id": f"{cid}/{index}", "command_id": cid, "sku": "S", "type": kind, "seq": seq,
            "warehouse": wh, "on_hand": on_hand, "reserved": reserved, "incoming": incoming[0],
            "preordered": incoming[1], "expected_at": incoming[2], "occurred_at": at, "sender": sender,
            "body": (f"inventory.events.{kind}", body)}


def _reserved(cid, seq, wh, on_hand, reserved, rid, qty, order="o", index=0, at=0, expires_at=0, awaiting=0,
              incoming=(0, 0, 0)):
    return _event(cid, "Reserved", seq, wh, on_hand, reserved, at=at, index=index, incoming=incoming,
                  reservation_id=rid, order_id=order, quantity=qty, expires_at=expires_at, awaiting=awaiting)


def _receipt(cid, wh, qty):
    return {"type": "AdjustStock", "warehouse": wh, "quantity": qty, "reason": "r", "hold_id": cid}


def _clean():
    calls = [
        _cmd("c1", {"type": "CreateProduct", "name": "p"}, kind="ProductCreated"),
        _cmd("c2", _receipt("c2", "w", 2), kind="StockAdjusted"),
        _cmd("c3", {"type": "Reserve", "reservation_id": "r1", "order_id": "o", "warehouse": "w", "quantity": 2},
             kind="Reserved"),
        _cmd("c4", {"type": "Reserve", "reservation_id": "r2", "order_id": "o", "warehouse": "w", "quantity": 1},
             outcome="fail", kind="ReservationRejected"),
        {"op": "read", "sku": "S", "levels": [["w", 2, 2, 3]]},
    ]
    events = [_event("c1", "ProductCreated", 1, name="p", components={}),
              _event("c2", "StockAdjusted", 2, "w", 2, 0, quantity=2),
              _reserved("c3", 3, "w", 2, 2, "r1", 2), _event("c4", "ReservationRejected", 3, "w", 2, 2)]
    return calls, events, {"r1": ("S", "PENDING")}


def _clean_report(report):
    assert (report.lost, report.duplicated, report.history_anomalies) == (0, 0, 0), report.examples


def test_a_clean_history_has_no_anomalies():
    _clean_report(check(*_clean()))


def test_a_redelivered_identical_decision_is_not_a_duplicate():
    calls, events, table = _clean()
    report = check(calls, events + [events[2]], table)
    assert report.duplicated == 0


def test_flags_lost_duplicated_oversold_stale_reads_and_vanished_reservations():
    calls, events, table = _clean()
    calls.append(_cmd("c5", _receipt("c5", "w", 1)))
    assert check(calls, events, table).lost == 1

    calls, events, table = _clean()
    assert check(calls, events + [_reserved("c3", 4, "w", 2, 2, "r1", 2)], table).duplicated == 1
    assert check(calls, events + [_reserved("c3", 4, "w", 2, 2, "r1", 2, index=1)], table).duplicated == 1

    calls, events, table = _clean()
    events[3] = _reserved("c4", 4, "w", 2, 3, "r2", 1)  # would oversell
    assert check(calls, events, table).history_anomalies >= 1

    calls, events, table = _clean()
    calls[4]["levels"] = [["w", 2, 1, 3]]  # a state the model never had
    assert check(calls, events, table).history_anomalies == 1

    calls, events, _ = _clean()
    assert check(calls, events, {}).history_anomalies == 1  # pending r1 vanished


def test_a_receipt_that_bypassed_its_warehouse_ledger_must_be_refused():
    calls, events, table = _clean()
    del calls[1]["body"]["hold_id"]
    report = check(calls, events, table)
    assert any("the model says ['CommandRejected']" in e for e in report.examples), report.examples


def _expiring(expire_at: int, commit_at: int | None = None):
    """r1 (2 units, TTL 1 s from t=1000), then the clock's expiry at ``expire_at``."""
    calls, events, _ = _clean()
    calls[2]["body"]["ttl_ms"] = 1_000
    events[2] = _reserved("c3", 3, "w", 2, 2, "r1", 2, at=1_000, expires_at=2_000)
    events.append(_event("expire:0000000002000:S:r1", "Expired", 4, "w", 2, 0, at=expire_at,
                         sender="clock", reservation_id="r1", quantity=2))
    if commit_at is not None:
        calls.append(_cmd("c5", {"type": "Commit", "reservation_id": "r1"}, kind="Committed"))
        events.insert(4, _event("c5", "Committed", 4, "w", 0, 0, at=commit_at, reservation_id="r1", quantity=2))
    return calls, events, {"r1": ("S", "EXPIRED")}


def test_an_expiry_at_or_after_the_deadline_is_clean_and_before_it_is_flagged():
    _clean_report(check(*_expiring(2_000), now_ms=10**9))
    assert check(*_expiring(1_999)).history_anomalies >= 1


def test_a_commit_after_the_deadline_must_be_refused():
    report = check(*_expiring(2_500, commit_at=2_000))
    assert any(e.startswith("S: Commit c5 decided ['Committed'], the model says ['CommandRejected']")
               for e in report.examples), report.examples


def test_a_reservation_long_past_its_deadline_that_never_expired_is_flagged():
    calls, events, _ = _expiring(2_000)
    events.pop()
    table = {"r1": ("S", "PENDING")}
    assert check(calls, events, table, now_ms=2_000 + 30_000).history_anomalies == 0
    report = check(calls, events, table, now_ms=2_000 + 120_000)
    assert report.history_anomalies == 1 and "never expired" in report.examples[0]


def test_the_history_records_every_command_body_as_json():
    """A product's attributes are a read-only mapping, which asdict cannot copy (make chaos broke
    on its first CreateProduct when variants added them); an order's lines are records."""
    import json

    from decimal import Decimal

    from chaos.clients import body_to_json
    from streams.orders.records import OrderLine, PlaceOrder
    from streams.stock.records import CreateProduct

    body = body_to_json(CreateProduct("shirt", parent="p", attributes={"size": "L"}))
    assert json.loads(json.dumps(body)) == {"type": "CreateProduct", "name": "shirt", "description": "",
                                            "category": "", "parent": "p", "attributes": {"size": "L"},
                                            "components": {}, "unit_cost": None}
    costly = body_to_json(CreateProduct("shirt", unit_cost=Decimal("12.5000")))
    assert json.loads(json.dumps(costly))["unit_cost"] == "12.5000"
    order = json.loads(json.dumps(body_to_json(PlaceOrder("c", (OrderLine("S", 2),), priority=("a", "b")))))
    assert order["type"] == "PlaceOrder" and order["lines"] == [{"sku": "S", "quantity": 2}]
    assert order["priority"] == ["a", "b"]


# ------------------------------------------------------------------------ allocation
def test_the_plan_takes_the_preferred_warehouse_first_then_by_strategy_and_splits():
    available = {"a": 2, "b": 5, "c": 0, "d": 3}
    assert plan(available, 4, "", "priority", ["d"]) == [("d", 3), ("a", 1)]
    assert plan(available, 4, "a", "priority", ["d"]) == [("a", 2), ("d", 2)]
    assert plan(available, 7, "", "most_stock", []) == [("b", 5), ("d", 2)]
    assert plan(available, 2, "c", "most_stock", []) == [("b", 2)], "a warehouse with nothing is skipped"
    assert plan({"x": 1, "y": 1}, 2, "", "most_stock", []) == [("x", 1), ("y", 1)], "ties by name"
    assert plan(available, 11, "", "priority", []) is None


def _line(order, qty, **more):
    return {"type": "AllocateLine", "order_id": order, "line": 1, "quantity": qty, "preferred_warehouse": "",
            "strategy": "priority", "priority": [], "ttl_ms": 0, "backorder": False, **more}


def _allocated(cid, seq, order, qty, seen, parts, index=0, incoming_seen=None):
    """``parts``: (warehouse, units) or (warehouse, units, awaiting)."""
    return _event(cid, "Allocated", seq, index=index, order_id=order, line=1, quantity=qty, strategy="priority",
                  levels_seen=seen, incoming_seen=incoming_seen or {},
                  parts=[{"warehouse": w, "quantity": q, "reservation_id": f"{order}:1:{w}",
                          "awaiting": (aw or [0])[0]} for w, q, *aw in parts])


def _stocked(east=3, west=5):
    """S with ``east`` units in east and ``west`` in west (versions 1-3)."""
    bodies = {"c1": {"type": "CreateProduct", "name": "p"}, "c2": _receipt("c2", "east", east),
              "c3": _receipt("c3", "west", west)}
    events = [_event("c1", "ProductCreated", 1, name="p", components={}),
              _event("c2", "StockAdjusted", 2, "east", east, 0, quantity=east),
              _event("c3", "StockAdjusted", 3, "west", west, 0, quantity=west)]
    return bodies, events


def _split_order():
    """o1's line of 6, preferring east (3 units): 3 from east, 3 from west."""
    bodies, events = _stocked()
    bodies["allocate:o1:1"] = _line("o1", 6, preferred_warehouse="east")
    events += [_allocated("allocate:o1:1", 3, "o1", 6, {"east": 3, "west": 5}, [("east", 3), ("west", 3)]),
               _reserved("allocate:o1:1", 4, "east", 3, 3, "o1:1:east", 3, order="o1", index=1),
               _reserved("allocate:o1:1", 5, "west", 5, 3, "o1:1:west", 3, order="o1", index=2)]
    return bodies, events


def test_an_order_line_is_split_preferred_first_and_saga_commands_are_decided_too():
    bodies, events = _split_order()
    bodies["release:o1:1:east"] = {"type": "Release", "reservation_id": "o1:1:east"}
    events.append(_event("release:o1:1:east", "Released", 6, "east", 3, 0, reservation_id="o1:1:east", quantity=3))
    report = check([], events, {"o1:1:east": ("S", "RELEASED"), "o1:1:west": ("S", "PENDING")}, bodies=bodies)
    _clean_report(report)
    assert report.decided == {"CreateProduct": 1, "AdjustStock": 2, "AllocateLine": 1, "Release": 1}
    assert report.stats["unmodelled"] == 0


def test_an_order_lines_parts_expire_a_ttl_after_the_decision_that_holds_them():
    bodies, events = _split_order()
    bodies["allocate:o1:1"]["ttl_ms"] = 1_000
    for event in events[3:]:
        event["occurred_at"] = 7_000
    assert check([], events, {}, bodies=bodies).history_anomalies >= 1, "the parts carry no deadline"
    for event in events[4:]:
        event["body"][1]["expires_at"] = 8_000
    _clean_report(check([], events, _pending("o1:1:east", "o1:1:west"), bodies=bodies))


def test_a_decision_nobody_sent_is_flagged():
    bodies, events = _split_order()
    del bodies["allocate:o1:1"]
    assert any("nobody sent" in e for e in check([], events, {}, bodies=bodies).examples)


def test_an_oversold_or_misplanned_allocation_is_flagged():
    bodies, events = _split_order()
    bodies["allocate:o1:1"]["quantity"] = 9  # 8 units in all: the log's allocation oversold
    report = check([], events, {}, bodies=bodies)
    assert any("the model says ['AllocationRejected']" in e for e in report.examples), report.examples

    bodies, events = _split_order()
    bodies["allocate:o1:1"]["preferred_warehouse"] = "west"  # then west had to go first
    assert check([], events, {}, bodies=bodies).history_anomalies >= 1

    bodies, events = _split_order()
    events[3]["seq"] = 4  # a plan changes no level: it keeps the version
    assert any("at version 4" in e for e in check([], events, {}, bodies=bodies).examples)


# ------------------------------------------------------------------------ backorders
def _pending(*reservations):
    return {rid: ("S", "PENDING") for rid in reservations}


def _backorders(cancel_second=False):
    """East holds 1: o1 (2 units) and o2 (1) wait, in that order, though o2 could be served;
    o3 (1, may not wait) is rejected; then 2 units arrive and serve o1, then o2."""
    bodies, events = _stocked(east=1, west=0)
    events.pop()
    del bodies["c3"]
    for order, qty in (("o1", 2), ("o2", 1)):
        bodies[f"allocate:{order}:1"] = _line(order, qty, backorder=True)
    bodies["allocate:o3:1"] = _line("o3", 1)
    bodies["c4"] = _receipt("c4", "east", 2)
    waits = {"line": 1, "preferred_warehouse": "", "strategy": "priority", "priority": [], "ttl_ms": 0,
             "preorder": False}
    events += [_event("allocate:o1:1", "Backordered", 2, order_id="o1", quantity=2, position=1, **waits),
               _event("allocate:o2:1", "Backordered", 2, order_id="o2", quantity=1, position=2, **waits),
               _event("allocate:o3:1", "AllocationRejected", 2, order_id="o3", line=1, quantity=1)]
    if cancel_second:
        bodies["unqueue:o2:1"] = {"type": "CancelBackorder", "order_id": "o2", "line": 1}
        events.append(_event("unqueue:o2:1", "BackorderCancelled", 2, order_id="o2", line=1, quantity=1))
    events += [_event("c4", "StockAdjusted", 3, "east", 3, 0, quantity=2),
               _allocated("c4", 3, "o1", 2, {"east": 3}, [("east", 2)], index=1),
               _reserved("c4", 4, "east", 3, 2, "o1:1:east", 2, order="o1", index=2)]
    if not cancel_second:
        events += [_allocated("c4", 4, "o2", 1, {"east": 1}, [("east", 1)], index=3),
                   _reserved("c4", 5, "east", 3, 3, "o2:1:east", 1, order="o2", index=4)]
    return bodies, events


def test_backorders_wait_in_fifo_order_and_are_served_by_what_arrives():
    bodies, events = _backorders()
    report = check([], events, _pending("o1:1:east", "o2:1:east"), bodies=bodies)
    _clean_report(report)
    assert report.stats["backorders_served"] == 2
    bodies, events = _backorders(cancel_second=True)
    report = check([], events, _pending("o1:1:east"), bodies=bodies)
    _clean_report(report)
    assert report.stats["backorders_served"] == 1


def test_a_backorder_served_out_of_fifo_order_is_flagged():
    bodies, events = _backorders()
    o1, o2 = events[5:7], events[7:9]
    for event, o2_event in zip(o1, o2):  # the same decision, o2 served before o1
        event["body"], o2_event["body"] = o2_event["body"], event["body"]
    assert check([], events, {}, bodies=bodies).history_anomalies >= 1


def test_a_line_that_jumps_the_queue_or_a_wrong_place_is_flagged():
    bodies, events = _backorders()
    events[4] = _allocated("allocate:o3:1", 2, "o3", 1, {"east": 1}, [("east", 1)])
    events.insert(5, _reserved("allocate:o3:1", 3, "east", 1, 1, "o3:1:east", 1, order="o3", index=1))
    assert check([], events, {}, bodies=bodies).history_anomalies >= 1

    bodies, events = _backorders()  # a reservation that takes the id a waiting line's part will have
    bodies["c5"] = {"type": "Reserve", "reservation_id": "o1:1:west", "order_id": "x", "warehouse": "east",
                    "quantity": 1}
    events.insert(5, _reserved("c5", 3, "east", 1, 1, "o1:1:west", 1, order="x"))
    assert any(e.startswith("S: Reserve c5 decided ['Reserved'], the model says ['ReservationRejected']")
               for e in check([], events, {}, bodies=bodies).examples)

    bodies, events = _backorders()  # a line that waits twice would be served twice
    bodies["again"] = _line("o1", 2, backorder=True)
    events.insert(5, dict(events[2], event_id="again/0", command_id="again"))
    events[5]["body"] = (events[5]["body"][0], {**events[5]["body"][1], "position": 3})
    assert any(e.startswith("S: AllocateLine again decided ['Backordered'], the model says ['AllocationRejected']")
               for e in check([], events, {}, bodies=bodies).examples)

    bodies, events = _backorders()
    events[3]["body"][1]["position"] = 1
    assert any("position" in e for e in check([], events, {}, bodies=bodies).examples)


# ------------------------------------------------------------------------ transfers
def _transfer(arrivals=1):
    bodies, events = _stocked(east=5, west=0)
    events.pop()
    del bodies["c3"]
    bodies["t1"] = {"type": "TransferStock", "source": "east", "destination": "west", "quantity": 2}
    events.append(_event("t1", "TransferredOut", 3, "east", 3, 0, transfer_id="t1", destination="west", quantity=2))
    for n in range(arrivals):
        cid = "arrive:t1" + "-again" * n
        bodies[cid] = {"type": "ArriveTransfer", "transfer_id": "t1"}
        events.append(_event(cid, "TransferArrived", 4 + n, "west", 2 * (n + 1), 0, transfer_id="t1", source="east",
                             quantity=2))
    return bodies, events


def test_a_transfer_leaves_its_source_then_arrives_once():
    bodies, events = _transfer()
    _clean_report(check([], events, {}, bodies=bodies))
    bodies, events = _transfer(arrivals=2)  # applied twice
    report = check([], events, {}, bodies=bodies)
    assert any("the model says ['CommandRejected']" in e for e in report.examples), report.examples

    bodies, events = _transfer()
    events[-2]["on_hand"] = 5  # out of the source, but the units stayed there
    assert check([], events, {}, bodies=bodies).history_anomalies >= 1

    bodies, events = _transfer()
    bodies["t1"]["quantity"] = 6  # more than the source has
    assert any(e.startswith("S: TransferStock t1 decided ['TransferredOut'], the model says ['CommandRejected']")
               for e in check([], events, {}, bodies=bodies).examples)


def test_conservation_counts_units_in_transit_and_catches_a_transfer_applied_twice():
    def table(east, west, moving=None):
        return {"s:S": {"sku": "S", "levels": {"east": [east, 0], "west": [west, 0]}, "tr": moving or {}}}
    events = _transfer(arrivals=0)[1]
    assert conservation(events, table(3, 0, {"t1": ["east", "west", 2]}), ["S"]) == []
    assert conservation(events + events, table(3, 0, {"t1": ["east", "west", 2]}), ["S"]) == [], "once per event"
    assert conservation(_transfer()[1], table(3, 2), ["S"]) == []
    assert len(conservation(_transfer(arrivals=2)[1], table(3, 4), ["S"])) == 1
    assert len(conservation(events, table(3, 0), ["S"])) == 1, "units lost in transit"
    shipped = _event("c9", "Committed", 4, "east", 2, 0, reservation_id="r", quantity=1)
    assert conservation(events + [shipped], table(2, 0, {"t1": ["east", "west", 2]}), ["S"]) == []
    assert len(conservation(events + [shipped], table(3, 0, {"t1": ["east", "west", 2]}), ["S"])) == 1


# ------------------------------------------------------------------------ new kinds
def test_a_kind_the_model_does_not_know_is_taken_from_the_log_without_crashing():
    bodies, events = _stocked(east=2, west=0)
    events.pop()
    del bodies["c3"]
    bodies["q1"] = {"type": "Quarantine", "warehouse": "east", "quantity": 1}  # a command it has no rule for
    events.append(_event("q1", "Quarantined", 3, "east", 1, 0, quantity=1))
    bodies["c4"] = _receipt("c4", "east", 1)  # a known command whose decision holds a new event type
    events += [_event("c4", "StockAdjusted", 4, "east", 2, 0, quantity=1),
               _event("c4", "Inspected", 5, "east", 2, 1, index=1)]
    bodies["c5"] = {"type": "Reserve", "reservation_id": "r", "order_id": "o", "warehouse": "east", "quantity": 1}
    events.append(_reserved("c5", 6, "east", 2, 2, "r", 1))
    report = check([], events, {"r": ("S", "PENDING")}, bodies=bodies)
    _clean_report(report)
    assert report.stats["unmodelled"] == 2


# ------------------------------------------------------------------------ pre-orders
DUE = 9_000  # the expected date announced


def _announce(cid, wh, qty, expected_at=DUE):
    return {"type": "AnnounceIncoming", "warehouse": wh, "quantity": qty, "expected_at": expected_at}


def _preserve(rid, qty, wh="east"):
    return {"type": "Reserve", "reservation_id": rid, "order_id": "o", "warehouse": wh, "quantity": qty,
            "preorder": True}


def _arrived(cid, seq, index, level, rid, qty, awaiting):
    return _event(cid, "PreorderArrived", seq, "east", *level[:2], index=index, incoming=level[2:],
                  reservation_id=rid, order_id="o", quantity=qty, awaiting=awaiting)


def _preorders():
    """East holds 2 and 5 are announced; r1 pre-orders 4 (2 awaiting), r2 2 (both awaiting); r3
    (2) finds 1 incoming unit left: refused; a withdrawal of 2 would take pre-ordered units:
    refused; r1's commit is refused while its units await; a receipt of 3 brings r1's 2 (the
    oldest) then 1 of r2's; r1 is committed; r2's release gives its awaited unit back; the last
    2 incoming units are withdrawn, and no date is left."""
    bodies, events = _stocked(east=2, west=0)
    events.pop()
    del bodies["c3"]
    steps = [
        ("a1", _announce("a1", "east", 5), [_event("a1", "IncomingAnnounced", 3, "east", 2, 0, incoming=(5, 0, DUE),
                                                   quantity=5, expected_at=DUE)]),
        ("p1", _preserve("r1", 4), [_reserved("p1", 4, "east", 2, 2, "r1", 4, awaiting=2, incoming=(5, 2, DUE))]),
        ("p2", _preserve("r2", 2), [_reserved("p2", 5, "east", 2, 2, "r2", 2, awaiting=2, incoming=(5, 4, DUE))]),
        ("p3", _preserve("r3", 2), [_event("p3", "ReservationRejected", 5, "east", 2, 2, incoming=(5, 4, DUE))]),
        ("a2", _announce("a2", "east", -2, 0), [_event("a2", "CommandRejected", 5, "east", 2, 2,
                                                       incoming=(5, 4, DUE))]),
        ("k1", {"type": "Commit", "reservation_id": "r1"}, [_event("k1", "CommandRejected", 5, "east", 2, 2,
                                                                   incoming=(5, 4, DUE),
                                                                   reason="PREORDER_NOT_ARRIVED")]),
        ("c7", _receipt("c7", "east", 3), [_event("c7", "StockAdjusted", 6, "east", 5, 2, incoming=(5, 4, DUE),
                                                  quantity=3),
                                           _arrived("c7", 7, 1, (5, 4, 3, 2, DUE), "r1", 2, 0),
                                           _arrived("c7", 8, 2, (5, 5, 2, 1, DUE), "r2", 1, 1)]),
        ("k2", {"type": "Commit", "reservation_id": "r1"}, [_event("k2", "Committed", 9, "east", 1, 1,
                                                                   incoming=(2, 1, DUE), reservation_id="r1",
                                                                   quantity=4)]),
        ("x2", {"type": "Release", "reservation_id": "r2"}, [_event("x2", "Released", 10, "east", 1, 0,
                                                                    incoming=(2, 0, DUE), reservation_id="r2",
                                                                    quantity=2)]),
        ("a3", _announce("a3", "east", -2, 0), [_event("a3", "IncomingAnnounced", 11, "east", 1, 0,
                                                       quantity=-2, expected_at=0)]),
    ]
    for cid, body, decided in steps:
        bodies[cid] = body
        events += decided
    return bodies, events


_PREORDERS_TABLE = {"r1": ("S", "COMMITTED"), "r2": ("S", "RELEASED")}


def _examples(bodies, events):
    return check([], events, _PREORDERS_TABLE, bodies=bodies).examples


def test_pre_orders_hold_incoming_units_and_receipts_bring_them_oldest_first():
    bodies, events = _preorders()
    report = check([], events, _PREORDERS_TABLE, bodies=bodies)
    _clean_report(report)
    assert report.stats["unmodelled"] == 0 and report.stats["preorders_arrived"] == 2
    assert report.stats["commits_before_arrival"] == 1
    assert report.decided["AnnounceIncoming"] == 3 and report.decided["Reserve"] == 3


def test_a_receipt_that_brings_a_younger_pre_orders_units_first_is_flagged():
    bodies, events = _preorders()
    first, second = events[9]["body"][1], events[10]["body"][1]
    first["reservation_id"], second["reservation_id"] = "r2", "r1"
    assert any("PreorderArrived holds" in e for e in _examples(bodies, events))


def test_a_pre_order_beyond_the_incoming_units_is_flagged():
    bodies, events = _preorders()
    events[5] = _reserved("p3", 6, "east", 2, 2, "r3", 2, awaiting=2, incoming=(5, 6, DUE))
    assert any(e.startswith("S: Reserve p3 decided ['Reserved'], the model says ['ReservationRejected']")
               for e in _examples(bodies, events))
    bodies, events = _preorders()  # a withdrawal of units pre-ordered
    events[6] = _event("a2", "IncomingAnnounced", 6, "east", 2, 2, incoming=(3, 4, DUE), quantity=-2)
    assert any(e.startswith("S: AnnounceIncoming a2 decided ['IncomingAnnounced'], the model says") for e in
               _examples(bodies, events))


def test_a_commit_of_a_hold_whose_units_have_not_arrived_is_flagged():
    bodies, events = _preorders()
    events[7] = _event("k1", "Committed", 6, "east", 0, 0, incoming=(5, 2, DUE), reservation_id="r1", quantity=4)
    assert any(e.startswith("S: Commit k1 decided ['Committed'], the model says ['CommandRejected']")
               for e in _examples(bodies, events))
    bodies, events = _preorders()
    events[7]["body"][1]["reason"] = "RESERVATION_EXPIRED"  # refused, for a reason it does not have
    assert any("CommandRejected holds" in e for e in _examples(bodies, events))


def test_every_pre_order_field_of_a_level_is_checked():
    for index, (field, wrong) in {3: ("expected_at", 8_000), 4: ("preordered", 1), 8: ("incoming", 2),
                                  13: ("expected_at", DUE)}.items():
        bodies, events = _preorders()
        events[index][field] = wrong
        assert any("left" in e for e in _examples(bodies, events)), (index, field)
    bodies, events = _preorders()
    events[4]["body"][1]["awaiting"] = 1
    assert any("Reserved holds" in e for e in _examples(bodies, events))


def test_the_expected_date_is_the_latest_announced():
    bodies, events = _preorders()
    bodies["a9"] = _announce("a9", "east", 1, DUE - 1)
    events.insert(7, _event("a9", "IncomingAnnounced", 6, "east", 2, 2, incoming=(6, 4, DUE), quantity=1,
                            expected_at=DUE - 1))
    for event in events[8:]:  # one more unit incoming from then on, one version later
        event["seq"] += 1
        event["incoming"] += event["incoming"] > 0
    events[-1] = _event("a3", "IncomingAnnounced", 12, "east", 1, 0, incoming=(1, 0, DUE), quantity=-2,
                        expected_at=0)
    _clean_report(check([], events, _PREORDERS_TABLE, bodies=bodies))
    events[7]["expected_at"] = DUE - 1
    assert any("IncomingAnnounced left" in e for e in _examples(bodies, events))


def test_a_released_or_expired_pre_order_gives_its_awaited_units_back():
    bodies, events = _preorders()
    del events[7:]
    bodies["x1"] = {"type": "Release", "reservation_id": "r1"}
    events.append(_event("x1", "Released", 6, "east", 2, 0, incoming=(5, 2, DUE), reservation_id="r1", quantity=4))
    _clean_report(check([], events, {"r1": ("S", "RELEASED"), "r2": ("S", "PENDING")}, bodies=bodies))
    events[-1]["reserved"] = -2  # as if all four units had been on hand
    assert check([], events, {}, bodies=bodies).history_anomalies >= 1


def _preorder_line(backorder=False):
    """East holds 1, west 4 incoming: o1's line of 3 takes east's unit and 2 of west's incoming."""
    bodies, events = _stocked(east=1, west=0)
    events.pop()
    del bodies["c3"]
    bodies["a1"] = _announce("a1", "west", 4)
    bodies["allocate:o1:1"] = _line("o1", 3, preorder=True, backorder=backorder)
    events += [_event("a1", "IncomingAnnounced", 3, "west", 0, 0, incoming=(4, 0, DUE), quantity=4, expected_at=DUE),
               _allocated("allocate:o1:1", 3, "o1", 3, {"east": 1, "west": 0}, [("east", 1), ("west", 2, 2)],
                          incoming_seen={"west": 4}),
               _reserved("allocate:o1:1", 4, "east", 1, 1, "o1:1:east", 1, order="o1", index=1),
               _reserved("allocate:o1:1", 5, "west", 0, 0, "o1:1:west", 2, order="o1", index=2, awaiting=2,
                         incoming=(4, 2, DUE))]
    return bodies, events


def test_an_order_line_that_allows_pre_orders_takes_every_unit_available_then_incoming_ones():
    bodies, events = _preorder_line()
    report = check([], events, _pending("o1:1:east", "o1:1:west"), bodies=bodies)
    _clean_report(report)
    assert report.stats["preorder_lines"] == 1
    bodies["allocate:o1:1"]["preorder"] = False  # then it could not be served
    assert any("the model says ['AllocationRejected']" in e for e in check([], events, {}, bodies=bodies).examples)
    bodies, events = _preorder_line()
    events[3]["body"][1]["parts"][1]["awaiting"] = 0
    assert any("Allocated holds" in e for e in check([], events, {}, bodies=bodies).examples)


def test_a_queued_line_that_allows_pre_orders_is_served_by_an_announcement():
    """o1's line of 6 waits (east holds 1, nothing incoming); west's 4 announced do not serve it,
    one more does: east's unit, then 5 awaited in west."""
    bodies, events = _stocked(east=1, west=0)
    events.pop()
    del bodies["c3"]
    bodies["allocate:o1:1"] = _line("o1", 6, preorder=True, backorder=True)
    bodies["a1"], bodies["a2"] = _announce("a1", "west", 4), _announce("a2", "west", 1)
    waits = {"line": 1, "preferred_warehouse": "", "strategy": "priority", "priority": [], "ttl_ms": 0,
             "preorder": True}
    events += [_event("allocate:o1:1", "Backordered", 2, order_id="o1", quantity=6, position=1, **waits),
               _event("a1", "IncomingAnnounced", 3, "west", incoming=(4, 0, DUE), quantity=4, expected_at=DUE),
               _event("a2", "IncomingAnnounced", 4, "west", incoming=(5, 0, DUE), quantity=1, expected_at=DUE),
               _allocated("a2", 4, "o1", 6, {"east": 1, "west": 0}, [("east", 1), ("west", 5, 5)], index=1,
                          incoming_seen={"west": 5}),
               _reserved("a2", 5, "east", 1, 1, "o1:1:east", 1, order="o1", index=2),
               _reserved("a2", 6, "west", 0, 0, "o1:1:west", 5, order="o1", index=3, awaiting=5,
                         incoming=(5, 5, DUE))]
    report = check([], events, _pending("o1:1:east", "o1:1:west"), bodies=bodies)
    _clean_report(report)
    assert report.stats["backorders_served"] == 1
    bodies["allocate:o1:1"]["preorder"] = False  # then no announcement serves it
    assert check([], events, {}, bodies=bodies).history_anomalies >= 1


def test_a_direct_reservation_while_lines_wait_is_flagged():
    bodies, events = _backorders()
    bodies["c5"] = {"type": "Reserve", "reservation_id": "r9", "order_id": "x", "warehouse": "east", "quantity": 1}
    events.insert(5, _reserved("c5", 3, "east", 1, 1, "r9", 1, order="x"))  # east has 1 available, o1 waits
    assert any(e.startswith("S: Reserve c5 decided ['Reserved'], the model says ['ReservationRejected']")
               for e in check([], events, {}, bodies=bodies).examples)


# ------------------------------------------------------------------------ order answers
def test_an_order_command_is_answered_from_the_order_log():
    placed = _cmd("p1", {"type": "PlaceOrder"}, kind="OrderPlaced", sku="", key="p1")
    order_events = [{"command_id": "p1", "kind": "OrderPlaced"}]
    _clean_report(check([placed], [], {}, order_events=order_events))
    assert check([placed], [], {}).lost == 1
    report = check([placed], [], {}, order_events=[{"command_id": "p1", "kind": "Refused"}])
    assert report.history_anomalies == 1


# ------------------------------------------------------------------------ order invariants
def _order(status, *lines, seq=3, order_id="o1"):
    """``lines``: (state, [(warehouse, units, awaiting)])."""
    return {"event_id": f"{order_id}/{seq}", "order_id": order_id, "kind": "X", "status": status, "seq": seq,
            "lines": [{"line": n, "sku": "S", "quantity": sum(q for _, q, _ in parts), "state": state,
                       "parts": [{"warehouse": w, "quantity": q, "reservation_id": f"{order_id}:{n}:{w}",
                                  "awaiting": aw} for w, q, aw in parts]}
                      for n, (state, parts) in enumerate(lines, start=1)]}


def _holds(order, queued=(), **states):
    """The stock area holds each part of ``order``, PENDING unless ``states`` says (by warehouse)."""
    held = {("S", p["reservation_id"]): {"order": order["order_id"], "warehouse": p["warehouse"],
                                         "quantity": p["quantity"], "state": states.get(p["warehouse"], "PENDING"),
                                         "awaiting": p["awaiting"] if p["warehouse"] not in states else 0}
            for line in order["lines"] for p in line["parts"]}
    return Holdings(held, set(queued), {"S"})


def _pg(*orders):
    return {o["order_id"]: {"status": o["status"], "lines": o["lines"], "seq": o["seq"]} for o in orders}


def test_settled_orders_hold_what_their_status_says():
    reserved = _order("RESERVED", ("ALLOCATED", [("east", 2, 0), ("west", 1, 0)]))
    assert order_checks({"o1": reserved}, _holds(reserved), _pg(reserved)) == []
    assert len(order_checks({"o1": reserved}, _holds(reserved, west="RELEASED"), _pg(reserved))) == 1
    short = _order("RESERVED", ("ALLOCATED", [("east", 2, 0)]))
    short["lines"][0]["quantity"] = 3
    assert any("2 of 3" in p for p in order_checks({"o1": short}, _holds(short), _pg(short)))

    fulfilled = _order("FULFILLED", ("COMMITTED", [("east", 2, 0)]))
    assert order_checks({"o1": fulfilled}, _holds(fulfilled, east="COMMITTED"), _pg(fulfilled)) == []
    assert len(order_checks({"o1": fulfilled}, _holds(fulfilled), _pg(fulfilled))) == 1

    cancelled = _order("CANCELLED", ("RELEASED", [("east", 2, 0)]), ("WITHDRAWN", []))
    assert order_checks({"o1": cancelled}, _holds(cancelled, east="RELEASED"), _pg(cancelled)) == []
    assert len(order_checks({"o1": cancelled}, _holds(cancelled), _pg(cancelled))) == 1, "still holds"
    queued = _holds(cancelled, [("o1", 2)], east="RELEASED")
    assert len(order_checks({"o1": cancelled}, queued, _pg(cancelled))) == 1, "a withdrawn line still waits"

    waiting = _order("BACKORDERED", ("ALLOCATED", [("east", 1, 0)]), ("BACKORDERED", []))
    assert order_checks({"o1": waiting}, _holds(waiting, [("o1", 2)]), _pg(waiting)) == []
    assert len(order_checks({"o1": waiting}, _holds(waiting), _pg(waiting))) == 1, "neither queued nor held"

    pending = _order("PENDING", ("PENDING", []))
    assert len(order_checks({"o1": pending}, _holds(pending), _pg(pending))) == 2


def test_postgresql_and_the_order_table_must_agree_with_the_order_log():
    order = _order("RESERVED", ("ALLOCATED", [("east", 2, 0)]))
    holds = _holds(order)
    assert len(order_checks({"o1": order}, holds, {})) == 1
    behind = {"o1": {**_pg(order)["o1"], "status": "PENDING", "seq": 2}}
    assert len(order_checks({"o1": order}, holds, behind)) == 1
    table = {"s:o1": {"id": "o1", "status": "RESERVED", "seq": 3, "lines": order["lines"]}}
    assert order_checks({"o1": order}, holds, _pg(order), table) == []
    assert len(order_checks({"o1": order}, holds, _pg(order), {})) == 1


def test_an_order_in_a_status_the_checks_do_not_know_is_only_compared():
    order = _order("ON_HOLD", ("ALLOCATED", [("east", 2, 0)]))
    assert order_checks({"o1": order}, _holds(order, east="ODD"), _pg(order)) == []


def test_a_preordered_order_holds_its_parts_and_awaits_units_a_reserved_one_awaits_none():
    preordered = _order("PREORDERED", ("ALLOCATED", [("east", 1, 0), ("west", 2, 2)]))
    assert order_checks({"o1": preordered}, _holds(preordered), _pg(preordered)) == []
    assert len(order_checks({"o1": preordered}, _holds(preordered, west="RELEASED"), _pg(preordered))) == 1
    holds = _holds(preordered)
    holds.reservations[("S", "o1:1:west")]["awaiting"] = 1  # its reservation awaits fewer than the part says
    assert len(order_checks({"o1": preordered}, holds, _pg(preordered))) == 1
    pg = _pg(preordered)
    pg["o1"]["lines"] = _order("PREORDERED", ("ALLOCATED", [("east", 1, 0), ("west", 2, 1)]))["lines"]
    assert len(order_checks({"o1": preordered}, _holds(preordered), pg)) == 1, "PostgreSQL's part awaits 1"

    arrived = _order("PREORDERED", ("ALLOCATED", [("east", 2, 0)]))
    assert any("awaits no unit" in p for p in order_checks({"o1": arrived}, _holds(arrived), _pg(arrived)))
    reserved = _order("RESERVED", ("ALLOCATED", [("east", 2, 1)]))
    assert any("awaits 1" in p for p in order_checks({"o1": reserved}, _holds(reserved), _pg(reserved)))
    waiting = _order("PREORDERED", ("ALLOCATED", [("east", 2, 2)]), ("BACKORDERED", []))
    assert len(order_checks({"o1": waiting}, _holds(waiting, [("o1", 2)]), _pg(waiting))) == 1, "a line waits"


def test_the_latest_snapshot_and_the_stock_tables_holdings():
    first, refused = _order("PENDING", ("PENDING", []), seq=1), {**_order(None, seq=1), "kind": "Refused"}
    later = _order("RESERVED", ("ALLOCATED", [("east", 2, 0)]), seq=3)
    assert order_snapshots([first, later, refused])["o1"] is later
    table = {"r:S:o1:1:east": {"id": "o1:1:east", "order": "o1", "sku": "S", "wh": "east", "qty": 2,
                               "state": "PENDING", "exp": 0},
             "s:S": {"sku": "S", "levels": {}, "bo": [["o2", 1, 3, "", "priority", [], 0]]},
             "k:S:1": "c1", "s:T": {"sku": "T", "bo": [["o3", 1, 1, "", "priority", [], 0]]}}
    forgotten = {("S", "o0:1:east"): {"order": "o0", "warehouse": "east", "quantity": 1, "state": "COMMITTED"}}
    holds = holdings(table, ["S"], forgotten)
    assert holds.queued == {("o2", 1)}
    assert holds.reservations[("S", "o1:1:east")]["state"] == "PENDING" and ("S", "o0:1:east") in holds.reservations
    assert order_checks({"o1": later}, holds, _pg(later)) == []


def test_the_run_has_not_drained_while_a_reservation_with_a_deadline_is_still_pending():
    import time

    from chaos.__main__ import expiring

    now = int(time.time() * 1000)

    def held(state, exp, sku="S"):
        return {"id": "r", "sku": sku, "state": state, "exp": exp}
    table = {"r:S:a": held("PENDING", now - 10_000), "r:S:b": held("EXPIRED", now - 10_000),
             "r:S:c": held("PENDING", 0), "r:S:d": held("PENDING", now + 10_000),
             "r:T:e": held("PENDING", now - 10_000, sku="T"), "s:S": {"sku": "S"}}
    assert expiring(table, {"S"}) == ["r:S:a", "r:S:d"]


# ------------------------------------------------------------------------ level invariants
def _views(pg_level=(5, 2, 4, 3, DUE), pending=5, awaiting=3, table_aw=3, ledger=(5, 2)):
    """S/east as the table and PostgreSQL hold it: 5 on hand, 2 reserved, 4 incoming, 3 of them
    pre-ordered; its pending reservations hold 5 units and await 3."""
    from chaos.invariants import table_view
    table = table_view({"s:S": {"sku": "S", "seq": 7, "levels": {"east": [5, 2, 4, 3, DUE], "west": [1, 0]},
                                "aw": [["r1", "o", "east", table_aw]]}}, ["S"])
    pg = {"levels": {("S", "east"): pg_level, ("S", "west"): (1, 0, 0, 0, 0)}, "versions": {"S": 7},
          "ledger": {("S", "east"): ledger, ("S", "west"): (1, 0)}, "pending": {("S", "east"): pending},
          "awaiting": {("S", "east"): awaiting}, "reservations": {}, "applied_twice": []}
    return table, pg


def test_levels_with_pre_orders_are_checked_in_both_views():
    from chaos.invariants import violations
    assert violations(*_views()) == []
    assert any("reserved + preordered" in v for v in violations(*_views(pending=2))), "preordered not held"
    assert any("preordered (PostgreSQL)" in v for v in violations(*_views(awaiting=2)))
    assert any("preordered (the table)" in v for v in violations(*_views(table_aw=1)))
    assert any("pre-sold" in v for v in violations(*_views(pg_level=(5, 2, 2, 3, DUE))))
    assert any("differ from the stock table" in v for v in violations(*_views(pg_level=(5, 2, 4, 3, 0))))
    assert any("ledger" in v for v in violations(*_views(ledger=(5, 5))))


def test_an_announcement_is_not_stock():
    bodies, events = _preorders()
    table = {"s:S": {"sku": "S", "levels": {"east": [1, 0]}, "tr": {}}}
    assert conservation(events, table, ["S"]) == []  # 2 + 3 received, 4 committed; 5 announced
    table["s:S"]["levels"]["east"] = [3, 0]
    assert len(conservation(events, table, ["S"])) == 1


def test_a_unit_cost_is_refused_where_the_stock_logic_refuses_it():
    calls = [_cmd("c0", {"type": "CreateProduct", "name": "p", "unit_cost": "12.34567"}, accepted=False,
                  outcome="fail", kind="CommandRejected"),
             _cmd("c1", {"type": "CreateProduct", "name": "p", "unit_cost": "12.5000"}, kind="ProductCreated")]
    events = [_event("c0", "CommandRejected", 0, command_type="CreateProduct", reason="OTHER"),
              _event("c1", "ProductCreated", 1, name="p", components={}, unit_cost="12.5000")]
    _clean_report(check(calls, events, {}))
    accepted = [_event("c0", "ProductCreated", 1, name="p", components={}, unit_cost="12.3457")]
    assert check(calls[:1], accepted, {}).history_anomalies >= 1
