"""运营中心, price management: bulk or scheduled price changes (调价单) with their approval.

A price itself changes only through the product center's price service
(services/product.change_prices); a batch is the paperwork around it: which SKUs, how much,
when, and who approved a large cut. The history of every change is models.product.PriceChange.
"""
from sqlalchemy import (JSON, Boolean, Column, ForeignKey, Integer, Numeric, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import relationship

from app.extensions import db
from models.base import Money, UTCDateTime, utcnow

PRICE_BATCH_MODES = ("percent", "amount", "set")
PRICE_BATCH_STATUSES = ("pending_approval", "scheduled", "applied", "rejected", "cancelled")
PRICE_LINE_STATUSES = ("pending", "applied", "skipped")


class PriceBatch(db.Model):
    """调价单: a bulk or scheduled price change. Its lines are worked out when it is submitted
    (the preview made binding); a cut deeper than PRICE_CUT_APPROVAL_PERCENT waits for approval;
    it is applied at `effective_at` (empty: at once) by the price service, line by line."""

    __tablename__ = "price_batch"
    # a merchant's batch carries its shop; a staff batch over several shops carries none
    shop_column = "shop_id"

    id = Column(Integer, primary_key=True)
    batch_no = Column(String(32), nullable=False, unique=True)
    shop_id = Column(Integer, ForeignKey("shop.id"), nullable=True, index=True)
    # {"shop_id", "category_id", "brand_id", "spu_ids", "sku_ids"}: which SKUs
    filters = Column(JSON, nullable=False, default=dict)
    mode = Column(String(16), nullable=False)
    # percent: +/- percent of the current price; amount: +/- CNY; set: the new price
    value = Column(Numeric(12, 2), nullable=False)
    reason = Column(String(255), nullable=False)
    effective_at = Column(UTCDateTime, nullable=True, index=True)
    status = Column(String(20), nullable=False, default="scheduled", index=True)
    # the deepest cut among the lines, in percent of the old price (0 when nothing is cut)
    max_cut_percent = Column(Numeric(7, 2), nullable=False, default=0)
    requires_approval = Column(Boolean, nullable=False, default=False)
    created_by = Column(String(128), nullable=False)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    decided_by = Column(String(128), nullable=True)
    decided_at = Column(UTCDateTime, nullable=True)
    decision_reason = Column(String(255), nullable=True)
    applied_at = Column(UTCDateTime, nullable=True)
    shop = relationship("Shop")
    lines = relationship("PriceBatchLine", back_populates="batch", order_by="PriceBatchLine.id",
                         cascade="all, delete-orphan")

    @property
    def line_items(self) -> list[dict]:
        """The lines as the API and the batch screen show them."""
        return [{"id": line.id, "sku_id": line.sku_id,
                 "sku_code": line.sku.code if line.sku else None, "shop_id": line.shop_id,
                 "old_price": f"{line.old_price:.2f}", "new_price": f"{line.new_price:.2f}",
                 "status": line.status, "note": line.note} for line in self.lines]

    def __repr__(self) -> str:
        return self.batch_no


class PriceBatchLine(db.Model):
    """One SKU of a price batch: its price when the batch was drafted and the price it gets."""

    __tablename__ = "price_batch_line"
    __table_args__ = (UniqueConstraint("batch_id", "sku_id", name="uq_price_batch_line_sku"),)
    shop_column = "shop_id"

    id = Column(Integer, primary_key=True)
    batch_id = Column(Integer, ForeignKey("price_batch.id"), nullable=False, index=True)
    sku_id = Column(Integer, ForeignKey("sku.id"), nullable=False, index=True)
    shop_id = Column(Integer, ForeignKey("shop.id"), nullable=False, index=True)
    old_price = Column(Money, nullable=False)
    new_price = Column(Money, nullable=False)
    status = Column(String(16), nullable=False, default="pending")
    # why a line was skipped (its price changed since the batch was drafted, ...)
    note = Column(Text, nullable=True)
    batch = relationship("PriceBatch", back_populates="lines")
    sku = relationship("Sku")

    def __repr__(self) -> str:
        return f"{self.sku_id}: {self.old_price} → {self.new_price}"
