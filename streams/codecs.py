"""faust codecs over fastavro: topics name them as ``value_serializer``."""
from __future__ import annotations

from typing import Any

from faust.serializers import codecs

from schemas import AvroCodec, event_codec

__all__ = ["FaustAvroCodec", "STOCK_EVENT_CODEC", "register_codecs"]

STOCK_EVENT_CODEC = "avro-stock-event"


class FaustAvroCodec(codecs.Codec):
    """Avro single-object encoding of one schema (see ``schemas``), as a faust codec."""

    def __init__(self, avro: AvroCodec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.avro = avro

    def _dumps(self, obj: Any) -> bytes:
        return self.avro.encode(obj)

    def _loads(self, s: bytes) -> Any:
        return self.avro.decode(s)


def register_codecs() -> None:
    codecs.register(STOCK_EVENT_CODEC, FaustAvroCodec(event_codec()))
