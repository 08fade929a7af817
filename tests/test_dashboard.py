"""The home dashboard: panels per role, figures equal to SQL, merchants see their shop only."""
import json
import re
from datetime import date, datetime, timezone
from decimal import Decimal

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


def test_writes_are_counted_on_their_business_day(shops):
    late_evening_utc = datetime(2027, 3, 1, 17, 30, tzinfo=timezone.utc)  # 01:30 in Shanghai
    with clock.frozen_at(late_evening_utc):
        shops["A"].name = "counted on the 26th"
        db.session.commit()
        with acting_as(Actor(name="ops", authenticated=True)):
            figure = dashboard.audit_activity("2027-03-01", "2027-03-02")
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


# -- every panel against SQL, per role, per shop, per period --------------------------------------

FIRST, LAST = date(2000, 1, 1), date(2099, 12, 31)
SOLD_SQL = "('paid', 'fulfilling', 'shipped', 'delivered', 'completed')"
# the figures the purchasing center registers
PURCHASING = {"open_po_count", "open_po_value", "supplier_ratings"}
# panels over shop-owned rows (a merchant may see them: its shop only)
SHOP_PANELS = {"shops", "audit", "spu_status", "spu_category", "low_stock", "stock_value",
               "orders_per_day", "gmv_per_day", "order_status", "top_sku_gmv",
               "top_sku_quantity", "notice_status", "after_sale_refunds", "after_sale_status",
               "settlement_due", "invoice_status", "coupon_usage", "promotion_gmv",
               "ticket_status", "moderation_outcomes", "ratings_by_star", "pick_list_status",
               "freight_paid_vs_cost", "tracking_scans", "customs_status", "price_batch_status",
               "webhook_deliveries", "messages", "export_status", *PURCHASING}
# platform data: never a merchant's
PLATFORM_PANELS = {"deliveries", "payments_per_day", "refunds_per_day", "refund_rate",
                   "members_by_level", "new_members", "points_by_reason", "card_balances",
                   "risk_by_rule", "top_flagged_members", "storefront_live_slots"}
ORDER_PANELS = {"orders_per_day", "gmv_per_day", "order_status", "top_sku_gmv",
                "top_sku_quantity"}
PAYMENT_PANELS = {"payments_per_day", "refund_rate"}
RISK_PANELS = {"risk_by_rule", "top_flagged_members"}
REVIEW_PANELS = {"moderation_outcomes", "ratings_by_star"}
MARKETING_PANELS = {"coupon_usage", "promotion_gmv"}
PRODUCT_PANELS = {"spu_status", "spu_category"}
STOCK_PANELS = {"low_stock", "stock_value"}
AFTER_SALE_PANELS = {"after_sale_refunds", "after_sale_status"}
# what each role's dashboard holds: the panels of the centers it runs or reads
ROLE_PANELS = {
    "ProductOps": {"shops", *PRODUCT_PANELS, *STOCK_PANELS, "price_batch_status"},
    "OrderOps": {"shops", *PRODUCT_PANELS, *STOCK_PANELS, *ORDER_PANELS, "notice_status",
                 *PAYMENT_PANELS, "refunds_per_day", *AFTER_SALE_PANELS, "new_members",
                 "points_by_reason", *RISK_PANELS, "freight_paid_vs_cost", "tracking_scans",
                 "export_status"},
    "CustomerService": {"shops", *PRODUCT_PANELS, *ORDER_PANELS, *PAYMENT_PANELS,
                        "refunds_per_day", *AFTER_SALE_PANELS, "new_members",
                        "points_by_reason", "card_balances", "ticket_status", *REVIEW_PANELS,
                        *RISK_PANELS},
    "Marketing": {"shops", *PRODUCT_PANELS, *MARKETING_PANELS, "members_by_level",
                  "card_balances", "price_batch_status"},
    "Finance": {"shops", *PAYMENT_PANELS, "refunds_per_day", *AFTER_SALE_PANELS,
                "settlement_due", "invoice_status", "card_balances", *PURCHASING,
                "export_status"},
    "Warehouse": {*STOCK_PANELS, "notice_status", "pick_list_status", "freight_paid_vs_cost",
                  "customs_status", "export_status"},
    "Purchasing": {*STOCK_PANELS, "pick_list_status", *PURCHASING},
    "Logistics": {"shops", *ORDER_PANELS, "notice_status", "freight_paid_vs_cost",
                  "tracking_scans", "customs_status"},
    "Risk": {"audit", "new_members", "points_by_reason", *RISK_PANELS},
    "Operations": {"shops", "audit", "deliveries", "members_by_level", "new_members",
                   "points_by_reason", "card_balances", *REVIEW_PANELS,
                   "storefront_live_slots", "webhook_deliveries", "messages", "export_status"},
    "Merchant": {"shops", "audit", *PRODUCT_PANELS, *STOCK_PANELS, *ORDER_PANELS,
                 "notice_status", *AFTER_SALE_PANELS, "settlement_due", "invoice_status",
                 *MARKETING_PANELS, "ticket_status", *REVIEW_PANELS, "pick_list_status",
                 "freight_paid_vs_cost", "tracking_scans", "customs_status",
                 "price_batch_status", "webhook_deliveries", "messages", "export_status",
                 *PURCHASING},
    "Storefront": set(),   # API only: no screens, so no panels
}


def figures_of(client, query="") -> dict:
    answer = client.get(f"/api/v1/dashboard/panels{query}")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return {panel["key"]: panel for panel in answer.json["result"]}


def shown(panel: dict) -> dict:
    """A panel's non-zero figures by key."""
    return {k: v for k, v in zip(panel["keys"], panel["values"]) if v not in (0, "0.00")}


def money(value) -> str:
    return f"{Decimal(str(value or 0)).quantize(Decimal('0.01'))}"


def day_of(column: str) -> str:
    """The business day (Asia/Shanghai, UTC+8) of a stored UTC time, in SQL."""
    if db.engine.dialect.name == "postgresql":
        return f"CAST(({column} AT TIME ZONE 'Asia/Shanghai') AS DATE)"
    return f"DATE({column}, '+8 hours')"


def rows(sql: str, **params) -> list:
    return db.session.execute(text(sql), params).all()


class Sql:
    """Each panel's figures, worked out again in plain SQL, for one shop (or all) and one
    period of business days."""

    def __init__(self, shop_id, start: date, end: date):
        self.shop, self.start, self.end = shop_id, start, end

    def mine(self, column: str) -> str:
        return f" AND {column} = {int(self.shop)}" if self.shop else ""

    def within(self, column: str) -> str:
        return f" AND {day_of(column)} BETWEEN :start AND :end"

    def grouped(self, sql: str, money_values=False, dated=False) -> dict:
        found = rows(sql, start=self.start, end=self.end)
        return {str(k): money(v) if money_values else int(v) for k, v in found
                if (Decimal(str(v or 0)) if money_values else v)} if not dated else \
            {str(k)[:10]: money(v) if money_values else int(v) for k, v in found if v}

    def counts(self, table, column="status", where="", dated_by=None, shop_col="shop_id"):
        sql = f'SELECT {column}, COUNT(*) FROM "{table}" WHERE 1=1 {where}'
        if shop_col:
            sql += self.mine(shop_col)
        if dated_by:
            sql += self.within(dated_by)
        return self.grouped(sql + f" GROUP BY {column}")

    def per_day(self, table, stamp, amount="1", where="", money_values=False):
        sql = (f'SELECT {day_of(stamp)}, SUM({amount}) FROM "{table}" WHERE {stamp} IS NOT NULL '
               f"{where}{self.mine('shop_id')}{self.within(stamp)} GROUP BY {day_of(stamp)}")
        return self.grouped(sql, money_values=money_values, dated=True)

    # -- one method per panel ------------------------------------------------------------------
    def shops(self):
        return self.counts("shop", shop_col="id")

    def audit(self):
        return self.per_day("audit_log", "created_at")

    def deliveries(self):
        return self.counts("event_delivery")

    def spu_status(self):
        return self.counts("spu")

    def spu_category(self):
        tops: dict = {}
        for path, n in rows("SELECT c.path, COUNT(*) FROM spu s JOIN category c ON "
                            f"c.id = s.category_id WHERE 1=1 {self.mine('s.shop_id')} "
                            "GROUP BY c.path"):
            top = int(path.strip("/").split("/")[0])
            tops[top] = tops.get(top, 0) + n
        names = dict(rows("SELECT id, name FROM category"))
        return {names[t]: n for t, n in tops.items()}

    def low_stock(self):
        return self.grouped(
            "SELECT w.code, COUNT(*) FROM stock s JOIN warehouse w ON w.id = s.warehouse_id "
            "JOIN sku k ON k.id = s.sku_id WHERE k.stock_alert_qty > 0 AND "
            f"s.on_hand - s.reserved <= k.stock_alert_qty {self.mine('s.shop_id')} "
            "GROUP BY w.code")

    def stock_value(self):
        return self.grouped(
            "SELECT w.code, SUM(s.on_hand * COALESCE(k.cost_price, 0)) FROM stock s JOIN "
            "warehouse w ON w.id = s.warehouse_id JOIN sku k ON k.id = s.sku_id WHERE 1=1 "
            f"{self.mine('s.shop_id')} GROUP BY w.code", money_values=True)

    def orders_per_day(self):
        return self.per_day("order", "created_at")

    def gmv_per_day(self):
        return self.per_day("order", "paid_at", "payable", f"AND status IN {SOLD_SQL}", True)

    def order_status(self):
        return self.counts("order")

    def _top(self, measure, money_values):
        return self.grouped(
            f"SELECT l.sku_code, SUM(l.{measure}) FROM order_line l JOIN \"order\" o ON "
            f"o.id = l.order_id WHERE o.status IN {SOLD_SQL} {self.mine('l.shop_id')}"
            f"{self.within('o.paid_at')} GROUP BY l.sku_id, l.sku_code "
            "ORDER BY 2 DESC, l.sku_id LIMIT 10", money_values)

    def top_sku_gmv(self):
        return self._top("payable", True)

    def top_sku_quantity(self):
        return self._top("quantity", False)

    def notice_status(self):
        return self.counts("shipping_notice")

    def payments_per_day(self):
        return self.per_day("payment", "paid_at", "amount", "AND status = 'succeeded'", True)

    def refunds_per_day(self):
        return self.per_day("payment_refund", "finished_at", "amount",
                            "AND status = 'succeeded'", True)

    def refund_rate(self):
        paid, refunded = rows("SELECT COALESCE(SUM(amount), 0), COALESCE(SUM(refunded_amount), "
                              "0) FROM payment WHERE status = 'succeeded'"
                              f"{self.within('paid_at')}", start=self.start, end=self.end)[0]
        figures = {"kept": money(Decimal(str(paid)) - Decimal(str(refunded))),
                   "refunded": money(refunded)}
        return {k: v for k, v in figures.items() if v != "0.00"}

    def after_sale_refunds(self):
        return self.per_day("after_sale", "finished_at", "amount", "AND status = 'refunded'",
                            True)

    def after_sale_status(self):
        return self.counts("after_sale")

    def settlement_due(self):
        return self.grouped("SELECT status, SUM(net) FROM settlement WHERE status IN "
                            f"('draft', 'approved') {self.mine('shop_id')} GROUP BY status",
                            money_values=True)

    def invoice_status(self):
        return self.counts("invoice")

    def coupon_usage(self):
        return self._usage("coupon", "coupon_id", "u.amount")

    def promotion_gmv(self):
        return self._usage("promotion", "promotion_id", "o.payable")

    def _usage(self, table, column, measure):
        return self.grouped(
            f"SELECT x.name, SUM({measure}) FROM promotion_usage u JOIN {table} x ON "
            f"x.id = u.{column} JOIN \"order\" o ON o.id = u.order_id WHERE "
            f"u.returned = :no AND o.status IN {SOLD_SQL}{self.mine('u.shop_id')}"
            f"{self.within('o.paid_at')} GROUP BY x.id, x.name ORDER BY 2 DESC, x.id "
            "LIMIT 10".replace(":no", "false")
            if db.engine.dialect.name == "postgresql" else
            f"SELECT x.name, SUM({measure}) FROM promotion_usage u JOIN {table} x ON "
            f"x.id = u.{column} JOIN \"order\" o ON o.id = u.order_id WHERE "
            f"u.returned = 0 AND o.status IN {SOLD_SQL}{self.mine('u.shop_id')}"
            f"{self.within('o.paid_at')} GROUP BY x.id, x.name ORDER BY 2 DESC, x.id LIMIT 10",
            money_values=True)

    def members_by_level(self):
        return {str(k) if k is not None else "none": n for k, n in rows(
            "SELECT level_id, COUNT(*) FROM member GROUP BY level_id")}

    def new_members(self):
        return self.grouped(f"SELECT {day_of('created_at')}, COUNT(*) FROM member WHERE 1=1"
                            f"{self.within('created_at')} GROUP BY {day_of('created_at')}",
                            dated=True)

    def points_by_reason(self):
        return self.grouped("SELECT reason, SUM(delta) FROM points_ledger WHERE 1=1"
                            f"{self.within('created_at')} GROUP BY reason")

    def card_balances(self):
        return self.grouped("SELECT kind, SUM(balance) FROM card WHERE status = 'active' "
                            "GROUP BY kind", money_values=True)

    def ticket_status(self):
        return self.counts("ticket")

    def moderation_outcomes(self):
        return self.counts("review", dated_by="created_at")

    def ratings_by_star(self):
        return self.counts("review", "rating", "AND kind = 'review' AND status IN "
                           "('published', 'masked')", dated_by="created_at")

    def risk_by_rule(self):
        counts: dict = {}
        for (fired,) in rows(f"SELECT fired FROM risk_decision WHERE 1=1"
                             f"{self.within('created_at')}", start=self.start, end=self.end):
            fired = json.loads(fired) if isinstance(fired, str) else fired
            for name in {item.get("name") for item in fired or []}:
                counts[name] = counts.get(name, 0) + 1
        return counts

    def top_flagged_members(self):
        return self.grouped(
            "SELECT m.id, COUNT(*) FROM risk_decision d JOIN member m ON m.id = d.member_id "
            f"WHERE d.decision IN ('review', 'hold', 'block'){self.within('d.created_at')} "
            "GROUP BY m.id")

    def pick_list_status(self):
        return self.counts("pick_list")

    def freight_paid_vs_cost(self):
        figures = {}
        for code, paid, cost in rows(
                "SELECT c.code, SUM(n.freight), SUM(COALESCE(n.cost, 0)) FROM shipping_notice n "
                "LEFT JOIN carrier c ON c.id = n.carrier_id WHERE n.status = 'shipped'"
                f"{self.mine('n.shop_id')}{self.within('n.shipped_at')} GROUP BY c.code",
                start=self.start, end=self.end):
            figures[f"{code or '—'}:freight"] = money(paid)
            figures[f"{code or '—'}:cost"] = money(cost)
        return {k: v for k, v in figures.items() if v != "0.00"}

    def tracking_scans(self):
        return self.counts("tracking_event", dated_by="occurred_at")

    def customs_status(self):
        return self.counts("customs_declaration")

    def storefront_live_slots(self):
        def utc(value):
            if isinstance(value, str):
                value = datetime.fromisoformat(value)
            return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value

        moment = clock.now()
        live = [position for position, enabled, starts, ends in rows(
            "SELECT position, enabled, starts_at, ends_at FROM storefront_slot")
            if enabled and (starts is None or utc(starts) <= moment)
            and (ends is None or utc(ends) > moment)]
        return {p: live.count(p) for p in set(live)}

    def price_batch_status(self):
        return self.counts("price_batch")

    def webhook_deliveries(self):
        return self.counts("webhook_delivery", dated_by="created_at")

    def messages(self):
        return self.grouped(
            "SELECT channel || ':' || status, COUNT(*) FROM message WHERE 1=1"
            f"{self.mine('shop_id')}{self.within('created_at')} GROUP BY channel, status")

    def export_status(self):
        return self.counts("export_job", dated_by="created_at")

    def open_po_count(self):
        return self.grouped(
            "SELECT s.code, COUNT(*) FROM purchase_order p JOIN supplier s ON "
            "s.id = p.supplier_id WHERE p.status IN ('draft', 'approved', 'sent', "
            f"'partially_received'){self.mine('p.shop_id')} GROUP BY s.code")

    def open_po_value(self):
        return self.grouped(
            "SELECT s.code, SUM(p.total) FROM purchase_order p JOIN supplier s ON "
            "s.id = p.supplier_id WHERE p.status IN ('draft', 'approved', 'sent', "
            f"'partially_received'){self.mine('p.shop_id')} GROUP BY s.code", money_values=True)

    def supplier_ratings(self):
        return self.grouped("SELECT code, rating FROM supplier WHERE rating IS NOT NULL"
                            f"{self.mine('shop_id')}", money_values=True)


def _operations_rows(shops, member) -> None:
    """Rows of the operations center's tables (written directly: their figures are what the
    dashboard counts, whatever made them)."""
    from datetime import timedelta

    from models.events import OutboxEvent
    from models.export import ExportJob
    from models.message import Message
    from models.prices import PriceBatch
    from models.storefront import StorefrontSlot
    from models.webhook import WebhookDelivery, WebhookSubscription

    moment = clock.now()
    db.session.add_all([
        StorefrontSlot(kind="banner", position="home_top", title="live", platforms=[]),
        StorefrontSlot(kind="banner", position="home_top", title="later", platforms=[],
                       starts_at=moment + timedelta(days=1)),
        StorefrontSlot(kind="icon", position="home_icons", title="off", platforms=[],
                       enabled=False),
        StorefrontSlot(kind="tab", position="home_tabs", title="ended", platforms=[],
                       ends_at=moment - timedelta(hours=1)),
        StorefrontSlot(kind="tab", position="home_tabs", title="tab", platforms=[]),
    ])
    event = OutboxEvent.query.order_by(OutboxEvent.id).first()
    for n, (shop, status) in enumerate([(shops["A"], "succeeded"), (shops["A"], "failed"),
                                        (shops["B"], "succeeded"), (None, "pending")]):
        db.session.add(PriceBatch(batch_no=f"PB{n}", shop_id=shop.id if shop else None, mode="percent",
                                  value=Decimal("-10"), reason="sale", created_by="ops",
                                  status=("pending_approval", "scheduled", "applied",
                                          "rejected")[n]))
        subscription = WebhookSubscription(shop_id=shop.id if shop else None, name=f"erp{n}",
                                           url="https://erp.example/hook", events=["order.*"],
                                           signing_key_hash="x")
        db.session.add(subscription)
        db.session.flush()
        db.session.add(WebhookDelivery(subscription_id=subscription.id,
                                       shop_id=shop.id if shop else None, event_id=event.id,
                                       event_name=event.name, payload={}, status=status))
        db.session.add(Message(shop_id=shop.id if shop else None, member_id=member.id,
                               channel=("sms", "inbox")[n % 2], body="hi",
                               status=("sent", "failed", "queued", "sent")[n],
                               dedupe_key=f"dash-{n}"))
        db.session.add(ExportJob(export_no=f"EX{n}", shop_id=shop.id if shop else None,
                                 kind="orders", status=("done", "queued", "failed", "done")[n],
                                 requested_by="ops"))
    db.session.commit()


def _known_data(shops) -> None:
    """The same kinds of records in both shops (more in A), on 2027-03-01 (Shanghai) or
    earlier, through the centers' own services."""
    from app.queue import run_inprocess_jobs
    from tests import factories as f

    early = datetime(2027, 2, 28, 15, 30, tzinfo=timezone.utc)   # 23:30 on Feb 28 in Shanghai
    late = datetime(2027, 2, 28, 16, 30, tzinfo=timezone.utc)    # 00:30 on Mar 1 in Shanghai
    with clock.frozen_at(early):
        f.paid_order(shops["A"], quantity=3)
        f.make_order(shops["B"])
    with clock.frozen_at(late):
        for shop, n in ((shops["A"], 2), (shops["B"], 1)):
            for _ in range(n):
                f.paid_order(shop, quantity=n)
            f.make_order(shop)
            f.refund_through_after_sale(f.paid_order(shop), "20.00")
            f._after_sale_row(shop)
            f._usage_row(shop)
            f.make_review(shop, rating=4 if shop is shops["A"] else 2)
            f._ticket_row(shop)
            f._invoice_row(shop)
            f.make_pick_list(shop)
            f._tracking_event_row(shop)
            f._declaration_row(shop)
            f.make_purchase_order(shop)
            sku = f.make_spu(shop, with_skus=True).skus[0]
            sku.stock_alert_qty = 5
            sku.cost_price = Decimal("7.50")
            db.session.commit()
            f.stock_up(sku, f.make_warehouse(shop), 4 if shop is shops["A"] else 9)
        f._settlement_row(shops["A"])
        member = f.make_member()
        _operations_rows(shops, member)
        run_inprocess_jobs(db.session)


def test_every_panel_matches_sql_for_staff_and_each_merchant(api, shops):
    from tests.factories import make_member

    with clock.frozen_at(datetime(2027, 3, 1, 4, 0, tzinfo=timezone.utc)):
        _known_data(shops)
        make_member()
        admin = figures_of(api("Admin"))
        mine = figures_of(api("merchant_a"))
        theirs = figures_of(api("merchant_b"))
        assert set(admin) == SHOP_PANELS | PLATFORM_PANELS
        assert set(mine) == set(theirs) == ROLE_PANELS["Merchant"]
        for who, figures, shop in (("Admin", admin, None), ("merchant_a", mine, shops["A"].id),
                                   ("merchant_b", theirs, shops["B"].id)):
            for key, panel in figures.items():
                start = date.fromisoformat(panel["from"]) if panel["from"] else FIRST
                end = date.fromisoformat(panel["to"]) if panel["to"] else LAST
                assert shown(panel) == getattr(Sql(shop, start, end), key)(), (who, key)
    # the data is not empty: each shop's figures differ, and the platform's hold both
    assert shown(mine["order_status"]) != shown(theirs["order_status"])
    assert shown(mine["gmv_per_day"]) == {"2027-02-28": "297.00", "2027-03-01": "1188.00"}
    both = {day: money(Decimal(shown(mine["gmv_per_day"]).get(day, 0)) +
                       Decimal(shown(theirs["gmv_per_day"]).get(day, 0)))
            for day in ("2027-02-28", "2027-03-01")}
    assert shown(admin["gmv_per_day"]) == {d: v for d, v in both.items() if v != "0.00"}
    assert sum(shown(admin["storefront_live_slots"]).values()) == 2


def test_a_period_cuts_rows_at_the_business_day_boundary(api, shops):
    with clock.frozen_at(datetime(2027, 3, 1, 4, 0, tzinfo=timezone.utc)):
        _known_data(shops)
        for client, shop in ((api("Admin"), None), (api("merchant_a"), shops["A"].id)):
            whole = figures_of(client, "?from=2027-02-28&to=2027-03-01")
            first = figures_of(client, "?from=2027-02-28&to=2027-02-28")
            second = figures_of(client, "?from=2027-03-01&to=2027-03-01")
            for key, panel in second.items():
                if panel["from"] is None:
                    continue
                assert (panel["from"], panel["to"]) == ("2027-03-01", "2027-03-01")
                for span, figures in (((date(2027, 2, 28), date(2027, 3, 1)), whole),
                                      ((date(2027, 2, 28),) * 2, first),
                                      ((date(2027, 3, 1),) * 2, second)):
                    assert shown(figures[key]) == getattr(Sql(shop, *span), key)(), (key, span)
            # the order paid at 23:30 on the 28th is cut out of the 1st, and kept on the 28th
            assert sum(second["orders_per_day"]["values"]) + \
                sum(first["orders_per_day"]["values"]) == sum(whole["orders_per_day"]["values"])
            assert first["orders_per_day"]["keys"] == ["2027-02-28"]
            assert sum(first["orders_per_day"]["values"]) == (2 if shop is None else 1)
            assert shown(first["top_sku_quantity"]) and shown(second["top_sku_quantity"])


def test_each_role_sees_the_panels_of_its_centers(api, shops):
    from app.security import ROLES

    assert set(ROLE_PANELS) == set(ROLES) - {"Admin"}
    seen = {role: set(figures_of(api("merchant_a" if role == "Merchant" else role)))
            for role in ROLE_PANELS}
    assert {r: (sorted(seen[r] - p), sorted(p - seen[r])) for r, p in ROLE_PANELS.items()
            if seen[r] != p} == {}


def test_the_page_filters_by_period_and_refuses_bad_ones(browser, shops):
    page = browser("merchant_a")
    with clock.frozen_at(datetime(2027, 3, 1, 4, 0, tzinfo=timezone.utc)):
        default = panels_on(page.get("/").get_data(as_text=True))
        assert default["orders_per_day"]["keys"][-1] == "2027-03-01"
        assert len(default["orders_per_day"]["keys"]) == 14
        assert len(default["top_sku_gmv"]["keys"]) == 0 and default["top_sku_gmv"]["from"] == \
            "2027-01-31"
        answer = page.get("/?from=2027-02-20&to=2027-02-22")
        assert answer.status_code == 200
        ranged = panels_on(answer.get_data(as_text=True))
        assert ranged["orders_per_day"]["keys"] == ["2027-02-20", "2027-02-21", "2027-02-22"]
        assert 'value="2027-02-20"' in answer.get_data(as_text=True)
        for query, field in (("from=2027-02-30", "from"), ("to=yesterday", "to"),
                             ("from=2027-03-02&to=2027-03-01", "from"),
                             ("from=2025-01-01&to=2027-03-01", "from"),
                             ("from=0001-01-01", "from")):
            answer = page.get(f"/?{query}")
            body = answer.get_data(as_text=True)
            assert answer.status_code == 200, query
            assert 'id="period-errors"' in body and f"<li>{field}:" in body, query
            assert panels_on(body)["orders_per_day"]["keys"] == \
                default["orders_per_day"]["keys"], query


def test_the_json_endpoint_needs_a_login_and_names_a_bad_field(app, api, shops):
    anonymous = app.test_client().get("/api/v1/dashboard/panels")
    assert anonymous.status_code == 401
    client = api("Finance")
    for query, field in (("?from=2027-13-01", "from"), ("?to=2027-1-1", "to"),
                         ("?from=2027-03-02&to=2027-03-01", "from"),
                         ("?from=2026-01-01&to=2027-03-01", "from")):
        answer = client.get(f"/api/v1/dashboard/panels{query}")
        assert answer.status_code == 422, query
        assert set(answer.json["errors"]) == {field}, query
    answer = client.get("/api/v1/dashboard/panels?from=2027-01-01&to=2027-12-31")
    assert answer.status_code == 200
    assert (answer.json["from"], answer.json["to"]) == ("2027-01-01", "2027-12-31")
    paths = api("Admin").get("/api/v1/_openapi").json["paths"]
    assert "422" in paths["/api/v1/dashboard/panels"]["get"]["responses"]


def test_the_page_runs_a_bounded_number_of_queries(app, browser, shops):
    """No query per row: the page's statements do not grow with the data."""
    from sqlalchemy import event

    page = browser("Admin")

    def statements() -> int:
        seen = []

        def count(_conn, _cursor, statement, *_args):
            if " ab_" not in statement:   # the menu's permission look-ups are FAB's
                seen.append(statement)

        event.listen(db.engine, "before_cursor_execute", count)
        try:
            assert page.get("/").status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        return len(seen)

    with clock.frozen_at(datetime(2027, 3, 1, 4, 0, tzinfo=timezone.utc)):
        _known_data(shops)
        before = statements()
        _more_rows(shops)
        assert statements() == before
    assert before <= 2 * len(SHOP_PANELS | PLATFORM_PANELS)


def _more_rows(shops) -> None:
    """More rows of the kinds panels list one by one (orders, SKUs, warehouses, reviews)."""
    from tests import factories as f

    for shop in (shops["A"], shops["B"]):
        for _ in range(2):
            f.paid_order(shop, quantity=2)
            f.make_review(shop)
            sku = f.make_spu(shop, with_skus=True).skus[0]
            sku.stock_alert_qty = 5
            db.session.commit()
            f.stock_up(sku, f.make_warehouse(shop), 1)
