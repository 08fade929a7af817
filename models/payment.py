"""支付中心: one payment record per attempt to pay a trade, the refunds of a payment, and the
sandbox gateway's own book of what it was asked to do (it stands for a third party)."""
import enum

from flask_babel import lazy_gettext as _l
from sqlalchemy import JSON, CheckConstraint, Column, Enum, ForeignKey, Integer, String, Text
from sqlalchemy.orm import relationship

from app.extensions import db
from models.base import Money, UTCDateTime, utcnow


class PaymentStatus(str, enum.Enum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"
    flagged = "flagged"


PAYMENT_STATUS_LABELS = {
    PaymentStatus.pending: _l("Pending"), PaymentStatus.succeeded: _l("Succeeded"),
    PaymentStatus.failed: _l("Failed"), PaymentStatus.flagged: _l("Flagged"),
}


class RefundStatus(str, enum.Enum):
    pending = "pending"        # recorded, not yet accepted by the gateway
    submitted = "submitted"    # the gateway accepted it; its notification will say how it ended
    succeeded = "succeeded"
    failed = "failed"          # the gateway refused it, or every retry failed: a person decides


REFUND_STATUS_LABELS = {
    RefundStatus.pending: _l("Pending"), RefundStatus.submitted: _l("Submitted"),
    RefundStatus.succeeded: _l("Succeeded"), RefundStatus.failed: _l("Failed"),
}


class Payment(db.Model):
    """One attempt to pay a trade through a channel. Spans shops (a trade does): staff and the
    storefront only. `out_trade_no` is ours, unique per attempt; `transaction_id` the
    gateway's."""

    __tablename__ = "payment"
    __table_args__ = (CheckConstraint("amount > 0", name="ck_payment_amount_positive"),
                      CheckConstraint("refunded_amount >= 0 AND refunded_amount <= amount",
                                      name="ck_payment_refunded_within_amount"))

    id = Column(Integer, primary_key=True)
    trade_id = Column(Integer, ForeignKey("trade.id"), nullable=False, index=True)
    out_trade_no = Column(String(32), nullable=False, unique=True)
    channel = Column(String(32), nullable=False)
    amount = Column(Money, nullable=False)
    currency = Column(String(3), nullable=False, default="CNY")
    status = Column(Enum(PaymentStatus, native_enum=False, length=16, validate_strings=True),
                    nullable=False, default=PaymentStatus.pending, index=True)
    transaction_id = Column(String(64), nullable=True, index=True)
    payer_account = Column(String(64), nullable=True)
    flag_reason = Column(String(255), nullable=True)
    notification = Column(JSON, nullable=True)   # the last notification as received
    refunded_amount = Column(Money, nullable=False, default=0)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    paid_at = Column(UTCDateTime, nullable=True)
    notified_at = Column(UTCDateTime, nullable=True)
    trade = relationship("Trade")
    refunds = relationship("PaymentRefund", back_populates="payment",
                           order_by="PaymentRefund.id")

    def __repr__(self):
        return self.out_trade_no


class PaymentRefund(db.Model):
    """Money going back through the gateway that took it; `out_refund_no` is the idempotency
    key the gateway sees (a retried request never refunds twice)."""

    __tablename__ = "payment_refund"
    __table_args__ = (CheckConstraint("amount > 0", name="ck_payment_refund_amount_positive"),)

    id = Column(Integer, primary_key=True)
    payment_id = Column(Integer, ForeignKey("payment.id"), nullable=False, index=True)
    out_refund_no = Column(String(32), nullable=False, unique=True)
    amount = Column(Money, nullable=False)
    reason = Column(String(255), nullable=False)
    status = Column(Enum(RefundStatus, native_enum=False, length=16, validate_strings=True),
                    nullable=False, default=RefundStatus.pending, index=True)
    gateway_refund_id = Column(String(64), nullable=True)
    attempts = Column(Integer, nullable=False, default=0)
    last_error = Column(Text, nullable=True)
    notification = Column(JSON, nullable=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    finished_at = Column(UTCDateTime, nullable=True)
    payment = relationship("Payment", back_populates="refunds")

    def __repr__(self):
        return self.out_refund_no


class SandboxTransaction(db.Model):
    """The sandbox gateway's book: what a real gateway keeps on its side. A payment waits for
    the tester on the pay page; once settled (or a refund accepted) its notification is sent,
    and re-sent on the gateway's schedule until acknowledged."""

    __tablename__ = "sandbox_transaction"

    id = Column(Integer, primary_key=True)
    kind = Column(String(8), nullable=False)             # payment | refund
    out_trade_no = Column(String(32), nullable=False, index=True)
    out_refund_no = Column(String(32), nullable=True, unique=True)
    transaction_id = Column(String(64), nullable=False, unique=True)
    amount = Column(Money, nullable=False)
    currency = Column(String(3), nullable=False, default="CNY")
    status = Column(String(16), nullable=False, default="created")  # created|succeeded|failed
    payer_account = Column(String(64), nullable=True)
    notify_attempts = Column(Integer, nullable=False, default=0)
    next_notify_at = Column(UTCDateTime, nullable=True, index=True)
    acknowledged_at = Column(UTCDateTime, nullable=True)
    last_error = Column(Text, nullable=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    finished_at = Column(UTCDateTime, nullable=True)
