"""The whole journey as one test: a buyer chooses goods, a coupon and a promotion apply, the
order is placed, paid through the sandbox gateway, split per shop, dispatched, picked, packed
and shipped by the WMS, tracked by the sandbox carrier to signed, reviewed (moderated), and
partly refunded through after-sales. Everything goes through the REST API as the storefront,
staff and merchants would; every subscriber and job runs in two real `rq worker` processes
through Redis, on PostgreSQL. Each step asserts what every center recorded: stock ledger,
journal, points, coupon usage, risk decisions, audit."""
import os
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from app.extensions import db
from models.after_sale import AfterSale
from models.audit import AuditLog
from models.events import EventDelivery
from models.finance import JournalEntry
from models.inventory import Stock, StockLedger
from models.logistics import TrackingEvent
from models.marketing import Coupon, MemberCoupon, Promotion, PromotionUsage
from models.member import Member, PointsLedger
from models.order import Order, OrderLine, ShippingNotice, Trade
from models.payment import Payment, PaymentRefund, SandboxTransaction
from models.review import RatingSummary, Review
from models.risk import CreditScore, RiskDecision
from models.ticket import Ticket
from services import finance
from tests.conftest import requires_postgres, requires_redis
from tests.factories import (coupon_body, make_carrier, make_spu, promotion_body,
                             ticket_queue)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
ROOT = Path(__file__).resolve().parent.parent
D = Decimal
# how long the workers may take to go quiet after a step (the first wait includes their start)
QUIET_WITHIN_SECONDS = 60


class Workers:
    """Two `rq worker` processes (SimpleWorker: no fork per job) on the suite's database and
    queue, as production runs them; `settle()` waits until they have run every job."""

    def __init__(self, app, logs: Path):
        self.app, self.logs = app, logs
        env = dict(os.environ,
                   DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
                   REDIS_URL=app.config["REDIS_URL"],
                   HOUTAI_QUEUE=app.config["HOUTAI_QUEUE"],
                   SECRET_KEY=app.config["SECRET_KEY"],
                   # the sandboxes call this application back through its own WSGI stack
                   SANDBOX_NOTIFY_TRANSPORT="wsgi",
                   PYTHONPATH=str(ROOT))
        env.pop("HOUTAI_EXTENSIONS", None)
        rq = Path(sys.executable).parent / "rq"
        self.processes = []
        for n in range(2):
            log = open(logs / f"worker-{n}.log", "w")
            self.processes.append((subprocess.Popen(
                [str(rq), "worker", "--url", app.config["REDIS_URL"],
                 "--worker-class", "rq.worker.SimpleWorker",
                 "--name", f"journey-{n}-{uuid.uuid4().hex[:8]}", app.config["HOUTAI_QUEUE"]],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log))

    def log_tail(self) -> str:
        return "\n".join(f"--- worker {n} ---\n" + (self.logs / f"worker-{n}.log").read_text()
                         [-3000:] for n in range(len(self.processes)))

    def settle(self, until=None, what="the jobs"):
        """Wait (on the condition, never on a timer) until the queue is empty, no job is
        running, every event delivery is done, and `until()` holds; a failed job or
        delivery fails the test at once with its error."""
        from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

        from app.queue import rq_queue

        queue = rq_queue()
        deadline = time.monotonic() + QUIET_WITHIN_SECONDS
        while True:
            db.session.rollback()
            db.session.expire_all()
            troubled = db.session.scalars(select(EventDelivery).where(
                EventDelivery.status.in_(("retrying", "failed")))).all()
            assert not troubled, [(d.subscriber, d.last_error) for d in troubled]
            failed = FailedJobRegistry(queue=queue).get_job_ids() + \
                ScheduledJobRegistry(queue=queue).get_job_ids()
            assert not failed, (failed, self.log_tail())
            for process, _ in self.processes:
                assert process.poll() is None, f"a worker stopped\n{self.log_tail()}"
            pending = db.session.scalar(select(EventDelivery.id).where(
                EventDelivery.status != "done").limit(1))
            if queue.count == 0 and StartedJobRegistry(queue=queue).count == 0 and \
                    pending is None and (until is None or until()):
                return
            assert time.monotonic() < deadline, f"waiting for {what}\n{self.log_tail()}"
            time.sleep(0.05)   # then look at the queue and the tables again

    def stop(self):
        for process, _ in self.processes:
            process.terminate()           # warm shutdown: the job at hand finishes
        for process, log in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


@pytest.fixture
def workers(app, tmp_path):
    requires_postgres(app)
    requires_redis(app)
    running = Workers(app, tmp_path)
    yield running
    running.stop()


def ok(answer, status=200):
    assert answer.status_code == status, (answer.status_code, answer.get_json())
    return answer.json


def reload(model, pk):
    db.session.expire_all()
    return db.session.get(model, pk)


def ledger(sku_id, warehouse_id):
    db.session.expire_all()
    return [(r.reason, r.on_hand_before, r.on_hand_after, r.reserved_before, r.reserved_after)
            for r in StockLedger.query.filter_by(sku_id=sku_id, warehouse_id=warehouse_id)
            .order_by(StockLedger.id)]


def stock(sku_id, warehouse_id):
    db.session.expire_all()
    row = Stock.query.filter_by(sku_id=sku_id, warehouse_id=warehouse_id).one()
    return row.on_hand, row.reserved


def entries(kind, reference=None):
    """Journal entries of a kind: each one's lines as (account, shop_id, debit, credit)."""
    db.session.expire_all()
    query = JournalEntry.query.filter_by(kind=kind)
    if reference is not None:
        query = query.filter_by(reference=reference)
    return [sorted((line.account, line.shop_id, line.debit, line.credit) for line in e.lines)
            for e in query.order_by(JournalEntry.id)]


def balanced():
    db.session.expire_all()
    for entry in JournalEntry.query:
        assert sum(line.debit for line in entry.lines) == \
            sum(line.credit for line in entry.lines), entry.entry_no
    return True


def points_of(member_id):
    db.session.expire_all()
    return [(row.reason, row.delta, row.balance_after)
            for row in PointsLedger.query.filter_by(member_id=member_id).order_by(PointsLedger.id)]


def audited(actor, model):
    db.session.expire_all()
    return [(row.action, row.record_pk) for row in AuditLog.query.filter_by(
        actor=actor, model=model).order_by(AuditLog.id)]


def test_the_whole_journey_through_every_center(app, workers, api, shops, users):
    shop_a, shop_b = shops["A"], shops["B"]
    storefront, merchant_a, merchant_b = api("Storefront"), api("merchant_a"), api("merchant_b")

    # -- the stage: goods on sale in two shops' warehouses, a carrier, the rules ---------------
    spu_a, spu_b = make_spu(shop_a, with_skus=True), make_spu(shop_b, with_skus=True)
    ok(merchant_a.post(f"/api/v1/spu/{spu_a.id}/submit"))
    ok(merchant_b.post(f"/api/v1/spu/{spu_b.id}/submit"))
    for spu in (spu_a, spu_b):
        ok(api("ProductOps").post(f"/api/v1/spu/{spu.id}/approve"))
    sku_a1, sku_a2, sku_b = spu_a.skus[0].id, spu_a.skus[1].id, spu_b.skus[0].id
    # shop A keeps stock in Shanghai and Guangzhou; the buyer lives in Shanghai
    shanghai = ok(merchant_a.post("/api/v1/warehouse/", json={
        "shop_id": shop_a.id, "code": "A-SH", "name": "上海仓", "region": "310000"}), 201)["id"]
    guangzhou = ok(merchant_a.post("/api/v1/warehouse/", json={
        "shop_id": shop_a.id, "code": "A-GZ", "name": "广州仓", "region": "440000"}), 201)["id"]
    hangzhou = ok(merchant_b.post("/api/v1/warehouse/", json={
        "shop_id": shop_b.id, "code": "B-HZ", "name": "杭州仓", "region": "330000"}), 201)["id"]
    for client, sku_id, warehouse_id, units in (
            (merchant_a, sku_a1, shanghai, 10), (merchant_a, sku_a2, shanghai, 10),
            (merchant_a, sku_a1, guangzhou, 10), (merchant_a, sku_a2, guangzhou, 10),
            (merchant_b, sku_b, hangzhou, 5)):
        ok(client.post("/api/v1/stock/adjust", json={
            "sku_id": sku_id, "warehouse_id": warehouse_id, "delta": units,
            "reason": "opening stock"}))
    carrier = make_carrier("SBX", rates=(("", "10.00", "2.00"),), name="Sandbox carrier")
    # risk control holds the shipping of new members' trades (credit below 650) for a look
    rule = ok(api("Risk").post("/api/v1/risk_rule/", json={
        "name": "New members", "event": "order_placed", "kind": "credit_below",
        "params": {"score": 650}, "action": "hold"}), 201)["id"]
    # shop A: 满200减25 (its own money); the platform: a coupon 满300减20 to claim
    promotion = ok(merchant_a.post("/api/v1/promotion/", json=promotion_body(
        shop_a, name="店庆满减", rules={"tiers": [{"threshold": "200.00", "amount": "25.00"}]})),
        201)["id"]
    coupon = ok(api("Marketing").post("/api/v1/coupon/", json=coupon_body(
        None, name="平台满减券", amount="20.00", threshold="300.00")), 201)["id"]
    ok(api("Operations").post("/api/v1/sensitive_word/", json={
        "word": "垃圾", "category": "other", "action": "mask"}), 201)
    after_sales_desk = ticket_queue("after_sale")
    workers.settle(what="the stage's events")

    # -- 1. the buyer chooses goods, claims the coupon, and the quote shows both discounts -----
    member = ok(storefront.post("/api/v1/member/", json={
        "account": "journey-buyer", "name": "王小明", "phone": "13812345678"}), 201)["id"]
    address = ok(storefront.post("/api/v1/member_address/", json={
        "member_id": member, "recipient": "王小明", "phone": "13812345678",
        "province_code": "310000", "city_code": "310100", "district_code": "310104",
        "detail": "漕溪北路 88 号 2 号楼 301 室"}), 201)["id"]
    claimed = ok(storefront.post(f"/api/v1/coupon/{coupon}/claim",
                                 json={"member_id": member}), 201)["result"]
    assert claimed["status"] == "granted"
    cart = {"member_id": member, "address_id": address, "coupon_codes": [claimed["code"]],
            "lines": [{"sku_id": sku_a1, "quantity": 2}, {"sku_id": sku_a2, "quantity": 1},
                      {"sku_id": sku_b, "quantity": 1}]}
    quote = ok(storefront.post("/api/v1/checkout/quote", json=cart))["result"]
    assert (quote["goods_amount"], quote["discount_amount"], quote["freight"],
            quote["payable"]) == ("396.00", "45.00", "0.00", "351.00")
    applied = {e["rule"]: (e["layer"], e["amount"]) for e in quote["explanation"]
               if e["applied"]}
    assert applied == {f"promotion:{promotion}": ("shop", "25.00"),
                       f"coupon:{coupon}": ("coupon", "20.00")}
    # each discount is spread over the lines it covers, to the cent (room above the floor)
    assert [(line["payable"], sorted((d["rule"], d["amount"]) for d in line["discounts"]))
            for line in quote["lines"]] == [
        ("171.58", [(f"coupon:{coupon}", "9.75"), (f"promotion:{promotion}", "16.67")]),
        ("85.80", [(f"coupon:{coupon}", "4.87"), (f"promotion:{promotion}", "8.33")]),
        ("93.62", [(f"coupon:{coupon}", "5.38")])]
    assert stock(sku_a1, shanghai) == (10, 0)                       # a quote reserves nothing

    # -- 2. the order is placed: stock reserved, coupon locked, the risk decision kept ---------
    placed = storefront.post("/api/v1/checkout/place", json=cart,
                             headers={"Idempotency-Key": "journey-1"})
    trade = ok(placed, 201)["result"]
    assert ok(storefront.post("/api/v1/checkout/place", json=cart,
                              headers={"Idempotency-Key": "journey-1"}), 201)["result"] == trade
    assert (trade["status"], trade["payable"], trade["risk_status"]) == \
        ("pending_payment", "351.00", "held")
    orders = {o["shop_id"]: o for o in trade["orders"]}
    order_a, order_b = orders[shop_a.id]["id"], orders[shop_b.id]["id"]
    assert (orders[shop_a.id]["payable"], orders[shop_b.id]["payable"]) == ("257.38", "93.62")
    # the Shanghai warehouse serves the buyer's province: it holds the reservation
    assert ledger(sku_a1, shanghai) == [("adjust", 0, 10, 0, 0), ("reserve", 10, 10, 0, 2)]
    assert ledger(sku_a2, shanghai) == [("adjust", 0, 10, 0, 0), ("reserve", 10, 10, 0, 1)]
    assert ledger(sku_a1, guangzhou) == [("adjust", 0, 10, 0, 0)]
    assert ledger(sku_b, hangzhou) == [("adjust", 0, 5, 0, 0), ("reserve", 5, 5, 0, 1)]
    wallet = MemberCoupon.query.filter_by(code=claimed["code"]).one()
    assert (wallet.status, wallet.trade_id, wallet.amount) == ("locked", trade["id"], D("20.00"))
    usage = sorted(((u.order_id, u.promotion_id, u.coupon_id, u.amount, u.funded_by)
                    for u in PromotionUsage.query), key=str)
    assert usage == sorted([(order_a, promotion, None, D("25.00"), "merchant"),
                            (order_a, None, coupon, D("14.62"), "platform"),
                            (order_b, None, coupon, D("5.38"), "platform")], key=str)
    decision = RiskDecision.query.one()
    assert (decision.event, decision.member_id, decision.reference, decision.decision,
            decision.status) == ("order_placed", member, f"trade:{trade['id']}", "hold", "open")
    assert decision.fired[0]["rule_id"] == rule
    assert decision.fired[0]["inputs"] == {"member_id": member, "score": 600, "below": 650}
    workers.settle(what="trade.placed")

    # -- 3. paid through the sandbox gateway: the signed notification reaches us ---------------
    attempt = ok(storefront.post(f"/api/v1/trade/{trade['id']}/pay",
                                 json={"channel": "sandbox"}), 201)["result"]
    assert attempt["amount"] == "351.00"
    page = "/sandbox/pay/" + attempt["out_trade_no"]
    with app.app_context():
        gateway = app.test_client()
        form = gateway.get(page).get_data(as_text=True)
        token = form.split('name="csrf_token" value="')[1].split('"')[0]
        paid_page = gateway.post(page, data={"outcome": "pay", "csrf_token": token,
                                             "payer_account": "buyer@example.com"})
    assert paid_page.status_code == 200
    # the gateway's notification job, then the events of the payment, run in the workers
    workers.settle(lambda: reload(Trade, trade["id"]).status == "paid"
                   and JournalEntry.query.filter_by(kind="payment").count() == 1,
                   what="the payment")
    tx = SandboxTransaction.query.filter_by(out_trade_no=attempt["out_trade_no"]).one()
    assert tx.acknowledged_at is not None and tx.notify_attempts == 1
    record = Payment.query.filter_by(out_trade_no=attempt["out_trade_no"]).one()
    assert (record.status, record.amount) == ("succeeded", D("351.00"))
    assert entries("payment", trade["trade_no"]) == [sorted([
        ("1002", None, D("351.00"), D("0.00")),
        ("2201", shop_a.id, D("0.00"), D("244.51")), ("6001", shop_a.id, D("0.00"), D("12.87")),
        ("2201", shop_b.id, D("0.00"), D("90.81")), ("6001", shop_b.id, D("0.00"), D("2.81"))])]
    # the platform's coupon is a subsidy owed to each shop (shop A's own promotion is not)
    assert entries("subsidy") == [
        sorted([("6601", None, D("14.62"), D("0.00")), ("2201", shop_a.id, D("0.00"),
                                                         D("14.62"))]),
        sorted([("6601", None, D("5.38"), D("0.00")), ("2201", shop_b.id, D("0.00"),
                                                        D("5.38"))])]
    assert balanced()
    balances = ok(api("Finance").get("/api/v1/finance/balances"))
    owed = {s["shop_id"]: (s["payable"], s["commission"]) for s in balances["shops"]}
    assert owed == {shop_a.id: ("259.13", "12.87"), shop_b.id: ("96.19", "2.81")}
    # the coupon is used; nothing is earned before the orders complete (the points rule)
    assert MemberCoupon.query.filter_by(code=claimed["code"]).one().status == "used"
    assert reload(Coupon, coupon).used == 1
    assert reload(Promotion, promotion).spent == D("25.00")
    assert points_of(member) == []
    # split: one order per shop, each one shipping notice from the warehouse holding its
    # stock, held while risk control looks at the new member's trade
    notices = {n.order_id: n for n in ShippingNotice.query}
    assert sorted(notices) == sorted([order_a, order_b])
    notice_a, notice_b = notices[order_a], notices[order_b]
    assert (notice_a.warehouse_id, notice_a.status.value, notice_a.payable,
            notice_a.hold_reason) == (shanghai, "held", D("257.38"), "Risk review")
    assert sorted((p["sku_id"], p["quantity"], p["payable"]) for p in notice_a.lines) == \
        sorted([(sku_a1, 2, "171.58"), (sku_a2, 1, "85.80")])
    assert (notice_b.warehouse_id, notice_b.status.value, notice_b.payable) == \
        (hangzhou, "held", D("93.62"))
    # logistics stamped each notice with the carrier and what it would charge
    assert (notice_a.carrier_id, notice_a.province_code) == (carrier.id, "310000")
    assert reload(Order, order_a).status.value == "fulfilling"

    # risk control releases the case: the notices go to their warehouses
    resolved = ok(api("Risk").post(f"/api/v1/risk_decision/{decision.id}/resolve", json={
        "resolution": "release", "note": "Called the buyer: genuine"}))["result"]
    assert (resolved["status"], resolved["resolution"], resolved["resolved_by"]) == \
        ("closed", "release", "risk")
    assert {reload(ShippingNotice, n.id).status.value for n in (notice_a, notice_b)} == \
        {"assigned"}
    assert reload(Trade, trade["id"]).risk_status == "none"
    assert CreditScore.query.filter_by(member_id=member).one().score == 600
    workers.settle(what="the release")

    # -- 4. dispatched to the warehouses: picked, packed and shipped by the WMS ---------------
    for client, notice, sku_ids, weight, tracking_no in (
            (merchant_a, notice_a, [sku_a1, sku_a2], "1.500", "SBX0000000001"),
            (merchant_b, notice_b, [sku_b], "0.800", "SBX0000000002")):
        pick = ok(client.post("/api/v1/pick_list/", json={"notice_ids": [notice.id]}),
                  201)["result"]
        assert pick["status"] == "open" and pick["warehouse_id"] == notice.warehouse_id
        assert sorted((line["sku_id"], line["quantity"]) for line in pick["lines"]) == \
            sorted((p["sku_id"], p["quantity"]) for p in notice.lines)
        assert reload(ShippingNotice, notice.id).status.value == "picking"
        assert ok(client.post(f"/api/v1/pick_list/{pick['id']}/picked"))["result"][
            "status"] == "picked"
        packed = ok(client.post(f"/api/v1/wms_notice/{notice.id}/pack",
                                json={"weight_kg": weight}))["result"]
        assert (packed["status"], packed["weight_kg"]) == ("packed", weight)
        shipped = ok(client.post(f"/api/v1/wms_notice/{notice.id}/ship",
                                 json={"tracking_no": tracking_no}))["result"]
        assert (shipped["status"], shipped["carrier"], shipped["tracking_no"]) == \
            ("shipped", "SBX", tracking_no)
    # the reservation is consumed: the goods left the shelf
    assert ledger(sku_a1, shanghai)[2:] == [("deduct", 10, 8, 2, 0)]
    assert ledger(sku_a2, shanghai)[2:] == [("deduct", 10, 9, 1, 0)]
    assert ledger(sku_b, hangzhou)[2:] == [("deduct", 5, 4, 1, 0)]
    assert stock(sku_a1, guangzhou) == (10, 0)
    assert reload(Order, order_a).status.value == "shipped"
    # the workers cost the parcels and subscribe them with the sandbox carrier
    workers.settle(lambda: reload(ShippingNotice, notice_a.id).cost is not None,
                   what="shipping_notice.shipped")
    assert (reload(ShippingNotice, notice_a.id).cost,
            reload(ShippingNotice, notice_b.id).cost) == (D("12.00"), D("10.00"))

    # -- 5. tracked by the sandbox carrier to signed (signed pushes) -> delivered ---------------
    for tracking_no in ("SBX0000000001", "SBX0000000002"):
        for status, text in (("collected", "已揽收"), ("in_transit", "发往上海"),
                             ("out_for_delivery", "派送中"), ("signed", "本人签收")):
            pushed = ok(api("Logistics").post("/api/v1/sandbox_carrier/advance", json={
                "tracking_no": tracking_no, "status": status, "description": text,
                "location": "上海"}))
            assert pushed["push_status"] == 200
    assert [e.status for e in TrackingEvent.query.filter_by(notice_id=notice_a.id)
            .order_by(TrackingEvent.id)] == ["collected", "in_transit", "out_for_delivery",
                                             "signed"]
    assert reload(ShippingNotice, notice_a.id).tracking_status == "signed"
    assert [reload(Order, pk).status.value for pk in (order_a, order_b)] == ["delivered"] * 2
    workers.settle(what="order.delivered")
    # the buyer confirms receipt: the orders complete and earn points (1 per whole yuan)
    for pk in (order_a, order_b):
        assert ok(storefront.post(f"/api/v1/order/{pk}/confirm-receipt"))["result"][
            "status"] == "completed"
    workers.settle(lambda: len(points_of(member)) == 2, what="order.completed")
    assert points_of(member) == [("earn", 257, 257), ("earn", 93, 350)]
    assert reload(Member, member).growth == 350
    assert reload(Trade, trade["id"]).status == "completed"

    # -- 6. reviewed by the buyer; the review moderated by its job ----------------------------
    lines = {line.sku_id: line for line in OrderLine.query.filter_by(order_id=order_a)}
    posted = ok(storefront.post("/api/v1/review/", json={
        "order_line_id": lines[sku_a2].id, "rating": 4, "text": "质量不错，包装有点垃圾",
        "images": []}), 201)
    assert posted["result"]["status"] == "pending"                   # before its job
    workers.settle(lambda: reload(Review, posted["id"]).status != "pending",
                   what="the moderation job")
    review = reload(Review, posted["id"])
    assert (review.status, review.masked_text) == ("masked", "质量不错，包装有点**")
    assert review.hits[0]["word"] == "垃圾"
    summary = RatingSummary.query.filter_by(shop_id=shop_a.id, spu_id=spu_a.id).one()
    assert (summary.reviews, summary.rating_total, summary.average) == (1, 4, D("4.00"))

    # -- 7. partly refunded through after-sales: one of the two units of the first line --------
    line_a1 = lines[sku_a1]
    assert (line_a1.quantity, line_a1.payable) == (2, D("171.58"))
    request = ok(storefront.post("/api/v1/after_sale/", json={
        "order_line_id": line_a1.id, "kind": "return_refund", "quantity": 1,
        "amount": "85.79", "reason": "Too small"}), 201)["result"]
    assert ok(merchant_a.post(f"/api/v1/after_sale/{request['id']}/approve"))["result"][
        "status"] == "approved"
    ok(storefront.post(f"/api/v1/after_sale/{request['id']}/return-shipped",
                       json={"carrier": "SBX", "tracking_no": "SBXR000000001"}))
    assert ok(merchant_a.post(f"/api/v1/after_sale/{request['id']}/receive"))["result"][
        "status"] == "received"
    assert ledger(sku_a1, shanghai)[3:] == [("return", 8, 9, 0, 0)]  # back on the shelf
    assert ok(merchant_a.post(f"/api/v1/after_sale/{request['id']}/refund"))["result"][
        "status"] == "refunding"
    # the refund goes to the gateway, the gateway notifies, the centers follow, in the workers
    workers.settle(lambda: reload(AfterSale, request["id"]).status == "refunded"
                   and len(points_of(member)) == 3, what="the refund")
    refund = PaymentRefund.query.one()
    assert (refund.status, refund.amount) == ("succeeded", D("85.79"))
    assert reload(Payment, record.id).refunded_amount == D("85.79")
    # the refund's journal entry: the shop's part and the commission's, to the cent
    assert entries("refund") == [sorted([
        ("2201", shop_a.id, D("81.50"), D("0.00")), ("6001", shop_a.id, D("4.29"), D("0.00")),
        ("1002", None, D("0.00"), D("85.79"))])]
    assert balanced()
    assert finance.balance("1002") == D("265.21")
    assert finance.balance("6601") == D("20.00")       # a partial refund keeps the subsidy
    owed = {s["shop_id"]: (s["payable"], s["commission"])
            for s in ok(api("Finance").get("/api/v1/finance/balances"))["shops"]}
    assert owed == {shop_a.id: ("177.63", "8.58"), shop_b.id: ("96.19", "2.81")}
    # points go back in proportion to the money: 257 × 85.79 / 257.38 = 85.66 → 85
    assert points_of(member)[2] == ("reverse", -85, 265)
    # the coupon and the promotion stay used: the order was not fully refunded
    assert MemberCoupon.query.filter_by(code=claimed["code"]).one().status == "used"
    assert reload(Coupon, coupon).used == 1 and reload(Promotion, promotion).spent == D("25.00")
    assert PromotionUsage.query.filter_by(returned=True).count() == 0
    assert (reload(OrderLine, line_a1.id).after_sale_amount,
            reload(Order, order_a).status.value) == (D("85.79"), "completed")
    history = ok(storefront.get(f"/api/v1/after_sale/{request['id']}"))["result"]["history"]
    assert [h["to"] for h in history] == ["requested", "approved", "return_shipped",
                                          "received", "refunding", "refunded"]
    # customer service got the request on its after-sales desk
    desk = Ticket.query.filter_by(after_sale_id=request["id"]).one()
    assert (desk.queue_id, desk.source, desk.order_id, desk.member_id) == \
        (after_sales_desk.id, "after_sale", order_a, member)
    # the refund request was assessed by risk control (no rule for it: no decision kept)
    assert RiskDecision.query.count() == 1

    # -- 8. every staff and merchant write along the way left its audit row --------------------
    assert audited("risk", "RiskRule") == [("insert", str(rule))]
    assert ("update", str(decision.id)) in audited("risk", "RiskDecision")
    assert audited("marketing", "Coupon") == [("insert", str(coupon))]
    assert audited("merchant_a", "Promotion") == [("insert", str(promotion))]
    assert [pk for action, pk in audited("merchant_a", "Warehouse")] == [str(shanghai),
                                                                         str(guangzhou)]
    assert ("insert", str(member)) in audited("storefront", "Member")
    assert any(action == "update" for action, _ in audited("merchant_a", "PickList"))
    assert [action for action, _ in audited("merchant_a", "AfterSale")] and \
        ("insert", str(request["id"])) in audited("storefront", "AfterSale")
    assert audited("operations", "SensitiveWord")[0][0] == "insert"
    jobs = {row.actor for row in AuditLog.query.filter(AuditLog.actor.like("job:%"))}
    # the workers' writes are the jobs' (each subscriber by its name)
    assert {"job:sandbox_notify", "job:submit_refund", "job:moderate_review",
            "job:finance.post_trade_paid", "job:logistics.stamp_notice",
            "job:after_sale.refund_done"} <= jobs, jobs
    # every subscriber ran once, in a worker, at its first attempt
    assert {(d.status, d.attempts) for d in EventDelivery.query} == {("done", 1)}
    listed = ok(api("Operations").get(
        "/api/v1/audit_log/?q=(filters:!((col:actor,opr:eq,value:merchant_a)))"))
    assert listed["count"] == AuditLog.query.filter_by(actor="merchant_a").count() > 0

