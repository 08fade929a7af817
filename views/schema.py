"""Marshmallow pieces shared by every REST resource: money, typed foreign keys, strict JSON."""
import json
from decimal import Decimal, InvalidOperation

from flask import request
from flask_appbuilder.api.convert import Model2SchemaConverter
from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import Column, Integer, Numeric

from models.base import Money
from services.errors import BadRequestError

MAX_MONEY = Decimal("9999999999.99")


class ScaledDecimal(fields.Field):
    """A decimal with at most `places` decimals (never rounded silently), a string out."""

    default_error_messages = {"invalid": "Not a valid number.",
                              "places": "At most {places} decimal places."}

    def __init__(self, places: int, **kwargs):
        super().__init__(**kwargs)
        self.places = places

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else f"{Decimal(value):.{self.places}f}"

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
            raise self.make_error("invalid")
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation as exc:
            raise self.make_error("invalid") from exc
        if not number.is_finite():
            raise self.make_error("invalid")
        self._check_range(number)
        try:
            rounded = number.quantize(Decimal(1).scaleb(-self.places))
        except InvalidOperation as exc:  # more digits than a decimal context holds
            raise self.make_error("invalid") from exc
        if number != rounded:
            raise self.make_error("places", places=self.places)
        return rounded

    def _check_range(self, number: Decimal) -> None:
        """Subclasses refuse numbers outside their range."""


class MoneyField(ScaledDecimal):
    """CNY as a string with exactly two decimals ("12.30"); input: string or number,
    at most two decimals, not negative."""

    default_error_messages = {
        "invalid": "Not a valid amount.",
        "places": "At most two decimal places.",
        "negative": "Must not be negative.",
        "too_large": "Too large.",
    }

    def __init__(self, **kwargs):
        super().__init__(2, **kwargs)

    def _check_range(self, number: Decimal) -> None:
        if number > MAX_MONEY:
            raise self.make_error("too_large")
        if number < 0:
            raise self.make_error("negative")


INT32 = 2**31 - 1


class StrictInteger(fields.Integer):
    """A whole number as a JSON number (no strings, booleans or floats) that fits an INTEGER
    column."""

    default_error_messages = {"range": "Out of range."}

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _validated(self, value):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        number = super()._validated(value)
        if number is not None and not -INT32 - 1 <= number <= INT32:
            raise self.make_error("range")
        return number


class HoutaiSchemaConverter(Model2SchemaConverter):
    """FAB's converter, with our types where they matter: money as MoneyField, foreign keys
    as strict integers, other decimals refusing extra places, and `required` only for
    columns without a default. (marshmallow-sqlalchemy's automatic fields win over the ones
    FAB declares, and it leaves foreign keys `Inferred`, so `{"shop_id": "x"}` would pass:
    the fields are therefore replaced on the built schema.)"""

    def convert(self, columns, model=None, nested=True, parent_schema_name=None):
        schema = super().convert(columns, model=model, nested=nested,
                                 parent_schema_name=parent_schema_name)
        datamodel = self.datamodel.__class__(model or self.datamodel.obj)
        for name in columns:
            sqla_column = datamodel.list_columns.get(name)
            if not isinstance(sqla_column, Column) or datamodel.is_relation(name):
                continue
            field = _typed_field(sqla_column, schema.fields.get(name))
            if field is not None:
                if name in self.validators_columns:
                    field.validators.append(self.validators_columns[name])
                _replace_field(schema, name, field)
            elif name in schema.fields:
                schema.fields[name].required = _is_required(sqla_column)
        return schema


def _typed_field(sqla_column, current):
    required, allow_none = _is_required(sqla_column), sqla_column.nullable
    if current is not None and current.dump_only:
        return None
    if isinstance(sqla_column.type, Money):
        return MoneyField(required=required, allow_none=allow_none)
    if sqla_column.foreign_keys or isinstance(sqla_column.type, Integer):
        return StrictInteger(required=required, allow_none=allow_none)
    if isinstance(sqla_column.type, Numeric) and sqla_column.type.scale is not None:
        return ScaledDecimal(sqla_column.type.scale, required=required, allow_none=allow_none)
    return None


def _replace_field(schema, name, field) -> None:
    """Swap one field of a built schema (marshmallow-sqlalchemy drops foreign keys that
    FAB's converter declared, leaving them `Inferred`)."""
    field._bind_to_schema(name, schema)  # noqa: SLF001 - the schema is already built
    schema.fields[name] = field
    schema.declared_fields[name] = field
    if not field.dump_only:
        schema.load_fields[name] = field
    if not field.load_only:
        schema.dump_fields[name] = field


def _is_required(sqla_column) -> bool:
    return not sqla_column.nullable and sqla_column.default is None \
        and sqla_column.server_default is None and not sqla_column.primary_key


def optional_body() -> dict:
    """The JSON body of a step whose body may be left out (no body at all reads as {})."""
    return json_body() if request.get_data(cache=True) else {}


def json_body() -> dict:
    """The request's JSON object, with decimals kept exact; 400 on anything else."""
    if not request.is_json:
        raise BadRequestError("Request body must be JSON (Content-Type: application/json)")
    raw = request.get_data(cache=True)
    try:
        body = json.loads(raw or b"null", parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"Malformed JSON: {exc}") from exc
    except RecursionError as exc:
        raise BadRequestError("Malformed JSON: nested too deeply") from exc
    if not isinstance(body, dict):
        raise BadRequestError("Request body must be a JSON object")
    if "\x00" in raw.decode("utf-8", "replace") or b"\\u0000" in raw:
        raise BadRequestError("NUL characters are not accepted")
    return body


def load_or_422(schema, data, **kwargs):
    """schema.load, with marshmallow's errors turned into our 422."""
    from services.errors import ValidationFailed

    try:
        return schema.load(data, **kwargs)
    except ValidationError as err:
        messages = err.messages if isinstance(err.messages, dict) else {"_schema": err.messages}
        raise ValidationFailed("Validation failed", messages) from err


class ReasonSchema(Schema):
    """A body that names why a person takes a business action."""

    reason = fields.String(required=True, validate=validate.Length(min=1, max=255))
