"""Generate the gRPC stubs of schemas/inventory.proto: ``make proto`` (``python -m api.grpc.generate``).

The stubs are committed (api/grpc/generated/), not generated at import or install time: the API
then needs only grpcio and protobuf at run time, not the compiler (grpcio-tools, a test extra),
and a reader sees the code that runs. tests/unit/test_grpc_stubs.py regenerates them into a
temporary directory and compares, so they cannot drift from the .proto or from the pinned
grpcio-tools.

protoc writes ``import inventory_pb2`` into the service module, which only works with the
output directory on sys.path; it is rewritten to a package-relative import.
"""
from __future__ import annotations

import argparse
import logging
from importlib import resources
from pathlib import Path

__all__ = ["PROTO", "GENERATED", "generate"]

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
PROTO = ROOT / "schemas" / "inventory.proto"
GENERATED = Path(__file__).resolve().parent / "generated"
_ABSOLUTE_IMPORT = f"import {PROTO.stem}_pb2 as"
_RELATIVE_IMPORT = f"from . import {PROTO.stem}_pb2 as"


def generate(out_dir: Path = GENERATED, proto: Path = PROTO) -> list[Path]:
    """Write ``<stem>_pb2.py``, ``<stem>_pb2.pyi`` and ``<stem>_pb2_grpc.py`` into ``out_dir``."""
    from grpc_tools import protoc  # the compiler: a test/dev dependency, not a runtime one

    well_known = resources.files("grpc_tools") / "_proto"  # google/protobuf/timestamp.proto
    out_dir.mkdir(parents=True, exist_ok=True)
    args = ["protoc", f"-I{proto.parent}", f"-I{well_known}", f"--python_out={out_dir}",
            f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}", str(proto)]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {proto}")
    service = out_dir / f"{proto.stem}_pb2_grpc.py"
    service.write_text(service.read_text().replace(_ABSOLUTE_IMPORT, _RELATIVE_IMPORT))
    return [out_dir / f"{proto.stem}{suffix}" for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=GENERATED)
    for path in generate(parser.parse_args().out):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    main()
