"""店铺管理: shops of the platform and their merchants."""
import enum

from flask_babel import lazy_gettext as _l
from sqlalchemy import Column, Enum, Integer, Numeric, String

from app.extensions import db
from models.base import TimestampMixin


class ShopStatus(str, enum.Enum):
    """Member names equal their values: FAB's screens use names, the API uses values."""

    applying = "applying"
    open = "open"
    suspended = "suspended"
    closed = "closed"


STATUS_LABELS = {
    ShopStatus.applying: _l("Applying"),
    ShopStatus.open: _l("Open"),
    ShopStatus.suspended: _l("Suspended"),
    ShopStatus.closed: _l("Closed"),
}


class Shop(TimestampMixin, db.Model):
    """A merchant's shop; the unit of merchant isolation (a shop's own id is its shop column)."""

    __tablename__ = "shop"
    shop_column = "id"

    id = Column(Integer, primary_key=True)
    code = Column(String(32), nullable=False, unique=True)
    name = Column(String(128), nullable=False)
    status = Column(
        Enum(ShopStatus, native_enum=False, length=16, validate_strings=True),
        nullable=False,
        default=ShopStatus.applying,
    )
    # Share of each sale kept by the platform, e.g. 0.0500 for 5 %.
    commission_rate = Column(Numeric(5, 4), nullable=False, default=0)
    settlement_account = Column(String(64), nullable=True)
    contact_phone = Column(String(32), nullable=True)

    def __repr__(self) -> str:
        return f"{self.code} {self.name}"
