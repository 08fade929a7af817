"""卡券: stored-value and gift cards, and the ledger of every change of their balance."""
from sqlalchemy import CheckConstraint, Column, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import relationship

from app.extensions import db
from models.base import Money, UTCDateTime, utcnow

CARD_KINDS = ("stored_value", "gift")
CARD_LEDGER_REASONS = ("issue", "top_up", "spend", "refund", "void")


class Card(db.Model):
    """A stored-value card (储值卡, topped up by its member) or a gift card (礼品卡, issued with
    a value and bound to whoever redeems it). `balance` is the sum of its ledger, written with
    each ledger row under the card's row lock, and never below zero."""

    __tablename__ = "card"
    __table_args__ = (CheckConstraint("balance >= 0", name="ck_card_balance_never_negative"),)

    id = Column(Integer, primary_key=True)
    card_no = Column(String(32), nullable=False, unique=True)
    kind = Column(String(16), nullable=False)
    member_id = Column(Integer, ForeignKey("member.id"), nullable=True, index=True)
    balance = Column(Money, nullable=False, default=0)
    status = Column(String(8), nullable=False, default="active")   # active | frozen | void
    expires_at = Column(UTCDateTime, nullable=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    member = relationship("Member")

    def __repr__(self) -> str:
        return self.card_no


class CardLedger(db.Model):
    """One change of a card's balance: issued, topped up, spent on a trade, refunded back."""

    __tablename__ = "card_ledger"
    __table_args__ = (UniqueConstraint("card_id", "reason", "reference",
                                       name="uq_card_ledger_once"),
                      CheckConstraint("balance_after >= 0", name="ck_card_ledger_balance"))

    id = Column(Integer, primary_key=True)
    card_id = Column(Integer, ForeignKey("card.id"), nullable=False, index=True)
    delta = Column(Money, nullable=False)
    reason = Column(String(8), nullable=False)
    reference = Column(String(48), nullable=False)   # the trade, refund or top-up
    balance_after = Column(Money, nullable=False)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    card = relationship("Card")
