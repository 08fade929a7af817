"""WMS 仓库管理: inbound receipts, pick lists, stocktaking count sheets and transfers.

Stock itself lives in models/inventory.py and changes only through services/inventory.py; the
rows here are the warehouse's paperwork, each step of which moves stock through that service.

Rows of a platform warehouse's own work (pick lists, count sheets) carry the warehouse's shop:
empty for a platform warehouse (staff only), the merchant's shop for a merchant's warehouse.
Receipts and transfers move one shop's goods, so they carry the goods' shop.
"""
from sqlalchemy import (JSON, Boolean, CheckConstraint, Column, ForeignKey, Integer, String,
                        UniqueConstraint)
from sqlalchemy.orm import relationship

from app.extensions import db
from models.base import ShopOwnedMixin, UTCDateTime, utcnow

RECEIPT_SOURCES = ("purchase", "return", "transfer", "other")
RECEIPT_STATUSES = ("draft", "confirmed", "cancelled")
PICK_STATUSES = ("open", "picked", "cancelled")
COUNT_STATUSES = ("counting", "submitted", "approved", "rejected", "cancelled")
TRANSFER_STATUSES = ("draft", "in_transit", "received", "cancelled")


class Receipt(ShopOwnedMixin, db.Model):
    """入库单: goods expected at a warehouse (from a purchase order, a buyer's return, a
    transfer, or otherwise); stock and the ledger change only when it is confirmed."""

    __tablename__ = "receipt"

    id = Column(Integer, primary_key=True)
    receipt_no = Column(String(32), nullable=False, unique=True)
    warehouse_id = Column(Integer, ForeignKey("warehouse.id"), nullable=False, index=True)
    # purchase | return | transfer | other
    source = Column(String(16), nullable=False, default="purchase")
    purchase_order_id = Column(Integer, ForeignKey("purchase_order.id"), nullable=True,
                               index=True)
    after_sale_id = Column(Integer, ForeignKey("after_sale.id"), nullable=True, index=True)
    transfer_id = Column(Integer, ForeignKey("stock_transfer.id"), nullable=True, index=True)
    # draft | confirmed | cancelled
    status = Column(String(16), nullable=False, default="draft")
    note = Column(String(255), nullable=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    confirmed_at = Column(UTCDateTime, nullable=True)
    confirmed_by = Column(String(128), nullable=True)
    warehouse = relationship("Warehouse")
    purchase_order = relationship("PurchaseOrder")
    lines = relationship("ReceiptLine", back_populates="receipt", order_by="ReceiptLine.id",
                         cascade="all, delete-orphan")

    def __repr__(self) -> str:
        return self.receipt_no


class ReceiptLine(ShopOwnedMixin, db.Model):
    """One SKU of a receipt: expected, received (put away at `location`) and rejected."""

    __tablename__ = "receipt_line"
    __table_args__ = (
        CheckConstraint("expected >= 0 AND received >= 0 AND rejected >= 0",
                        name="ck_receipt_line_quantities"),
    )

    id = Column(Integer, primary_key=True)
    receipt_id = Column(Integer, ForeignKey("receipt.id"), nullable=False, index=True)
    sku_id = Column(Integer, ForeignKey("sku.id"), nullable=False, index=True)
    purchase_order_line_id = Column(Integer, ForeignKey("purchase_order_line.id"),
                                    nullable=True, index=True)
    expected = Column(Integer, nullable=False, default=0)
    received = Column(Integer, nullable=False, default=0)
    rejected = Column(Integer, nullable=False, default=0)
    reject_reason = Column(String(255), nullable=True)
    # put-away: the bin the received goods went to (e.g. A-01-02; the zone is before the "-")
    location = Column(String(32), nullable=True)
    receipt = relationship("Receipt", back_populates="lines")
    sku = relationship("Sku")

    def __repr__(self) -> str:
        return f"{self.sku_id} ×{self.expected}"


class PickList(db.Model):
    """拣货单: the shipping notices of one warehouse picked in one walk (several orders)."""

    __tablename__ = "pick_list"
    shop_column = "shop_id"

    id = Column(Integer, primary_key=True)
    pick_no = Column(String(32), nullable=False, unique=True)
    warehouse_id = Column(Integer, ForeignKey("warehouse.id"), nullable=False, index=True)
    # the warehouse's shop (empty: a platform warehouse)
    shop_id = Column(Integer, ForeignKey("shop.id"), nullable=True, index=True)
    # open | picked | cancelled
    status = Column(String(16), nullable=False, default="open")
    # [{"sku_id", "sku_code", "location", "quantity"}]: what to take, in walking order
    lines = Column(JSON, nullable=False, default=list)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    picked_at = Column(UTCDateTime, nullable=True)
    warehouse = relationship("Warehouse")
    shop = relationship("Shop")
    notices = relationship("ShippingNotice", order_by="ShippingNotice.id", viewonly=True)

    def __repr__(self) -> str:
        return self.pick_no


class StockCount(db.Model):
    """盘点单: a count sheet of a warehouse (or one zone of it); blind counts hide what the
    books say until the count is submitted; approval posts the variances to the ledger."""

    __tablename__ = "stock_count"
    shop_column = "shop_id"

    id = Column(Integer, primary_key=True)
    count_no = Column(String(32), nullable=False, unique=True)
    warehouse_id = Column(Integer, ForeignKey("warehouse.id"), nullable=False, index=True)
    # the warehouse's shop (empty: a platform warehouse)
    shop_id = Column(Integer, ForeignKey("shop.id"), nullable=True, index=True)
    # a zone: the bins whose location starts with it (empty: the whole warehouse)
    zone = Column(String(32), nullable=True)
    blind = Column(Boolean, nullable=False, default=True)
    # counting | submitted | approved | rejected | cancelled
    status = Column(String(16), nullable=False, default="counting")
    note = Column(String(255), nullable=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    submitted_at = Column(UTCDateTime, nullable=True)
    decided_at = Column(UTCDateTime, nullable=True)
    decided_by = Column(String(128), nullable=True)
    warehouse = relationship("Warehouse")
    shop = relationship("Shop")
    lines = relationship("StockCountLine", back_populates="count",
                         order_by="StockCountLine.id", cascade="all, delete-orphan")

    def __repr__(self) -> str:
        return self.count_no


class StockCountLine(db.Model):
    """One stock row on a count sheet: what the books said when the line was counted (when
    the sheet was made, until then), what was counted, and the adjustment approval posted
    (counted − expected)."""

    __tablename__ = "stock_count_line"
    shop_column = "shop_id"
    __table_args__ = (UniqueConstraint("count_id", "stock_id", name="uq_stock_count_line_stock"),)

    id = Column(Integer, primary_key=True)
    count_id = Column(Integer, ForeignKey("stock_count.id"), nullable=False, index=True)
    # the count sheet's shop (empty: a platform warehouse)
    shop_id = Column(Integer, ForeignKey("shop.id"), nullable=True, index=True)
    stock_id = Column(Integer, ForeignKey("stock.id"), nullable=False, index=True)
    sku_id = Column(Integer, ForeignKey("sku.id"), nullable=False, index=True)
    location = Column(String(32), nullable=True)
    expected = Column(Integer, nullable=False)
    counted = Column(Integer, nullable=True)
    adjusted = Column(Integer, nullable=True)
    count = relationship("StockCount", back_populates="lines")
    sku = relationship("Sku")

    @property
    def variance(self) -> int | None:
        return None if self.counted is None else self.counted - self.expected

    def __repr__(self) -> str:
        return f"{self.sku_id}: {self.counted}"


class StockTransfer(ShopOwnedMixin, db.Model):
    """调拨单: one shop's goods moving between warehouses; shipped (stock leaves the source,
    in transit) then received (stock arrives at the destination)."""

    __tablename__ = "stock_transfer"
    __table_args__ = (CheckConstraint("from_warehouse_id <> to_warehouse_id",
                                      name="ck_stock_transfer_two_warehouses"),)

    id = Column(Integer, primary_key=True)
    transfer_no = Column(String(32), nullable=False, unique=True)
    from_warehouse_id = Column(Integer, ForeignKey("warehouse.id"), nullable=False, index=True)
    to_warehouse_id = Column(Integer, ForeignKey("warehouse.id"), nullable=False, index=True)
    # draft | in_transit | received | cancelled
    status = Column(String(16), nullable=False, default="draft")
    carrier = Column(String(64), nullable=True)
    tracking_no = Column(String(64), nullable=True)
    note = Column(String(255), nullable=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    shipped_at = Column(UTCDateTime, nullable=True)
    received_at = Column(UTCDateTime, nullable=True)
    from_warehouse = relationship("Warehouse", foreign_keys=[from_warehouse_id])
    to_warehouse = relationship("Warehouse", foreign_keys=[to_warehouse_id])
    lines = relationship("StockTransferLine", back_populates="transfer",
                         order_by="StockTransferLine.id", cascade="all, delete-orphan")

    def __repr__(self) -> str:
        return self.transfer_no


class StockTransferLine(ShopOwnedMixin, db.Model):
    __tablename__ = "stock_transfer_line"
    __table_args__ = (CheckConstraint("quantity > 0", name="ck_stock_transfer_line_quantity"),)

    id = Column(Integer, primary_key=True)
    transfer_id = Column(Integer, ForeignKey("stock_transfer.id"), nullable=False, index=True)
    sku_id = Column(Integer, ForeignKey("sku.id"), nullable=False, index=True)
    quantity = Column(Integer, nullable=False)
    received = Column(Integer, nullable=True)
    transfer = relationship("StockTransfer", back_populates="lines")
    sku = relationship("Sku")

    def __repr__(self) -> str:
        return f"{self.sku_id} ×{self.quantity}"
