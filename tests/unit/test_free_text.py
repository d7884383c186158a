"""Free text refuses NUL and other control characters at the API (a 422 naming the field), and the
sink writes an event that carries NUL anyway (from another producer) instead of failing forever."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from api.models import (
    ApiKeyIn, BackorderIn, BundleIn, OrderIn, ProductIn, StockUpdateIn, TokenIn, TransferIn, VariantIn,
    WarehouseIn,
)
from storage.sink import NUL_REPLACEMENT, refused_nul, scrub_nul

VALID = {
    ProductIn: {"sku": "s-1", "name": "n"},
    VariantIn: {"sku": "s-2", "parent_id": "s-1", "name": "n"},
    BundleIn: {"sku": "s-3", "name": "n", "components": [{"product_id": "s-1", "quantity": 1}]},
    StockUpdateIn: {"quantity_change": 1, "reason": "r"},
    TransferIn: {"product_id": "s-1", "quantity": 1, "destination": "w-2"},
    WarehouseIn: {"warehouse_id": "w-1", "name": "n", "capacity": 1},
    OrderIn: {"customer": "c", "lines": [{"product_id": "s-1", "quantity": 1}]},
    BackorderIn: {"customer": "c", "product_id": "s-1", "quantity": 1},
    TokenIn: {"username": "u", "password": "p"},
    ApiKeyIn: {"name": "k", "role": "viewer"},
}
FREE_TEXT = [(ProductIn, "name"), (ProductIn, "description"), (ProductIn, "category"),
             (VariantIn, "name"), (VariantIn, "description"), (VariantIn, "category"),
             (BundleIn, "name"), (BundleIn, "description"), (BundleIn, "category"),
             (StockUpdateIn, "reason"), (TransferIn, "reason"), (WarehouseIn, "name"),
             (WarehouseIn, "location"), (OrderIn, "customer"), (BackorderIn, "customer"),
             (TokenIn, "username"), (ApiKeyIn, "name")]


@pytest.mark.parametrize("model, field", FREE_TEXT)
@pytest.mark.parametrize("char", ["\x00", "\x01", "\x1b", "\x1f", "\x0b"])
def test_a_control_character_is_refused_naming_the_field(model, field, char):
    with pytest.raises(ValidationError) as raised:
        model(**{**VALID[model], field: f"a{char}b"})
    assert [e["loc"] for e in raised.value.errors()] == [(field,)]


@pytest.mark.parametrize("model, field", FREE_TEXT)
def test_tabs_newlines_and_any_other_character_are_kept(model, field):
    value = "a\tb\nc\r\nd é ü 漢字 ' OR '1'='1 \x7f"
    assert getattr(model(**{**VALID[model], field: value}), field) == value


@pytest.mark.parametrize("attributes, loc", [({"colour": "re\x00d"}, ("attributes", "colour")),
                                             ({"col\x00our": "red"}, ("attributes",))])
def test_variant_attributes_refuse_control_characters_in_names_and_values(attributes, loc):
    with pytest.raises(ValidationError) as raised:
        VariantIn(**{**VALID[VariantIn], "attributes": attributes})
    assert [e["loc"] for e in raised.value.errors()] == [loc]


def test_the_schema_documents_it():
    schema = VariantIn.model_json_schema()["properties"]
    assert schema["name"]["pattern"] == schema["attributes"]["additionalProperties"]["pattern"]
    assert schema["attributes"]["propertyNames"]["pattern"] == schema["name"]["pattern"]


def test_scrub_nul_replaces_it_everywhere_and_leaves_the_rest_alone():
    row = {"name": "a\x00b", "n": 3, "payload": {"k\x00": ["x\x00", 1, None]}, "ok": "plain"}
    assert scrub_nul(row) == {"name": f"a{NUL_REPLACEMENT}b", "n": 3,
                              "payload": {f"k{NUL_REPLACEMENT}": [f"x{NUL_REPLACEMENT}", 1, None]},
                              "ok": "plain"}
    assert scrub_nul(scrub_nul(row)) == scrub_nul(row)  # the same on a redelivery


@pytest.mark.parametrize("sqlstate, refused", [("22021", True), ("22P05", True), ("23505", False),
                                               (None, False)])
def test_refused_nul_knows_postgresql_errors_for_nul(sqlstate, refused):
    assert refused_nul(SimpleNamespace(orig=SimpleNamespace(sqlstate=sqlstate))) is refused
    assert not refused_nul(ValueError("no orig"))


class _Engine:
    """An engine whose transactions do nothing (the write function decides what happens)."""

    def begin(self):
        engine = self

        class _Tx:
            async def __aenter__(self):
                return engine

            async def __aexit__(self, *exc):
                return False
        return _Tx()


class _NulRefused(Exception):
    orig = SimpleNamespace(sqlstate="22021")


async def test_a_batch_refused_for_nul_is_written_again_scrubbed_not_retried_forever():
    from storage.sink import EventSink, _rows

    written = []

    async def write(conn, events):
        rows = _rows([{"name": "a\x00b"}])
        if "\x00" in rows[0]["name"]:
            raise _NulRefused("invalid byte sequence for encoding UTF8: 0x00")
        written.append(rows)

    await EventSink(_Engine(), retry_s=0)._persist(write, ["event"])
    assert written == [[{"name": f"a{NUL_REPLACEMENT}b"}]]
    assert _rows([{"name": "a\x00b"}]) == [{"name": "a\x00b"}]  # only that batch was scrubbed


async def test_any_other_refusal_still_raises():
    from storage.sink import EventSink

    async def write(conn, events):
        raise ValueError("not about NUL")

    with pytest.raises(ValueError):
        await EventSink(_Engine(), retry_s=0)._persist(write, ["event"])


# ------------------------------------------------------------------------------ times are ISO text
@pytest.mark.parametrize("value", [0.5, 5, "0.5", "12345", "tomorrow", True])
def test_a_time_is_iso_text_not_a_number_of_seconds(value):
    from api.models import IncomingIn, IsoDateTime
    from pydantic import TypeAdapter

    with pytest.raises(ValidationError) as raised:
        IncomingIn(quantity=1, expected_at=value)
    assert raised.value.errors()[0]["loc"][0] == "expected_at"
    with pytest.raises(ValidationError):
        TypeAdapter(IsoDateTime).validate_python(value)


@pytest.mark.parametrize("value", ["2030-03-01", "2030-03-01T09:00:00Z", "2030-03-01T09:00:00+02:00"])
def test_iso_times_are_read(value):
    from api.models import IncomingIn

    assert IncomingIn(quantity=1, expected_at=value).expected_at is not None


@pytest.mark.parametrize("change", [4112141545534064422052229436932096, 1_000_000_001, -1_000_000_001])
def test_a_stock_update_is_bounded_like_every_quantity(change):
    with pytest.raises(ValidationError) as raised:
        StockUpdateIn(quantity_change=change, reason="r")
    assert raised.value.errors()[0]["loc"] == ("quantity_change",)
