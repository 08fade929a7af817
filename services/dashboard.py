"""Dashboard panels: each center registers its figures here; every figure is shop-scoped.

A panel is a snapshot (its data function takes no argument) or covers a period of business
days (`days` is its default window; its data function takes `start` and `end`, dates inclusive,
each defaulting to that window ending today). Each data function runs one or two queries."""
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Callable

from sqlalchemy import func, literal

from flask_babel import lazy_gettext as _l

from app.extensions import db
from services.actor import scope_query
from services.clock import business_date, business_day_bounds, business_zone
from services.errors import ValidationFailed

# the longest period a dashboard shows, in business days
MAX_DAYS = 366
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)


@dataclass(frozen=True)
class Panel:
    key: str
    title: object  # a lazy translatable string
    chart: str  # "bar" | "line" | "doughnut"
    # (permission, view) the viewer needs; the panel is hidden otherwise
    permission: tuple[str, str]
    data: Callable[..., dict]
    # the default window in business days of a panel over a period; None: a snapshot
    days: int | None = None


_panels: list[Panel] = []


def register_panel(panel: Panel) -> None:
    if all(p.key != panel.key for p in _panels):
        _panels.append(panel)


def panels() -> list[Panel]:
    return list(_panels)


# -- periods -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Period:
    """Business days from `start` to `end`, both included."""
    start: date
    end: date

    @property
    def since(self):
        return business_day_bounds(self.start)[0]

    @property
    def until(self):
        return business_day_bounds(self.end)[1]

    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def covers(self, column):
        """The SQL condition: `column` (a UTC time) falls within the period."""
        return (column >= self.since) & (column < self.until)


def _day(value, field: str) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, date):
        day = value
    else:
        text = value.strip() if isinstance(value, str) else ""
        try:
            day = date.fromisoformat(text) if len(text) == 10 else None
        except ValueError:
            day = None
        if day is None:
            raise ValidationFailed.field(field, "A date such as 2027-03-01.")
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValidationFailed.field(
            field, f"From {FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()}.")
    return day


def requested_period(start=None, end=None) -> tuple[date | None, date | None]:
    """The period a viewer asked for (`from`, `to`: ISO dates, business days, inclusive):
    (None, None) when neither is given (each panel keeps its own window); a missing `to` is
    today, a missing `from` 30 days before `to`. Refuses bad dates, `from` after `to` and
    periods longer than MAX_DAYS (naming the field)."""
    start_day, end_day = _day(start, "from"), _day(end, "to")
    if start_day is None and end_day is None:
        return None, None
    end_day = end_day or max(business_date(), start_day)
    start_day = start_day or end_day - timedelta(days=29)
    if start_day > end_day:
        raise ValidationFailed.field("from", "On or before `to`.")
    if (end_day - start_day).days >= MAX_DAYS:
        raise ValidationFailed.field("from", f"At most {MAX_DAYS} days.")
    return start_day, end_day


def period(start=None, end=None, days: int = 30) -> Period:
    """The period of a panel: the days asked for, or the `days` ending today."""
    start_day, end_day = requested_period(start, end)
    if start_day is None:
        end_day = business_date()
        start_day = end_day - timedelta(days=days - 1)
    return Period(start_day, end_day)


def figures(panel: Panel, start=None, end=None) -> dict:
    """A panel with its figures (and its period, when it covers one)."""
    if panel.days is None:
        data, span = panel.data(), None
    else:
        span = period(start, end, panel.days)
        data = panel.data(span.start, span.end)
    return {"key": panel.key, "title": str(panel.title), "chart": panel.chart,
            "from": span.start.isoformat() if span else None,
            "to": span.end.isoformat() if span else None, **data}


def visible_figures(can: Callable[[str, str], bool], start=None, end=None) -> list[dict]:
    """The figures of every panel the viewer may see (`can(permission, view)`)."""
    return [figures(p, start, end) for p in panels() if can(*p.permission)]


# -- helpers -------------------------------------------------------------------------------------

def _series(keys, labels, values, **extra) -> dict:
    return {"keys": list(keys), "labels": [str(t) for t in labels], "values": list(values),
            **extra}


def _counts(labels: dict, rows) -> dict:
    """Counts by status (or kind) in the order of `labels` ({value: label})."""
    counts = {getattr(k, "value", k): n for k, n in rows}
    keys = [getattr(k, "value", k) for k in labels]
    return _series(keys, labels.values(), [counts.get(k, 0) for k in keys])


def _per_day(span: Period, stamped_rows, money: bool = False) -> dict:
    """Sum (UTC stamp, amount) rows into the period's business days (one label each)."""
    zone = business_zone()
    totals: dict = {}
    for stamp, amount in stamped_rows:
        day = stamp.astimezone(zone).date()
        totals[day] = totals.get(day, 0) + amount
    days = [d.isoformat() for d in span.days()]
    if money:
        values = [f"{Decimal(totals.get(d, 0)):.2f}" for d in span.days()]
    else:
        values = [int(totals.get(d, 0)) for d in span.days()]
    return _series(days, days, values)


def _money(value) -> str:
    return f"{Decimal(value or 0):.2f}"


# -- shops, audit, events ------------------------------------------------------------------------

def shops_by_status() -> dict:
    from models.shop import STATUS_LABELS, Shop

    return _counts(STATUS_LABELS, scope_query(
        db.session.query(Shop.status, func.count(Shop.id)), Shop).group_by(Shop.status))


def audit_activity(start=None, end=None) -> dict:
    """Writes per business day (the viewer's shop only)."""
    from models.audit import AuditLog

    span = period(start, end, 14)
    return _per_day(span, scope_query(db.session.query(AuditLog.created_at, literal(1)),
                                      AuditLog).filter(span.covers(AuditLog.created_at)))


def deliveries_by_status() -> dict:
    from models.events import DELIVERY_STATUS_LABELS, EventDelivery

    return _counts(DELIVERY_STATUS_LABELS, db.session.query(
        EventDelivery.status, func.count(EventDelivery.id)).group_by(EventDelivery.status))


register_panel(Panel("shops", _l("Shops by status"), "bar", ("can_list", "ShopView"),
                     shops_by_status))
register_panel(Panel("audit", _l("Writes per day"), "line", ("can_list", "AuditLogView"),
                     audit_activity, days=14))
register_panel(Panel("deliveries", _l("Event deliveries"), "doughnut",
                     ("can_list", "EventDeliveryView"), deliveries_by_status))


# -- products and stock --------------------------------------------------------------------------

def spus_by_status() -> dict:
    from models.product import SPU_STATUS_LABELS, Spu

    return _counts(SPU_STATUS_LABELS, scope_query(
        db.session.query(Spu.status, func.count(Spu.id)), Spu).group_by(Spu.status))


def spus_by_category() -> dict:
    """SPUs per top-level category (two queries: counts per category path, then names)."""
    from services.product import spus_by_top_category

    counts = spus_by_top_category()
    return _series(counts, counts, counts.values())


def low_stock() -> dict:
    """Stock rows at or below their SKU's alert quantity, per warehouse (the viewer's shop
    only)."""
    from models.inventory import Stock, Warehouse
    from models.product import Sku

    rows = scope_query(db.session.query(Warehouse.code, func.count(Stock.id))
                       .join(Warehouse, Warehouse.id == Stock.warehouse_id)
                       .join(Sku, Sku.id == Stock.sku_id), Stock) \
        .filter(Sku.stock_alert_qty > 0, Stock.on_hand - Stock.reserved <= Sku.stock_alert_qty) \
        .group_by(Warehouse.id, Warehouse.code).order_by(Warehouse.code, Warehouse.id).all()
    return _series([c for c, _ in rows], [c for c, _ in rows], [n for _, n in rows])


def stock_value() -> dict:
    """Stock value per warehouse: on hand × the SKU's cost price (the viewer's goods only)."""
    from services.wms import stock_value_by_warehouse

    rows = stock_value_by_warehouse()
    return _series([c for c, _ in rows], [c for c, _ in rows], [_money(v) for _, v in rows])


register_panel(Panel("spu_status", _l("Products by status"), "bar", ("can_list", "SpuView"),
                     spus_by_status))
register_panel(Panel("spu_category", _l("Products by category"), "doughnut",
                     ("can_list", "SpuView"), spus_by_category))
register_panel(Panel("low_stock", _l("Low stock by warehouse"), "bar", ("can_list", "StockView"),
                     low_stock))
register_panel(Panel("stock_value", _l("Stock value by warehouse"), "bar",
                     ("can_list", "StockView"), stock_value))


# -- orders --------------------------------------------------------------------------------------

# orders that count as sales: paid, whatever happened after (closed comes with refunds)
SOLD = ("paid", "fulfilling", "shipped", "delivered", "completed")
TOP_SKUS = 10


def orders_per_day(start=None, end=None) -> dict:
    """Orders placed per business day (the viewer's shop only)."""
    from models.order import Order

    span = period(start, end, 14)
    return _per_day(span, scope_query(db.session.query(Order.created_at, literal(1)), Order)
                    .filter(span.covers(Order.created_at)))


def gmv_per_day(start=None, end=None) -> dict:
    """GMV: the payable of orders paid per business day, to the cent (as text)."""
    from models.order import Order

    span = period(start, end, 14)
    return _per_day(span, scope_query(db.session.query(Order.paid_at, Order.payable), Order)
                    .filter(span.covers(Order.paid_at), Order.status.in_(SOLD)), money=True)


def orders_by_status() -> dict:
    from models.order import ORDER_STATUS_LABELS, Order

    return _counts(ORDER_STATUS_LABELS, scope_query(
        db.session.query(Order.status, func.count(Order.id)), Order).group_by(Order.status))


def _top_skus(measure, span: Period) -> list:
    from models.order import Order, OrderLine

    query = scope_query(db.session.query(OrderLine.sku_id, OrderLine.sku_code, measure)
                        .join(Order, Order.id == OrderLine.order_id), OrderLine) \
        .filter(Order.status.in_(SOLD), span.covers(Order.paid_at)) \
        .group_by(OrderLine.sku_id, OrderLine.sku_code) \
        .order_by(measure.desc(), OrderLine.sku_id).limit(TOP_SKUS)
    return [(code, total) for _, code, total in query.all()]


def top_skus_by_gmv(start=None, end=None) -> dict:
    """The SKUs sold for the most in the period (payable of sold orders, by payment day)."""
    from models.order import OrderLine

    rows = _top_skus(func.sum(OrderLine.payable), period(start, end, 30))
    return _series([c for c, _ in rows], [c for c, _ in rows], [_money(t) for _, t in rows])


def top_skus_by_quantity(start=None, end=None) -> dict:
    from models.order import OrderLine

    rows = _top_skus(func.sum(OrderLine.quantity), period(start, end, 30))
    return _series([c for c, _ in rows], [c for c, _ in rows], [int(t) for _, t in rows])


def notices_by_status() -> dict:
    """Shipping notices by status: what dispatch and the warehouses have in hand."""
    from models.order import NOTICE_STATUS_LABELS, ShippingNotice

    return _counts(NOTICE_STATUS_LABELS, scope_query(
        db.session.query(ShippingNotice.status, func.count(ShippingNotice.id)), ShippingNotice)
        .group_by(ShippingNotice.status))


register_panel(Panel("orders_per_day", _l("Orders per day"), "line", ("can_list", "OrderView"),
                     orders_per_day, days=14))
register_panel(Panel("gmv_per_day", _l("GMV per day"), "line", ("can_list", "OrderView"),
                     gmv_per_day, days=14))
register_panel(Panel("order_status", _l("Orders by status"), "bar", ("can_list", "OrderView"),
                     orders_by_status))
register_panel(Panel("top_sku_gmv", _l("Top SKUs by GMV"), "bar", ("can_list", "OrderView"),
                     top_skus_by_gmv, days=30))
register_panel(Panel("top_sku_quantity", _l("Top SKUs by quantity"), "bar",
                     ("can_list", "OrderView"), top_skus_by_quantity, days=30))
register_panel(Panel("notice_status", _l("Shipping notices by status"), "bar",
                     ("can_list", "ShippingNoticeView"), notices_by_status))


# -- money (payment center, after-sales, finance, invoices) --------------------------------------

def payments_per_day(start=None, end=None) -> dict:
    """Money received through the gateways per business day (succeeded attempts)."""
    from models.payment import Payment, PaymentStatus

    span = period(start, end, 14)
    return _per_day(span, db.session.query(Payment.paid_at, Payment.amount).filter(
        Payment.status == PaymentStatus.succeeded, span.covers(Payment.paid_at)), money=True)


def refunds_per_day(start=None, end=None) -> dict:
    """Money given back through the gateways per business day (succeeded refunds)."""
    from models.payment import PaymentRefund, RefundStatus

    span = period(start, end, 14)
    return _per_day(span, db.session.query(PaymentRefund.finished_at, PaymentRefund.amount)
                    .filter(PaymentRefund.status == RefundStatus.succeeded,
                            span.covers(PaymentRefund.finished_at)), money=True)


def refund_rate(start=None, end=None) -> dict:
    """Of what buyers paid through the gateways in the period: kept and refunded (the refund
    rate is refunded ÷ paid)."""
    from models.payment import Payment, PaymentStatus

    span = period(start, end, 30)
    paid, refunded = db.session.query(
        func.coalesce(func.sum(Payment.amount), 0),
        func.coalesce(func.sum(Payment.refunded_amount), 0)).filter(
        Payment.status == PaymentStatus.succeeded, span.covers(Payment.paid_at)).one()
    paid, refunded = Decimal(paid), Decimal(refunded)
    return _series(["kept", "refunded"], [_l("Kept"), _l("Refunded")],
                   [_money(paid - refunded), _money(refunded)],
                   rate=f"{(refunded / paid if paid else Decimal(0)):.4f}")


def after_sale_refunds_per_day(start=None, end=None) -> dict:
    """After-sales refunded per business day (the viewer's shop only)."""
    from models.after_sale import AfterSale, AfterSaleStatus

    span = period(start, end, 14)
    return _per_day(span, scope_query(db.session.query(AfterSale.finished_at, AfterSale.amount),
                                      AfterSale)
                    .filter(AfterSale.status == AfterSaleStatus.refunded,
                            span.covers(AfterSale.finished_at)), money=True)


def after_sales_by_status() -> dict:
    """After-sales by status: the queue waiting for the shop, the buyer or the refund."""
    from models.after_sale import AFTER_SALE_STATUS_LABELS, AfterSale

    return _counts(AFTER_SALE_STATUS_LABELS, scope_query(
        db.session.query(AfterSale.status, func.count(AfterSale.id)), AfterSale)
        .group_by(AfterSale.status))


def settlement_due() -> dict:
    """What statements owe shops and is not paid yet, drafts and approved (the viewer's shop
    only)."""
    from models.finance import Settlement

    rows = dict(scope_query(db.session.query(Settlement.status, func.sum(Settlement.net)),
                            Settlement).filter(Settlement.status.in_(["draft", "approved"]))
                .group_by(Settlement.status).all())
    return _series(["draft", "approved"], [_l("Draft"), _l("Approved")],
                   [_money(rows.get(k)) for k in ("draft", "approved")])


def invoices_by_status() -> dict:
    from models.invoice import INVOICE_STATUSES, Invoice

    return _counts({s: s for s in INVOICE_STATUSES}, scope_query(
        db.session.query(Invoice.status, func.count(Invoice.id)), Invoice)
        .group_by(Invoice.status))


register_panel(Panel("payments_per_day", _l("Payments per day"), "line",
                     ("can_list", "PaymentView"), payments_per_day, days=14))
register_panel(Panel("refunds_per_day", _l("Refunds per day"), "line",
                     ("can_list", "PaymentRefundView"), refunds_per_day, days=14))
register_panel(Panel("refund_rate", _l("Refund rate"), "doughnut",
                     ("can_list", "PaymentView"), refund_rate, days=30))
register_panel(Panel("after_sale_refunds", _l("After-sales refunded per day"), "line",
                     ("can_list", "AfterSaleView"), after_sale_refunds_per_day, days=14))
register_panel(Panel("after_sale_status", _l("After-sales by status"), "bar",
                     ("can_list", "AfterSaleView"), after_sales_by_status))
register_panel(Panel("settlement_due", _l("Settlement due"), "bar",
                     ("can_list", "SettlementView"), settlement_due))
register_panel(Panel("invoice_status", _l("Invoices by status"), "bar",
                     ("can_list", "InvoiceView"), invoices_by_status))


# -- marketing, members, points, cards -----------------------------------------------------------

def coupon_usage(start=None, end=None) -> dict:
    """Coupons taken by orders sold in the period: per coupon, what they took off (their
    cost; the viewer's shop only) and how many trades used them."""
    from models.marketing import Coupon, PromotionUsage
    from models.order import Order

    span = period(start, end, 30)
    cost = func.sum(PromotionUsage.amount)
    rows = scope_query(db.session.query(Coupon.name, func.count(func.distinct(
        PromotionUsage.trade_id)), cost)
        .join(Coupon, Coupon.id == PromotionUsage.coupon_id)
        .join(Order, Order.id == PromotionUsage.order_id), PromotionUsage) \
        .filter(PromotionUsage.returned.is_(False), Order.status.in_(SOLD),
                span.covers(Order.paid_at)) \
        .group_by(Coupon.id, Coupon.name).order_by(cost.desc(), Coupon.id) \
        .limit(TOP_SKUS).all()
    return _series([n for n, _, _ in rows], [n for n, _, _ in rows],
                   [_money(c) for _, _, c in rows], uses=[u for _, u, _ in rows])


def promotion_gmv(start=None, end=None) -> dict:
    """What buyers paid for orders sold in the period that joined each promotion (the
    promotions' GMV; the viewer's shop only), and what the promotions cost."""
    from models.marketing import Promotion, PromotionUsage
    from models.order import Order

    span = period(start, end, 30)
    gmv = func.sum(Order.payable)
    rows = scope_query(db.session.query(Promotion.name, gmv, func.sum(PromotionUsage.amount))
                       .join(Promotion, Promotion.id == PromotionUsage.promotion_id)
                       .join(Order, Order.id == PromotionUsage.order_id), PromotionUsage) \
        .filter(PromotionUsage.returned.is_(False), Order.status.in_(SOLD),
                span.covers(Order.paid_at)) \
        .group_by(Promotion.id, Promotion.name).order_by(gmv.desc(), Promotion.id) \
        .limit(TOP_SKUS).all()
    return _series([n for n, _, _ in rows], [n for n, _, _ in rows],
                   [_money(g) for _, g, _ in rows], cost=[_money(c) for _, _, c in rows])


def members_by_level() -> dict:
    """How many members each level holds (platform data)."""
    from models.member import Member, MemberLevel

    levels = db.session.query(MemberLevel.id, MemberLevel.name) \
        .order_by(MemberLevel.growth_threshold).all()
    counts = dict(db.session.query(Member.level_id, func.count(Member.id))
                  .group_by(Member.level_id).all())
    return _series([str(i) for i, _ in levels] + ["none"],
                   [n for _, n in levels] + [_l("No level")],
                   [counts.get(i, 0) for i, _ in levels] + [counts.get(None, 0)])


def new_members_per_day(start=None, end=None) -> dict:
    """Members who joined per business day (platform data)."""
    from models.member import Member

    span = period(start, end, 14)
    return _per_day(span, db.session.query(Member.created_at, literal(1))
                    .filter(span.covers(Member.created_at)))


POINTS_REASONS = ("earn", "spend", "reverse", "expire")


def points_by_reason(start=None, end=None) -> dict:
    """Points moved in the period, by why: earned (positive), spent, reversed and expired
    (negative), as the points ledger sums them (platform data)."""
    from models.member import PointsLedger

    sums = dict(db.session.query(PointsLedger.reason, func.sum(PointsLedger.delta))
                .filter(period(start, end, 30).covers(PointsLedger.created_at))
                .group_by(PointsLedger.reason).all())
    return _series(POINTS_REASONS, POINTS_REASONS, [int(sums.get(r) or 0) for r in POINTS_REASONS])


def card_balances() -> dict:
    """What active cards still hold, by kind (what the platform owes their holders)."""
    from models.card import CARD_KINDS, Card

    sums = dict(db.session.query(Card.kind, func.sum(Card.balance))
                .filter(Card.status == "active").group_by(Card.kind).all())
    return _series(CARD_KINDS, CARD_KINDS, [_money(sums.get(k)) for k in CARD_KINDS])


register_panel(Panel("coupon_usage", _l("Coupon cost"), "bar", ("can_list", "CouponView"),
                     coupon_usage, days=30))
register_panel(Panel("promotion_gmv", _l("Promotion GMV"), "bar", ("can_list", "PromotionView"),
                     promotion_gmv, days=30))
register_panel(Panel("members_by_level", _l("Members by level"), "doughnut",
                     ("can_list", "MemberLevelView"), members_by_level))
register_panel(Panel("new_members", _l("New members per day"), "line",
                     ("can_list", "MemberView"), new_members_per_day, days=14))
register_panel(Panel("points_by_reason", _l("Points earned and used"), "bar",
                     ("can_list", "MemberView"), points_by_reason, days=30))
register_panel(Panel("card_balances", _l("Card balances outstanding"), "doughnut",
                     ("can_list", "CardView"), card_balances))


# -- customer service, reviews and moderation ----------------------------------------------------

def tickets_by_status() -> dict:
    """Tickets by status: open and pending ones are the service queue (the viewer's shop only)."""
    from models.ticket import TICKET_STATUSES, Ticket

    return _counts({s: s for s in TICKET_STATUSES}, scope_query(
        db.session.query(Ticket.status, func.count(Ticket.id)), Ticket).group_by(Ticket.status))


def moderation_outcomes(start=None, end=None) -> dict:
    """Reviews, follow-ups and replies written in the period, by where moderation (or staff)
    put them; `manual_review` is the queue waiting for a person."""
    from models.review import REVIEW_STATUSES, Review

    span = period(start, end, 30)
    return _counts({s: s for s in REVIEW_STATUSES}, scope_query(
        db.session.query(Review.status, func.count(Review.id)), Review)
        .filter(span.covers(Review.created_at)).group_by(Review.status))


def ratings_by_star(start=None, end=None) -> dict:
    """Shown reviews written in the period by rating (the viewer's shop only)."""
    from models.review import VISIBLE_STATUSES, Review

    span = period(start, end, 30)
    counts = dict(scope_query(db.session.query(Review.rating, func.count(Review.id)), Review)
                  .filter(Review.kind == "review", Review.status.in_(VISIBLE_STATUSES),
                          span.covers(Review.created_at))
                  .group_by(Review.rating).all())
    return _series([str(n) for n in range(1, 6)], [f"{n}★" for n in range(1, 6)],
                   [counts.get(n, 0) for n in range(1, 6)])


register_panel(Panel("ticket_status", _l("Tickets by status"), "bar", ("can_list", "TicketView"),
                     tickets_by_status))
register_panel(Panel("moderation_outcomes", _l("Moderation outcomes"), "doughnut",
                     ("can_list", "ReviewView"), moderation_outcomes, days=30))
register_panel(Panel("ratings_by_star", _l("Ratings"), "bar", ("can_list", "ReviewView"),
                     ratings_by_star, days=30))


# -- risk control --------------------------------------------------------------------------------

def risk_by_rule(start=None, end=None) -> dict:
    """Decisions in the period by the rules that fired in them, most first (platform data)."""
    from models.risk import RiskDecision

    span = period(start, end, 30)
    counts: dict[str, int] = {}
    for (fired,) in db.session.query(RiskDecision.fired).filter(
            span.covers(RiskDecision.created_at)):
        for name in {item.get("name") for item in fired or []}:
            counts[name] = counts.get(name, 0) + 1
    rows = sorted(counts.items(), key=lambda item: (-item[1], item[0] or ""))
    return _series([n for n, _ in rows], [n for n, _ in rows], [c for _, c in rows])


def top_flagged_members(start=None, end=None) -> dict:
    """The members most often flagged, held or blocked in the period."""
    from models.member import Member
    from models.risk import RiskDecision

    span = period(start, end, 30)
    flagged = func.count(RiskDecision.id)
    rows = db.session.query(Member.id, Member.account, flagged) \
        .join(Member, Member.id == RiskDecision.member_id) \
        .filter(span.covers(RiskDecision.created_at),
                RiskDecision.decision.in_(("review", "hold", "block"))) \
        .group_by(Member.id, Member.account).order_by(flagged.desc(), Member.id) \
        .limit(TOP_SKUS).all()
    return _series([str(i) for i, _, _ in rows], [a for _, a, _ in rows],
                   [n for _, _, n in rows])


register_panel(Panel("risk_by_rule", _l("Risk decisions by rule"), "bar",
                     ("can_list", "RiskDecisionView"), risk_by_rule, days=30))
register_panel(Panel("top_flagged_members", _l("Most flagged members"), "bar",
                     ("can_list", "RiskDecisionView"), top_flagged_members, days=30))


# -- warehouse, logistics, tracking, customs -----------------------------------------------------

def pick_lists_by_status() -> dict:
    """Pick lists by status: the warehouse's open work (the viewer's shop only)."""
    from models.wms import PICK_STATUSES, PickList

    return _counts({s: s for s in PICK_STATUSES}, scope_query(
        db.session.query(PickList.status, func.count(PickList.id)), PickList)
        .group_by(PickList.status))


def freight_paid_vs_cost(start=None, end=None) -> dict:
    """Per carrier over the shipments shipped in the period: the freight buyers paid and what
    the carrier charges (two bars each; the viewer's shop only)."""
    from services.logistics import freight_report

    span = period(start, end, 30)
    keys, labels, values = [], [], []
    for row in freight_report(span.start.isoformat(), span.end.isoformat())["carriers"]:
        name = row["code"] or "—"
        for part, label in (("freight", _l("paid")), ("cost", _l("cost"))):
            keys.append(f"{name}:{part}")
            labels.append(f"{name} {label}")
            values.append(row[part])
    return _series(keys, labels, values)


def tracking_scans(start=None, end=None) -> dict:
    """Carrier scans that happened in the period, by status (the viewer's shop only)."""
    from models.logistics import TRACKING_STATUSES, TrackingEvent

    span = period(start, end, 14)
    return _counts({s: s for s in TRACKING_STATUSES}, scope_query(
        db.session.query(TrackingEvent.status, func.count(TrackingEvent.id)), TrackingEvent)
        .filter(span.covers(TrackingEvent.occurred_at)).group_by(TrackingEvent.status))


def customs_by_status() -> dict:
    from models.logistics import CUSTOMS_STATUSES, CustomsDeclaration

    return _counts({s: s for s in CUSTOMS_STATUSES}, scope_query(
        db.session.query(CustomsDeclaration.status, func.count(CustomsDeclaration.id)),
        CustomsDeclaration).group_by(CustomsDeclaration.status))


register_panel(Panel("pick_list_status", _l("Pick lists by status"), "bar",
                     ("can_list", "PickListView"), pick_lists_by_status))
register_panel(Panel("freight_paid_vs_cost", _l("Freight paid vs real cost"), "bar",
                     ("can_list", "CarrierView"), freight_paid_vs_cost, days=30))
register_panel(Panel("tracking_scans", _l("Carrier scans by status"), "bar",
                     ("can_list", "TrackingEventView"), tracking_scans, days=14))
register_panel(Panel("customs_status", _l("Customs declarations by status"), "bar",
                     ("can_list", "CustomsDeclarationView"), customs_by_status))


# -- operations: storefront, prices, webhooks, messages, exports --------------------------------

def live_slots_by_position() -> dict:
    """Storefront slots live now (enabled and within their schedule), per position."""
    from models.storefront import StorefrontSlot
    from services.clock import now

    moment = now()
    rows = db.session.query(StorefrontSlot.position, func.count(StorefrontSlot.id)).filter(
        StorefrontSlot.enabled.is_(True),
        (StorefrontSlot.starts_at.is_(None)) | (StorefrontSlot.starts_at <= moment),
        (StorefrontSlot.ends_at.is_(None)) | (StorefrontSlot.ends_at > moment)) \
        .group_by(StorefrontSlot.position).order_by(StorefrontSlot.position).all()
    return _series([p for p, _ in rows], [p for p, _ in rows], [n for _, n in rows])


def price_batches_by_status() -> dict:
    """Price batches by status; `pending_approval` waits for a decision (the viewer's shop
    only)."""
    from models.prices import PRICE_BATCH_STATUSES, PriceBatch

    return _counts({s: s for s in PRICE_BATCH_STATUSES}, scope_query(
        db.session.query(PriceBatch.status, func.count(PriceBatch.id)), PriceBatch)
        .group_by(PriceBatch.status))


def webhook_deliveries(start=None, end=None) -> dict:
    """Webhook deliveries created in the period, by status (the viewer's shop only)."""
    from models.webhook import WEBHOOK_DELIVERY_STATUSES, WebhookDelivery

    span = period(start, end, 14)
    return _counts({s: s for s in WEBHOOK_DELIVERY_STATUSES}, scope_query(
        db.session.query(WebhookDelivery.status, func.count(WebhookDelivery.id)),
        WebhookDelivery).filter(span.covers(WebhookDelivery.created_at))
        .group_by(WebhookDelivery.status))


def messages_by_channel(start=None, end=None) -> dict:
    """Messages created in the period, per channel and status ("sms:sent", ...; the viewer's
    shop only)."""
    from models.message import MESSAGE_CHANNELS, MESSAGE_STATUSES, Message

    span = period(start, end, 14)
    counts = {(c, s): n for c, s, n in scope_query(
        db.session.query(Message.channel, Message.status, func.count(Message.id)), Message)
        .filter(span.covers(Message.created_at)).group_by(Message.channel, Message.status)}
    keys = [(c, s) for c in MESSAGE_CHANNELS for s in MESSAGE_STATUSES]
    return _series([f"{c}:{s}" for c, s in keys], [f"{c} {s}" for c, s in keys],
                   [counts.get(k, 0) for k in keys])


def exports_by_status(start=None, end=None) -> dict:
    """Exports asked for in the period, by status (the viewer's shop only)."""
    from models.export import EXPORT_STATUSES, ExportJob

    span = period(start, end, 30)
    return _counts({s: s for s in EXPORT_STATUSES}, scope_query(
        db.session.query(ExportJob.status, func.count(ExportJob.id)), ExportJob)
        .filter(span.covers(ExportJob.created_at)).group_by(ExportJob.status))


register_panel(Panel("storefront_live_slots", _l("Live storefront slots by position"), "bar",
                     ("can_list", "StorefrontSlotView"), live_slots_by_position))
register_panel(Panel("price_batch_status", _l("Price batches by status"), "bar",
                     ("can_list", "PriceBatchView"), price_batches_by_status))
register_panel(Panel("webhook_deliveries", _l("Webhook deliveries by status"), "doughnut",
                     ("can_list", "WebhookDeliveryView"), webhook_deliveries, days=14))
register_panel(Panel("messages", _l("Messages by channel and status"), "bar",
                     ("can_list", "MessageView"), messages_by_channel, days=14))
register_panel(Panel("export_status", _l("Exports by status"), "bar",
                     ("can_list", "ExportJobView"), exports_by_status, days=30))
