"""Column types and mixins every center's models share."""
from datetime import datetime, timezone
from decimal import Decimal

from sqlalchemy import Column, DateTime, ForeignKey, Integer, Numeric
from sqlalchemy.orm import declared_attr, relationship
from sqlalchemy.types import TypeDecorator

TWO_PLACES = Decimal("0.01")


def utcnow() -> datetime:
    """The current time in UTC; services use services.clock.now() so tests can set it."""
    from services.clock import now

    return now()


class Money(TypeDecorator):
    """An amount of CNY: NUMERIC(12,2) in the database, Decimal in Python, never float."""

    impl = Numeric(12, 2)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("money must be Decimal, not float")
        amount = Decimal(value)
        if amount != amount.quantize(TWO_PLACES):
            raise ValueError(f"money has at most two decimals, got {amount}")
        return amount.quantize(TWO_PLACES)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return Decimal(value).quantize(TWO_PLACES)


class UTCDateTime(TypeDecorator):
    """A timestamp stored in UTC and always returned timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise ValueError(f"not a time: {value!r}")
        if value.tzinfo is None:
            # a time typed by a person (a screen's date filter) is in the business zone
            from services.clock import business_zone

            value = value.replace(tzinfo=business_zone())
        return value.astimezone(timezone.utc)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class TimestampMixin:
    """created_at / updated_at in UTC."""

    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    updated_at = Column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)


class ShopOwnedMixin:
    """A row that belongs to one shop: merchants see and change only their own shop's rows.

    The isolation base classes in views/base.py recognise this mixin (through `shop_column`),
    so a model that uses it is scoped in every screen and API the day it is registered.
    """

    shop_column = "shop_id"

    @declared_attr
    def shop_id(cls):
        return Column(Integer, ForeignKey("shop.id"), nullable=False, index=True)

    @declared_attr
    def shop(cls):
        return relationship("Shop")


def shop_column_of(model) -> str | None:
    """The column naming the shop a row of `model` belongs to, or None for platform data."""
    return getattr(model, "shop_column", None)
