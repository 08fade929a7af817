"""会员中心: members (buyers), their shipping addresses and their points ledger."""
from sqlalchemy import (Boolean, CheckConstraint, Column, ForeignKey, Integer, Numeric, String,
                        UniqueConstraint)
from sqlalchemy.orm import relationship

from app.extensions import db
from models.base import Money, TimestampMixin, UTCDateTime, utcnow


class MemberLevel(TimestampMixin, db.Model):
    """A member level: reached at `growth_threshold` growth, with its benefits, which the
    pricing engine applies (a member discount, free shipping from a spend, more points)."""

    __tablename__ = "member_level"

    id = Column(Integer, primary_key=True)
    name = Column(String(32), nullable=False, unique=True)
    growth_threshold = Column(Integer, nullable=False, unique=True)
    discount_percent = Column(Numeric(5, 2), nullable=False, default=0)   # 5.00 = 5 % off
    free_shipping_threshold = Column(Money, nullable=True)
    points_multiplier = Column(Numeric(4, 2), nullable=False, default=1)

    def __repr__(self) -> str:
        return self.name


class Member(TimestampMixin, db.Model):
    """A buyer of the platform (platform data: every shop sells to the same members)."""

    __tablename__ = "member"

    id = Column(Integer, primary_key=True)
    account = Column(String(64), nullable=False, unique=True)
    name = Column(String(64), nullable=False)
    phone = Column(String(32), nullable=True)
    # active | frozen
    status = Column(String(16), nullable=False, default="active")
    # growth: whole yuan of completed orders; the level follows it
    growth = Column(Integer, nullable=False, default=0, server_default="0")
    level_id = Column(Integer, ForeignKey("member_level.id"), nullable=True, index=True)
    level = relationship("MemberLevel")
    addresses = relationship("MemberAddress", back_populates="member",
                             order_by="MemberAddress.id")

    def __repr__(self) -> str:
        return self.account


class MemberAddress(TimestampMixin, db.Model):
    """A shipping address: GB/T 2260 region codes and the street detail."""

    __tablename__ = "member_address"

    id = Column(Integer, primary_key=True)
    member_id = Column(Integer, ForeignKey("member.id"), nullable=False, index=True)
    recipient = Column(String(64), nullable=False)
    phone = Column(String(32), nullable=False)
    province_code = Column(String(6), nullable=False)
    city_code = Column(String(6), nullable=False)
    district_code = Column(String(6), nullable=False)
    detail = Column(String(255), nullable=False)
    is_default = Column(Boolean, nullable=False, default=False)
    member = relationship("Member", back_populates="addresses")

    def __repr__(self) -> str:
        return f"{self.recipient} {self.district_code}"


class PointsLedger(db.Model):
    """积分流水: every change of a member's points. The balance is the sum of `delta` (kept
    as `balance_after` on each row, written under the member's row lock); an earned row keeps
    what is left of it (`remaining`) until spent, reversed or expired, oldest first."""

    __tablename__ = "points_ledger"
    __table_args__ = (CheckConstraint("balance_after >= 0", name="ck_points_never_negative"),
                      CheckConstraint("remaining >= 0", name="ck_points_remaining"),
                      UniqueConstraint("member_id", "reason", "reference",
                                       name="uq_points_ledger_once"))

    id = Column(Integer, primary_key=True)
    member_id = Column(Integer, ForeignKey("member.id"), nullable=False, index=True)
    delta = Column(Integer, nullable=False)
    reason = Column(String(16), nullable=False)      # earn | spend | reverse | expire
    reference = Column(String(48), nullable=False)   # the order, after-sale or expiry run
    remaining = Column(Integer, nullable=False, default=0)
    expires_at = Column(UTCDateTime, nullable=True, index=True)
    balance_after = Column(Integer, nullable=False)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
