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


def test_admin_panels_match_sql(browser, shops):
    shops["B"].status = "suspended"
    db.session.commit()
    figures = panels_on(browser("Admin").get("/").get_data(as_text=True))
    assert set(figures) == {"shops", "audit", "deliveries", "spu_status", "spu_category",
                            "low_stock"}
    by_status = dict(db.session.execute(text("SELECT status, COUNT(*) FROM shop GROUP BY status")).all())
    assert dict(zip(figures["shops"]["keys"], figures["shops"]["values"])) == {
        label: by_status.get(label, 0) for label in ("applying", "open", "suspended", "closed")}


def test_merchant_sees_only_its_shop_in_every_panel(browser, api, shops):
    api("Operations").put(f"/api/v1/shop/{shops['B'].id}", json={"name": "B renamed"})
    figures = panels_on(browser("merchant_a").get("/").get_data(as_text=True))
    assert set(figures) == {"shops", "audit", "spu_status", "spu_category", "low_stock"}
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
