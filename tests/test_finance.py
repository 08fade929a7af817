"""财务管理: the journal posts every payment and refund in balanced entries (also over random
sequences), balances are derived, entries are only reversed, and the daily reconciliation
finds each kind of mismatch and nothing on a clean day."""
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.extensions import db
from models.finance import JournalEntry, JournalLine, ReconciliationRun
from models.payment import Payment, PaymentRefund, SandboxTransaction
from services import clock, finance, order
from services.actor import Actor, acting_as
from services.errors import ConflictError
from tests.factories import make_order, refund_through_after_sale
from tests.test_payment import settle, start


@pytest.fixture(autouse=True)
def inprocess(app, monkeypatch):
    """Postings run in-process right after each commit."""
    monkeypatch.setitem(app.config, "REDIS_URL", None)


def run_jobs(app):
    from app.queue import run_inprocess_jobs

    run_inprocess_jobs(db.session)


def paid_offline(shop, quantity=2):
    placed = make_order(shop, quantity=quantity)
    with acting_as(Actor.system("test")):
        order.mark_paid(placed.trade_id, "cash at the counter")
        db.session.commit()
        from app.queue import run_inprocess_jobs

        run_inprocess_jobs(db.session)
    return placed


def paid_by_gateway(app, api, shop, quantity=2):
    placed = make_order(shop, quantity=quantity)
    settle(app, start(api, placed.trade_id).json["result"]["out_trade_no"])
    return placed


def refund_line(placed, amount: Decimal):
    """A refund-only request on the order's line, approved and refunded."""
    return refund_through_after_sale(placed, amount)


def unbalanced_entries() -> list:
    sums = db.session.execute(
        select(JournalLine.entry_id, func.sum(JournalLine.debit), func.sum(JournalLine.credit))
        .group_by(JournalLine.entry_id)).all()
    return [(entry_id, d, c) for entry_id, d, c in sums if d != c]


def test_an_offline_payment_posts_cash_the_shops_part_and_the_commission(app, shops):
    placed = paid_offline(shops["A"])                       # 198.00, commission 5 %
    assert finance.balance("1001") == Decimal("198.00")
    assert finance.balance("2201", shops["A"].id) == Decimal("-188.10")
    assert finance.balance("6001", shops["A"].id) == Decimal("-9.90")
    entry = JournalEntry.query.filter_by(kind="payment").one()
    assert entry.reference == db.session.get(order.Trade, placed.trade_id).trade_no
    assert unbalanced_entries() == []


def test_gateway_payment_and_refund_post_through_gateway_cash(app, api, shops, users):
    placed = paid_by_gateway(app, api, shops["A"])
    refund_line(placed, Decimal("99.00"))
    assert finance.balance("1002") == Decimal("99.00")           # 198 in, 99 back
    assert finance.balance("2201", shops["A"].id) == Decimal("-94.05")
    assert finance.balance("6001", shops["A"].id) == Decimal("-4.95")
    assert finance.balance("1001") == Decimal("0.00")
    assert unbalanced_entries() == []


def test_late_money_is_kept_to_give_back_then_given_back(app, api, shops, users):
    placed = make_order(shops["A"], quantity=1)
    out_trade_no = start(api, placed.trade_id).json["result"]["out_trade_no"]
    with acting_as(Actor.system("test")):
        order.cancel_trade(placed.trade_id, "changed their mind")
        db.session.commit()
    settle(app, out_trade_no)
    assert PaymentRefund.query.one().status == "succeeded"
    assert finance.balance("1002") == Decimal("0.00")
    assert finance.balance("2202") == Decimal("0.00")
    kinds = sorted(e.kind for e in JournalEntry.query)
    assert kinds == ["payment.unapplied", "refund"]


def test_entries_are_reversed_never_edited_and_unbalanced_ones_refused(app, shops):
    paid_offline(shops["B"], quantity=1)
    entry = JournalEntry.query.one()
    with acting_as(Actor.system("test")):
        mirror = finance.reverse(entry.id, "posted twice by mistake")
        db.session.commit()
        assert mirror.reverses_id == entry.id
        with pytest.raises(ConflictError):
            finance.reverse(entry.id, "again")
        with pytest.raises(finance.UnbalancedEntry):
            finance.post("manual", [("1001", None, Decimal("1.00"), Decimal("0")),
                                    ("2202", None, Decimal("0"), Decimal("0.99"))])
    assert finance.balance("1001") == Decimal("0.00")
    assert finance.balance("2201", shops["B"].id) == Decimal("0.00")


OPERATIONS = st.lists(st.tuples(st.sampled_from(["offline", "gateway", "late"]),
                                st.integers(min_value=1, max_value=3),
                                st.integers(min_value=0, max_value=150)),
                      min_size=1, max_size=4)


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS)
def test_the_journal_is_always_balanced_over_random_sequences(app, api, shops, users,
                                                              operations):
    """Payments offline or through the gateway, partial refunds, late money: every entry
    balances, and cash equals what came in minus what went back."""
    money_in = money_out = Decimal("0.00")
    before = {code: finance.balance(code) for code in finance.ACCOUNTS}
    for kind, quantity, refund_cents in operations:
        if kind == "late":
            placed = make_order(shops["A"], quantity=quantity)
            out_trade_no = start(api, placed.trade_id).json["result"]["out_trade_no"]
            with acting_as(Actor.system("test")):
                order.cancel_trade(placed.trade_id, "late")
                db.session.commit()
            settle(app, out_trade_no)
            continue
        placed = (paid_offline(shops["B"], quantity) if kind == "offline"
                  else paid_by_gateway(app, api, shops["A"], quantity))
        paid = db.session.get(order.Trade, placed.trade_id).payable
        money_in += paid
        refund = min(Decimal(refund_cents), paid)
        if refund:
            refund_line(placed, refund)
            money_out += refund
    after = {code: finance.balance(code) - before[code] for code in finance.ACCOUNTS}
    assert unbalanced_entries() == []
    assert sum(after.values(), Decimal("0")) == 0
    assert after["1001"] + after["1002"] == money_in - money_out
    assert after["2202"] == 0                      # late money all given back


# -- reconciliation ------------------------------------------------------------------------------

def today():
    from services.clock import business_date

    return business_date()


def reconcile():
    with acting_as(Actor.system("test")):
        run = finance.reconcile(today())
        db.session.commit()
    return run


def test_a_clean_day_says_so(app, api, shops, users):
    paid_by_gateway(app, api, shops["A"])
    placed = paid_by_gateway(app, api, shops["A"])
    refund_line(placed, Decimal("50.00"))
    paid_offline(shops["B"])
    run = reconcile()
    assert (run.status, run.mismatches) == ("clean", 0) and run.checked >= 4
    assert ReconciliationRun.query.count() == 1


def test_each_injected_mismatch_is_found_with_its_kind(app, api, shops, users):
    amount_differs = paid_by_gateway(app, api, shops["A"])
    unknown = paid_by_gateway(app, api, shops["A"])
    refunded = paid_by_gateway(app, api, shops["A"])
    refund_line(refunded, Decimal("20.00"))
    missing = make_order(shops["A"], quantity=1)
    missing_no = start(api, missing.trade_id).json["result"]["out_trade_no"]
    clean = paid_by_gateway(app, api, shops["B"])

    def tx_of(placed, kind="payment"):
        payment = Payment.query.filter_by(trade_id=placed.trade_id).first()
        return SandboxTransaction.query.filter_by(out_trade_no=payment.out_trade_no,
                                                  kind=kind).one()

    tx_of(amount_differs).amount = Decimal("1.00")                  # the gateway says 1.00
    tx_of(unknown).status = "failed"                                # the gateway has no payment
    tx_of(refunded, "refund").status = "failed"                     # nor the refund
    settle_only_at_gateway = SandboxTransaction.query.filter_by(out_trade_no=missing_no).one()
    settle_only_at_gateway.status = "succeeded"                     # its notice never came
    settle_only_at_gateway.finished_at = clock.now()
    db.session.commit()
    run = reconcile()
    found = sorted((item.kind) for item in run.items)
    assert found == ["payment_amount_differs", "payment_missing", "payment_unknown_to_gateway",
                     "refund_unknown_to_gateway"], found
    assert run.status == "mismatches" and run.mismatches == 4
    references = {item.reference for item in run.items}
    assert Payment.query.filter_by(trade_id=clean.trade_id).one().out_trade_no not in references
    item = run.items[0]
    with acting_as(Actor.system("test")):
        finance.resolve(item.id, "checked with the gateway", "finance")
        db.session.commit()
    assert reconcile().mismatches == 3              # a resolved item is not raised again


# -- settlement ----------------------------------------------------------------------------------

def test_a_settlement_counts_payments_less_commission_and_refunds_once(app, api, shops, users):
    from datetime import timedelta

    from services.clock import business_date
    from tests.factories import posted_yesterday

    posted_yesterday(shops["A"], Decimal("200.00"))          # commission 5 % = 10.00
    posted_yesterday(shops["A"], Decimal("100.00"))          # 5.00
    with acting_as(Actor.system("test")):
        lines = [("2201", shops["A"].id, Decimal("47.50"), Decimal("0")),
                 ("6001", shops["A"].id, Decimal("2.50"), Decimal("0")),
                 ("1001", None, Decimal("0"), Decimal("50.00"))]
        finance.post("refund", lines, occurred_at=clock.now() - timedelta(days=1))
        db.session.commit()
    yesterday = (business_date() - timedelta(days=1)).isoformat()
    finance_user = api("Finance")
    made = finance_user.post("/api/v1/settlement/", json={"shop_id": shops["A"].id,
                                                          "period_end": yesterday})
    assert made.status_code == 201, made.json
    statement = made.json["result"]
    assert (statement["paid_by_buyers"], statement["commission"], statement["refunds"],
            statement["net"]) == ("300.00", "12.50", "50.00", "237.50")
    again = finance_user.post("/api/v1/settlement/", json={"shop_id": shops["A"].id,
                                                           "period_end": yesterday})
    assert again.status_code == 409                                 # nothing left to settle
    today = business_date().isoformat()
    assert finance_user.post("/api/v1/settlement/", json={
        "shop_id": shops["A"].id, "period_end": today}).status_code == 422
    pk = statement["id"]
    assert finance_user.post(f"/api/v1/settlement/{pk}/pay",
                             json={"reference": "BANK-1"}).status_code == 409
    assert finance_user.post(f"/api/v1/settlement/{pk}/approve", json={}).status_code == 200
    paid = finance_user.post(f"/api/v1/settlement/{pk}/pay", json={"reference": "BANK-1"})
    assert paid.json["result"]["status"] == "paid"
    assert finance.balance("2201", shops["A"].id) == Decimal("0.00")
    assert finance.balance("1003") == Decimal("-237.50")
    mine = api("merchant_a").get("/api/v1/settlement/").json
    assert mine["count"] == 1 and mine["result"][0]["net"] == "237.50"
    assert api("merchant_b").get("/api/v1/settlement/").json["count"] == 0
    assert api("merchant_a").post(f"/api/v1/settlement/{pk}/approve",
                                  json={}).status_code == 403


def test_money_panels_match_the_records_and_merchants_see_their_own(app, api, shops, users,
                                                                    browser):
    from services import dashboard
    from services.clock import business_date
    from tests.factories import _settlement_row

    placed = paid_by_gateway(app, api, shops["A"])           # 198.00
    refund_line(placed, Decimal("50.00"))
    _settlement_row(shops["A"])                               # a draft for shop A
    today = business_date().isoformat()
    with acting_as(Actor.system("test")):
        paid = dashboard.payments_per_day()
        assert paid["values"][paid["keys"].index(today)] == "198.00"
        refunded = dashboard.refunds_per_day()
        assert refunded["values"][refunded["keys"].index(today)] == "50.00"
        rate = dashboard.refund_rate()
        assert rate["values"] == ["148.00", "50.00"] and rate["rate"] == "0.2525"
        assert dashboard.settlement_due()["values"][0] == "95.00"   # 100 less 5 % commission
    page = browser("merchant_b").get("/").get_data(as_text=True)
    assert "settlement_due" in page and "95.00" not in page
    assert "95.00" in browser("merchant_a").get("/").get_data(as_text=True)
    assert "refund_rate" in browser("Finance").get("/").get_data(as_text=True)


def test_the_other_mismatch_kinds_are_found_too(app, api, shops, users):
    """Refund missing or of another amount at the gateway, a trade paid although no attempt
    succeeded, and a trade whose payments kept another amount than its payable."""
    refund_missing = paid_by_gateway(app, api, shops["A"])
    refund_line(refund_missing, Decimal("10.00"))
    refund_differs = paid_by_gateway(app, api, shops["A"])
    refund_line(refund_differs, Decimal("20.00"))
    offline = make_order(shops["A"], quantity=1)
    start(api, offline.trade_id)                      # an attempt that never succeeded …
    with acting_as(Actor.system("test")):
        order.mark_paid(offline.trade_id, "… then paid at the counter")
        db.session.commit()
    kept_other = paid_by_gateway(app, api, shops["B"])

    def refund_of(placed):
        payment = Payment.query.filter_by(trade_id=placed.trade_id).one()
        return PaymentRefund.query.filter_by(payment_id=payment.id).one()

    refund_of(refund_missing).status = "submitted"    # its notification never came
    SandboxTransaction.query.filter_by(
        out_refund_no=refund_of(refund_differs).out_refund_no).one().amount = Decimal("2.00")
    db.session.get(order.Trade, kept_other.trade_id).payable = Decimal("250.00")
    db.session.commit()
    found = sorted(item.kind for item in reconcile().items)
    assert found == ["refund_amount_differs", "refund_missing", "trade_amount_differs",
                     "trade_paid_without_payment"], found


class DownGateway:
    """A gateway whose refund endpoint cannot be reached."""

    channel = "sandbox"

    def refund(self, *args):
        raise ConnectionError("gateway unreachable")


def test_a_refund_that_cannot_reach_the_gateway_is_retried_then_queued_for_a_person(
        app, api, shops, users, monkeypatch):
    from services import gateways, payment as payments, scheduler

    placed = paid_by_gateway(app, api, shops["A"])
    real = gateways.gateway("sandbox")
    monkeypatch.setattr(gateways, "gateway", lambda channel: DownGateway())
    refund_line(placed, Decimal("30.00"))
    refund = PaymentRefund.query.one()
    assert (refund.status, refund.attempts) == ("pending", 1)
    assert "unreachable" in refund.last_error
    with acting_as(Actor.system("tick")):
        for _ in range(payments.MAX_REFUND_ATTEMPTS - 1):
            scheduler.tasks()["payments.retry_refunds"]()
    db.session.expire_all()
    refund = PaymentRefund.query.one()
    assert (refund.status, refund.attempts) == ("failed", payments.MAX_REFUND_ATTEMPTS)
    assert Payment.query.one().refunded_amount == Decimal("0.00")   # refundable again
    monkeypatch.setattr(gateways, "gateway", lambda channel: real)
