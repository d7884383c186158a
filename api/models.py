"""Request and response bodies of the REST edge (pydantic), with OpenAPI examples."""
from __future__ import annotations

import re
from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import Annotated, Literal

from limits import parse as parse_rate_limit
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic import AfterValidator, WithJsonSchema

__all__ = ["ProductIn", "ProductOut", "StockUpdateIn", "LevelOut", "InventoryOut", "TotalsOut",
           "ReservationIn", "ReservationOut", "ReservationStateOut", "PendingOut", "WarehouseIn",
           "WarehouseOut", "OrderIn", "OrderOut", "TransferIn", "TransferOut",
           "BundleIn", "BundleOut", "BundleAvailabilityOut", "BackorderIn", "IncomingIn",
           "TokenIn", "TokenOut", "UserIn", "UserOut", "ApiKeyIn", "ApiKeyOut", "ApiKeyCreatedOut"]

_ID = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$"
# Free text refuses the C0 control characters but tab, newline and carriage return: PostgreSQL
# text cannot hold NUL at all (such a name would be decided, then fail the ledger's INSERT), and
# the others are never meant in a name, reason or address. In the schema, so clients see it.
_TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f]*$"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
Text = Annotated[str, Field(pattern=_TEXT)]


def _iso_text(value: object) -> object:
    """Times are ISO 8601 text, as documented (format date or date-time): pydantic alone would
    also read a number, or a number in a query string, as seconds since the epoch."""
    if not isinstance(value, (str, date)) or (isinstance(value, str) and not _ISO_START.match(value)):
        raise ValueError("an ISO 8601 date or time, e.g. 2030-03-01 or 2030-03-01T09:00:00Z")
    return value


_ISO_START = re.compile(r"^\d{4}-\d{2}-\d{2}")
#: A time with its timezone, ISO 8601 only (for query parameters such as ``since``).
IsoDateTime = Annotated[AwareDatetime, BeforeValidator(_iso_text)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# A unit cost: >= 0, at most 14 integer digits and 4 decimal places (NUMERIC(18, 4), Avro
# decimal(18, 4)). In: a JSON number, or a string for an exact figure (a binary float cannot hold
# every 18-digit one). Out: always the string with 4 places, "12.5000", as the events carry it.
_COST_TEXT = r"^[0-9]{1,14}(\.[0-9]{1,4})?$"
_COST_OUT = r"^[0-9]{1,14}\.[0-9]{4}$"
_COST_MAX = 99_999_999_999_999.9999


def _cost_text(value: object) -> object:
    """A string must be plain digits, as the schema says (pydantic alone would also read "1e3",
    " 1" or "+1")."""
    if isinstance(value, str) and not re.fullmatch(_COST_TEXT, value):
        raise ValueError("a unit cost string is digits with at most 4 decimal places, e.g. \"12.5\"")
    return value


def _four_places(value: Decimal) -> Decimal:
    return abs(value).quantize(Decimal("0.0001"))  # abs: -0 is 0


UnitCostIn = Annotated[
    Decimal, BeforeValidator(_cost_text), Field(ge=0, max_digits=18, decimal_places=4), AfterValidator(_four_places),
    WithJsonSchema({"anyOf": [{"type": "number", "minimum": 0, "maximum": _COST_MAX},
                              {"type": "string", "pattern": _COST_TEXT}],
                    "examples": [12.5, "1234.5678"]}, mode="validation"),
]
UnitCostOut = Annotated[Decimal, WithJsonSchema({"type": "string", "pattern": _COST_OUT,
                                                  "examples": ["12.5000"]}, mode="serialization")]
_COST_DOC = ("what one unit costs (stock value = on hand x unit cost): >= 0, at most 14 integer digits "
             "and 4 decimal places; a JSON number or, for an exact figure, a string of digits; "
             "answered as a string with 4 places. Omitted or null: not known")


class ProductIn(_Strict):
    sku: str = Field(pattern=_ID, examples=["SKU-TSHIRT-RED-M"])
    name: Text = Field(min_length=1, max_length=200, examples=["T-shirt, red, M"])
    description: Text = Field("", max_length=2000, examples=["Organic cotton crew neck"])
    category: Text = Field("", max_length=100, examples=["apparel"])
    unit_cost: UnitCostIn | None = Field(None, description=_COST_DOC)


class VariantIn(_Strict):
    """A variant: a stock-keeping unit of its own that belongs to a product."""

    sku: str = Field(pattern=_ID, examples=["SKU-TSHIRT-RED-L"])
    parent_id: str = Field(pattern=_ID, examples=["SKU-TSHIRT"], description="the product it is a variant of")
    name: Text = Field(min_length=1, max_length=200, examples=["T-shirt, red, L"])
    # Names are checked by _bounded: a pattern on dict keys would become patternProperties,
    # which lets any other key through in the schema; propertyNames says it as it is.
    attributes: dict[str, Annotated[str, Field(max_length=200, pattern=_TEXT)]] = Field(
        default_factory=dict, max_length=20, examples=[{"colour": "red", "size": "L"}],
        json_schema_extra={"propertyNames": {"minLength": 1, "maxLength": 50, "pattern": _TEXT}})
    description: Text = Field("", max_length=2000)
    category: Text = Field("", max_length=100)
    unit_cost: UnitCostIn | None = Field(None, description=_COST_DOC + " (a variant has its own; "
                                                                    "it does not inherit its product's)")

    @field_validator("attributes")
    @classmethod
    def _bounded(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if not 1 <= len(key) <= 50 or len(item) > 200:
                raise ValueError("attribute names take 1-50 characters and values at most 200")
            if _CONTROL.search(key):
                raise ValueError("attribute names take no control characters but tab and newlines")
        return value


class VariantOut(BaseModel):
    product_id: str
    sku: str
    parent_id: str
    name: str
    attributes: dict[str, str]
    unit_cost: UnitCostOut | None = Field(None, description="what one unit costs; null: not known")


class ComponentIn(_Strict):
    product_id: str = Field(pattern=_ID, examples=["SKU-TSHIRT-RED-M"])
    quantity: int = Field(gt=0, le=1_000, examples=[2], description="units of it in one bundle")


class BundleIn(_Strict):
    """A bundle: a product made of other products' units. It holds no stock of its own (its
    units are its components'), and an order for it reserves every component or none. It has no
    unit cost (a ``unit_cost`` is refused, 422): its components' costs value its units."""

    sku: str = Field(pattern=_ID, examples=["SKU-GIFT-SET"])
    name: Text = Field(min_length=1, max_length=200, examples=["Gift set: a T-shirt and two pairs of socks"])
    description: Text = Field("", max_length=2000)
    category: Text = Field("", max_length=100)
    components: list[ComponentIn] = Field(min_length=1, max_length=20, examples=[[
        {"product_id": "SKU-TSHIRT-RED-M", "quantity": 1}, {"product_id": "SKU-SOCKS", "quantity": 2}]])

    @model_validator(mode="after")
    def _distinct(self) -> "BundleIn":
        ids = [c.product_id for c in self.components]
        if len(set(ids)) != len(ids):
            raise ValueError("each component appears once")
        if self.sku in ids:
            raise ValueError("a bundle cannot be its own component")
        return self


class ComponentOut(BaseModel):
    product_id: str
    quantity: int = Field(description="units of it in one bundle")


class BundleOut(BaseModel):
    product_id: str
    sku: str
    name: str
    description: str
    category: str
    components: list[ComponentOut]


class ComponentAvailabilityOut(ComponentOut):
    available: int = Field(description="the component's available units, over every warehouse")


class BundleAvailabilityOut(BaseModel):
    components: list[ComponentAvailabilityOut]
    available: int = Field(description="bundles the components make now: the least, over the "
                                       "components, of floor(available / quantity)")


class ProductOut(BaseModel):
    product_id: str = Field(examples=["SKU-TSHIRT-RED-M"])
    sku: str
    name: str
    description: str
    category: str
    unit_cost: UnitCostOut | None = Field(None, description="what one unit costs; null: not known")


class StockUpdateIn(_Strict):
    """Add (positive) or remove (negative) units in one warehouse."""

    # Bounded like every quantity: an unbounded one passed validation and failed to encode (a
    # 500) beyond the Avro long of the command.
    quantity_change: int = Field(ge=-1_000_000_000, le=1_000_000_000, examples=[25, -3],
                                 description="units received (positive) or removed (negative); not 0")
    reason: Text = Field(min_length=1, max_length=200, examples=["purchase order PO-1042 received"])
    warehouse: str | None = Field(None, pattern=_ID, examples=["default"])


class IncomingIn(_Strict):
    """Units expected to arrive at a warehouse (announced, e.g. by a purchase order), which orders
    may pre-order until they do; a negative quantity withdraws announced units no pre-order holds."""

    warehouse_id: str | None = Field(None, pattern=_ID, examples=["default"],
                                     description="the server's default warehouse when absent")
    quantity: int = Field(ge=-1_000_000_000, le=1_000_000_000, examples=[40, -5],
                          description="units announced (positive) or withdrawn (negative); not 0")
    expected_at: Annotated[datetime | date, BeforeValidator(_iso_text)] | None = Field(
        None, examples=["2030-03-01", "2030-03-01T09:00:00Z"],
        description="when they are expected (a date: its start, UTC; no time zone: UTC); required to "
                    "announce units. A warehouse expects all its incoming units by the latest date announced")

    def expected_ms(self) -> int:
        """``expected_at`` in epoch ms, as the stock area keeps it (0: none)."""
        moment = self.expected_at
        if moment is None:
            return 0
        if not isinstance(moment, datetime):
            moment = datetime.combine(moment, time())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return int(moment.timestamp() * 1000)


class LevelOut(BaseModel):
    warehouse: str
    on_hand: int
    reserved: int
    available: int
    low_stock_threshold: int = Field(0, description="alert below this many available units; 0: none")
    incoming: int = Field(0, description="units announced to arrive (POST /inventory/{product_id}/incoming), "
                                         "not arrived yet; not counted in on_hand")
    preordered: int = Field(0, description="of incoming, units held by pre-orders: they become reserved "
                                           "as they arrive")
    preorderable: int = Field(0, description="incoming - preordered: what pre-orders may still hold")
    expected_at: datetime | None = Field(None, description="when the incoming units are expected (the latest "
                                                           "date announced); null when none are")


class LowStockThresholdIn(_Strict):
    """Alert (event, inventory-alerts topic, WebSocket) when available units fall below it."""

    threshold: int = Field(ge=0, le=1_000_000_000, examples=[10], description="0 turns the alert off")
    warehouse: str | None = Field(None, pattern=_ID, examples=["default"])


class LowStockOut(BaseModel):
    product_id: str
    warehouse: str
    available: int
    low_stock_threshold: int
    updated_at: datetime


def _absent_when_none(value: int | None) -> bool:
    return value is None


_INCOMING_TOTAL = "; present only when units are announced incoming in any of the levels summed"


class TotalsOut(BaseModel):
    available: int
    reserved: int
    total: int = Field(description="units on hand, reserved ones included")
    # Absent rather than 0 without incoming units, so the totals of stock that is never
    # pre-ordered read as they always did.
    incoming: int | None = Field(None, exclude_if=_absent_when_none,
                                 description="units announced to arrive, not in total" + _INCOMING_TOTAL)
    preordered: int | None = Field(None, exclude_if=_absent_when_none,
                                   description="of incoming, units held by pre-orders" + _INCOMING_TOTAL)
    preorderable: int | None = Field(None, exclude_if=_absent_when_none,
                                     description="incoming - preordered" + _INCOMING_TOTAL)

    @classmethod
    def of(cls, on_hand: int, reserved: int, incoming: int = 0, preordered: int = 0) -> "TotalsOut":
        announced = {"incoming": incoming, "preordered": preordered,
                     "preorderable": incoming - preordered} if incoming else {}
        return cls(available=on_hand - reserved, reserved=reserved, total=on_hand, **announced)


class VariantLevelsOut(BaseModel):
    product_id: str
    attributes: dict[str, str]
    warehouses: list[LevelOut]
    totals: TotalsOut


class InventoryOut(BaseModel):
    product_id: str
    warehouses: list[LevelOut]
    totals: TotalsOut
    version: int = Field(description="the SKU's sequence number of the last change")
    variants: list[VariantLevelsOut] = Field(
        default_factory=list, description="a product's variants, each with its own stock")
    variant_totals: TotalsOut | None = Field(None, description="the sum over the variants, if any")
    in_transit: int = Field(0, description="units on their way between two warehouses (counted in no level)")
    bundle: BundleAvailabilityOut | None = Field(
        None, description="for a bundle (which holds no stock itself): its components and how many "
                          "bundles they make, as of this read")


class ReservationIn(_Strict):
    product_id: str = Field(pattern=_ID, examples=["SKU-TSHIRT-RED-M"])
    order_id: str = Field(pattern=_ID, examples=["order-7731"])
    quantity: int = Field(gt=0, le=1_000_000, examples=[2])
    reservation_id: str | None = Field(
        None, pattern=_ID, description="chosen by the server when absent", examples=["res-7731-1"])
    warehouse: str | None = Field(None, pattern=_ID, examples=["default"])
    ttl_seconds: int | None = Field(
        None, ge=1, le=30 * 86_400, examples=[900],
        description="expires (its units available again) unless committed or released within "
                    "this long; the server's default (15 minutes) when absent")
    preorder: bool = Field(
        False, description="a pre-order: when the units available do not cover it, it holds the rest "
                           "of the warehouse's incoming units (available ones first); it can be "
                           "committed once they arrived")


_AWAITING = "of quantity, pre-ordered units that have not arrived yet (0 once the hold ended)"


class ReservationOut(BaseModel):
    reservation_id: str
    order_id: str
    product_id: str
    warehouse: str
    quantity: int
    state: str = Field(examples=["PENDING"])
    expires_at: datetime | None = Field(None, description="when a pending reservation expires")
    awaiting: int = Field(0, description=_AWAITING)
    command_id: str
    level: LevelOut


class ReservationStateOut(BaseModel):
    reservation_id: str
    order_id: str
    product_id: str
    warehouse: str
    quantity: int
    state: str = Field(examples=["COMMITTED"])
    updated_at: datetime
    expires_at: datetime | None = Field(None, description="when it expires (or expired) if pending")
    awaiting: int = Field(0, description=_AWAITING)


class PendingOut(BaseModel):
    """The command is in the log but its outcome did not arrive in time; retry with the same key."""

    command_id: str
    status: str = "pending"


class WarehouseIn(_Strict):
    warehouse_id: str = Field(pattern=_ID, examples=["leeds-1"])
    name: Text = Field(min_length=1, max_length=200, examples=["Leeds fulfilment centre"])
    location: Text = Field("", max_length=200, examples=["Leeds, UK"])
    capacity: int = Field(ge=0, le=10**15, examples=[50_000],
                          description="units it can hold across all SKUs: a hard limit for receipts")


class WarehouseOut(BaseModel):
    warehouse_id: str
    name: str
    location: str
    capacity: int
    stored: int = Field(description="units in the warehouse, as its capacity ledger counts them")
    held: int = Field(description="space held for receipts on their way in")
    free: int = Field(description="capacity - stored - held: what a receipt may still bring in")
    totals: TotalsOut = Field(description="stock per SKU summed over the warehouse")
    skus: int = Field(description="SKUs with a level in the warehouse")
    version: int


class OrderLineIn(_Strict):
    product_id: str = Field(pattern=_ID, examples=["SKU-TSHIRT-RED-M"])
    quantity: int = Field(gt=0, le=1_000_000, examples=[2])


class OrderIn(_Strict):
    """An order: every line is reserved (split over warehouses if need be), or none is."""

    order_id: str | None = Field(None, pattern=_ID, examples=["order-7731"],
                                 description="chosen by the server (the Idempotency-Key, if any) when absent")
    customer: Text = Field(min_length=1, max_length=200, examples=["customer-42"])
    lines: list[OrderLineIn] = Field(min_length=1, max_length=100)
    preferred_warehouse: str | None = Field(None, pattern=_ID, examples=["leeds-1"],
                                            description="allocated from first, when it has stock")
    allow_backorders: bool = Field(False, description="lines that cannot be served wait instead of rejecting the order")
    allow_preorders: bool = Field(False, description="lines may hold units announced as incoming when those "
                                                     "on hand do not cover them: the order is PREORDERED "
                                                     "until they arrive, then RESERVED")
    strategy: Literal["priority", "most_stock"] | None = Field(
        None, description="after the preferred warehouse: by the configured warehouse priority, or "
                          "the most stock first; the server's default when absent")

    @field_validator("lines")
    @classmethod
    def _distinct(cls, lines: list[OrderLineIn]) -> list[OrderLineIn]:
        if len({line.product_id for line in lines}) != len(lines):
            raise ValueError("each product appears in one line only")
        return lines


class AllocationOut(BaseModel):
    warehouse: str
    quantity: int
    reservation_id: str
    awaiting: int = Field(0, description="of quantity, pre-ordered units that have not arrived yet")


class OrderLineOut(BaseModel):
    line: int
    product_id: str
    quantity: int
    state: str = Field(examples=["ALLOCATED"], description="PENDING, ALLOCATED, REJECTED, RELEASED or COMMITTED")
    allocation: list[AllocationOut] = Field(description="the warehouses the line is held in")


class OrderOut(BaseModel):
    order_id: str
    customer: str
    status: str = Field(examples=["RESERVED"],
                        description="PENDING, RESERVED, PREORDERED (every line held, some pre-ordered "
                                    "units not arrived yet), REJECTED, BACKORDERED, CANCELLED or FULFILLED")
    preferred_warehouse: str
    allow_backorders: bool
    allow_preorders: bool = Field(description="its lines may hold units announced as incoming")
    strategy: str
    lines: list[OrderLineOut]
    version: int


class TransferIn(_Strict):
    """Move units of a product from this warehouse to another (whose capacity is checked)."""

    product_id: str = Field(pattern=_ID, examples=["SKU-TSHIRT-RED-M"])
    quantity: int = Field(gt=0, le=1_000_000_000, examples=[12])
    destination: str = Field(pattern=_ID, examples=["york-2"])
    reason: Text = Field("transfer", min_length=1, max_length=200)


class TransferOut(BaseModel):
    transfer_id: str
    product_id: str
    source: str
    destination: str
    quantity: int
    state: str = Field(examples=["IN_TRANSIT"], description="IN_TRANSIT: left the source; it arrives next")
    source_level: LevelOut


class BackorderIn(_Strict):
    """One product, ordered to wait for stock when there is not enough now."""

    backorder_id: str | None = Field(None, pattern=_ID, examples=["bo-2231"],
                                     description="its order's id; chosen by the server when absent")
    customer: Text = Field(min_length=1, max_length=200, examples=["customer-42"])
    product_id: str = Field(pattern=_ID, examples=["SKU-TSHIRT-RED-M"])
    quantity: int = Field(gt=0, le=1_000_000, examples=[3])
    preferred_warehouse: str | None = Field(None, pattern=_ID, examples=["leeds-1"])
    allow_preorders: bool = Field(False, description="it may be served from units announced as incoming "
                                                     "(PREORDERED until they arrive)")


# ------------------------------------------------------------------------------ authentication
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._@\-]{0,63}$"
RoleName = Literal["viewer", "operator", "admin"]


class TokenIn(_Strict):
    username: Text = Field(min_length=1, max_length=64, examples=["alice"])
    password: str = Field(min_length=1, max_length=256, examples=["correct horse battery staple"])


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds")
    role: RoleName


class UserIn(_Strict):
    username: str = Field(pattern=_NAME, examples=["alice"])
    password: str = Field(min_length=12, max_length=256, examples=["correct horse battery staple"])
    role: RoleName


class UserOut(BaseModel):
    username: str
    role: RoleName


class ApiKeyIn(_Strict):
    name: Text = Field(min_length=1, max_length=100, examples=["erp-sync"])
    role: RoleName = Field(examples=["operator"])
    rate_limit: Text | None = Field(None, max_length=50, examples=["600/minute"],
                                   description="this key's own limit; default: the service's")

    @field_validator("rate_limit")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        # The `limits` notation, or a 422 naming the field; "0/second" would lock the key out.
        if value is not None and parse_rate_limit(value).amount < 1:
            raise ValueError("a rate limit allows at least 1 request")
        return value


class ApiKeyOut(BaseModel):
    key_id: str
    name: str
    role: RoleName
    rate_limit: str | None
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None


class ApiKeyCreatedOut(ApiKeyOut):
    api_key: str = Field(description="send as the X-API-Key header; shown only this once")


# ------------------------------------------------------------------------------ audit history
__all__ += ["HistoryOut", "HistoryEntryOut", "HistoryLevelOut", "HistoryChangeOut"]


class HistoryLevelOut(BaseModel):
    on_hand: int
    reserved: int
    available: int = Field(description="on_hand - reserved")


class HistoryChangeOut(BaseModel):
    on_hand: int
    reserved: int


class HistoryEntryOut(BaseModel):
    seq: int = Field(description="the SKU's sequence number of this change: its total order")
    event_id: str
    event_type: str = Field(examples=["StockAdjusted"])
    warehouse: str
    command_id: str = Field(description="the command that made it (a request's Idempotency-Key)")
    actor: str = Field(examples=["user:alice"],
                       description='who sent it: "user:<name>", "key:<key id>", "clock" (an expiry)')
    reason: str | None = Field(None, description="a stock update's reason")
    reservation_id: str | None = None
    occurred_at: datetime
    before: HistoryLevelOut = Field(description="the warehouse's level before (after - change)")
    after: HistoryLevelOut
    change: HistoryChangeOut
    details: dict = Field(default_factory=dict,
                          description="the event's own fields as published (quantity, order_id, "
                                      "threshold, destination ...; times in epoch ms)")


class HistoryOut(BaseModel):
    product_id: str
    entries: list[HistoryEntryOut] = Field(description="newest first")
    next_cursor: str | None = Field(None, description="pass as `cursor` for the next (older) page; "
                                                      "null on the last page")


# ------------------------------------------------------------------------------ demand forecast
__all__ += ["ForecastOut", "ForecastDayOut", "DemandDayOut"]
_Day = date  # a field named ``date`` would shadow the type in its own annotation


class DemandDayOut(BaseModel):
    date: _Day = Field(description="a UTC day")
    units: int = Field(description="units asked for that day (reserved or refused), all warehouses")


class ForecastDayOut(BaseModel):
    date: _Day = Field(description="a UTC day; the first is today")
    units: float = Field(description="forecast demand that day")
    low: float | None = Field(None, description="lower bound of the central interval at the service "
                                                "level; null when the model gives none (Croston)")
    high: float | None = Field(None, description="upper bound, likewise")


class ForecastOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "product_id": "SKU-TSHIRT-RED-M", "as_of": "2030-03-01", "has_history": True, "reason": None,
        "history_days": 30, "method": "AutoETS(ANN)", "demand_pattern": "smooth", "trend": "none",
        "daily_demand": [{"date": "2030-02-28", "units": 10}],
        "forecast": [{"date": "2030-03-01", "units": 10.0, "low": 10.0, "high": 10.0}],
        "mean_daily_demand": 10.0, "available": 95, "service_level": 0.95, "lead_time_days": 7,
        "horizon_days": 90, "sigma": 0.0, "safety_stock": 0.0, "reorder_point": 70.0,
        "days_of_cover": 9.5, "stockout_date": "2030-03-10"}]})

    product_id: str
    as_of: date = Field(description="today (UTC): the forecast's day 1; history ends the day before")
    has_history: bool = Field(description="false when the product was never asked for: then every "
                                          "figure below is null")
    reason: str | None = Field(None, examples=["no demand history"],
                               description="why there is no forecast, or what limits it")
    history_days: int = Field(description="days of history used: from the first day with "
                                          "analytics up to yesterday")
    method: str | None = Field(None, examples=["AutoETS(AAN)", "CrostonSBA", "HistoricAverage"])
    demand_pattern: str | None = Field(None, examples=["smooth"],
                                       description="smooth, erratic, intermittent or lumpy (Syntetos-Boylan)")
    trend: str | None = Field(None, examples=["up"], description="up, down or none")
    daily_demand: list[DemandDayOut] = Field(description="the history used, oldest first")
    forecast: list[ForecastDayOut] = Field(description="one per day of the horizon, from today")
    mean_daily_demand: float | None = Field(None, description="mean forecast per day over the lead time")
    available: int = Field(description="on hand - reserved now, all warehouses")
    service_level: float
    lead_time_days: int
    horizon_days: int
    sigma: float | None = Field(None, description="std of the model's in-sample one-step errors")
    safety_stock: float | None = Field(None, description="z(service_level) x sigma x sqrt(lead_time_days)")
    reorder_point: float | None = Field(None, description="forecast demand over the lead time + safety stock")
    days_of_cover: float | None = Field(None, description="available / mean_daily_demand; null when "
                                                          "no demand is forecast")
    stockout_date: date | None = Field(None, description="first day the cumulative forecast exceeds "
                                                         "available (today if none is); null if not "
                                                         "within the horizon")


# ------------------------------------------------------------------------ inventory analytics
__all__ += ["AnalyticsOut", "AnalyticsTotalsOut", "AnalyticsWindowOut", "AnalyticsTopOut",
            "AnalyticsLowStockOut"]

StockValueOut = Annotated[Decimal, WithJsonSchema({"type": "string", "pattern": r"^[0-9]{1,20}\.[0-9]{4}$",
                                                    "examples": ["1250.0000"]}, mode="serialization")]


class AnalyticsTotalsOut(BaseModel):
    demand_units: int = Field(description="reserved_units + rejected_units")
    reserved_units: int = Field(description="units of every Reserved event (reservations, order lines' "
                                            "parts, pre-order holds, backorders once served)")
    reservations: int
    rejected_units: int = Field(description="units refused for lack of stock (INSUFFICIENT_STOCK)")
    rejections: int
    committed_units: int
    released_units: int = Field(description="released and expired")
    received_units: int = Field(description="receipts and transfers in")
    removed_units: int = Field(description="removals and transfers out")
    reservation_rate: float | None = Field(description="reserved_units / demand_units; null without demand",
                                           examples=[0.9])
    stockout_rate: float | None = Field(description="rejected_units / demand_units; null without demand",
                                        examples=[0.1])
    turnover: float | None = Field(description="committed_units / average on hand (per SKU and warehouse, "
                                               "(first window's opening + last window's closing) / 2, "
                                               "summed); null when that average is 0", examples=[1.5])
    stock_value: StockValueOut | None = Field(description="sum of each SKU and warehouse's last closing "
                                                          "on hand x unit cost; null if no cost is known")
    skus_without_cost: int = Field(description="SKUs in range whose unit cost is not known")


class AnalyticsWindowOut(BaseModel):
    window_start: datetime = Field(examples=["2030-03-01T09:00:00Z"])
    demand_units: int
    reserved_units: int
    rejected_units: int
    committed_units: int
    reservations: int
    rejections: int


class AnalyticsTopOut(BaseModel):
    product_id: str = Field(examples=["SKU-TSHIRT-RED-M"])
    demand_units: int
    rejected_units: int
    committed_units: int


class AnalyticsLowStockOut(BaseModel):
    warehouse: str = Field(examples=["default"])
    skus_low: int = Field(description="SKUs whose last window in range closed below their threshold")
    alerts: int = Field(description="low-stock crossings in range")


class AnalyticsOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "granularity": "hour", "since": "2030-03-01T00:00:00Z", "until": "2030-03-02T00:00:00Z",
        "warehouse": None, "category": "apparel",
        "totals": {"demand_units": 20, "reserved_units": 18, "reservations": 6, "rejected_units": 2,
                   "rejections": 1, "committed_units": 12, "released_units": 3, "received_units": 50,
                   "removed_units": 1, "reservation_rate": 0.9, "stockout_rate": 0.1, "turnover": 0.4,
                   "stock_value": "1250.0000", "skus_without_cost": 0},
        "series": [{"window_start": "2030-03-01T09:00:00Z", "demand_units": 20, "reserved_units": 18,
                    "rejected_units": 2, "committed_units": 12, "reservations": 6, "rejections": 1}],
        "top_demand": [{"product_id": "SKU-TSHIRT-RED-M", "demand_units": 20, "rejected_units": 2,
                        "committed_units": 12}],
        "low_stock": [{"warehouse": "default", "skus_low": 1, "alerts": 1}]}]})

    granularity: Literal["hour", "day"]
    since: datetime = Field(description="the start of the first window counted")
    until: datetime
    warehouse: str | None
    category: str | None
    totals: AnalyticsTotalsOut
    series: list[AnalyticsWindowOut] = Field(description="one per window with data, oldest first")
    top_demand: list[AnalyticsTopOut] = Field(description="SKUs by demand, highest first")
    low_stock: list[AnalyticsLowStockOut] = Field(description="per warehouse with data")
