"""库存: warehouses, stock per SKU per warehouse, and the stock ledger."""
from sqlalchemy import (JSON, Boolean, CheckConstraint, Column, ForeignKey, Index, Integer, String,
                        UniqueConstraint)
from sqlalchemy.orm import relationship

from app.extensions import db
from models.base import TimestampMixin, UTCDateTime, utcnow


class Warehouse(TimestampMixin, db.Model):
    """A warehouse of a shop (merchant-run) or of the platform (shop_id empty)."""

    __tablename__ = "warehouse"
    shop_column = "shop_id"
    __table_args__ = (
        UniqueConstraint("shop_id", "code", name="uq_warehouse_shop_code"),
        UniqueConstraint("shop_id", "outer_id", name="uq_warehouse_shop_outer_id"),
    )

    id = Column(Integer, primary_key=True)
    code = Column(String(32), nullable=False)
    name = Column(String(64), nullable=False)
    # region code of the province (GB/T 2260, e.g. "310000" for Shanghai)
    region = Column(String(16), nullable=True)
    outer_id = Column(String(64), nullable=True)
    enabled = Column(Boolean, nullable=False, default=True)
    # dispatch rules: the provinces this warehouse serves first (besides its own region), and
    # its rank among warehouses that serve a buyer equally well (lower first)
    service_regions = Column(JSON, nullable=False, default=list)
    priority = Column(Integer, nullable=False, default=100)
    # a bonded (cross-border) warehouse: its shipments need a customs declaration cleared
    cross_border = Column(Boolean, nullable=False, default=False)
    shop_id = Column(Integer, ForeignKey("shop.id"), nullable=True, index=True)
    shop = relationship("Shop")

    def __repr__(self) -> str:
        return f"{self.code} {self.name}"

    def serves(self, province_code: str | None) -> bool:
        """True when the buyer's province is this warehouse's region or one it serves."""
        return serves(self.region, self.service_regions, province_code)


def serves(region: str | None, service_regions, province_code: str | None) -> bool:
    """A warehouse in `region` serving `service_regions` serves the buyer's province."""
    return bool(province_code) and (province_code == region or
                                    province_code in (service_regions or []))


class Stock(db.Model):
    """One SKU in one warehouse. available = on_hand − reserved; never negative, never more
    reserved than on hand (checked by the database too)."""

    __tablename__ = "stock"
    shop_column = "shop_id"
    __table_args__ = (
        UniqueConstraint("sku_id", "warehouse_id", name="uq_stock_sku_warehouse"),
        CheckConstraint("on_hand >= 0", name="ck_stock_on_hand"),
        CheckConstraint("reserved >= 0", name="ck_stock_reserved"),
        CheckConstraint("reserved <= on_hand", name="ck_stock_reserved_on_hand"),
    )

    id = Column(Integer, primary_key=True)
    sku_id = Column(Integer, ForeignKey("sku.id"), nullable=False, index=True)
    warehouse_id = Column(Integer, ForeignKey("warehouse.id"), nullable=False, index=True)
    # the SKU's shop: whose stock this is
    shop_id = Column(Integer, ForeignKey("shop.id"), nullable=False, index=True)
    on_hand = Column(Integer, nullable=False, default=0)
    reserved = Column(Integer, nullable=False, default=0)
    # the bin it is put away in (e.g. A-01-02; the zone is what comes before the first "-")
    location = Column(String(32), nullable=True)
    updated_at = Column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)
    sku = relationship("Sku")
    warehouse = relationship("Warehouse")

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    def __repr__(self) -> str:
        return f"{self.sku_id}@{self.warehouse_id}"


class StockLedger(db.Model):
    """Every stock change: why, for what, before and after, by whom. Written only by
    services/inventory.py; never edited."""

    __tablename__ = "stock_ledger"
    shop_column = "shop_id"
    __table_args__ = (Index("ix_stock_ledger_stock_id_id", "stock_id", "id"),)

    id = Column(Integer, primary_key=True)
    stock_id = Column(Integer, ForeignKey("stock.id"), nullable=False)
    sku_id = Column(Integer, nullable=False, index=True)
    warehouse_id = Column(Integer, nullable=False)
    shop_id = Column(Integer, nullable=False, index=True)
    # adjust | reserve | release | deduct | return | receipt | stocktake | transfer_out |
    # transfer_in
    reason = Column(String(16), nullable=False)
    reference = Column(String(128), nullable=True)
    note = Column(String(255), nullable=True)
    on_hand_before = Column(Integer, nullable=False)
    on_hand_after = Column(Integer, nullable=False)
    reserved_before = Column(Integer, nullable=False)
    reserved_after = Column(Integer, nullable=False)
    actor = Column(String(128), nullable=False)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)

    def __repr__(self) -> str:
        return f"{self.reason} {self.sku_id}@{self.warehouse_id}"
