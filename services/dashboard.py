"""Dashboard panels: each center registers its figures here; every figure is shop-scoped."""
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Callable

from sqlalchemy import func, literal

from flask_babel import lazy_gettext as _l

from app.extensions import db
from services.actor import scope_query
from services.clock import business_date, business_zone, now


@dataclass(frozen=True)
class Panel:
    key: str
    title: object  # a lazy translatable string
    chart: str  # "bar" | "line" | "doughnut"
    # (permission, view) the viewer needs; the panel is hidden otherwise
    permission: tuple[str, str]
    data: Callable[[], dict]


_panels: list[Panel] = []


def register_panel(panel: Panel) -> None:
    if all(p.key != panel.key for p in _panels):
        _panels.append(panel)


def panels() -> list[Panel]:
    return list(_panels)


def shops_by_status() -> dict:
    from models.shop import STATUS_LABELS, Shop, ShopStatus

    rows = scope_query(db.session.query(Shop.status, func.count(Shop.id)), Shop) \
        .group_by(Shop.status).all()
    counts = {ShopStatus(status): n for status, n in rows}
    return {"keys": [s.value for s in STATUS_LABELS],
            "labels": [str(t) for t in STATUS_LABELS.values()],
            "values": [counts.get(status, 0) for status in STATUS_LABELS]}


def audit_activity(days: int = 14) -> dict:
    """Writes per business day over the last `days` days (the viewer's shop only)."""
    from models.audit import AuditLog

    today = business_date()
    start_day = today - timedelta(days=days - 1)
    zone = business_zone()
    since = now() - timedelta(days=days + 1)
    stamps = scope_query(db.session.query(AuditLog.created_at), AuditLog) \
        .filter(AuditLog.created_at >= since).all()
    counts: dict = {}
    for (stamp,) in stamps:
        day = stamp.astimezone(zone).date()
        if day >= start_day:
            counts[day] = counts.get(day, 0) + 1
    labels = [start_day + timedelta(days=i) for i in range(days)]
    return {"keys": [d.isoformat() for d in labels], "labels": [d.isoformat() for d in labels],
            "values": [counts.get(d, 0) for d in labels]}


def deliveries_by_status() -> dict:
    from models.events import DELIVERY_STATUS_LABELS, EventDelivery

    rows = db.session.query(EventDelivery.status, func.count(EventDelivery.id)) \
        .group_by(EventDelivery.status).all()
    counts = dict(rows)
    return {"keys": list(DELIVERY_STATUS_LABELS),
            "labels": [str(t) for t in DELIVERY_STATUS_LABELS.values()],
            "values": [counts.get(key, 0) for key in DELIVERY_STATUS_LABELS]}


register_panel(Panel("shops", _l("Shops by status"), "bar", ("can_list", "ShopView"),
                     shops_by_status))
register_panel(Panel("audit", _l("Writes per day"), "line", ("can_list", "AuditLogView"),
                     audit_activity))
register_panel(Panel("deliveries", _l("Event deliveries"), "doughnut",
                     ("can_list", "EventDeliveryView"), deliveries_by_status))


def spus_by_status() -> dict:
    from models.product import SPU_STATUS_LABELS
    from services.product import spus_by_status as counts_by_status

    counts = counts_by_status()
    return {"keys": [s.value for s in SPU_STATUS_LABELS],
            "labels": [str(t) for t in SPU_STATUS_LABELS.values()],
            "values": [counts.get(status, 0) for status in SPU_STATUS_LABELS]}


def spus_by_category() -> dict:
    from services.product import spus_by_top_category

    counts = spus_by_top_category()
    return {"keys": list(counts), "labels": list(counts), "values": list(counts.values())}


register_panel(Panel("spu_status", _l("Products by status"), "bar", ("can_list", "SpuView"),
                     spus_by_status))
register_panel(Panel("spu_category", _l("Products by category"), "doughnut",
                     ("can_list", "SpuView"), spus_by_category))


def low_stock() -> dict:
    """Low stock rows per warehouse (the viewer's shop only)."""
    from services.inventory import low_stock as rows

    counts: dict[str, int] = {}
    for stock in rows():
        counts[stock.warehouse.code] = counts.get(stock.warehouse.code, 0) + 1
    return {"keys": list(counts), "labels": list(counts), "values": list(counts.values())}


register_panel(Panel("low_stock", _l("Low stock by warehouse"), "bar", ("can_list", "StockView"),
                     low_stock))


def stock_value() -> dict:
    """Stock value per warehouse: on hand × the SKU's cost price (the viewer's goods only)."""
    from services.wms import stock_value_by_warehouse

    rows = stock_value_by_warehouse()
    return {"keys": [code for code, _ in rows], "labels": [code for code, _ in rows],
            "values": [f"{value:.2f}" for _, value in rows]}


register_panel(Panel("stock_value", _l("Stock value by warehouse"), "bar",
                     ("can_list", "StockView"), stock_value))


ORDER_DAYS = 14
# orders that count as sales: paid, whatever happened after (closed comes with refunds)
SOLD = ("paid", "fulfilling", "shipped", "delivered", "completed")


def _per_business_day(stamped_rows, days: int) -> tuple[list, dict]:
    """Sum (stamp, amount) rows into the last `days` business days."""
    zone = business_zone()
    start_day = business_date() - timedelta(days=days - 1)
    totals: dict = {}
    for stamp, amount in stamped_rows:
        day = stamp.astimezone(zone).date()
        if day >= start_day:
            totals[day] = totals.get(day, 0) + amount
    return [start_day + timedelta(days=i) for i in range(days)], totals


def orders_per_day(days: int = ORDER_DAYS) -> dict:
    """Orders placed per business day (the viewer's shop only)."""
    from models.order import Order

    rows = scope_query(db.session.query(Order.created_at, literal(1)), Order) \
        .filter(Order.created_at >= now() - timedelta(days=days + 1)).all()
    labels, counts = _per_business_day(rows, days)
    return {"keys": [d.isoformat() for d in labels], "labels": [d.isoformat() for d in labels],
            "values": [counts.get(d, 0) for d in labels]}


def gmv_per_day(days: int = ORDER_DAYS) -> dict:
    """GMV: the payable of orders paid per business day, to the cent (as text)."""
    from models.order import Order

    rows = scope_query(db.session.query(Order.paid_at, Order.payable), Order) \
        .filter(Order.paid_at >= now() - timedelta(days=days + 1),
                Order.status.in_(SOLD)).all()
    labels, sums = _per_business_day(rows, days)
    return {"keys": [d.isoformat() for d in labels], "labels": [d.isoformat() for d in labels],
            "values": [f"{sums.get(d, Decimal('0')):.2f}" for d in labels]}


def orders_by_status() -> dict:
    from models.order import ORDER_STATUS_LABELS, Order, OrderStatus

    rows = scope_query(db.session.query(Order.status, func.count(Order.id)), Order) \
        .group_by(Order.status).all()
    counts = {OrderStatus(status): n for status, n in rows}
    return {"keys": [s.value for s in ORDER_STATUS_LABELS],
            "labels": [str(t) for t in ORDER_STATUS_LABELS.values()],
            "values": [counts.get(status, 0) for status in ORDER_STATUS_LABELS]}


TOP_SKUS = 10


def _top_skus(measure, days: int) -> list:
    from models.order import Order, OrderLine

    query = scope_query(db.session.query(OrderLine.sku_id, OrderLine.sku_code, measure)
                        .join(Order, Order.id == OrderLine.order_id), OrderLine) \
        .filter(Order.status.in_(SOLD), Order.paid_at >= now() - timedelta(days=days)) \
        .group_by(OrderLine.sku_id, OrderLine.sku_code) \
        .order_by(measure.desc(), OrderLine.sku_id).limit(TOP_SKUS)
    return [(code, total) for _, code, total in query.all()]


def top_skus_by_gmv(days: int = 30) -> dict:
    """The SKUs sold for the most over the last 30 days (payable of sold orders)."""
    from models.order import OrderLine

    rows = _top_skus(func.sum(OrderLine.payable), days)
    return {"keys": [code for code, _ in rows], "labels": [code for code, _ in rows],
            "values": [f"{Decimal(total):.2f}" for _, total in rows]}


def top_skus_by_quantity(days: int = 30) -> dict:
    from models.order import OrderLine

    rows = _top_skus(func.sum(OrderLine.quantity), days)
    return {"keys": [code for code, _ in rows], "labels": [code for code, _ in rows],
            "values": [int(total) for _, total in rows]}


register_panel(Panel("orders_per_day", _l("Orders per day"), "line", ("can_list", "OrderView"),
                     orders_per_day))
register_panel(Panel("gmv_per_day", _l("GMV per day"), "line", ("can_list", "OrderView"),
                     gmv_per_day))
register_panel(Panel("order_status", _l("Orders by status"), "bar", ("can_list", "OrderView"),
                     orders_by_status))
register_panel(Panel("top_sku_gmv", _l("Top SKUs by GMV (30 days)"), "bar",
                     ("can_list", "OrderView"), top_skus_by_gmv))
register_panel(Panel("top_sku_quantity", _l("Top SKUs by quantity (30 days)"), "bar",
                     ("can_list", "OrderView"), top_skus_by_quantity))


# -- money (payment center, after-sales, finance) ------------------------------------------------

MONEY_DAYS = 14


def _money_per_day(rows, days: int) -> dict:
    labels, sums = _per_business_day(rows, days)
    return {"keys": [d.isoformat() for d in labels], "labels": [d.isoformat() for d in labels],
            "values": [f"{sums.get(d, Decimal('0')):.2f}" for d in labels]}


def payments_per_day(days: int = MONEY_DAYS) -> dict:
    """Money received through the gateways per business day (succeeded attempts)."""
    from models.payment import Payment, PaymentStatus

    rows = db.session.query(Payment.paid_at, Payment.amount).filter(
        Payment.status == PaymentStatus.succeeded,
        Payment.paid_at >= now() - timedelta(days=days + 1)).all()
    return _money_per_day(rows, days)


def refunds_per_day(days: int = MONEY_DAYS) -> dict:
    """Money given back through the gateways per business day (succeeded refunds)."""
    from models.payment import PaymentRefund, RefundStatus

    rows = db.session.query(PaymentRefund.finished_at, PaymentRefund.amount).filter(
        PaymentRefund.status == RefundStatus.succeeded,
        PaymentRefund.finished_at >= now() - timedelta(days=days + 1)).all()
    return _money_per_day(rows, days)


def refund_rate(days: int = 30) -> dict:
    """Of what buyers paid through the gateways in the last `days` days: kept and refunded
    (the refund rate is refunded ÷ paid)."""
    from models.payment import Payment, PaymentStatus

    since = now() - timedelta(days=days)
    paid, refunded = db.session.query(
        func.coalesce(func.sum(Payment.amount), 0),
        func.coalesce(func.sum(Payment.refunded_amount), 0)).filter(
        Payment.status == PaymentStatus.succeeded, Payment.paid_at >= since).one()
    paid, refunded = Decimal(paid), Decimal(refunded)
    return {"keys": ["kept", "refunded"], "labels": [str(_l("Kept")), str(_l("Refunded"))],
            "values": [f"{paid - refunded:.2f}", f"{refunded:.2f}"],
            "rate": f"{(refunded / paid if paid else Decimal(0)):.4f}"}


def after_sale_refunds_per_day(days: int = MONEY_DAYS) -> dict:
    """After-sales refunded per business day (the viewer's shop only)."""
    from models.after_sale import AfterSale, AfterSaleStatus

    rows = scope_query(db.session.query(AfterSale.finished_at, AfterSale.amount), AfterSale) \
        .filter(AfterSale.status == AfterSaleStatus.refunded,
                AfterSale.finished_at >= now() - timedelta(days=days + 1)).all()
    return _money_per_day(rows, days)


def settlement_due() -> dict:
    """What statements owe shops and is not paid yet, drafts and approved (the viewer's shop
    only)."""
    from models.finance import Settlement

    rows = dict(scope_query(db.session.query(Settlement.status, func.sum(Settlement.net)),
                            Settlement).filter(Settlement.status.in_(["draft", "approved"]))
                .group_by(Settlement.status).all())
    return {"keys": ["draft", "approved"], "labels": [str(_l("Draft")), str(_l("Approved"))],
            "values": [f"{Decimal(rows.get(k) or 0):.2f}" for k in ("draft", "approved")]}


register_panel(Panel("payments_per_day", _l("Payments per day"), "line",
                     ("can_list", "PaymentView"), payments_per_day))
register_panel(Panel("refunds_per_day", _l("Refunds per day"), "line",
                     ("can_list", "PaymentRefundView"), refunds_per_day))
register_panel(Panel("refund_rate", _l("Refund rate (30 days)"), "doughnut",
                     ("can_list", "PaymentView"), refund_rate))
register_panel(Panel("after_sale_refunds", _l("After-sales refunded per day"), "line",
                     ("can_list", "AfterSaleView"), after_sale_refunds_per_day))
register_panel(Panel("settlement_due", _l("Settlement due"), "bar",
                     ("can_list", "SettlementView"), settlement_due))


# -- marketing and members ---------------------------------------------------------------------

MARKETING_DAYS = 30


def coupon_usage(days: int = MARKETING_DAYS) -> dict:
    """Coupons taken by sold orders over the last `days` days: per coupon, what they took off
    (their cost; the viewer's shop only)."""
    from models.marketing import Coupon, PromotionUsage
    from models.order import Order

    rows = scope_query(db.session.query(Coupon.name, func.count(func.distinct(
        PromotionUsage.trade_id)), func.sum(PromotionUsage.amount))
        .join(Coupon, Coupon.id == PromotionUsage.coupon_id)
        .join(Order, Order.id == PromotionUsage.order_id), PromotionUsage) \
        .filter(PromotionUsage.returned.is_(False), Order.status.in_(SOLD),
                Order.paid_at >= now() - timedelta(days=days)) \
        .group_by(Coupon.id, Coupon.name).order_by(func.sum(PromotionUsage.amount).desc(),
                                                   Coupon.id).limit(TOP_SKUS).all()
    return {"keys": [name for name, _, _ in rows], "labels": [name for name, _, _ in rows],
            "values": [f"{Decimal(cost or 0):.2f}" for _, _, cost in rows],
            "uses": [uses for _, uses, _ in rows]}


def promotion_gmv(days: int = MARKETING_DAYS) -> dict:
    """What buyers paid for sold orders that joined each promotion over the last `days` days
    (the promotions' GMV; the viewer's shop only), and what the promotions cost."""
    from models.marketing import Promotion, PromotionUsage
    from models.order import Order

    rows = scope_query(db.session.query(Promotion.name, func.sum(Order.payable),
                                        func.sum(PromotionUsage.amount))
                       .join(Promotion, Promotion.id == PromotionUsage.promotion_id)
                       .join(Order, Order.id == PromotionUsage.order_id), PromotionUsage) \
        .filter(PromotionUsage.returned.is_(False), Order.status.in_(SOLD),
                Order.paid_at >= now() - timedelta(days=days)) \
        .group_by(Promotion.id, Promotion.name) \
        .order_by(func.sum(Order.payable).desc(), Promotion.id).limit(TOP_SKUS).all()
    return {"keys": [name for name, _, _ in rows], "labels": [name for name, _, _ in rows],
            "values": [f"{Decimal(gmv or 0):.2f}" for _, gmv, _ in rows],
            "cost": [f"{Decimal(cost or 0):.2f}" for _, _, cost in rows]}


def members_by_level() -> dict:
    """How many members each level holds (platform data)."""
    from models.member import Member, MemberLevel

    levels = db.session.query(MemberLevel.id, MemberLevel.name) \
        .order_by(MemberLevel.growth_threshold).all()
    counts = dict(db.session.query(Member.level_id, func.count(Member.id))
                  .group_by(Member.level_id).all())
    keys = [str(level_id) for level_id, _ in levels] + ["none"]
    return {"keys": keys, "labels": [name for _, name in levels] + [str(_l("No level"))],
            "values": [counts.get(level_id, 0) for level_id, _ in levels] +
            [counts.get(None, 0)]}


register_panel(Panel("coupon_usage", _l("Coupon cost (30 days)"), "bar",
                     ("can_list", "CouponView"), coupon_usage))
register_panel(Panel("promotion_gmv", _l("Promotion GMV (30 days)"), "bar",
                     ("can_list", "PromotionView"), promotion_gmv))
register_panel(Panel("members_by_level", _l("Members by level"), "doughnut",
                     ("can_list", "MemberLevelView"), members_by_level))


# -- reviews and moderation --------------------------------------------------------------------

def moderation_outcomes(days: int = MARKETING_DAYS) -> dict:
    """Reviews, follow-ups and replies written over the last `days` days, by where moderation
    (or staff) put them; `manual_review` is the queue waiting for a person."""
    from models.review import REVIEW_STATUSES, Review

    counts = dict(scope_query(db.session.query(Review.status, func.count(Review.id)), Review)
                  .filter(Review.created_at >= now() - timedelta(days=days))
                  .group_by(Review.status).all())
    return {"keys": list(REVIEW_STATUSES), "labels": list(REVIEW_STATUSES),
            "values": [counts.get(status, 0) for status in REVIEW_STATUSES]}


def ratings_by_star(days: int = MARKETING_DAYS) -> dict:
    """Shown reviews of the last `days` days by rating (the viewer's shop only)."""
    from models.review import VISIBLE_STATUSES, Review

    counts = dict(scope_query(db.session.query(Review.rating, func.count(Review.id)), Review)
                  .filter(Review.kind == "review", Review.status.in_(VISIBLE_STATUSES),
                          Review.created_at >= now() - timedelta(days=days))
                  .group_by(Review.rating).all())
    return {"keys": [str(n) for n in range(1, 6)], "labels": [f"{n}★" for n in range(1, 6)],
            "values": [counts.get(n, 0) for n in range(1, 6)]}


register_panel(Panel("moderation_outcomes", _l("Moderation outcomes (30 days)"), "doughnut",
                     ("can_list", "ReviewView"), moderation_outcomes))
register_panel(Panel("ratings_by_star", _l("Ratings (30 days)"), "bar",
                     ("can_list", "ReviewView"), ratings_by_star))


# -- risk control --------------------------------------------------------------------------------

RISK_DAYS = 30


def risk_by_rule(days: int = RISK_DAYS) -> dict:
    """Decisions over the last `days` days by the rules that fired in them (platform data)."""
    from services.risk import decisions_by_rule

    rows = decisions_by_rule(days)
    return {"keys": [name for name, _ in rows], "labels": [name for name, _ in rows],
            "values": [count for _, count in rows]}


def top_flagged_members(days: int = RISK_DAYS) -> dict:
    """The members most often flagged, held or blocked over the last `days` days."""
    from services.risk import top_flagged_members as rows_of

    rows = rows_of(days)
    return {"keys": [str(member_id) for member_id, _, _ in rows],
            "labels": [account for _, account, _ in rows],
            "values": [count for _, _, count in rows]}


register_panel(Panel("risk_by_rule", _l("Risk decisions by rule (30 days)"), "bar",
                     ("can_list", "RiskDecisionView"), risk_by_rule))
register_panel(Panel("top_flagged_members", _l("Most flagged members (30 days)"), "bar",
                     ("can_list", "RiskDecisionView"), top_flagged_members))


# -- logistics -----------------------------------------------------------------------------------

def freight_paid_vs_cost() -> dict:
    """Per carrier over the last 30 days of shipments: the freight buyers paid and what the
    carrier charges (two bars each; the viewer's shop only)."""
    from services.logistics import freight_report

    keys, labels, values = [], [], []
    for row in freight_report()["carriers"]:
        name = row["code"] or "—"
        for part, label in (("freight", _l("paid")), ("cost", _l("cost"))):
            keys.append(f"{name}:{part}")
            labels.append(f"{name} {label}")
            values.append(row[part])
    return {"keys": keys, "labels": labels, "values": values}


register_panel(Panel("freight_paid_vs_cost", _l("Freight paid vs real cost (30 days)"), "bar",
                     ("can_list", "CarrierView"), freight_paid_vs_cost))
