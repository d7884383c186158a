import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetInventoryRequest(_message.Message):
    __slots__ = ("product_id",)
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    def __init__(self, product_id: _Optional[str] = ...) -> None: ...

class Level(_message.Message):
    __slots__ = ("warehouse", "on_hand", "reserved", "available", "low_stock_threshold", "incoming", "preordered", "preorderable", "expected_at")
    WAREHOUSE_FIELD_NUMBER: _ClassVar[int]
    ON_HAND_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    LOW_STOCK_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    INCOMING_FIELD_NUMBER: _ClassVar[int]
    PREORDERED_FIELD_NUMBER: _ClassVar[int]
    PREORDERABLE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_AT_FIELD_NUMBER: _ClassVar[int]
    warehouse: str
    on_hand: int
    reserved: int
    available: int
    low_stock_threshold: int
    incoming: int
    preordered: int
    preorderable: int
    expected_at: _timestamp_pb2.Timestamp
    def __init__(self, warehouse: _Optional[str] = ..., on_hand: _Optional[int] = ..., reserved: _Optional[int] = ..., available: _Optional[int] = ..., low_stock_threshold: _Optional[int] = ..., incoming: _Optional[int] = ..., preordered: _Optional[int] = ..., preorderable: _Optional[int] = ..., expected_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Totals(_message.Message):
    __slots__ = ("available", "reserved", "total", "incoming", "preordered", "preorderable")
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    INCOMING_FIELD_NUMBER: _ClassVar[int]
    PREORDERED_FIELD_NUMBER: _ClassVar[int]
    PREORDERABLE_FIELD_NUMBER: _ClassVar[int]
    available: int
    reserved: int
    total: int
    incoming: int
    preordered: int
    preorderable: int
    def __init__(self, available: _Optional[int] = ..., reserved: _Optional[int] = ..., total: _Optional[int] = ..., incoming: _Optional[int] = ..., preordered: _Optional[int] = ..., preorderable: _Optional[int] = ...) -> None: ...

class InventoryLevels(_message.Message):
    __slots__ = ("product_id", "warehouses", "totals", "version", "in_transit")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSES_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    IN_TRANSIT_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    warehouses: _containers.RepeatedCompositeFieldContainer[Level]
    totals: Totals
    version: int
    in_transit: int
    def __init__(self, product_id: _Optional[str] = ..., warehouses: _Optional[_Iterable[_Union[Level, _Mapping]]] = ..., totals: _Optional[_Union[Totals, _Mapping]] = ..., version: _Optional[int] = ..., in_transit: _Optional[int] = ...) -> None: ...

class ListLowStockRequest(_message.Message):
    __slots__ = ("warehouse", "limit")
    WAREHOUSE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    warehouse: str
    limit: int
    def __init__(self, warehouse: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class LowStockLevel(_message.Message):
    __slots__ = ("product_id", "warehouse", "available", "low_stock_threshold", "updated_at")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    LOW_STOCK_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    warehouse: str
    available: int
    low_stock_threshold: int
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, product_id: _Optional[str] = ..., warehouse: _Optional[str] = ..., available: _Optional[int] = ..., low_stock_threshold: _Optional[int] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class LowStockList(_message.Message):
    __slots__ = ("levels",)
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    levels: _containers.RepeatedCompositeFieldContainer[LowStockLevel]
    def __init__(self, levels: _Optional[_Iterable[_Union[LowStockLevel, _Mapping]]] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("product_id", "warehouse", "after_offset")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_FIELD_NUMBER: _ClassVar[int]
    AFTER_OFFSET_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    warehouse: str
    after_offset: int
    def __init__(self, product_id: _Optional[str] = ..., warehouse: _Optional[str] = ..., after_offset: _Optional[int] = ...) -> None: ...

class Update(_message.Message):
    __slots__ = ("event", "alert")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    ALERT_FIELD_NUMBER: _ClassVar[int]
    event: InventoryEvent
    alert: LowStockAlert
    def __init__(self, event: _Optional[_Union[InventoryEvent, _Mapping]] = ..., alert: _Optional[_Union[LowStockAlert, _Mapping]] = ...) -> None: ...

class InventoryEvent(_message.Message):
    __slots__ = ("offset", "event_id", "command_id", "type", "sku", "warehouse", "seq", "occurred_at", "on_hand", "reserved", "available", "incoming", "preordered", "on_hand_delta", "reserved_delta", "low_stock", "low_stock_threshold", "sender", "body_json", "expected_at")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    ON_HAND_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    INCOMING_FIELD_NUMBER: _ClassVar[int]
    PREORDERED_FIELD_NUMBER: _ClassVar[int]
    ON_HAND_DELTA_FIELD_NUMBER: _ClassVar[int]
    RESERVED_DELTA_FIELD_NUMBER: _ClassVar[int]
    LOW_STOCK_FIELD_NUMBER: _ClassVar[int]
    LOW_STOCK_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    BODY_JSON_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_AT_FIELD_NUMBER: _ClassVar[int]
    offset: int
    event_id: str
    command_id: str
    type: str
    sku: str
    warehouse: str
    seq: int
    occurred_at: _timestamp_pb2.Timestamp
    on_hand: int
    reserved: int
    available: int
    incoming: int
    preordered: int
    on_hand_delta: int
    reserved_delta: int
    low_stock: bool
    low_stock_threshold: int
    sender: str
    body_json: str
    expected_at: _timestamp_pb2.Timestamp
    def __init__(self, offset: _Optional[int] = ..., event_id: _Optional[str] = ..., command_id: _Optional[str] = ..., type: _Optional[str] = ..., sku: _Optional[str] = ..., warehouse: _Optional[str] = ..., seq: _Optional[int] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., on_hand: _Optional[int] = ..., reserved: _Optional[int] = ..., available: _Optional[int] = ..., incoming: _Optional[int] = ..., preordered: _Optional[int] = ..., on_hand_delta: _Optional[int] = ..., reserved_delta: _Optional[int] = ..., low_stock: _Optional[bool] = ..., low_stock_threshold: _Optional[int] = ..., sender: _Optional[str] = ..., body_json: _Optional[str] = ..., expected_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class LowStockAlert(_message.Message):
    __slots__ = ("offset", "event_id", "sku", "warehouse", "available", "threshold", "occurred_at")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    offset: int
    event_id: str
    sku: str
    warehouse: str
    available: int
    threshold: int
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, offset: _Optional[int] = ..., event_id: _Optional[str] = ..., sku: _Optional[str] = ..., warehouse: _Optional[str] = ..., available: _Optional[int] = ..., threshold: _Optional[int] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
