"""营销中心: coupons (platform-wide or a shop's own), and the coupons members hold (the wallet
of 会员中心)."""
from sqlalchemy import (JSON, Boolean, CheckConstraint, Column, ForeignKey, Integer, Numeric,
                        String, UniqueConstraint)
from sqlalchemy.orm import relationship

from app.extensions import db
from models.base import Money, UTCDateTime, utcnow

COUPON_KINDS = ("fixed", "percent", "threshold", "free_shipping")
COUPON_SCOPES = ("all", "shop", "category", "brand", "spu")
WALLET_STATUSES = ("granted", "locked", "used", "expired")


class Coupon(db.Model):
    """A coupon: what it takes off, on what, when, how many in all and per member. `shop_id`
    set: the shop's own coupon (merchant-funded, its merchants manage it); unset: the
    platform's."""

    __tablename__ = "coupon"
    shop_column = "shop_id"
    __table_args__ = (
        CheckConstraint("total_quantity >= 0 AND claimed >= 0 AND claimed <= total_quantity",
                        name="ck_coupon_claimed_within_total"),
        CheckConstraint("per_member_limit > 0", name="ck_coupon_per_member_limit_positive"),
    )

    id = Column(Integer, primary_key=True)
    shop_id = Column(Integer, ForeignKey("shop.id"), nullable=True, index=True)
    name = Column(String(64), nullable=False)
    kind = Column(String(16), nullable=False)
    amount = Column(Money, nullable=True)              # fixed, threshold: what it takes off
    percent_off = Column(Numeric(5, 2), nullable=True)  # percent: 15.00 = 15 % off
    cap = Column(Money, nullable=True)                 # percent: at most this much
    threshold = Column(Money, nullable=True)           # spend at least this much (满X)
    scope = Column(String(16), nullable=False, default="all")
    scope_ids = Column(JSON, nullable=False, default=list)
    starts_at = Column(UTCDateTime, nullable=False)
    ends_at = Column(UTCDateTime, nullable=False)
    total_quantity = Column(Integer, nullable=False)
    claimed = Column(Integer, nullable=False, default=0)
    per_member_limit = Column(Integer, nullable=False, default=1)
    stackable = Column(Boolean, nullable=False, default=False)
    claimable = Column(Boolean, nullable=False, default=True)   # members may claim it
    code = Column(String(32), nullable=True, unique=True)       # a public code, if any
    enabled = Column(Boolean, nullable=False, default=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    shop = relationship("Shop")

    def __repr__(self) -> str:
        return self.name


class MemberCoupon(db.Model):
    """A coupon in a member's wallet: granted (claimed or issued), locked by an unpaid order,
    used (by `order_id`), or expired."""

    __tablename__ = "member_coupon"
    shop_column = "shop_id"
    __table_args__ = (UniqueConstraint("coupon_id", "member_id", "serial",
                                       name="uq_member_coupon_serial"),)

    id = Column(Integer, primary_key=True)
    coupon_id = Column(Integer, ForeignKey("coupon.id"), nullable=False, index=True)
    member_id = Column(Integer, ForeignKey("member.id"), nullable=False, index=True)
    shop_id = Column(Integer, ForeignKey("shop.id"), nullable=True, index=True)
    serial = Column(Integer, nullable=False)       # 1 … per_member_limit
    status = Column(String(8), nullable=False, default="granted", index=True)
    source = Column(String(8), nullable=False, default="claim")   # claim | issue | code
    order_id = Column(Integer, ForeignKey("order.id"), nullable=True, index=True)
    granted_at = Column(UTCDateTime, nullable=False, default=utcnow)
    used_at = Column(UTCDateTime, nullable=True)
    coupon = relationship("Coupon")
    member = relationship("Member")
