"""The sales report: figures per SKU, category, shop and business day, compared with an
independent query over known orders; merchants see their own shop; bad input is refused."""
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.extensions import db
from models.after_sale import AfterSale, AfterSaleStatus
from models.order import Order, OrderLine
from models.product import Spu
from services import clock
from services.actor import Actor, acting_as
from tests.factories import make_order, paid_order

SHANGHAI = timezone(timedelta(hours=8))   # no daylight saving: a fixed offset is exact
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)


def paid_at(moment: datetime, shop, quantity: int = 1) -> Order:
    with clock.frozen_at(moment):
        return paid_order(shop, quantity)


@pytest.fixture
def sales(shops):
    """Shop A: 2 units paid on the 18th, 1 at 23:59:30 on the 19th, 1 at 00:00:30 on the 20th
    (still the 19th in UTC), one unpaid order; shop B: 3 units on the 19th. 10.00 of the
    first order was refunded through after-sales."""
    from services import after_sale

    a, b = shops["A"], shops["B"]
    orders = {
        "a18": paid_at(datetime(2026, 11, 18, 12, 0, tzinfo=SHANGHAI), a, 2),
        "a19": paid_at(datetime(2026, 11, 19, 23, 59, 30, tzinfo=SHANGHAI), a),
        "a20": paid_at(datetime(2026, 11, 20, 0, 0, 30, tzinfo=SHANGHAI), a),
        "b19": paid_at(datetime(2026, 11, 19, 10, 0, tzinfo=SHANGHAI), b, 3),
    }
    with clock.frozen_at(NOW):
        orders["unpaid"] = make_order(a)
    with acting_as(Actor.system("test")):
        refund = after_sale.request(orders["a18"].lines[0].id, "refund_only", 1,
                                    Decimal("10.00"), "Arrived late")
        db.session.commit()
    # the refund itself goes through the payment center; here only its outcome matters
    refund.status = AfterSaleStatus.refunded
    db.session.commit()
    clock.set_now(NOW)
    return orders


def expected(group_by: str, day_from: date, day_to: date, shop_id=None) -> dict:
    """The figures straight from the tables (no service code): sold lines paid within the
    business days, grouped."""
    since = datetime.combine(day_from, datetime.min.time(), tzinfo=SHANGHAI)
    until = datetime.combine(day_to + timedelta(days=1), datetime.min.time(), tzinfo=SHANGHAI)
    refunds = dict(db.session.execute(
        select(AfterSale.order_line_id, func.sum(AfterSale.amount))
        .where(AfterSale.status == "refunded").group_by(AfterSale.order_line_id)).all())
    query = select(OrderLine.id, OrderLine.order_id, OrderLine.sku_id, Spu.category_id,
                   Order.shop_id, Order.paid_at, OrderLine.quantity, OrderLine.payable) \
        .join(Order, Order.id == OrderLine.order_id).join(Spu, Spu.id == OrderLine.spu_id) \
        .where(Order.status.in_(["paid", "fulfilling", "shipped", "delivered", "completed"]),
               Order.paid_at >= since, Order.paid_at < until)
    if shop_id is not None:
        query = query.where(Order.shop_id == shop_id)
    groups: dict = {}
    for line_id, order_id, sku_id, category_id, shop, paid, quantity, payable in \
            db.session.execute(query):
        key = {"sku": sku_id, "category": category_id, "shop": shop,
               "day": paid.astimezone(SHANGHAI).date().isoformat()}[group_by]
        bucket = groups.setdefault(key, {"orders": set(), "quantity": 0, "gmv": Decimal(0),
                                         "refunded": Decimal(0)})
        bucket["orders"].add(order_id)
        bucket["quantity"] += quantity
        bucket["gmv"] += payable
        bucket["refunded"] += refunds.get(line_id, Decimal(0))
    return {key: {"orders": len(b["orders"]), "quantity": b["quantity"],
                  "gmv": f"{b['gmv']:.2f}", "refunded": f"{b['refunded']:.2f}"}
            for key, b in groups.items()}


KEY = {"sku": "sku_id", "category": "category_id", "shop": "shop_id", "day": "day"}


def figures(report: dict) -> dict:
    return {row[KEY[report["group_by"]]]: {k: row[k] for k in ("orders", "quantity", "gmv",
                                                                 "refunded")}
            for row in report["rows"] if row["orders"]}


@pytest.mark.parametrize("group_by", ["sku", "category", "shop", "day"])
def test_figures_match_the_tables_and_the_business_day_boundary(api, sales, group_by):
    answer = api("Admin").get(f"/api/v1/sales_report/?group_by={group_by}"
                              "&from=2026-11-18&to=2026-11-19")
    assert answer.status_code == 200, answer.json
    report = answer.json
    assert (report["group_by"], report["from"], report["to"]) == \
        (group_by, "2026-11-18", "2026-11-19")
    want = expected(group_by, date(2026, 11, 18), date(2026, 11, 19))
    assert figures(report) == want
    # paid at 00:00:30 on the 20th (the 19th in UTC): outside; 23:59:30 on the 19th: inside
    inside = [sales[k].lines[0] for k in ("a18", "a19", "b19")]
    assert report["totals"] == {"orders": 3, "quantity": 6,
                                "gmv": f"{sum(line.payable for line in inside):.2f}",
                                "refunded": "10.00"}
    if group_by == "sku":
        assert sales["a20"].lines[0].sku_id not in figures(report)


def test_days_are_business_days_and_each_day_of_the_range_is_listed(api, sales):
    report = api("Admin").get("/api/v1/sales_report/?group_by=day&from=2026-11-17"
                              "&to=2026-11-20").json
    assert [(r["day"], r["orders"], r["quantity"]) for r in report["rows"]] == [
        ("2026-11-17", 0, 0), ("2026-11-18", 1, 2), ("2026-11-19", 2, 4), ("2026-11-20", 1, 1)]
    assert report["rows"][1]["refunded"] == "10.00"


def test_the_default_period_is_the_last_30_business_days(api, sales):
    report = api("Admin").get("/api/v1/sales_report/?group_by=shop").json
    assert (report["from"], report["to"]) == ("2026-10-22", "2026-11-20")
    assert report["totals"]["orders"] == 4


def test_merchant_sees_own_shop_only(api, shops, sales):
    report = api("merchant_a").get("/api/v1/sales_report/?group_by=shop&from=2026-11-18"
                                   "&to=2026-11-20").json
    assert [(r["shop_id"], r["orders"], r["quantity"]) for r in report["rows"]] == \
        [(shops["A"].id, 3, 4)]
    assert figures(report) == expected("shop", date(2026, 11, 18), date(2026, 11, 20),
                                       shops["A"].id)
    other = api("merchant_a").get(f"/api/v1/sales_report/?group_by=shop&shop_id={shops['B'].id}")
    assert other.status_code == 422 and "shop_id" in other.json["errors"]


def test_staff_may_pick_one_shop(api, shops, sales):
    report = api("Finance").get(f"/api/v1/sales_report/?group_by=sku&from=2026-11-18"
                                f"&to=2026-11-20&shop_id={shops['B'].id}").json
    assert [(r["sku_id"], r["quantity"], r["gmv"]) for r in report["rows"]] == \
        [(sales["b19"].lines[0].sku_id, 3, f"{sales['b19'].lines[0].payable:.2f}")]


@pytest.mark.parametrize("query, field", [
    ("group_by=brand", "group_by"), ("group_by=", "group_by"), ("", "group_by"),
    ("group_by=sku&from=2026-11-20&to=2026-11-19", "from"),
    ("group_by=sku&from=2025-01-01&to=2026-11-19", "from"),
    ("group_by=sku&to=2026-13-01", "to"), ("group_by=sku&from=yesterday", "from"),
    ("group_by=sku&shop_id=abc", "shop_id"), ("group_by=sku&shop_id=987654", "shop_id"),
])
def test_bad_input_is_422_naming_the_field(api, shops, query, field):
    answer = api("Admin").get(f"/api/v1/sales_report/?{query}")
    assert answer.status_code == 422
    assert field in answer.json["errors"]


def test_screen_shows_the_table_with_the_filters(browser, shops, sales):
    page = browser("merchant_a").get("/salesreport/?group_by=sku&from=2026-11-18&to=2026-11-20")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert sales["a18"].lines[0].sku_code in text
    assert sales["b19"].lines[0].sku_code not in text
    assert 'name="shop_id"' not in text   # merchants do not pick a shop
    refused = browser("merchant_a").get("/salesreport/?group_by=brand")
    assert refused.status_code == 200 and "group_by" in refused.get_data(as_text=True)


def test_roles_without_orders_do_not_see_the_report(api, browser, shops):
    assert api("Warehouse").get("/api/v1/sales_report/?group_by=sku").status_code == 403
    assert api("Marketing").get("/api/v1/sales_report/?group_by=sku").status_code == 200
