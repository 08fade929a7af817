"""客服中心 after-sales: a buyer's request about one order line (refund only, return and refund,
exchange), its state machine and its timeline."""
import enum

from flask_babel import lazy_gettext as _l
from sqlalchemy import JSON, Boolean, CheckConstraint, Column, Enum, ForeignKey, Integer, String
from sqlalchemy.orm import relationship

from app.extensions import db
from models.base import Money, ShopOwnedMixin, UTCDateTime, utcnow


class AfterSaleKind(str, enum.Enum):
    refund_only = "refund_only"
    return_refund = "return_refund"
    exchange = "exchange"


class AfterSaleStatus(str, enum.Enum):
    requested = "requested"
    approved = "approved"
    rejected = "rejected"
    return_shipped = "return_shipped"
    received = "received"
    refunding = "refunding"
    refunded = "refunded"
    closed = "closed"


AFTER_SALE_KIND_LABELS = {
    AfterSaleKind.refund_only: _l("Refund only"),
    AfterSaleKind.return_refund: _l("Return and refund"),
    AfterSaleKind.exchange: _l("Exchange"),
}
AFTER_SALE_STATUS_LABELS = {
    AfterSaleStatus.requested: _l("Requested"), AfterSaleStatus.approved: _l("Approved"),
    AfterSaleStatus.rejected: _l("Rejected"), AfterSaleStatus.return_shipped: _l("Return shipped"),
    AfterSaleStatus.received: _l("Received"), AfterSaleStatus.refunding: _l("Refunding"),
    AfterSaleStatus.refunded: _l("Refunded"), AfterSaleStatus.closed: _l("Closed"),
}
AFTER_SALE_STATUS_TYPE = Enum(AfterSaleStatus, native_enum=False, length=16,
                              validate_strings=True)


class AfterSale(ShopOwnedMixin, db.Model):
    """One request on one order line. `amount` was reserved on the line when the request was
    made (the line's `after_sale_amount`), so requests together never exceed what was paid."""

    __tablename__ = "after_sale"
    __table_args__ = (CheckConstraint("quantity > 0", name="ck_after_sale_quantity_positive"),
                      CheckConstraint("amount >= 0", name="ck_after_sale_amount_not_negative"))

    id = Column(Integer, primary_key=True)
    after_sale_no = Column(String(32), nullable=False, unique=True)
    order_id = Column(Integer, ForeignKey("order.id"), nullable=False, index=True)
    order_line_id = Column(Integer, ForeignKey("order_line.id"), nullable=False, index=True)
    member_id = Column(Integer, ForeignKey("member.id"), nullable=False, index=True)
    kind = Column(Enum(AfterSaleKind, native_enum=False, length=16, validate_strings=True),
                  nullable=False)
    quantity = Column(Integer, nullable=False)
    amount = Column(Money, nullable=False)
    reason = Column(String(255), nullable=False)
    no_reason = Column(Boolean, nullable=False, default=False)   # 七天无理由退货
    evidence = Column(JSON, nullable=False, default=list)         # uploaded file ids
    status = Column(AFTER_SALE_STATUS_TYPE, nullable=False, default=AfterSaleStatus.requested,
                    index=True)
    reject_reason = Column(String(255), nullable=True)
    return_carrier = Column(String(64), nullable=True)
    return_tracking_no = Column(String(64), nullable=True)
    payment_refund_id = Column(Integer, ForeignKey("payment_refund.id"), nullable=True)
    # an exchange's replacement: a free order of the same SKU, shipped like any order
    replacement_order_id = Column(Integer, ForeignKey("order.id"), nullable=True)
    # shipping notices this request stopped (refund only before shipping)
    held_notice_ids = Column(JSON, nullable=False, default=list)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    finished_at = Column(UTCDateTime, nullable=True)
    order = relationship("Order", foreign_keys=[order_id])
    order_line = relationship("OrderLine")
    timeline = relationship("AfterSaleEvent", order_by="AfterSaleEvent.id")

    def __repr__(self) -> str:
        return self.after_sale_no


class AfterSaleEvent(ShopOwnedMixin, db.Model):
    """One step of a request: from, to, who, and a note."""

    __tablename__ = "after_sale_event"

    id = Column(Integer, primary_key=True)
    after_sale_id = Column(Integer, ForeignKey("after_sale.id"), nullable=False, index=True)
    from_status = Column(String(16), nullable=True)
    to_status = Column(String(16), nullable=False)
    actor = Column(String(128), nullable=False)
    note = Column(String(255), nullable=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
