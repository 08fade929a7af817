"""营销中心 rules (coupons so far): definitions checked on save, and claims that can never
exceed the total or a member's limit, whatever runs at the same time.

A claim takes one from the coupon with one conditional UPDATE (`claimed < total_quantity`) and
puts it in the wallet as the member's n-th of that coupon; (coupon, member, n) is unique and
n never exceeds the per-member limit, so two simultaneous claims of the same member cannot
both pass the limit (the second fails on the unique key and is refused).
"""
from decimal import Decimal

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from models.marketing import COUPON_KINDS, COUPON_SCOPES, Coupon, MemberCoupon
from models.member import Member
from services.actor import is_row_id, visible_row
from services.clock import now
from services.errors import ConflictError, ValidationFailed
from services.events import publish


class ClaimRefused(ConflictError):
    """409 with `errors.coupon` = sold_out | member_limit | not_claimable."""

    def __init__(self, reason: str, message: str):
        super().__init__(message, {"coupon": [reason]})
        self.reason = reason


def check_coupon(coupon: Coupon) -> Coupon:
    """What a coupon must say to be saved: 422 naming the field otherwise."""
    if coupon.kind not in COUPON_KINDS:
        raise ValidationFailed.field("kind", f"One of: {', '.join(COUPON_KINDS)}.")
    if coupon.scope not in COUPON_SCOPES:
        raise ValidationFailed.field("scope", f"One of: {', '.join(COUPON_SCOPES)}.")
    if coupon.kind in ("fixed", "threshold") and not (coupon.amount and coupon.amount > 0):
        raise ValidationFailed.field("amount", "More than 0.00.")
    if coupon.kind == "threshold" and not (coupon.threshold and coupon.threshold > coupon.amount):
        raise ValidationFailed.field("threshold", "More than the amount it takes off.")
    if coupon.kind == "percent" and not (coupon.percent_off and
                                         Decimal(0) < coupon.percent_off < Decimal(100)):
        raise ValidationFailed.field("percent_off", "Between 0 and 100 (15.00 = 15 % off).")
    if not isinstance(coupon.scope_ids, list) or not all(is_row_id(i) for i in coupon.scope_ids):
        raise ValidationFailed.field("scope_ids", "A list of ids.")
    if coupon.scope not in ("all", "shop") and not coupon.scope_ids:
        raise ValidationFailed.field("scope_ids", "The categories, brands or SPUs it covers.")
    if coupon.starts_at is None or coupon.ends_at is None or coupon.ends_at <= coupon.starts_at:
        raise ValidationFailed.field("ends_at", "After starts_at.")
    if not isinstance(coupon.total_quantity, int) or coupon.total_quantity < 0:
        raise ValidationFailed.field("total_quantity", "A whole number, 0 or more.")
    if coupon.per_member_limit is None:
        coupon.per_member_limit = 1
    if not isinstance(coupon.per_member_limit, int) or not 0 < coupon.per_member_limit <= 100:
        raise ValidationFailed.field("per_member_limit", "A whole number from 1 to 100.")
    coupon.claimed = coupon.claimed or 0
    if coupon.total_quantity < coupon.claimed:
        raise ValidationFailed.field("total_quantity", f"At least the {coupon.claimed} claimed.")
    return coupon


def claim(coupon_id, member_id, source: str = "claim") -> MemberCoupon:
    """One coupon into a member's wallet. ClaimRefused (409) when none is left, the member
    has their limit, or the coupon cannot be claimed now."""
    coupon = visible_row(Coupon, coupon_id)
    if coupon is None:
        raise ValidationFailed.field("coupon_id", "Related record not found.")
    member = db.session.get(Member, member_id) if is_row_id(member_id) else None
    if member is None or member.status != "active":
        raise ValidationFailed.field("member_id", "Related record not found.")
    moment = now()
    if not (coupon.enabled and coupon.claimable and coupon.starts_at <= moment < coupon.ends_at):
        raise ClaimRefused("not_claimable", "This coupon cannot be claimed now")
    held = db.session.scalar(select(func.count()).select_from(MemberCoupon).where(
        MemberCoupon.coupon_id == coupon.id, MemberCoupon.member_id == member.id))
    if held >= coupon.per_member_limit:
        raise ClaimRefused("member_limit", "The member holds as many as allowed")
    taken = db.session.execute(
        update(Coupon).where(Coupon.id == coupon.id, Coupon.claimed < Coupon.total_quantity)
        .values(claimed=Coupon.claimed + 1).execution_options(synchronize_session=False))
    if taken.rowcount != 1:
        raise ClaimRefused("sold_out", "None left")
    granted = MemberCoupon(coupon_id=coupon.id, member_id=member.id, shop_id=coupon.shop_id,
                           serial=held + 1, status="granted", source=source, granted_at=moment)
    db.session.add(granted)
    try:
        db.session.flush()
    except IntegrityError:   # the same member claimed at the same moment and got this one
        db.session.rollback()
        raise ClaimRefused("member_limit", "The member holds as many as allowed") from None
    publish("coupon.claimed", {"coupon_id": coupon.id, "member_id": member.id,
                               "member_coupon_id": granted.id}, shop_id=coupon.shop_id)
    return granted
