"""会员中心 points: earned on completed orders, reversed on refunds, expired at the end of the
year after they were earned; the balance is the sum of the ledger and never negative.

Every change locks the member's row first, so the balance written with it is exact and two
changes never both spend the same points. Points leave the oldest earned rows first.
"""
from datetime import datetime, time
from decimal import Decimal

from sqlalchemy import select

from app.extensions import db
from models.member import Member, PointsLedger
from models.order import Order
from services.clock import business_date, business_zone, now
from services.errors import ConflictError
from services.events import subscribe
from services.scheduler import scheduled

# Points earned per whole yuan paid (the member's level multiplies it).
EARNED_PER_YUAN = 1


def balance(member_id: int) -> int:
    last = db.session.scalars(select(PointsLedger.balance_after).where(
        PointsLedger.member_id == member_id).order_by(PointsLedger.id.desc()).limit(1)).first()
    return last or 0


def _lock_member(member_id: int) -> Member:
    return db.session.scalars(select(Member).where(Member.id == member_id)
                              .with_for_update()).one()


def _expiry(moment: datetime) -> datetime:
    """The end of the year after the one the points were earned in (business time)."""
    year = business_date(moment).year + 1
    return datetime.combine(datetime(year + 1, 1, 1).date(), time.min,
                            tzinfo=business_zone())


def earn(member_id: int, points: int, reference: str) -> PointsLedger | None:
    return _new_lot(member_id, points, "earn", reference)


def _new_lot(member_id: int, points: int, reason: str, reference: str) -> PointsLedger | None:
    """Points in (earned, or given back): a lot that expires like points earned now."""
    if points <= 0:
        return None
    _lock_member(member_id)
    moment = now()
    row = PointsLedger(member_id=member_id, delta=points, reason=reason, reference=reference,
                       remaining=points, expires_at=_expiry(moment),
                       balance_after=balance(member_id) + points, created_at=moment)
    db.session.add(row)
    db.session.flush()
    return row


def take(member_id: int, points: int, reason: str, reference: str,
         partial: bool = False) -> PointsLedger | None:
    """Points leave (spent or reversed), oldest earned first, never below zero. A spend
    larger than the balance is refused (409); a reversal (`partial`) takes what is left."""
    _lock_member(member_id)
    held = balance(member_id)
    if points > held and not partial:
        raise ConflictError("Not enough points", {"points": [f"Balance {held}."]})
    points = min(points, held)
    if points <= 0:
        return None
    left = points
    lots = db.session.scalars(select(PointsLedger).where(
        PointsLedger.member_id == member_id, PointsLedger.remaining > 0)
        .order_by(PointsLedger.expires_at, PointsLedger.id)).all()
    for lot in lots:
        used = min(lot.remaining, left)
        lot.remaining -= used
        left -= used
        if left == 0:
            break
    row = PointsLedger(member_id=member_id, delta=-points, reason=reason, reference=reference,
                       remaining=0, balance_after=balance(member_id) - points,
                       created_at=now())
    db.session.add(row)
    db.session.flush()
    return row


def give_back(member_id: int, points: int, reference: str) -> PointsLedger | None:
    """Points spent on a cancelled or refunded order come back (once per reference: the
    member's lock is taken before looking)."""
    _lock_member(member_id)
    if db.session.scalar(select(PointsLedger.id).where(
            PointsLedger.member_id == member_id, PointsLedger.reason == "return",
            PointsLedger.reference == reference)) is not None:
        return None
    return _new_lot(member_id, points, "return", reference)


@subscribe("order.completed", "points.earn_on_completed_order")
def _earned(payload: dict) -> None:
    """A completed order earns points (times the member's level multiplier) and growth."""
    from services.member import add_growth

    order = db.session.get(Order, payload["order_id"])
    if db.session.scalar(select(PointsLedger.id).where(
            PointsLedger.member_id == order.member_id, PointsLedger.reason == "earn",
            PointsLedger.reference == order.order_no)) is not None:
        return                                 # a repeat delivery of the event
    member = _lock_member(order.member_id)
    multiplier = member.level.points_multiplier if member.level is not None else Decimal(1)
    earn(order.member_id, int(int(order.payable) * EARNED_PER_YUAN * multiplier), order.order_no)
    add_growth(member, int(order.payable))


@subscribe("after_sale.refunded", "points.reverse_on_refund")
def _reversed(payload: dict) -> None:
    """Points an order earned go back with the money refunded (none before it completed)."""
    from models.after_sale import AfterSale

    request = db.session.get(AfterSale, payload["after_sale_id"])
    order = db.session.get(Order, request.order_id) if request else None
    earned = db.session.scalar(select(PointsLedger.delta).where(
        PointsLedger.reason == "earn", PointsLedger.reference == order.order_no)) \
        if order is not None else None
    if not earned or not order.payable:
        return
    share = int(earned * request.amount / order.payable)   # in proportion to what went back
    take(order.member_id, share, "reverse", request.after_sale_no, partial=True)


@scheduled("points.expire")
def expire_points() -> int:
    """Earned points past their expiry leave the balance (one `expire` row per member)."""
    moment = now()
    members = sorted(set(db.session.scalars(select(PointsLedger.member_id).where(
        PointsLedger.remaining > 0, PointsLedger.expires_at <= moment))))
    for member_id in members:
        _lock_member(member_id)
        due = db.session.scalars(select(PointsLedger).where(
            PointsLedger.member_id == member_id, PointsLedger.remaining > 0,
            PointsLedger.expires_at <= moment)).all()
        points = sum(lot.remaining for lot in due)
        for lot in due:
            lot.remaining = 0
        db.session.add(PointsLedger(
            member_id=member_id, delta=-points, reason="expire",
            reference=f"expiry {moment.date().isoformat()}", remaining=0,
            balance_after=balance(member_id) - points, created_at=moment))
        db.session.commit()
    return len(members)
