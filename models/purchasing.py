"""采购中心: suppliers (lifecycle, qualification documents, price lists, scorecard),
replenishment rules, purchase orders, and supplier statements (purchases, consignment sales)."""
from sqlalchemy import (JSON, Boolean, CheckConstraint, Column, Date, ForeignKey, Integer,
                        Numeric, String, UniqueConstraint)
from sqlalchemy.orm import relationship

from app.extensions import db
from models.base import Money, ShopOwnedMixin, TimestampMixin, UTCDateTime, utcnow

SUPPLIER_STATUSES = ("prospect", "qualified", "active", "suspended")
DOCUMENT_KINDS = ("business_licence", "tax_registration", "quality_certificate",
                  "production_licence", "bank_account", "other")
PO_STATUSES = ("draft", "approved", "sent", "partially_received", "received", "closed",
               "cancelled")
STATEMENT_STATUSES = ("draft", "confirmed", "paid", "cancelled")


class Supplier(ShopOwnedMixin, TimestampMixin, db.Model):
    """A shop's supplier: prospect → qualified (documents verified) → active → suspended."""

    __tablename__ = "supplier"
    __table_args__ = (UniqueConstraint("shop_id", "code", name="uq_supplier_shop_code"),)

    id = Column(Integer, primary_key=True)
    code = Column(String(32), nullable=False)
    name = Column(String(128), nullable=False)
    contact_name = Column(String(64), nullable=True)
    phone = Column(String(32), nullable=True)
    email = Column(String(128), nullable=True)
    address = Column(String(255), nullable=True)
    # prospect | qualified | active | suspended
    status = Column(String(16), nullable=False, default="prospect")
    status_reason = Column(String(255), nullable=True)
    payment_terms_days = Column(Integer, nullable=False, default=30)
    lead_time_days = Column(Integer, nullable=False, default=7)
    # drop-shipping (代发): where shipping notices for its goods are sent; a hash of the key
    # the supplier signs its shipment reports with (the key itself is shown once)
    notify_url = Column(String(255), nullable=True)
    api_key_hash = Column(String(128), nullable=True)
    # the scorecard: 0–100 and what it is made of (see services/purchasing.py)
    rating = Column(Numeric(5, 2), nullable=True)
    rating_factors = Column(JSON, nullable=True)
    rated_at = Column(UTCDateTime, nullable=True)
    documents = relationship("SupplierDocument", back_populates="supplier",
                             order_by="SupplierDocument.id")
    transitions = relationship("SupplierTransition", order_by="SupplierTransition.id")

    def __repr__(self) -> str:
        return f"{self.code} {self.name}"


class SupplierTransition(ShopOwnedMixin, db.Model):
    """One step of a supplier's lifecycle: who, when, from, to, why."""

    __tablename__ = "supplier_transition"

    id = Column(Integer, primary_key=True)
    supplier_id = Column(Integer, ForeignKey("supplier.id"), nullable=False, index=True)
    from_status = Column(String(16), nullable=True)
    to_status = Column(String(16), nullable=False)
    actor = Column(String(128), nullable=False)
    reason = Column(String(255), nullable=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)

    def __repr__(self) -> str:
        return f"{self.from_status or '-'} → {self.to_status}"


class SupplierDocument(ShopOwnedMixin, db.Model):
    """A qualification document (资质): licence, certificate…, its file, validity, who
    verified it."""

    __tablename__ = "supplier_document"

    id = Column(Integer, primary_key=True)
    supplier_id = Column(Integer, ForeignKey("supplier.id"), nullable=False, index=True)
    kind = Column(String(32), nullable=False)
    number = Column(String(64), nullable=True)
    file_id = Column(Integer, ForeignKey("uploaded_file.id"), nullable=True)
    valid_until = Column(Date, nullable=True)
    verified = Column(Boolean, nullable=False, default=False)
    verified_by = Column(String(128), nullable=True)
    verified_at = Column(UTCDateTime, nullable=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    supplier = relationship("Supplier", back_populates="documents")

    def __repr__(self) -> str:
        return f"{self.kind} {self.number or ''}".strip()


class SupplierPrice(ShopOwnedMixin, db.Model):
    """A supplier's price for a SKU from a quantity, within a validity window."""

    __tablename__ = "supplier_price"
    __table_args__ = (
        UniqueConstraint("supplier_id", "sku_id", "min_quantity", "valid_from",
                         name="uq_supplier_price_tier"),
        CheckConstraint("price >= 0 AND min_quantity > 0", name="ck_supplier_price_values"),
    )

    id = Column(Integer, primary_key=True)
    supplier_id = Column(Integer, ForeignKey("supplier.id"), nullable=False, index=True)
    sku_id = Column(Integer, ForeignKey("sku.id"), nullable=False, index=True)
    price = Column(Money, nullable=False)
    min_quantity = Column(Integer, nullable=False, default=1)
    valid_from = Column(Date, nullable=False)
    valid_until = Column(Date, nullable=True)
    supplier = relationship("Supplier")
    sku = relationship("Sku")

    def __repr__(self) -> str:
        return f"{self.sku_id} @ {self.price}"


class ReplenishmentRule(ShopOwnedMixin, TimestampMixin, db.Model):
    """补货规则 of a SKU in a warehouse: below the reorder point (available plus what is on
    order), draft `reorder_quantity` (or up to safety stock + reorder quantity) from the
    preferred supplier."""

    __tablename__ = "replenishment_rule"
    __table_args__ = (
        UniqueConstraint("sku_id", "warehouse_id", name="uq_replenishment_rule_sku_warehouse"),
        CheckConstraint("safety_stock >= 0 AND reorder_point >= 0 AND reorder_quantity > 0",
                        name="ck_replenishment_rule_values"),
    )

    id = Column(Integer, primary_key=True)
    sku_id = Column(Integer, ForeignKey("sku.id"), nullable=False, index=True)
    warehouse_id = Column(Integer, ForeignKey("warehouse.id"), nullable=False, index=True)
    safety_stock = Column(Integer, nullable=False, default=0)
    reorder_point = Column(Integer, nullable=False, default=0)
    reorder_quantity = Column(Integer, nullable=False, default=1)
    supplier_id = Column(Integer, ForeignKey("supplier.id"), nullable=True, index=True)
    enabled = Column(Boolean, nullable=False, default=True)
    # the open purchase order this rule drafted (claimed by a conditional UPDATE, so two runs
    # of the job draft once); cleared when that order is received, closed or cancelled
    open_po_id = Column(Integer, ForeignKey("purchase_order.id"), nullable=True)
    last_alert_at = Column(UTCDateTime, nullable=True)
    sku = relationship("Sku")
    warehouse = relationship("Warehouse")
    supplier = relationship("Supplier")

    def __repr__(self) -> str:
        return f"{self.sku_id}@{self.warehouse_id}"


class PurchaseOrder(ShopOwnedMixin, db.Model):
    """采购单: draft → approved → sent → partially received / received (WMS inbound) →
    closed; cancelled before anything arrived."""

    __tablename__ = "purchase_order"

    id = Column(Integer, primary_key=True)
    po_no = Column(String(32), nullable=False, unique=True)
    supplier_id = Column(Integer, ForeignKey("supplier.id"), nullable=False, index=True)
    warehouse_id = Column(Integer, ForeignKey("warehouse.id"), nullable=False, index=True)
    status = Column(String(20), nullable=False, default="draft")
    # manual | replenishment
    source = Column(String(16), nullable=False, default="manual")
    total = Column(Money, nullable=False, default=0)
    expected_on = Column(Date, nullable=True)
    note = Column(String(255), nullable=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    approved_by = Column(String(128), nullable=True)
    approved_at = Column(UTCDateTime, nullable=True)
    sent_at = Column(UTCDateTime, nullable=True)
    received_at = Column(UTCDateTime, nullable=True)
    closed_at = Column(UTCDateTime, nullable=True)
    supplier = relationship("Supplier")
    warehouse = relationship("Warehouse")
    lines = relationship("PurchaseOrderLine", back_populates="purchase_order",
                         order_by="PurchaseOrderLine.id", cascade="all, delete-orphan")

    def __repr__(self) -> str:
        return self.po_no


class PurchaseOrderLine(ShopOwnedMixin, db.Model):
    __tablename__ = "purchase_order_line"
    __table_args__ = (
        CheckConstraint("quantity > 0 AND received >= 0 AND rejected >= 0",
                        name="ck_purchase_order_line_quantities"),
    )

    id = Column(Integer, primary_key=True)
    purchase_order_id = Column(Integer, ForeignKey("purchase_order.id"), nullable=False,
                               index=True)
    sku_id = Column(Integer, ForeignKey("sku.id"), nullable=False, index=True)
    quantity = Column(Integer, nullable=False)
    unit_price = Column(Money, nullable=False)
    amount = Column(Money, nullable=False)
    received = Column(Integer, nullable=False, default=0)
    rejected = Column(Integer, nullable=False, default=0)
    rule_id = Column(Integer, ForeignKey("replenishment_rule.id"), nullable=True)
    purchase_order = relationship("PurchaseOrder", back_populates="lines")
    sku = relationship("Sku")

    def __repr__(self) -> str:
        return f"{self.sku_id} ×{self.quantity}"


class SupplierStatement(ShopOwnedMixin, db.Model):
    """对账单 of a supplier for a period: goods received (purchases) and consigned goods sold
    (代销); confirmed, then paid (posted to the journal)."""

    __tablename__ = "supplier_statement"

    id = Column(Integer, primary_key=True)
    statement_no = Column(String(32), nullable=False, unique=True)
    supplier_id = Column(Integer, ForeignKey("supplier.id"), nullable=False, index=True)
    period_start = Column(Date, nullable=False)
    period_end = Column(Date, nullable=False)
    amount = Column(Money, nullable=False, default=0)
    status = Column(String(16), nullable=False, default="draft")
    reference = Column(String(64), nullable=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    confirmed_at = Column(UTCDateTime, nullable=True)
    paid_at = Column(UTCDateTime, nullable=True)
    supplier = relationship("Supplier")
    items = relationship("SupplierStatementItem", back_populates="statement",
                         order_by="SupplierStatementItem.id")

    def __repr__(self) -> str:
        return self.statement_no


class SupplierStatementItem(ShopOwnedMixin, db.Model):
    """One thing a statement pays for: a received receipt line (`receipt_line`), a consigned
    order line sold (`consignment`), or goods sent back (`return`, negative); each source is
    on one statement only."""

    __tablename__ = "supplier_statement_item"
    __table_args__ = (UniqueConstraint("source_kind", "source_id",
                                       name="uq_supplier_statement_item_source"),)

    id = Column(Integer, primary_key=True)
    statement_id = Column(Integer, ForeignKey("supplier_statement.id"), nullable=False,
                          index=True)
    source_kind = Column(String(16), nullable=False)
    source_id = Column(Integer, nullable=False)
    sku_id = Column(Integer, ForeignKey("sku.id"), nullable=False)
    quantity = Column(Integer, nullable=False)
    unit_price = Column(Money, nullable=False)
    amount = Column(Money, nullable=False)
    statement = relationship("SupplierStatement", back_populates="items")

    def __repr__(self) -> str:
        return f"{self.source_kind} {self.source_id}"
