"""Marshmallow pieces shared by every REST resource: money, typed foreign keys, strict JSON."""
import json
from decimal import Decimal, InvalidOperation

from flask import request
from flask_appbuilder.api.convert import Model2SchemaConverter
from marshmallow import ValidationError, fields

from models.base import Money
from services.errors import BadRequestError

MAX_MONEY = Decimal("9999999999.99")


class MoneyField(fields.Field):
    """CNY as a string with exactly two decimals ("12.30"); input: string or number,
    at most two decimals, not negative."""

    default_error_messages = {
        "invalid": "Not a valid amount.",
        "places": "At most two decimal places.",
        "negative": "Must not be negative.",
        "too_large": "Too large.",
    }

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return f"{Decimal(value):.2f}"

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
            raise self.make_error("invalid")
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation as exc:
            raise self.make_error("invalid") from exc
        if not amount.is_finite():
            raise self.make_error("invalid")
        if amount.as_tuple().exponent < -2 and amount != amount.quantize(Decimal("0.01")):
            raise self.make_error("places")
        if amount < 0:
            raise self.make_error("negative")
        if amount > MAX_MONEY:
            raise self.make_error("too_large")
        return amount.quantize(Decimal("0.01"))


class StrictInteger(fields.Integer):
    """An integer id: no strings, no booleans, no floats."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _validated(self, value):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._validated(value)


class HoutaiSchemaConverter(Model2SchemaConverter):
    """FAB's converter, with money as MoneyField and foreign keys as strict integers
    (stock FAB leaves foreign keys untyped, so `{"shop_id": "x"}` would pass)."""

    def _column2field(self, datamodel, column, nested=True, parent_schema_name=None):
        name = column.name
        sqla_column = datamodel.list_columns.get(name)
        if sqla_column is not None and not datamodel.is_relation(name):
            required = _is_required(sqla_column)
            if isinstance(sqla_column.type, Money):
                return MoneyField(required=required, allow_none=sqla_column.nullable)
            if sqla_column.foreign_keys:
                return StrictInteger(required=required, allow_none=sqla_column.nullable)
        field = super()._column2field(datamodel, column, nested, parent_schema_name)
        if sqla_column is not None and not datamodel.is_relation(name) and field is not None:
            field.required = _is_required(sqla_column)
        return field


def _is_required(sqla_column) -> bool:
    return not sqla_column.nullable and sqla_column.default is None \
        and sqla_column.server_default is None and not sqla_column.primary_key


def json_body() -> dict:
    """The request's JSON object, with decimals kept exact; 400 on anything else."""
    if not request.is_json:
        raise BadRequestError("Request body must be JSON (Content-Type: application/json)")
    raw = request.get_data(cache=True)
    try:
        body = json.loads(raw or b"null", parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"Malformed JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequestError("Request body must be a JSON object")
    return body


def load_or_422(schema, data, **kwargs):
    """schema.load, with marshmallow's errors turned into our 422."""
    from services.errors import ValidationFailed

    try:
        return schema.load(data, **kwargs)
    except ValidationError as err:
        messages = err.messages if isinstance(err.messages, dict) else {"_schema": err.messages}
        raise ValidationFailed("Validation failed", messages) from err
