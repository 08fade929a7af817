"""Money in JSON: a string with exactly two decimals; at most two decimals and not negative in."""
from decimal import Decimal

import pytest
from marshmallow import Schema, ValidationError

from models.base import Money
from views.schema import MoneyField


class PriceSchema(Schema):
    price = MoneyField(required=True)


@pytest.mark.parametrize("given, stored", [
    ("12.3", Decimal("12.30")), ("0", Decimal("0.00")), (7, Decimal("7.00")),
    (Decimal("12.34"), Decimal("12.34")), ("12.300", Decimal("12.30")),
])
def test_valid_amounts(given, stored):
    assert PriceSchema().load({"price": given})["price"] == stored


@pytest.mark.parametrize("given, reason", [
    ("12.345", "At most two decimal places."), ("-0.01", "Must not be negative."),
    ("abc", "Not a valid amount."), (True, "Not a valid amount."), (1.5, "Not a valid amount."),
    ("NaN", "Not a valid amount."), ("Infinity", "Not a valid amount."),
    ("1e400", "Too large."), ("10000000000", "Too large."),
])
def test_invalid_amounts_name_the_reason(given, reason):
    with pytest.raises(ValidationError) as caught:
        PriceSchema().load({"price": given})
    assert caught.value.messages == {"price": [reason]}


def test_amounts_are_dumped_with_two_decimals():
    assert PriceSchema().dump({"price": Decimal("12.3")}) == {"price": "12.30"}
    assert PriceSchema().dump({"price": Decimal("0")}) == {"price": "0.00"}


def test_money_column_refuses_floats_and_never_rounds_silently():
    with pytest.raises(TypeError):
        Money().process_bind_param(1.1, None)
    with pytest.raises(ValueError):
        Money().process_bind_param(Decimal("1.005"), None)
    assert Money().process_bind_param(Decimal("1.5"), None) == Decimal("1.50")
