"""财务管理: a double-entry journal (entries of balanced lines on a chart of accounts, never
edited, only reversed) and the daily reconciliation with the gateways."""
from sqlalchemy import (CheckConstraint, Column, Date, ForeignKey, Integer, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import relationship

from app.extensions import db
from models.base import Money, ShopOwnedMixin, UTCDateTime, utcnow


class JournalEntry(db.Model):
    """One business fact in money: its lines' debits equal its credits. `source` (the event
    and the posting rule that made it) is unique, so a fact is never posted twice."""

    __tablename__ = "journal_entry"

    id = Column(Integer, primary_key=True)
    entry_no = Column(String(32), nullable=False, unique=True)
    kind = Column(String(24), nullable=False, index=True)   # payment, refund, settlement, …
    reference = Column(String(64), nullable=True, index=True)
    memo = Column(String(255), nullable=True)
    source = Column(String(96), nullable=True, unique=True)
    reverses_id = Column(Integer, ForeignKey("journal_entry.id"), nullable=True, unique=True)
    occurred_at = Column(UTCDateTime, nullable=False, index=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    lines = relationship("JournalLine", back_populates="entry", order_by="JournalLine.id")

    def __repr__(self) -> str:
        return self.entry_no


class JournalLine(db.Model):
    """A debit or a credit on an account, for a shop when the account is kept per shop
    (merchant payables, commission)."""

    __tablename__ = "journal_line"
    __table_args__ = (
        CheckConstraint("debit >= 0 AND credit >= 0 AND (debit = 0 OR credit = 0) "
                        "AND debit + credit > 0", name="ck_journal_line_one_side"),
    )

    id = Column(Integer, primary_key=True)
    entry_id = Column(Integer, ForeignKey("journal_entry.id"), nullable=False, index=True)
    account = Column(String(8), nullable=False, index=True)
    shop_id = Column(Integer, ForeignKey("shop.id"), nullable=True, index=True)
    debit = Column(Money, nullable=False, default=0)
    credit = Column(Money, nullable=False, default=0)
    entry = relationship("JournalEntry", back_populates="lines")
    shop = relationship("Shop")


class ReconciliationRun(db.Model):
    """One day reconciled: payments against the gateways' statements, orders against
    payments, refunds against the gateways' refunds."""

    __tablename__ = "reconciliation_run"
    __table_args__ = (UniqueConstraint("day", name="uq_reconciliation_run_day"),)

    id = Column(Integer, primary_key=True)
    day = Column(Date, nullable=False)
    status = Column(String(16), nullable=False)          # clean | mismatches
    checked = Column(Integer, nullable=False, default=0)
    mismatches = Column(Integer, nullable=False, default=0)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    items = relationship("ReconciliationItem", back_populates="run",
                         order_by="ReconciliationItem.id")

    def __repr__(self) -> str:
        return self.day.isoformat()


class ReconciliationItem(db.Model):
    """A mismatch for a person to resolve: what kind, about what, and both sides' figures."""

    __tablename__ = "reconciliation_item"

    id = Column(Integer, primary_key=True)
    run_id = Column(Integer, ForeignKey("reconciliation_run.id"), nullable=False, index=True)
    kind = Column(String(32), nullable=False, index=True)
    reference = Column(String(64), nullable=False)
    ours = Column(String(64), nullable=True)
    theirs = Column(String(64), nullable=True)
    detail = Column(Text, nullable=True)
    resolved_at = Column(UTCDateTime, nullable=True)
    resolved_by = Column(String(128), nullable=True)
    resolution = Column(String(255), nullable=True)
    run = relationship("ReconciliationRun", back_populates="items")


class Settlement(ShopOwnedMixin, db.Model):
    """结算单: what a shop is owed for a period, from the journal: what its buyers paid, less
    the platform's commission and the refunds (platform-funded discounts come with marketing).
    draft → approved → paid; paying posts Dr 2201 / Cr 1003."""

    __tablename__ = "settlement"
    __table_args__ = (CheckConstraint("net >= 0", name="ck_settlement_net_not_negative"),)

    id = Column(Integer, primary_key=True)
    settlement_no = Column(String(32), nullable=False, unique=True)
    period_end = Column(Date, nullable=False)
    paid_by_buyers = Column(Money, nullable=False)
    platform_discounts = Column(Money, nullable=False, default=0)
    commission = Column(Money, nullable=False)
    refunds = Column(Money, nullable=False)
    net = Column(Money, nullable=False)
    status = Column(String(16), nullable=False, default="draft", index=True)
    approved_by = Column(String(128), nullable=True)
    approved_at = Column(UTCDateTime, nullable=True)
    paid_at = Column(UTCDateTime, nullable=True)
    payment_reference = Column(String(64), nullable=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)

    def __repr__(self) -> str:
        return self.settlement_no


class SettlementItem(db.Model):
    """A journal line counted in a settlement; a line is counted once (unique)."""

    __tablename__ = "settlement_item"

    id = Column(Integer, primary_key=True)
    settlement_id = Column(Integer, ForeignKey("settlement.id"), nullable=False, index=True)
    journal_line_id = Column(Integer, ForeignKey("journal_line.id"), nullable=False,
                             unique=True)
