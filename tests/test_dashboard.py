"""The home dashboard: panels per role, figures equal to SQL, merchants see their shop only."""
import json
import re
from datetime import datetime, timezone

from sqlalchemy import text

from app.extensions import db
from services import clock, dashboard
from services.actor import Actor, acting_as


def panels_on(page: str) -> dict:
    found = {}
    for key, body in re.findall(r'<script type="application/json" id="data-([\w-]+)"[^>]*>(.*?)</script>',
                                page, re.S):
        found[key] = json.loads(body)
    return found


ORDER_PANELS = {"orders_per_day", "gmv_per_day", "order_status", "top_sku_gmv",
                "top_sku_quantity"}
# the shop's own money panels; the gateways' figures are the platform's
SHOP_MONEY_PANELS = {"after_sale_refunds", "settlement_due"}
MONEY_PANELS = SHOP_MONEY_PANELS | {"payments_per_day", "refunds_per_day", "refund_rate"}
# marketing: each shop's coupons and promotions; members by level is platform data
SHOP_MARKETING_PANELS = {"coupon_usage", "promotion_gmv"}
MARKETING_PANELS = SHOP_MARKETING_PANELS | {"members_by_level"}
REVIEW_PANELS = {"moderation_outcomes", "ratings_by_star"}
# risk control's panels are platform data: never a merchant's
RISK_PANELS = {"risk_by_rule", "top_flagged_members"}
# logistics: each shop's shipments, freight paid against the carriers' cost
LOGISTICS_PANELS = {"freight_paid_vs_cost"}
# purchasing: each shop's open purchase orders and its suppliers' ratings
PURCHASING_PANELS = {"open_po_count", "open_po_value", "supplier_ratings"}
# WMS: stock value per warehouse (each shop's own goods)
WMS_PANELS = {"stock_value"}


def test_admin_panels_match_sql(browser, shops):
    shops["B"].status = "suspended"
    db.session.commit()
    figures = panels_on(browser("Admin").get("/").get_data(as_text=True))
    assert set(figures) == {"shops", "audit", "deliveries", "spu_status", "spu_category",
                            "low_stock", *ORDER_PANELS, *MONEY_PANELS, *MARKETING_PANELS,
                            *REVIEW_PANELS, *RISK_PANELS, *LOGISTICS_PANELS,
                            *PURCHASING_PANELS, *WMS_PANELS}
    by_status = dict(db.session.execute(text("SELECT status, COUNT(*) FROM shop GROUP BY status")).all())
    assert dict(zip(figures["shops"]["keys"], figures["shops"]["values"])) == {
        label: by_status.get(label, 0) for label in ("applying", "open", "suspended", "closed")}


def test_merchant_sees_only_its_shop_in_every_panel(browser, api, shops):
    api("Operations").put(f"/api/v1/shop/{shops['B'].id}", json={"name": "B renamed"})
    figures = panels_on(browser("merchant_a").get("/").get_data(as_text=True))
    assert set(figures) == {"shops", "audit", "spu_status", "spu_category", "low_stock",
                            *ORDER_PANELS, *SHOP_MONEY_PANELS, *SHOP_MARKETING_PANELS,
                            *REVIEW_PANELS, *LOGISTICS_PANELS, *PURCHASING_PANELS,
                            *WMS_PANELS}
    assert sum(figures["shops"]["values"]) == 1
    own_writes = db.session.execute(text(
        "SELECT COUNT(*) FROM audit_log WHERE shop_id = :shop"), {"shop": shops["A"].id}).scalar()
    assert sum(figures["audit"]["values"]) == own_writes


def test_writes_are_counted_on_their_business_day(shops):
    late_evening_utc = datetime(2027, 3, 1, 17, 30, tzinfo=timezone.utc)  # 01:30 in Shanghai
    with clock.frozen_at(late_evening_utc):
        shops["A"].name = "counted on the 26th"
        db.session.commit()
        with acting_as(Actor(name="ops", authenticated=True)):
            figure = dashboard.audit_activity(days=2)
    assert figure["keys"] == ["2027-03-01", "2027-03-02"]
    assert figure["values"] == [0, 1]


def test_dashboard_assets_are_served_locally(browser):
    page = browser("Admin").get("/").get_data(as_text=True)
    external = re.findall(r'(?:src|href)="(https?://[^"]+)"', page)
    assert [url for url in external if not url.startswith("http://localhost")] == []
    script = re.search(r'src="([^"]*chart\.umd\.min\.js)"', page).group(1)
    assert script.startswith("/static/")
    assert browser("Admin").get(script).status_code == 200


def test_low_stock_panel_counts_rows_at_or_below_the_alert(browser, shops):
    from tests.factories import catalog, make_spu, make_warehouse, stock_up

    catalog()
    skus = make_spu(shops["A"], with_skus=True).skus
    skus[0].stock_alert_qty = 5
    skus[1].stock_alert_qty = 5
    db.session.commit()
    warehouse = make_warehouse(shops["A"], code="LOW")
    stock_up(skus[0], warehouse, 5)
    stock_up(skus[1], warehouse, 6)
    figures = panels_on(browser("merchant_a").get("/").get_data(as_text=True))
    assert dict(zip(figures["low_stock"]["keys"], figures["low_stock"]["values"])) == {"LOW": 1}
    assert panels_on(browser("merchant_b").get("/").get_data(as_text=True))["low_stock"]["values"] == []


def test_order_panels_match_sql_per_shop(api, browser, shops):
    """Orders per day, GMV per day, orders by status and top SKUs equal SQL on known data,
    for the platform and for a merchant (its shop only)."""
    from tests.factories import make_order

    with clock.frozen_at(datetime(2027, 3, 1, 2, 0, tzinfo=timezone.utc)):
        paid = [make_order(shops["A"], quantity=2), make_order(shops["B"], quantity=1)]
        make_order(shops["A"], quantity=3)  # stays unpaid: no GMV
        for placed in paid:
            api("OrderOps").post(f"/api/v1/trade/{placed.trade_id}/mark-paid",
                                 json={"reason": "bank"})
        admin = panels_on(browser("Admin").get("/").get_data(as_text=True))
        merchant = panels_on(browser("merchant_a").get("/").get_data(as_text=True))
    day = "2027-03-01"
    assert dict(zip(admin["orders_per_day"]["keys"], admin["orders_per_day"]["values"]))[day] == 3
    assert dict(zip(merchant["orders_per_day"]["keys"],
                    merchant["orders_per_day"]["values"]))[day] == 2
    gmv = db.session.execute(text(
        "SELECT SUM(payable) FROM \"order\" WHERE paid_at IS NOT NULL")).scalar()
    assert dict(zip(admin["gmv_per_day"]["keys"], admin["gmv_per_day"]["values"]))[day] == \
        f"{gmv:.2f}" == "297.00"
    shop_a_gmv = dict(zip(merchant["gmv_per_day"]["keys"], merchant["gmv_per_day"]["values"]))
    assert shop_a_gmv[day] == "198.00"
    by_status = dict(db.session.execute(text(
        "SELECT status, COUNT(*) FROM \"order\" WHERE shop_id = :shop GROUP BY status"),
        {"shop": shops["A"].id}).all())
    assert {k: v for k, v in zip(merchant["order_status"]["keys"],
                                 merchant["order_status"]["values"]) if v} == by_status
    top = db.session.execute(text(
        "SELECT sku_code, SUM(quantity) FROM order_line JOIN \"order\" o ON o.id = order_id "
        "WHERE o.paid_at IS NOT NULL GROUP BY sku_id, sku_code ORDER BY 2 DESC, sku_id")).all()
    assert list(zip(admin["top_sku_quantity"]["labels"], admin["top_sku_quantity"]["values"])) \
        == [(code, int(n)) for code, n in top]
    assert merchant["top_sku_gmv"]["values"] == ["198.00"]
