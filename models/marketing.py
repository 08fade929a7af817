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
    used = Column(Integer, nullable=False, default=0, server_default="0")
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
    """A coupon in a member's wallet: granted (claimed or issued), locked by an unpaid trade,
    used (by `trade_id`; `order_id` is its first order), or expired. `code` is what the buyer
    names at checkout."""

    __tablename__ = "member_coupon"
    shop_column = "shop_id"
    __table_args__ = (UniqueConstraint("coupon_id", "member_id", "serial",
                                       name="uq_member_coupon_serial"),
                      UniqueConstraint("issue_id", "member_id", name="uq_member_coupon_issue"))

    id = Column(Integer, primary_key=True)
    coupon_id = Column(Integer, ForeignKey("coupon.id"), nullable=False, index=True)
    member_id = Column(Integer, ForeignKey("member.id"), nullable=False, index=True)
    shop_id = Column(Integer, ForeignKey("shop.id"), nullable=True, index=True)
    serial = Column(Integer, nullable=False)       # 1 … per_member_limit
    code = Column(String(16), nullable=True, unique=True)   # what the buyer enters at checkout
    status = Column(String(8), nullable=False, default="granted", index=True)
    source = Column(String(8), nullable=False, default="claim")   # claim | issue | code
    order_id = Column(Integer, ForeignKey("order.id"), nullable=True, index=True)
    trade_id = Column(Integer, ForeignKey("trade.id"), nullable=True, index=True)
    issue_id = Column(Integer, ForeignKey("coupon_issue.id"), nullable=True, index=True)
    amount = Column(Money, nullable=True)          # what it took off the trade that used it
    granted_at = Column(UTCDateTime, nullable=False, default=utcnow)
    used_at = Column(UTCDateTime, nullable=True)
    coupon = relationship("Coupon")
    member = relationship("Member")


PROMOTION_KINDS = ("special_price", "flash_sale", "threshold", "multi_buy")
PROMOTION_SCOPES = COUPON_SCOPES
# The layer each kind prices in (item-level prices first, then the shop's offers).
PROMOTION_LAYER = {"special_price": "item", "flash_sale": "item", "threshold": "shop",
                   "multi_buy": "shop"}


class PromotionZone(db.Model):
    """A promotion zone or special event (专场): a curated set of SPUs with a window and a
    banner; promotions attached to it apply to its SPUs inside its window only."""

    __tablename__ = "promotion_zone"
    shop_column = "shop_id"

    id = Column(Integer, primary_key=True)
    shop_id = Column(Integer, ForeignKey("shop.id"), nullable=True, index=True)
    name = Column(String(64), nullable=False)
    kind = Column(String(8), nullable=False, default="zone")      # zone | event (专场)
    banner_url = Column(String(255), nullable=True)
    spu_ids = Column(JSON, nullable=False, default=list)
    starts_at = Column(UTCDateTime, nullable=False)
    ends_at = Column(UTCDateTime, nullable=False)
    enabled = Column(Boolean, nullable=False, default=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    shop = relationship("Shop")

    def __repr__(self) -> str:
        return self.name


class Promotion(db.Model):
    """A promotion: item-level prices (special price, flash sale) or a shop-level offer
    (满减 spend tiers, 满N件 multi-buy), on a scope, inside a window, optionally inside a zone.

    `rules` by kind: special_price / flash_sale {"prices": {"<sku_id>": "9.90"}};
    threshold {"tiers": [{"threshold": "100.00", "amount": "10.00"}], "repeat": false};
    multi_buy {"tiers": [{"count": 2, "percent_off": "10.00"}]}.
    `quantity`/`sold`: a flash sale's own stock (units); `budget`/`spent`: money it may give
    away; both change by conditional UPDATEs only. `funded_by` tells finance who pays."""

    __tablename__ = "promotion"
    shop_column = "shop_id"
    __table_args__ = (
        CheckConstraint("sold >= 0 AND (quantity IS NULL OR sold <= quantity)",
                        name="ck_promotion_sold_within_quantity"),
        CheckConstraint("spent >= 0 AND (budget IS NULL OR spent <= budget)",
                        name="ck_promotion_spent_within_budget"),
    )

    id = Column(Integer, primary_key=True)
    shop_id = Column(Integer, ForeignKey("shop.id"), nullable=True, index=True)
    zone_id = Column(Integer, ForeignKey("promotion_zone.id"), nullable=True, index=True)
    name = Column(String(64), nullable=False)
    kind = Column(String(16), nullable=False)
    rules = Column(JSON, nullable=False, default=dict)
    scope = Column(String(16), nullable=False, default="all")
    scope_ids = Column(JSON, nullable=False, default=list)
    starts_at = Column(UTCDateTime, nullable=False)
    ends_at = Column(UTCDateTime, nullable=False)
    priority = Column(Integer, nullable=False, default=0)
    exclusive = Column(Boolean, nullable=False, default=False)
    cap = Column(Money, nullable=True)                  # at most this much off per order
    per_member_limit = Column(Integer, nullable=True)   # orders (flash sale: units) per member
    quantity = Column(Integer, nullable=True)
    sold = Column(Integer, nullable=False, default=0)
    budget = Column(Money, nullable=True)
    spent = Column(Money, nullable=False, default=0)
    funded_by = Column(String(8), nullable=False, default="merchant")   # merchant | platform
    enabled = Column(Boolean, nullable=False, default=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    shop = relationship("Shop")
    zone = relationship("PromotionZone")

    def __repr__(self) -> str:
        return self.name


class PromotionUsage(db.Model):
    """One promotion (or coupon) taken by one order: what it gave (and, for a flash sale, the
    units), so budgets, per-member limits and the member's promotion cap are counted, and a
    cancelled or refunded order gives them back exactly once (`returned`)."""

    __tablename__ = "promotion_usage"
    shop_column = "shop_id"

    id = Column(Integer, primary_key=True)
    promotion_id = Column(Integer, ForeignKey("promotion.id"), nullable=True, index=True)
    coupon_id = Column(Integer, ForeignKey("coupon.id"), nullable=True, index=True)
    member_id = Column(Integer, ForeignKey("member.id"), nullable=False, index=True)
    trade_id = Column(Integer, ForeignKey("trade.id"), nullable=False, index=True)
    order_id = Column(Integer, ForeignKey("order.id"), nullable=False, index=True)
    shop_id = Column(Integer, ForeignKey("shop.id"), nullable=False, index=True)
    amount = Column(Money, nullable=False)
    quantity = Column(Integer, nullable=False, default=0)
    funded_by = Column(String(8), nullable=False, default="merchant")
    returned = Column(Boolean, nullable=False, default=False)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow, index=True)


class CouponIssue(db.Model):
    """A batch issue of a coupon to many members, run as a job: each member gets one coupon
    at most once per batch, however often the job runs."""

    __tablename__ = "coupon_issue"
    shop_column = "shop_id"

    id = Column(Integer, primary_key=True)
    coupon_id = Column(Integer, ForeignKey("coupon.id"), nullable=False, index=True)
    shop_id = Column(Integer, ForeignKey("shop.id"), nullable=True, index=True)
    member_ids = Column(JSON, nullable=False, default=list)
    status = Column(String(8), nullable=False, default="queued")   # queued | done
    issued = Column(Integer, nullable=False, default=0)
    refused = Column(JSON, nullable=False, default=dict)            # reason → count
    created_by = Column(String(128), nullable=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    finished_at = Column(UTCDateTime, nullable=True)
    coupon = relationship("Coupon")
