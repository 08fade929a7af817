"""风控中心: rules as data, the facts they count, blacklists, decisions with the rules that
fired and their inputs, and members' credit scores."""
from sqlalchemy import (JSON, Boolean, Column, ForeignKey, Index, Integer, String,
                        UniqueConstraint)
from sqlalchemy.orm import relationship

from app.extensions import db
from models.base import UTCDateTime, utcnow

RISK_EVENTS = ("order_placed", "payment", "refund_requested", "review_posted", "login",
               "coupon_claimed")
RULE_KINDS = ("velocity", "shared_attribute", "refund_rate", "review_burst", "duplicate_text",
              "new_account_coupon", "blacklist", "credit_below")
RISK_ACTIONS = ("allow", "review", "hold", "block")
BLACKLIST_KINDS = ("member", "phone", "device", "ip", "address")


class RiskRule(db.Model):
    """A rule: on `event`, `kind` counts something over `params` (threshold, window, key) and
    decides `action` when it fires."""

    __tablename__ = "risk_rule"

    id = Column(Integer, primary_key=True)
    name = Column(String(64), nullable=False, unique=True)
    event = Column(String(20), nullable=False, index=True)
    kind = Column(String(20), nullable=False)
    params = Column(JSON, nullable=False, default=dict)
    action = Column(String(8), nullable=False, default="review")
    enabled = Column(Boolean, nullable=False, default=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)

    def __repr__(self) -> str:
        return self.name


class RiskFact(db.Model):
    """One event as the rules count it: who, from which device, IP, address and payer."""

    __tablename__ = "risk_fact"
    __table_args__ = (Index("ix_risk_fact_event_time", "event", "created_at"),)

    id = Column(Integer, primary_key=True)
    event = Column(String(20), nullable=False)
    member_id = Column(Integer, ForeignKey("member.id"), nullable=True, index=True)
    device = Column(String(64), nullable=True, index=True)
    ip = Column(String(45), nullable=True, index=True)
    address = Column(String(64), nullable=True, index=True)     # a digest of the address
    payer = Column(String(64), nullable=True, index=True)
    amount = Column(String(16), nullable=True)
    text_digest = Column(String(64), nullable=True, index=True)
    reference = Column(String(48), nullable=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)


class Blacklist(db.Model):
    __tablename__ = "blacklist"
    __table_args__ = (UniqueConstraint("kind", "value", name="uq_blacklist"),)

    id = Column(Integer, primary_key=True)
    kind = Column(String(8), nullable=False)
    value = Column(String(128), nullable=False)
    reason = Column(String(255), nullable=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)


class RiskDecision(db.Model):
    """What the engine decided for one event, with every rule that fired and its inputs;
    flagged and held ones wait in a queue for a person."""

    __tablename__ = "risk_decision"

    id = Column(Integer, primary_key=True)
    event = Column(String(20), nullable=False, index=True)
    member_id = Column(Integer, ForeignKey("member.id"), nullable=True, index=True)
    reference = Column(String(48), nullable=True, index=True)
    decision = Column(String(8), nullable=False, index=True)
    fired = Column(JSON, nullable=False, default=list)   # [{"rule_id", "name", "action", "inputs"}]
    status = Column(String(8), nullable=False, default="closed", index=True)   # open | closed
    resolution = Column(String(8), nullable=True)          # release | confirm
    resolved_by = Column(String(128), nullable=True)
    note = Column(String(255), nullable=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow, index=True)
    resolved_at = Column(UTCDateTime, nullable=True)


class CreditScore(db.Model):
    """A member's credit score (0–1000) and the factors it came from."""

    __tablename__ = "credit_score"

    id = Column(Integer, primary_key=True)
    member_id = Column(Integer, ForeignKey("member.id"), nullable=False, unique=True)
    score = Column(Integer, nullable=False)
    factors = Column(JSON, nullable=False, default=dict)
    updated_at = Column(UTCDateTime, nullable=False, default=utcnow)
    member = relationship("Member")
