"""营销中心 rules (coupons so far): definitions checked on save, and claims that can never
exceed the total or a member's limit, whatever runs at the same time.

A claim takes one from the coupon with one conditional UPDATE (`claimed < total_quantity`) and
puts it in the wallet as the member's n-th of that coupon; (coupon, member, n) is unique and
n never exceeds the per-member limit, so two simultaneous claims of the same member cannot
both pass the limit (the second fails on the unique key and is refused).
"""
import secrets
import time
from datetime import timedelta
from decimal import Decimal

from flask import current_app
from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy import event as sa_event
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.queue import enqueue_after_commit
from models.marketing import (COUPON_KINDS, COUPON_SCOPES, PROMOTION_KINDS, PROMOTION_SCOPES,
                              Coupon, CouponIssue, MemberCoupon, Promotion, PromotionUsage,
                              PromotionZone)
from models.member import Member
from services import pricing
from services.actor import is_row_id, visible_row
from services.audit import record_inserts
from services.clock import now
from services.errors import ConflictError, NotFoundError, ValidationFailed
from services.events import publish
from services.scheduler import scheduled


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


CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"


def wallet_code() -> str:
    """What the buyer names at checkout: 12 characters nobody can guess."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(12))


def claim(coupon_id, member_id, source: str = "claim",
          issue_id: int | None = None) -> MemberCoupon:
    """One coupon into a member's wallet. ClaimRefused (409) when none is left, the member
    has their limit, or the coupon cannot be claimed now."""
    coupon = visible_row(Coupon, coupon_id)
    if coupon is None:
        raise ValidationFailed.field("coupon_id", "Related record not found.")
    member = db.session.get(Member, member_id) if is_row_id(member_id) else None
    if member is None or member.status != "active":
        raise ValidationFailed.field("member_id", "Related record not found.")
    moment = now()
    # members claim only claimable coupons; a public code or a batch issue needs none
    if not (coupon.enabled and (coupon.claimable or source != "claim")
            and coupon.starts_at <= moment < coupon.ends_at):
        raise ClaimRefused("not_claimable", "This coupon cannot be claimed now")
    held = db.session.scalar(select(func.count()).select_from(MemberCoupon).where(
        MemberCoupon.coupon_id == coupon.id, MemberCoupon.member_id == member.id))
    if held >= coupon.per_member_limit:
        raise ClaimRefused("member_limit", "The member holds as many as allowed")
    verdict = _risk_of_claim(member.id) if source == "claim" else None
    taken = db.session.execute(
        update(Coupon).where(Coupon.id == coupon.id, Coupon.claimed < Coupon.total_quantity)
        .values(claimed=Coupon.claimed + 1).execution_options(synchronize_session=False))
    if taken.rowcount != 1:
        raise ClaimRefused("sold_out", "None left")
    granted = MemberCoupon(coupon_id=coupon.id, member_id=member.id, shop_id=coupon.shop_id,
                           serial=held + 1, code=wallet_code(), status="granted",
                           source=source, issue_id=issue_id, granted_at=moment)
    db.session.add(granted)
    try:
        db.session.flush()
    except IntegrityError:   # the same member claimed at the same moment and got this one
        db.session.rollback()
        raise ClaimRefused("member_limit", "The member holds as many as allowed") from None
    publish("coupon.claimed", {"coupon_id": coupon.id, "member_id": member.id,
                               "member_coupon_id": granted.id}, shop_id=coupon.shop_id)
    if verdict is not None:
        from services import risk

        risk.link(verdict, f"member_coupon:{granted.id}")
    return granted


def _risk_of_claim(member_id: int):
    """A member's own claim asks risk control (coupon farming): a block is 403 risk_blocked."""
    from services import risk

    verdict = risk.assess("coupon_claimed", member_id=member_id)
    if verdict.blocked:
        raise risk.RiskBlocked()
    return verdict


# -- pricing: what the engine reads, and what checkout commits ----------------------------------

MAX_COUPON_CODES = 10
MAX_POINTS = 100_000_000
# Promotions starting within this many days are explained as out_of_window.
UPCOMING_DAYS = 7

# Checkout prices every place against the live promotions: one Core statement, built once,
# whose rows a process keeps for PROMOTION_CACHE_SECONDS. A kept copy only ever prices a
# quote: placing takes units and budget with a conditional UPDATE that re-checks the window
# and the enabled flags, so a stale copy can never apply what ended or sold out (409).
_PROMOTION, _ZONE = Promotion.__table__, PromotionZone.__table__
_PROMOTIONS = (
    select(_PROMOTION, _ZONE.c.enabled.label("zone_enabled"),
           _ZONE.c.starts_at.label("zone_starts_at"), _ZONE.c.ends_at.label("zone_ends_at"),
           _ZONE.c.spu_ids.label("zone_spu_ids"))
    .select_from(_PROMOTION.outerjoin(_ZONE, _ZONE.c.id == _PROMOTION.c.zone_id))
    .where(_PROMOTION.c.enabled.is_(True), _PROMOTION.c.ends_at > bindparam("moment"),
           _PROMOTION.c.starts_at < bindparam("horizon")))
_LIVE: dict = {}      # "until" (monotonic), "rows"


def settings() -> pricing.Settings:
    config = current_app.config
    return pricing.Settings(floor_share=config["PRICE_FLOOR_SHARE"],
                            points_per_yuan=config["POINTS_PER_YUAN"],
                            points_max_share=config["POINTS_MAX_SHARE"])


def active_promotions(shop_ids, moment) -> list[pricing.Promotion]:
    """Enabled promotions of these shops and the platform that have not ended (those about to
    start are explained as out of window), as the engine reads them."""
    return [_engine_promotion(row) for row in _live_rows(moment)
            if (row.shop_id is None or row.shop_id in shop_ids)
            and (row.zone_id is None or row.zone_enabled)]


def _live_rows(moment) -> list:
    if _LIVE.get("until", 0) > time.monotonic():
        return _LIVE["rows"]
    rows = db.session.connection().execute(_PROMOTIONS, {
        "moment": moment, "horizon": moment + timedelta(days=UPCOMING_DAYS)}).all()
    seconds = current_app.config.get("PROMOTION_CACHE_SECONDS", 5)
    if seconds:
        _LIVE.update(until=time.monotonic() + seconds, rows=rows)
    return rows


@sa_event.listens_for(Promotion, "after_insert")
@sa_event.listens_for(Promotion, "after_update")
@sa_event.listens_for(Promotion, "after_delete")
@sa_event.listens_for(PromotionZone, "after_insert")
@sa_event.listens_for(PromotionZone, "after_update")
@sa_event.listens_for(PromotionZone, "after_delete")
def forget_promotions(*_) -> None:
    """A promotion or zone changed in this process (or its units or budget moved): the next
    price reads them again."""
    _LIVE.clear()


def _engine_promotion(promotion) -> pricing.Promotion:
    """A promotion row (with its zone's columns) as the engine reads it."""
    starts, ends = promotion.starts_at, promotion.ends_at
    if promotion.zone_id is not None:   # a zone's promotion lives inside the zone's window too
        starts = max(starts, promotion.zone_starts_at)
        ends = min(ends, promotion.zone_ends_at)
    return pricing.Promotion(
        id=promotion.id, shop_id=promotion.shop_id, kind=promotion.kind, rules=promotion.rules,
        scope=promotion.scope, scope_ids=tuple(promotion.scope_ids or ()),
        zone_spu_ids=frozenset(promotion.zone_spu_ids)
        if promotion.zone_id is not None else None,
        starts_at=starts, ends_at=ends, priority=promotion.priority,
        exclusive=promotion.exclusive, cap=promotion.cap,
        per_member_limit=promotion.per_member_limit,
        units_left=None if promotion.quantity is None else promotion.quantity - promotion.sold,
        budget_left=None if promotion.budget is None else promotion.budget - promotion.spent,
        funded_by=promotion.funded_by)


def _engine_coupon(coupon: Coupon, code: str, wallet: MemberCoupon | None) -> pricing.Coupon:
    return pricing.Coupon(
        id=coupon.id, code=code, shop_id=coupon.shop_id, kind=coupon.kind,
        amount=coupon.amount, percent_off=coupon.percent_off, cap=coupon.cap,
        threshold=coupon.threshold, scope=coupon.scope, scope_ids=tuple(coupon.scope_ids or ()),
        starts_at=coupon.starts_at, ends_at=coupon.ends_at, stackable=coupon.stackable,
        # a wallet coupon still granted; a public code with some left to claim
        usable=coupon.enabled and (wallet.status == "granted" if wallet is not None
                                   else coupon.claimed < coupon.total_quantity),
        wallet_id=wallet.id if wallet is not None else None,
        funded_by="merchant" if coupon.shop_id else "platform")


def named_coupons(member_id: int, codes) -> list[pricing.Coupon]:
    """The coupons the buyer names: codes of their wallet coupons, or public coupon codes
    (claimed when the order is placed). An unknown code is 422 naming it."""
    if codes is None:
        return []
    if not isinstance(codes, list) or len(codes) > MAX_COUPON_CODES or \
            not all(isinstance(c, str) and 0 < len(c.strip()) <= 32 for c in codes):
        raise ValidationFailed.field("coupon_codes", f"A list of at most {MAX_COUPON_CODES} codes.")
    codes = [c.strip().upper() for c in codes]
    wallet = {row.code: row for row in db.session.scalars(select(MemberCoupon).where(
        MemberCoupon.member_id == member_id, MemberCoupon.code.in_(codes)))}
    public = {row.code.upper(): row for row in db.session.scalars(
        select(Coupon).where(func.upper(Coupon.code).in_(codes)))}
    found, errors = [], {}
    for n, code in enumerate(codes):
        if code in wallet:
            found.append(_engine_coupon(wallet[code].coupon, code, wallet[code]))
        elif code in public:
            found.append(_engine_coupon(public[code], code, None))
        else:
            errors[f"coupon_codes.{n}"] = ["No such coupon in the member's wallet."]
    if errors:
        raise ValidationFailed("Validation failed", errors)
    return found


def checked_points(points) -> int:
    if points is None:
        return 0
    if isinstance(points, bool) or not isinstance(points, int) or not 0 <= points <= MAX_POINTS:
        raise ValidationFailed.field("points", f"A whole number from 0 to {MAX_POINTS}.")
    return points


def buyer(member_id: int, level, points: int, promotion_ids: list[int], moment,
          counts_joined: bool = True) -> pricing.Buyer:
    """The member as the engine sees them: level benefits, points balance (when spending
    any), what they already took of these promotions, and what is left under the cap (when
    there is anything to join: `counts_joined`)."""
    from services.points import balance

    used = {}
    if promotion_ids:
        for promotion_id, kind, trades, units in db.session.execute(
                select(PromotionUsage.promotion_id, Promotion.kind,
                       func.count(func.distinct(PromotionUsage.trade_id)),
                       func.sum(PromotionUsage.quantity))
                .join(Promotion, Promotion.id == PromotionUsage.promotion_id)
                .where(PromotionUsage.member_id == member_id,
                       PromotionUsage.returned.is_(False),
                       PromotionUsage.promotion_id.in_(promotion_ids))
                .group_by(PromotionUsage.promotion_id, Promotion.kind)):
            used[promotion_id] = int(units or 0) if kind == "flash_sale" else trades
    return pricing.Buyer(
        member_id=member_id,
        level=pricing.Level(level.name, level.discount_percent, level.free_shipping_threshold)
        if level is not None else None,
        points=balance(member_id) if points else 0,
        promotions_left=_promotions_left(member_id, moment) if counts_joined else None,
        used=used)


def _promotions_left(member_id: int, moment) -> int | None:
    """How many more promotions the member may join this period (营销滥用 guard)."""
    cap = current_app.config["MEMBER_PROMOTION_CAP"]
    if not cap:
        return None
    since = moment - timedelta(days=current_app.config["MEMBER_PROMOTION_CAP_DAYS"])
    joined = db.session.execute(
        select(PromotionUsage.trade_id, PromotionUsage.promotion_id, PromotionUsage.coupon_id)
        .where(PromotionUsage.member_id == member_id, PromotionUsage.returned.is_(False),
               PromotionUsage.created_at >= since).distinct()).all()
    return max(cap - len(joined), 0)


def price_cart(member_id: int, level, lines: list[pricing.Line], codes=None, points=None,
               freight=pricing.ZERO) -> pricing.Pricing:
    """Price a cart for a member against the live rules."""
    moment = now()
    points = checked_points(points)
    coupons = named_coupons(member_id, codes)
    promotions = active_promotions({line.shop_id for line in lines}, moment)
    wanted = [p.id for p in promotions if p.per_member_limit is not None]
    member = buyer(member_id, level, points, wanted, moment,
                   counts_joined=bool(promotions or coupons))
    return pricing.price(lines, member, promotions, coupons, moment, points=points,
                         freight=freight, settings=settings())


class PriceChanged(ConflictError):
    """What the cart was priced with is no longer there (sold out, budget spent, coupon used
    meanwhile): 409 naming the rule; quote again."""


def commit_checkout(result: pricing.Pricing, trade: dict, orders: list[dict],
                    member_id: int) -> None:
    """Take what the placed trade was priced with, race-free: flash-sale units and budgets by
    conditional UPDATEs, wallet coupons locked to the trade, public codes claimed, points
    spent, and one usage row per rule and order (what a cancel or refund gives back)."""
    if not (result.promotions or result.coupons or result.points_used):
        return
    _lock_member(member_id)
    _recheck_limits(result, member_id)
    usage = _usage_rows(result, trade, orders, member_id)
    for promotion in result.promotions:
        units = sum(row["quantity"] for row in usage if row["promotion_id"] == promotion.id)
        amount = sum((row["amount"] for row in usage if row["promotion_id"] == promotion.id),
                     pricing.ZERO)
        _take_promotion(promotion.id, units, amount)
    for coupon in result.coupons:
        _lock_coupon(coupon, member_id, trade, orders, usage)
    if result.points_used:
        from services.points import take

        take(member_id, result.points_used, "spend", trade["trade_no"])
    if usage:     # one INSERT, each row with its id and its audit entry
        ids = db.session.execute(
            insert(PromotionUsage).returning(PromotionUsage.id, sort_by_parameter_order=True),
            usage).scalars().all()
        for row, usage_id in zip(usage, ids):
            row["id"] = usage_id
        record_inserts(db.session, PromotionUsage, usage)


def _lock_member(member_id: int) -> None:
    """A member's checkouts with offers take turns, so per-member limits hold exactly."""
    db.session.execute(select(Member.id).where(Member.id == member_id).with_for_update())


def _recheck_limits(result: pricing.Pricing, member_id: int) -> None:
    """Under the member's lock: nothing the member did meanwhile broke a per-member limit or
    the promotion cap (their other checkouts waited for this lock)."""
    moment = now()
    limited = [p for p in result.promotions if p.per_member_limit is not None]
    fresh = buyer(member_id, None, 0, [p.id for p in limited], moment)
    for promotion in limited:
        wanted = sum(line.line.quantity for line in result.lines
                     if line.item_rule == promotion.rule) if promotion.kind == "flash_sale" else 1
        if fresh.used.get(promotion.id, 0) + wanted > promotion.per_member_limit:
            raise PriceChanged("The member has reached this promotion's limit",
                               {"promotions": [f"{promotion.rule} limit_reached"]})
    joined = len(result.promotions) + len(result.coupons)
    if fresh.promotions_left is not None and joined > fresh.promotions_left:
        raise PriceChanged("The member has joined as many promotions as allowed for now",
                           {"promotions": ["limit_reached"]})


def _usage_rows(result: pricing.Pricing, trade: dict, orders: list[dict],
                member_id: int) -> list[dict]:
    """One row per (rule, order): the rule's shares of the order's lines, and its units."""
    order_of_sku = {line["sku_id"]: order for order in orders for line in order["lines"]}
    rows: dict[tuple, dict] = {}
    rules = {r.rule: r for r in (*result.promotions, *result.coupons)}
    stamp = now()
    for priced in result.lines:
        order = order_of_sku[priced.line.sku_id]
        for share in priced.discounts:
            rule = rules.get(share["rule"])
            if rule is None:
                continue              # the level and points are not promotions
            row = rows.setdefault((share["rule"], order["id"]), {
                "promotion_id": rule.id if isinstance(rule, pricing.Promotion) else None,
                "coupon_id": rule.id if isinstance(rule, pricing.Coupon) else None,
                "member_id": member_id, "trade_id": trade["id"], "order_id": order["id"],
                "shop_id": order["shop_id"], "amount": pricing.ZERO, "quantity": 0,
                "funded_by": rule.funded_by, "returned": False, "created_at": stamp})
            row["amount"] += share["amount"]
            if priced.item_rule == share["rule"]:
                row["quantity"] += priced.line.quantity
    for coupon in result.coupons:     # a free-shipping coupon covers no line: its shop's order
        if not any(key[0] == coupon.rule for key in rows):
            order = next((o for o in orders if o["shop_id"] == coupon.shop_id), orders[0])
            rows[(coupon.rule, order["id"])] = {
                "promotion_id": None, "coupon_id": coupon.id, "member_id": member_id,
                "trade_id": trade["id"], "order_id": order["id"], "shop_id": order["shop_id"],
                "amount": pricing.ZERO, "quantity": 0, "funded_by": coupon.funded_by,
                "returned": False, "created_at": stamp}
    return list(rows.values())


def _take_promotion(promotion_id: int, units: int, amount) -> None:
    """Units and budget taken only while the promotion (and its zone) is live and has them."""
    moment = now()
    live_zones = select(PromotionZone.id).where(PromotionZone.enabled.is_(True),
                                                PromotionZone.starts_at <= moment,
                                                PromotionZone.ends_at > moment)
    taken = db.session.execute(
        update(Promotion).where(
            Promotion.id == promotion_id, Promotion.enabled.is_(True),
            Promotion.starts_at <= moment, Promotion.ends_at > moment,
            or_(Promotion.zone_id.is_(None), Promotion.zone_id.in_(live_zones)),
            or_(Promotion.quantity.is_(None), Promotion.sold + units <= Promotion.quantity),
            or_(Promotion.budget.is_(None), Promotion.spent + amount <= Promotion.budget))
        .values(sold=Promotion.sold + units, spent=Promotion.spent + amount)
        .execution_options(synchronize_session=False))
    forget_promotions()
    if taken.rowcount != 1:
        raise PriceChanged("A promotion sold out or spent its budget meanwhile; quote again",
                           {"promotions": [f"promotion:{promotion_id} limit_reached"]})


def _lock_coupon(coupon: pricing.Coupon, member_id: int, trade: dict, orders: list[dict],
                 usage: list[dict]) -> None:
    """The wallet coupon (a public code is claimed first) is locked to the trade."""
    wallet_id = coupon.wallet_id
    if wallet_id is None:
        wallet_id = claim(coupon.id, member_id, source="code").id
    first = next((row["order_id"] for row in usage if row["coupon_id"] == coupon.id),
                 orders[0]["id"])
    amount = sum((row["amount"] for row in usage if row["coupon_id"] == coupon.id), pricing.ZERO)
    locked = db.session.execute(
        update(MemberCoupon).where(MemberCoupon.id == wallet_id,
                                   MemberCoupon.member_id == member_id,
                                   MemberCoupon.status == "granted")
        .values(status="locked", trade_id=trade["id"], order_id=first, amount=amount)
        .execution_options(synchronize_session=False))
    if locked.rowcount != 1:
        raise PriceChanged("The coupon was used meanwhile",
                           {"coupon_codes": [f"{coupon.code}: no longer usable."]})


def use_coupons(trade_id: int) -> None:
    """The trade is paid: its locked coupons are used."""
    used = db.session.execute(
        update(MemberCoupon).where(MemberCoupon.trade_id == trade_id,
                                   MemberCoupon.status == "locked")
        .values(status="used", used_at=now())
        .returning(MemberCoupon.coupon_id).execution_options(synchronize_session=False)).all()
    for (coupon_id,) in used:
        db.session.execute(update(Coupon).where(Coupon.id == coupon_id)
                           .values(used=Coupon.used + 1)
                           .execution_options(synchronize_session=False))


def give_back_trade(trade) -> None:
    """A cancelled trade gives back everything its price took, exactly once: units and
    budgets, locked coupons, spent points."""
    _return_usage(PromotionUsage.trade_id == trade.id)
    db.session.execute(
        update(MemberCoupon).where(MemberCoupon.trade_id == trade.id,
                                   MemberCoupon.status == "locked")
        .values(status="granted", trade_id=None, order_id=None, amount=None)
        .execution_options(synchronize_session=False))
    spent = (trade.pricing or {}).get("points_used", 0)
    if spent:
        from services.points import give_back

        give_back(trade.member_id, spent, trade.trade_no)


def give_back_order(order) -> None:
    """A fully refunded order gives back its part, exactly once: its usage rows (units,
    budget), the points it spent, and a coupon once every order it covered is refunded (the
    coupon comes back if it is still valid, else it is expired)."""
    _return_usage(PromotionUsage.order_id == order.id)
    rate = current_app.config["POINTS_PER_YUAN"]
    points = sum((Decimal(d["amount"]) for line in order.lines for d in line.discounts
                  if d["rule"] == "points"), Decimal(0))
    if points:
        from services.points import give_back

        give_back(order.member_id, int(points * rate), order.order_no)
    open_orders = db.session.scalars(select(PromotionUsage.coupon_id).where(
        PromotionUsage.trade_id == order.trade_id, PromotionUsage.coupon_id.is_not(None),
        PromotionUsage.returned.is_(False))).all()
    for wallet in db.session.scalars(select(MemberCoupon).where(
            MemberCoupon.trade_id == order.trade_id, MemberCoupon.status == "used")).all():
        if wallet.coupon_id in open_orders:
            continue
        status = "granted" if now() < wallet.coupon.ends_at else "expired"
        back = db.session.execute(
            update(MemberCoupon).where(MemberCoupon.id == wallet.id,
                                       MemberCoupon.status == "used")
            .values(status=status, trade_id=None, order_id=None, amount=None, used_at=None)
            .execution_options(synchronize_session=False))
        if back.rowcount:
            db.session.execute(update(Coupon).where(Coupon.id == wallet.coupon_id)
                               .values(used=Coupon.used - 1)
                               .execution_options(synchronize_session=False))


def _return_usage(condition) -> None:
    returned = db.session.execute(
        update(PromotionUsage).where(condition, PromotionUsage.returned.is_(False))
        .values(returned=True)
        .returning(PromotionUsage.promotion_id, PromotionUsage.quantity, PromotionUsage.amount)
        .execution_options(synchronize_session=False)).all()
    for promotion_id, quantity, amount in returned:
        if promotion_id is not None:
            db.session.execute(update(Promotion).where(Promotion.id == promotion_id)
                               .values(sold=Promotion.sold - quantity,
                                       spent=Promotion.spent - amount)
                               .execution_options(synchronize_session=False))
            forget_promotions()


@scheduled("marketing.expire_coupons")
def expire_coupons() -> int:
    """Wallet coupons past their coupon's end are expired."""
    ended = select(Coupon.id).where(Coupon.ends_at <= now())
    done = db.session.execute(
        update(MemberCoupon).where(MemberCoupon.status == "granted",
                                   MemberCoupon.coupon_id.in_(ended))
        .values(status="expired").execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return done


# -- promotions, zones, batch issues ---------------------------------------------------------------

MAX_TIERS = 10
MAX_ISSUE_MEMBERS = 100_000
ISSUE_JOB = "workers.marketing.issue_coupons"


def _money_text(value) -> Decimal | None:
    """A positive amount with at most two decimals, given as text or a number, else None."""
    from decimal import InvalidOperation

    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount <= 0 or amount != amount.quantize(pricing.CENT):
        return None
    return amount


def _checked_rules(kind: str, rules) -> dict:
    """A promotion's `rules` for its kind, normalised (amounts as "0.00" text)."""
    if not isinstance(rules, dict):
        raise ValidationFailed.field("rules", "An object; see the kind's shape.")
    if kind in ("special_price", "flash_sale"):
        prices = rules.get("prices")
        if not isinstance(prices, dict) or not prices:
            raise ValidationFailed.field("rules", 'Needs "prices": {"<sku_id>": "9.90"}.')
        clean = {}
        for sku_id, price in prices.items():
            amount = _money_text(price)
            if not str(sku_id).isdigit() or amount is None:
                raise ValidationFailed.field("rules", f"prices.{sku_id}: a positive price.")
            clean[str(int(sku_id))] = f"{amount:.2f}"
        return {"prices": clean}
    tiers = rules.get("tiers")
    if not isinstance(tiers, list) or not 0 < len(tiers) <= MAX_TIERS or \
            not all(isinstance(t, dict) for t in tiers):
        raise ValidationFailed.field("rules", f'Needs "tiers": 1 to {MAX_TIERS} objects.')
    if kind == "threshold":
        clean = []
        for n, tier in enumerate(tiers):
            threshold, amount = _money_text(tier.get("threshold")), _money_text(tier.get("amount"))
            if threshold is None or amount is None or amount >= threshold:
                raise ValidationFailed.field(
                    "rules", f"tiers.{n}: threshold and amount, amount below the threshold.")
            clean.append({"threshold": f"{threshold:.2f}", "amount": f"{amount:.2f}"})
        return {"tiers": sorted(clean, key=lambda t: Decimal(t["threshold"])),
                "repeat": bool(rules.get("repeat", False))}
    clean = []
    for n, tier in enumerate(tiers):
        count, off = tier.get("count"), _money_text(tier.get("percent_off"))
        if isinstance(count, bool) or not isinstance(count, int) or not 1 < count <= 999 or \
                off is None or off >= 100:
            raise ValidationFailed.field(
                "rules", f"tiers.{n}: count (2 to 999) and percent_off (under 100).")
        clean.append({"count": count, "percent_off": f"{off:.2f}"})
    return {"tiers": sorted(clean, key=lambda t: t["count"])}


def check_promotion(promotion: Promotion) -> Promotion:
    """What a promotion must say to be saved: 422 naming the field otherwise. A shop's own
    promotion is merchant-funded; only a platform promotion may be platform-funded."""
    if promotion.kind not in PROMOTION_KINDS:
        raise ValidationFailed.field("kind", f"One of: {', '.join(PROMOTION_KINDS)}.")
    promotion.rules = _checked_rules(promotion.kind, promotion.rules)
    promotion.scope = promotion.scope or "all"
    if promotion.scope not in PROMOTION_SCOPES:
        raise ValidationFailed.field("scope", f"One of: {', '.join(PROMOTION_SCOPES)}.")
    promotion.scope_ids = promotion.scope_ids if promotion.scope_ids is not None else []
    if not isinstance(promotion.scope_ids, list) or \
            not all(is_row_id(i) for i in promotion.scope_ids):
        raise ValidationFailed.field("scope_ids", "A list of ids.")
    if promotion.scope not in ("all", "shop") and not promotion.scope_ids:
        raise ValidationFailed.field("scope_ids", "The categories, brands or SPUs it covers.")
    if promotion.starts_at is None or promotion.ends_at is None or \
            promotion.ends_at <= promotion.starts_at:
        raise ValidationFailed.field("ends_at", "After starts_at.")
    promotion.funded_by = promotion.funded_by or ("merchant" if promotion.shop_id else "platform")
    if promotion.funded_by not in ("merchant", "platform") or \
            (promotion.shop_id and promotion.funded_by == "platform"):
        raise ValidationFailed.field("funded_by", "merchant, or platform for a platform promotion.")
    for name in ("per_member_limit", "quantity"):
        value = getattr(promotion, name)
        if value is not None and (not isinstance(value, int) or value <= 0):
            raise ValidationFailed.field(name, "A whole number above 0, or empty for no limit.")
    if promotion.kind == "flash_sale" and promotion.quantity is None:
        raise ValidationFailed.field("quantity", "A flash sale sells a limited quantity.")
    promotion.sold, promotion.spent = promotion.sold or 0, promotion.spent or Decimal(0)
    if promotion.quantity is not None and promotion.quantity < promotion.sold:
        raise ValidationFailed.field("quantity", f"At least the {promotion.sold} sold.")
    if promotion.budget is not None and promotion.budget < promotion.spent:
        raise ValidationFailed.field("budget", f"At least the {promotion.spent:.2f} spent.")
    if promotion.cap is not None and promotion.cap <= 0:
        raise ValidationFailed.field("cap", "More than 0.00.")
    if promotion.priority is None:
        promotion.priority = 0
    if promotion.zone_id is not None:
        zone = visible_row(PromotionZone, promotion.zone_id)
        if zone is None or (zone.shop_id is not None and zone.shop_id != promotion.shop_id):
            raise ValidationFailed.field("zone_id", "A zone of the same shop (or the platform).")
    return promotion


def check_zone(zone: PromotionZone) -> PromotionZone:
    if zone.kind not in ("zone", "event"):
        raise ValidationFailed.field("kind", "zone, or event (专场).")
    if not isinstance(zone.spu_ids, list) or not zone.spu_ids or \
            not all(is_row_id(i) for i in zone.spu_ids):
        raise ValidationFailed.field("spu_ids", "The SPUs it shows: a list of ids.")
    if zone.starts_at is None or zone.ends_at is None or zone.ends_at <= zone.starts_at:
        raise ValidationFailed.field("ends_at", "After starts_at.")
    if zone.banner_url is not None and not str(zone.banner_url).startswith(("https://", "/")):
        raise ValidationFailed.field("banner_url", "An https:// URL or a path of our storage.")
    return zone


def start_issue(coupon_id, member_ids, actor_name: str) -> CouponIssue:
    """Issue a coupon to many members in the background: the batch is recorded now and a job
    issues it after the commit (each member once per batch)."""
    coupon = visible_row(Coupon, coupon_id)
    if coupon is None:
        raise NotFoundError("Not found")
    if not isinstance(member_ids, list) or not 0 < len(member_ids) <= MAX_ISSUE_MEMBERS or \
            not all(is_row_id(i) for i in member_ids):
        raise ValidationFailed.field("member_ids", f"1 to {MAX_ISSUE_MEMBERS} member ids.")
    batch = CouponIssue(coupon_id=coupon.id, shop_id=coupon.shop_id,
                        member_ids=sorted(set(member_ids)), status="queued", issued=0,
                        refused={}, created_by=actor_name, created_at=now())
    db.session.add(batch)
    db.session.flush()
    enqueue_after_commit(db.session, ISSUE_JOB, batch.id, job_id=f"coupon-issue-{batch.id}")
    return batch


def run_issue(batch_id: int) -> CouponIssue | None:
    """The job: each member of the batch gets the coupon unless they already did in this
    batch (a re-run issues nothing twice) or a limit refuses (counted by reason)."""
    batch = db.session.get(CouponIssue, batch_id)
    if batch is None or batch.status == "done":
        return batch
    done = set(db.session.scalars(select(MemberCoupon.member_id).where(
        MemberCoupon.issue_id == batch.id)))
    refused: dict[str, int] = {}
    for member_id in batch.member_ids:
        if member_id in done:
            continue
        try:
            claim(batch.coupon_id, member_id, source="issue", issue_id=batch.id)
            db.session.commit()
        except (ClaimRefused, ValidationFailed) as refusal:
            db.session.rollback()
            reason = refusal.reason if isinstance(refusal, ClaimRefused) else "no_member"
            refused[reason] = refused.get(reason, 0) + 1
    batch = db.session.get(CouponIssue, batch_id)
    batch.issued = db.session.scalar(select(func.count()).select_from(MemberCoupon).where(
        MemberCoupon.issue_id == batch.id))
    batch.refused, batch.status, batch.finished_at = refused, "done", now()
    db.session.commit()
    return batch
