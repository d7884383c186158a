"""The committed gRPC stubs are exactly what `make proto` generates from schemas/inventory.proto."""
from __future__ import annotations

from api.grpc.generate import GENERATED, PROTO, generate
from api.grpc.generated import inventory_pb2 as pb


def test_the_committed_stubs_are_generated_from_the_proto(tmp_path):
    fresh = generate(tmp_path)
    assert [p.name for p in fresh] == ["inventory_pb2.py", "inventory_pb2.pyi", "inventory_pb2_grpc.py"]
    for path in fresh:
        committed = GENERATED / path.name
        assert committed.is_file(), f"{committed} is missing: run `make proto`"
        assert committed.read_text() == path.read_text(), \
            f"{committed} is stale (edited by hand, or generated from another {PROTO.name}): run `make proto`"


def test_the_service_imports_its_messages_from_its_own_package(tmp_path):
    service = generate(tmp_path)[-1].read_text()
    assert "from . import inventory_pb2 as" in service
    assert "\nimport inventory_pb2" not in service


def test_the_service_declares_its_three_rpcs_and_one_stream():
    service = pb.DESCRIPTOR.services_by_name["Inventory"]
    assert service.full_name == "inventory.v1.Inventory"
    streams = {m.name: (m.client_streaming, m.server_streaming) for m in service.methods}
    assert streams == {"GetInventory": (False, False), "ListLowStock": (False, False),
                       "WatchInventory": (False, True)}
    assert [f.name for f in pb.Update.DESCRIPTOR.oneofs_by_name["kind"].fields] == ["event", "alert"]
