"""Sales reports: what sold orders brought in, per SKU, category, shop or business day.

An order counts from the business day it was paid, while it is sold (`dashboard.SOLD`: paid,
fulfilling, shipped, delivered, completed), the same rule as the dashboard's GMV. Per group:
the number of orders, the quantity, the GMV (the lines' payable, without freight) and what
after-sales refunded of those lines. Merchants see their own shop; staff may pick a shop.
"""
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, select

from app.extensions import db
from models.after_sale import AfterSale, AfterSaleStatus
from models.order import Order, OrderLine
from models.product import Category, Spu
from models.shop import Shop
from services.actor import is_row_id, scope_query, visible_row
from services.clock import business_day_bounds, business_zone
from services.dashboard import SOLD
from services.errors import REFERENCE_NOT_FOUND, ValidationFailed
from services.logistics import report_period

GROUPS = ("sku", "category", "shop", "day")
ZERO = Decimal("0.00")
# the columns of each grouping's rows (besides the figures), in the order files show them
KEY_COLUMNS = {"sku": ("sku_id", "sku_code", "title"), "category": ("category_id", "category"),
               "shop": ("shop_id", "shop_code", "shop_name"), "day": ("day",)}
FIGURES = ("orders", "quantity", "gmv", "refunded")


def check_group_by(group_by) -> str:
    if group_by not in GROUPS:
        raise ValidationFailed.field("group_by", f"One of {', '.join(GROUPS)}.")
    return group_by


def check_shop(shop_id):
    """A shop the actor may see (None: no filter); 422 naming `shop_id` otherwise."""
    if shop_id is None or shop_id == "":
        return None
    if isinstance(shop_id, str) and shop_id.isdigit():
        shop_id = int(shop_id)
    if not is_row_id(shop_id) or visible_row(Shop, shop_id) is None:
        raise ValidationFailed.field("shop_id", REFERENCE_NOT_FOUND)
    return shop_id


def _refunded_per_line():
    """What refunded after-sales gave back, per order line (a subquery)."""
    return select(AfterSale.order_line_id.label("line_id"),
                  func.sum(AfterSale.amount).label("amount")) \
        .where(AfterSale.status == AfterSaleStatus.refunded) \
        .group_by(AfterSale.order_line_id).subquery()


def _sold_lines(columns, since, until, shop_id):
    refunded = _refunded_per_line()
    query = db.session.query(*columns(refunded)) \
        .select_from(OrderLine).join(Order, Order.id == OrderLine.order_id) \
        .outerjoin(refunded, refunded.c.line_id == OrderLine.id) \
        .filter(Order.status.in_(SOLD), Order.paid_at >= since, Order.paid_at < until)
    query = scope_query(query, Order)
    if shop_id is not None:
        query = query.filter(Order.shop_id == shop_id)
    return query


def _figures(refunded) -> list:
    return [func.count(func.distinct(Order.id)), func.coalesce(func.sum(OrderLine.quantity), 0),
            func.coalesce(func.sum(OrderLine.payable), 0),
            func.coalesce(func.sum(refunded.c.amount), 0)]


def _shown(orders, quantity, gmv, refunded) -> dict:
    return {"orders": int(orders or 0), "quantity": int(quantity or 0),
            "gmv": f"{Decimal(gmv or 0):.2f}", "refunded": f"{Decimal(refunded or 0):.2f}"}


def _grouped(group_by, since, until, shop_id) -> list[dict]:
    if group_by == "sku":
        keys = [OrderLine.sku_id, OrderLine.sku_code]
        query = _sold_lines(lambda r: [*keys, func.max(OrderLine.title), *_figures(r)],
                            since, until, shop_id).group_by(*keys)
        rows = [{"sku_id": sku_id, "sku_code": code, "title": title, **_shown(*figures)}
                for sku_id, code, title, *figures in query]
    elif group_by == "category":
        keys = [Category.id, Category.name]
        query = _sold_lines(lambda r: [*keys, *_figures(r)], since, until, shop_id) \
            .join(Spu, Spu.id == OrderLine.spu_id).join(Category, Category.id == Spu.category_id) \
            .group_by(*keys)
        rows = [{"category_id": pk, "category": name, **_shown(*figures)}
                for pk, name, *figures in query]
    else:
        keys = [Shop.id, Shop.code, Shop.name]
        query = _sold_lines(lambda r: [*keys, *_figures(r)], since, until, shop_id) \
            .join(Shop, Shop.id == Order.shop_id).group_by(*keys)
        rows = [{"shop_id": pk, "shop_code": code, "shop_name": name, **_shown(*figures)}
                for pk, code, name, *figures in query]
    return sorted(rows, key=lambda row: (-Decimal(row["gmv"]), row[KEY_COLUMNS[group_by][0]]))


def _per_day(start_day, end_day, since, until, shop_id) -> list[dict]:
    """Per business day: the zone's day is computed here, not in SQL (portable), from one row
    per order, streamed."""
    query = _sold_lines(lambda r: [Order.id, Order.paid_at, *_figures(r)[1:]],
                        since, until, shop_id).group_by(Order.id, Order.paid_at)
    zone = business_zone()
    days = {start_day + timedelta(days=n): [0, 0, ZERO, ZERO]
            for n in range((end_day - start_day).days + 1)}
    for _, paid_at, quantity, gmv, refunded in query.yield_per(1000):
        bucket = days[paid_at.astimezone(zone).date()]
        bucket[0] += 1
        bucket[1] += int(quantity or 0)
        bucket[2] += Decimal(gmv or 0)
        bucket[3] += Decimal(refunded or 0)
    return [{"day": day.isoformat(), **_shown(*figures)} for day, figures in days.items()]


def sales_report(group_by, date_from=None, date_to=None, shop_id=None) -> dict:
    """Sold orders paid from `date_from` to `date_to` (business days, inclusive; default the
    last 30 days), grouped by `group_by`, with totals (orders counted once each)."""
    group_by = check_group_by(group_by)
    start_day, end_day = report_period(date_from, date_to)
    shop_id = check_shop(shop_id)
    since, until = business_day_bounds(start_day)[0], business_day_bounds(end_day)[1]
    rows = _per_day(start_day, end_day, since, until, shop_id) if group_by == "day" else \
        _grouped(group_by, since, until, shop_id)
    totals = _sold_lines(_figures, since, until, shop_id).one()
    return {"group_by": group_by, "from": start_day.isoformat(), "to": end_day.isoformat(),
            "shop_id": shop_id, "rows": rows, "totals": _shown(*totals)}


def report_columns(group_by: str) -> tuple[str, ...]:
    return (*KEY_COLUMNS[group_by], *FIGURES)


def report_rows(group_by, date_from=None, date_to=None, shop_id=None) -> Iterator[list]:
    """The report's rows as lists in `report_columns` order (for exports)."""
    report = sales_report(group_by, date_from, date_to, shop_id)
    for row in report["rows"]:
        yield [row[column] for column in report_columns(group_by)]
