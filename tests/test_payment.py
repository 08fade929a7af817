"""支付中心: pay a trade through the sandbox gateway end to end; signed, idempotent notifications;
amount mismatches flagged; late money refunded; the gateway's retries."""
import json
import threading
from datetime import timedelta
from decimal import Decimal

import pytest

from app.extensions import db
from models.events import OutboxEvent
from models.order import OrderStatus, Trade
from models.payment import Payment, PaymentRefund, SandboxTransaction
from services import clock, payment, scheduler
from services.actor import Actor, acting_as
from services.gateways import sandbox
from tests.conftest import requires_postgres
from tests.factories import make_order


@pytest.fixture(autouse=True)
def inprocess(app, monkeypatch):
    """Jobs (the gateway's notifications, refunds) run in-process after each commit."""
    monkeypatch.setitem(app.config, "REDIS_URL", None)


@pytest.fixture
def trade(app, shops, users):
    """An unpaid trade of 2 units (payable 198.00)."""
    return db.session.get(Trade, make_order(shops["A"], quantity=2).trade_id)


def start(api, trade_id, channel="sandbox"):
    return api("Storefront").post(f"/api/v1/trade/{trade_id}/pay", json={"channel": channel})


def reload(model, pk):
    db.session.expire_all()
    return db.session.get(model, pk)


def notice(out_trade_no, amount="198.00", status="SUCCESS", currency="CNY", **extra):
    body = {"out_trade_no": out_trade_no, "transaction_id": f"T-{out_trade_no}",
            "amount": amount, "currency": currency, "status": status,
            "paid_at": clock.now().isoformat(), "payer_account": "buyer@example.com", **extra}
    return json.dumps(body).encode()


def post_notice(client, raw, signature=None, channel="sandbox"):
    with client.application.app_context():
        signature = sandbox.sign(raw) if signature is None else signature
    headers = {"Content-Type": "application/json"}
    if signature:
        headers["X-Signature"] = signature
    return client.post(f"/api/v1/payment/notify/{channel}", data=raw, headers=headers)


def settle(app, out_trade_no, paid=True):
    """The tester's click on the pay page, then the jobs it leaves (the notification)."""
    from app.queue import run_inprocess_jobs

    with app.app_context():
        sandbox.settle(out_trade_no, paid=paid)
        db.session.commit()
        run_inprocess_jobs(db.session)


def events(name):
    db.session.expire_all()
    return OutboxEvent.query.filter_by(name=name).count()


def test_pay_on_the_sandbox_page_notifies_the_shop_and_the_trade_is_paid(app, api, trade):
    answer = start(api, trade.id)
    assert answer.status_code == 201, answer.json
    result = answer.json["result"]
    assert result["amount"] == "198.00" and result["pay_url"].endswith(
        f"/sandbox/pay/{result['out_trade_no']}")
    assert reload(Payment, result["payment_id"]).status == "pending"
    page_path = "/sandbox/pay/" + result["out_trade_no"]
    client = app.test_client()
    page = client.get(page_path).get_data(as_text=True)
    assert "198.00\nCNY" in page or "198.00 CNY" in page
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    paid = client.post(page_path, data={"outcome": "pay", "csrf_token": token,
                                        "payer_account": "buyer@example.com"})
    assert paid.status_code == 200 and b"succeeded" in paid.data
    # the notification went out after the commit, signed, and was acknowledged
    record = reload(Payment, result["payment_id"])
    assert record.status == "succeeded" and record.transaction_id.startswith("SBX")
    assert record.payer_account == "buy***om"
    assert reload(Trade, trade.id).status == OrderStatus.paid
    tx = SandboxTransaction.query.filter_by(out_trade_no=result["out_trade_no"]).one()
    assert tx.acknowledged_at is not None and tx.notify_attempts == 1
    assert events("trade.paid") == 1 and events("payment.succeeded") == 1
    listed = api("Finance").get("/api/v1/payment/").json
    assert listed["result"][0]["status"] == "succeeded"
    assert listed["result"][0]["trade_id"] == trade.id
    assert page_path.split("/")[-1] in client.get(page_path).get_data(as_text=True)


def test_a_failed_payment_leaves_the_trade_unpaid_and_a_new_attempt_can_pay(app, api, trade):
    first = start(api, trade.id).json["result"]
    settle(app, first["out_trade_no"], paid=False)
    assert reload(Payment, first["payment_id"]).status == "failed"
    assert reload(Trade, trade.id).status == OrderStatus.pending_payment
    second = start(api, trade.id).json["result"]
    assert second["out_trade_no"] != first["out_trade_no"]
    client = app.test_client()
    assert post_notice(client, notice(second["out_trade_no"])).json == {"result": "ok"}
    assert reload(Trade, trade.id).status == OrderStatus.paid
    assert start(api, trade.id).status_code == 409


def test_bad_or_missing_signature_is_401_and_changes_nothing(app, api, trade):
    out_trade_no = start(api, trade.id).json["result"]["out_trade_no"]
    client = app.test_client()
    raw = notice(out_trade_no)
    assert post_notice(client, raw, signature="0" * 64).status_code == 401
    assert post_notice(client, raw, signature="").status_code == 401
    with app.app_context():
        genuine = sandbox.sign(raw)
    forged = notice(out_trade_no, amount="1.00")   # another body under a genuine signature
    assert post_notice(client, forged, signature=genuine).status_code == 401
    assert reload(Trade, trade.id).status == OrderStatus.pending_payment
    assert Payment.query.one().status == "pending" and Payment.query.one().notification is None


def test_unknown_payment_404_and_bad_bodies_are_refused(app, api, trade):
    client = app.test_client()
    assert post_notice(client, notice("P-nope")).status_code == 404
    assert post_notice(client, notice("P-nope"), channel="nochannel").status_code == 404
    out_trade_no = start(api, trade.id).json["result"]["out_trade_no"]
    answer = post_notice(client, notice(out_trade_no, status="MAYBE"))
    assert answer.status_code == 422 and "status" in answer.json["errors"]
    assert post_notice(client, b"not json").status_code == 400
    assert start(api, trade.id, channel="bank-of-nowhere").status_code == 422
    assert api("Storefront").post(f"/api/v1/trade/{trade.id}/pay", json={}).status_code == 422


def test_amount_or_currency_mismatch_is_422_and_flagged_for_a_person(app, api, trade):
    out_trade_no = start(api, trade.id).json["result"]["out_trade_no"]
    client = app.test_client()
    answer = post_notice(client, notice(out_trade_no, amount="1.98"))
    assert answer.status_code == 422 and "amount" in answer.json["errors"]
    record = Payment.query.one()
    assert reload(Payment, record.id).status == "flagged"
    assert "1.98" in reload(Payment, record.id).flag_reason
    assert post_notice(client, notice(out_trade_no, currency="USD")).status_code == 422
    assert reload(Trade, trade.id).status == OrderStatus.pending_payment
    assert events("payment.flagged") == 1


def test_the_same_notification_ten_times_has_one_effect(app, api, trade):
    out_trade_no = start(api, trade.id).json["result"]["out_trade_no"]
    client = app.test_client()
    raw = notice(out_trade_no)
    answers = [post_notice(client, raw) for _ in range(10)]
    assert all(a.status_code == 200 and a.json == {"result": "ok"} for a in answers)
    assert reload(Trade, trade.id).status == OrderStatus.paid
    assert events("trade.paid") == 1 and events("payment.succeeded") == 1
    assert PaymentRefund.query.count() == 0


def test_money_arriving_after_the_trade_was_cancelled_is_kept_and_refunded(app, api, trade):
    out_trade_no = start(api, trade.id).json["result"]["out_trade_no"]
    with app.app_context(), acting_as(Actor.system("test")):
        from services import order

        order.cancel_trade(trade.id, "buyer changed their mind")
        db.session.commit()
    settle(app, out_trade_no)   # the buyer paid on the page still open
    record = Payment.query.filter_by(out_trade_no=out_trade_no).one()
    record = reload(Payment, record.id)
    assert record.status == "succeeded" and record.refunded_amount == Decimal("198.00")
    refund = PaymentRefund.query.one()
    assert (refund.status, refund.amount) == ("succeeded", Decimal("198.00"))
    assert "cancelled" in refund.reason
    assert reload(Trade, trade.id).status == OrderStatus.cancelled
    assert SandboxTransaction.query.filter_by(kind="refund").one().acknowledged_at is not None
    assert events("payment.refunded") == 1


def test_refunds_never_exceed_what_was_paid(app, api, trade):
    out_trade_no = start(api, trade.id).json["result"]["out_trade_no"]
    post_notice(app.test_client(), notice(out_trade_no))
    with app.app_context(), acting_as(Actor.system("test")):
        record = Payment.query.filter_by(out_trade_no=out_trade_no).one()
        payment.request_refund(record, Decimal("150.00"), "returned")
        with pytest.raises(payment.ConflictError) as refused:
            payment.request_refund(record, Decimal("48.01"), "too much")
        assert "48.00" in str(refused.value.errors)
        db.session.commit()


class FlakyTransport:
    """The shop's endpoint is down for the first `failures` notifications."""

    def __init__(self, failures):
        self.failures, self.calls = failures, 0

    def post(self, path, body, headers):
        self.calls += 1
        if self.calls <= self.failures:
            return 502, b"bad gateway"
        return sandbox.WsgiTransport().post(path, body, headers)


def test_the_gateway_retries_on_its_schedule_until_acknowledged(app, api, trade):
    out_trade_no = start(api, trade.id).json["result"]["out_trade_no"]
    flaky = FlakyTransport(failures=2)
    app.extensions["houtai_sandbox_transport"] = flaky
    try:
        clock.set_now(clock.now())
        with app.app_context():
            sandbox.settle(out_trade_no, paid=True)
            db.session.commit()
            from app.queue import run_inprocess_jobs

            run_inprocess_jobs(db.session)
            tx = SandboxTransaction.query.filter_by(out_trade_no=out_trade_no).one()
            assert (tx.notify_attempts, tx.acknowledged_at) == (1, None)
            assert tx.next_notify_at == clock.now() + sandbox.NOTIFY_SCHEDULE[0]
            assert scheduler.tasks()["sandbox.notify"]() == 0          # not due yet
            clock.set_now(clock.now() + sandbox.NOTIFY_SCHEDULE[0])
            assert scheduler.tasks()["sandbox.notify"]() == 1          # fails again
            clock.set_now(clock.now() + sandbox.NOTIFY_SCHEDULE[1])
            assert scheduler.tasks()["sandbox.notify"]() == 1          # acknowledged
            tx = reload(SandboxTransaction, tx.id)
            assert tx.notify_attempts == 3 and tx.acknowledged_at is not None
            assert scheduler.tasks()["sandbox.notify"]() == 0
    finally:
        app.extensions.pop("houtai_sandbox_transport")
    assert reload(Trade, trade.id).status == OrderStatus.paid and flaky.calls == 3


def test_ten_concurrent_copies_of_a_notification_have_one_effect(app, api, trade):
    requires_postgres(app)
    out_trade_no = start(api, trade.id).json["result"]["out_trade_no"]
    raw = notice(out_trade_no)
    with app.app_context():
        signature = sandbox.sign(raw)
    barrier = threading.Barrier(10)
    answers = []

    def deliver():
        client = app.test_client()
        barrier.wait()
        answers.append(client.post("/api/v1/payment/notify/sandbox", data=raw, headers={
            "Content-Type": "application/json", "X-Signature": signature}).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * 10
    assert reload(Trade, trade.id).status == OrderStatus.paid
    assert events("trade.paid") == 1 and events("payment.succeeded") == 1


def test_concurrent_refunds_stop_at_the_amount_paid(app, api, trade):
    requires_postgres(app)
    out_trade_no = start(api, trade.id).json["result"]["out_trade_no"]
    post_notice(app.test_client(), notice(out_trade_no))
    payment_id = Payment.query.filter_by(out_trade_no=out_trade_no).one().id
    barrier = threading.Barrier(10)
    outcomes = []

    def refund_60():
        with app.app_context(), acting_as(Actor.system("test")):
            barrier.wait()
            try:
                payment.request_refund(db.session.get(Payment, payment_id), Decimal("60.00"),
                                       "partial")
                db.session.commit()
                outcomes.append("ok")
            except payment.ConflictError:
                db.session.rollback()
                outcomes.append("refused")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=refund_60) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("ok") == 3 and outcomes.count("refused") == 7
    assert reload(Payment, payment_id).refunded_amount == Decimal("180.00")


def naive_payment_lookup(both_read):
    """The bug the lock prevents: read the payment without locking it, let the other
    delivery read it too, then go on."""
    from sqlalchemy import select

    def lookup(out_trade_no, channel):
        found = db.session.scalars(select(Payment).where(
            Payment.out_trade_no == out_trade_no)).one()
        both_read.wait(timeout=10)
        return found

    return lookup


def test_control_two_unlocked_deliveries_both_take_effect(app, api, trade, monkeypatch):
    """Without the payment row lock, two copies both see it pending: the check above (one
    `payment.succeeded`) would catch it."""
    requires_postgres(app)
    out_trade_no = start(api, trade.id).json["result"]["out_trade_no"]
    raw = notice(out_trade_no)
    with app.app_context():
        signature = sandbox.sign(raw)
    monkeypatch.setattr(payment, "_payment_for_update", naive_payment_lookup(
        threading.Barrier(2)))

    def deliver():
        app.test_client().post("/api/v1/payment/notify/sandbox", data=raw, headers={
            "Content-Type": "application/json", "X-Signature": signature})

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert events("payment.succeeded") == 2


def test_control_a_read_then_write_refund_overspends(app, api, trade):
    """Two refunds of 150 on 198 paid, each checking what is left before writing: both pass,
    which the conditional UPDATE of `request_refund` refuses."""
    requires_postgres(app)
    out_trade_no = start(api, trade.id).json["result"]["out_trade_no"]
    post_notice(app.test_client(), notice(out_trade_no))
    payment_id = Payment.query.filter_by(out_trade_no=out_trade_no).one().id
    both_read = threading.Barrier(2)
    granted = []

    def naive_refund():
        with app.app_context():
            record = db.session.get(Payment, payment_id)
            left = record.amount - record.refunded_amount
            both_read.wait(timeout=10)
            if left >= Decimal("150.00"):
                record.refunded_amount = record.refunded_amount + Decimal("150.00")
                db.session.commit()
                granted.append(150)
            db.session.remove()

    threads = [threading.Thread(target=naive_refund) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) > 198
