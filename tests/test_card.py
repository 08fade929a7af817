"""会员中心 cards (卡券): stored-value and gift cards issued, topped up (once per reference) and
bound; a trade paid at checkout with a card (all of the payable or nothing, only the buyer's
own card, never more than the balance whatever runs at the same time); refunds back onto the
card; the journal and the daily reconciliation with card days."""
import os
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.extensions import db
from models.after_sale import AfterSale
from models.card import Card, CardLedger
from models.events import OutboxEvent
from models.finance import JournalEntry
from models.member import MemberAddress
from models.order import OrderStatus, Trade
from models.payment import Payment, PaymentRefund
from services import card, clock, finance, gateways, payment
from services import order as orders
from services.actor import Actor, acting_as
from services.errors import ConflictError
from tests.conftest import requires_postgres, requires_redis
from tests.factories import (address_body, make_member, make_order, make_spu, make_warehouse,
                             refund_through_after_sale, stock_up)
from tests.test_finance import unbalanced_entries


@pytest.fixture(autouse=True)
def inprocess(app, monkeypatch):
    """Jobs (event deliveries, refunds to the card) run in-process after each commit."""
    monkeypatch.setitem(app.config, "REDIS_URL", None)


def run_jobs():
    from app.queue import run_inprocess_jobs

    run_inprocess_jobs(db.session)


def issue(kind="stored_value", amount="300.00", member_id=None, **terms) -> Card:
    with acting_as(Actor.system("test")):
        made = card.issue(kind, Decimal(amount), member_id, **terms)
        db.session.commit()
        run_jobs()
    return made


def reload(model, pk):
    db.session.expire_all()
    return db.session.get(model, pk)


def events(name):
    db.session.expire_all()
    return OutboxEvent.query.filter_by(name=name).count()


def ledger(card_id):
    db.session.expire_all()
    return [(r.reason, r.delta, r.balance_after) for r in CardLedger.query.filter_by(
        card_id=card_id).order_by(CardLedger.id)]


def pay(api, trade_id, card_no, channel="card"):
    return api("Storefront").post(f"/api/v1/trade/{trade_id}/pay",
                                  json={"channel": channel, "card_no": card_no})


def nothing_paid(trade_id):
    return reload(Trade, trade_id).status == OrderStatus.pending_payment and \
        Payment.query.filter_by(trade_id=trade_id).count() == 0


@pytest.fixture
def placed(app, shops, users):
    """An unpaid order of 2 units (payable 198.00), and its buyer's stored-value card of 300."""
    made = make_order(shops["A"], quantity=2)
    return made, issue(member_id=made.member_id)


# -- issuing, topping up, binding ---------------------------------------------------------------

def test_issue_and_top_up_write_the_ledger_and_a_top_up_counts_once(app, api, shops, users):
    member = make_member()
    finance_user = api("Finance")
    made = finance_user.post("/api/v1/card/", json={"kind": "stored_value", "amount": "200.00",
                                                    "member_id": member.id})
    assert made.status_code == 201, made.json
    result = made.json["result"]
    assert set(result) == {"id", "card_no", "kind", "member_id", "balance", "status",
                           "expires_at", "created_at"}
    assert (result["kind"], result["member_id"], result["balance"], result["status"]) == \
        ("stored_value", member.id, "200.00", "active")
    assert result["card_no"].startswith("CD")
    pk = result["id"]
    first = finance_user.post(f"/api/v1/card/{pk}/top_up",
                              json={"amount": "50.50", "reference": "POS-1"})
    assert first.status_code == 201, first.json
    assert (first.json["result"]["delta"], first.json["result"]["balance_after"]) == \
        ("50.50", "250.50")
    again = finance_user.post(f"/api/v1/card/{pk}/top_up",
                              json={"amount": "50.50", "reference": "POS-1"})
    assert again.status_code == 201 and again.json["result"]["id"] == first.json["result"]["id"]
    other_amount = finance_user.post(f"/api/v1/card/{pk}/top_up",
                                     json={"amount": "60.00", "reference": "POS-1"})
    assert other_amount.status_code == 409 and "reference" in other_amount.json["errors"]
    assert ledger(pk) == [("issue", Decimal("200.00"), Decimal("200.00")),
                          ("top_up", Decimal("50.50"), Decimal("250.50"))]
    assert reload(Card, pk).balance == card.balance_of_ledger(pk) == Decimal("250.50")
    shown = finance_user.get(f"/api/v1/card/{pk}").json["result"]
    assert shown["balance"] == "250.50"
    rows = finance_user.get(f"/api/v1/card_ledger/?q=(filters:!((col:card_id,opr:eq,value:{pk})))")
    assert rows.json["count"] == 2
    gift = issue("gift", "100.00")
    refused = finance_user.post(f"/api/v1/card/{gift.id}/top_up",
                                json={"amount": "10.00", "reference": "POS-2"})
    assert refused.status_code == 409 and refused.json["errors"] == {"kind": ["gift"]}
    assert ledger(gift.id) == [("issue", Decimal("100.00"), Decimal("100.00"))]


def test_a_gift_card_is_issued_unbound_and_bound_once(app, api, shops, users):
    gift = issue("gift", "100.00")
    first, second = make_member(), make_member()
    marketing = api("Marketing")
    bound = marketing.post(f"/api/v1/card/{gift.id}/bind", json={"member_id": first.id})
    assert bound.status_code == 200 and bound.json["result"]["member_id"] == first.id
    assert marketing.post(f"/api/v1/card/{gift.id}/bind",
                          json={"member_id": first.id}).status_code == 200
    taken = marketing.post(f"/api/v1/card/{gift.id}/bind", json={"member_id": second.id})
    assert taken.status_code == 409 and "member_id" in taken.json["errors"]
    assert reload(Card, gift.id).member_id == first.id
    assert marketing.post("/api/v1/card/987654/bind",
                          json={"member_id": first.id}).status_code == 404


def test_frozen_void_and_expired_cards_are_refused_naming_the_field(app, api, placed):
    made, stored = placed
    stored.status = "frozen"
    db.session.commit()
    answer = pay(api, made.trade_id, stored.card_no)
    assert answer.status_code == 409 and answer.json["errors"] == {"status": ["frozen"]}
    topped = api("Finance").post(f"/api/v1/card/{stored.id}/top_up",
                                 json={"amount": "10.00", "reference": "POS-9"})
    assert topped.status_code == 409 and topped.json["errors"] == {"status": ["frozen"]}
    expiring = issue(member_id=made.member_id, expires_at=clock.now() + timedelta(hours=1))
    clock.set_now(clock.now() + timedelta(hours=2))
    answer = pay(api, made.trade_id, expiring.card_no)
    assert answer.status_code == 409 and "expires_at" in answer.json["errors"]
    assert nothing_paid(made.trade_id)
    assert ledger(stored.id) == [("issue", Decimal("300.00"), Decimal("300.00"))]
    assert ledger(expiring.id) == [("issue", Decimal("300.00"), Decimal("300.00"))]


def test_bad_inputs_are_422_naming_the_field_and_change_nothing(app, api, placed):
    made, stored = placed
    finance_user = api("Finance")
    before = (Card.query.count(), CardLedger.query.count())
    for body, field in (
            ({"kind": "gift", "amount": "0.00"}, "amount"),
            ({"kind": "gift", "amount": "-1.00"}, "amount"),
            ({"kind": "gift", "amount": "12.345"}, "amount"),
            ({"kind": "gift", "amount": "100000.01"}, "amount"),
            ({"kind": "gift", "amount": True}, "amount"),
            ({"kind": "platinum", "amount": "10.00"}, "kind"),
            ({"kind": "stored_value", "amount": "10.00"}, "member_id"),
            ({"kind": "gift", "amount": "10.00", "member_id": 987654}, "member_id"),
            ({"kind": "gift", "amount": "10.00", "member_id": "1"}, "member_id"),
            ({"kind": "gift", "amount": "10.00", "expires_at": "2001-01-01T00:00:00+08:00"},
             "expires_at"),
            ({"kind": "gift", "amount": "10.00", "expires_at": "soon"}, "expires_at"),
            ({"kind": "gift", "amount": "10.00", "balance": "99.00"}, "balance")):
        answer = finance_user.post("/api/v1/card/", json=body)
        assert answer.status_code == 422 and field in answer.json["errors"], (body, answer.json)
    for body, field in (({"amount": "0", "reference": "R-1"}, "amount"),
                        ({"amount": "100000.01", "reference": "R-1"}, "amount"),
                        ({"amount": "10.00", "reference": ""}, "reference"),
                        ({"amount": "10.00"}, "reference")):
        answer = finance_user.post(f"/api/v1/card/{stored.id}/top_up", json=body)
        assert answer.status_code == 422 and field in answer.json["errors"], (body, answer.json)
    assert finance_user.post(f"/api/v1/card/{stored.id}/bind",
                             json={"member_id": "x"}).status_code == 422
    assert finance_user.post(f"/api/v1/card/{stored.id}/bind",
                             json={"member_id": 987654}).status_code == 422
    for body in ({"channel": "card"}, {"channel": "card", "card_no": 12},
                 {"channel": "card", "card_no": "CD-nope"},
                 {"channel": "sandbox", "card_no": stored.card_no}):
        answer = api("Storefront").post(f"/api/v1/trade/{made.trade_id}/pay", json=body)
        assert answer.status_code == 422 and "card_no" in answer.json["errors"], answer.json
    assert (Card.query.count(), CardLedger.query.count()) == before
    assert reload(Card, stored.id).balance == Decimal("300.00") and reload(
        Card, stored.id).member_id == made.member_id
    assert nothing_paid(made.trade_id)
    with acting_as(Actor.system("test")), pytest.raises(card.ValidationFailed) as refused:
        card.issue("gift", Decimal("10.001"))
    assert "amount" in refused.value.errors


def test_cards_are_for_staff_and_the_storefront_never_a_merchant(app, api, browser, placed):
    _, stored = placed
    assert api("Storefront").get(f"/api/v1/card/{stored.id}").status_code == 200
    assert api("Storefront").post("/api/v1/card/", json={"kind": "gift",
                                                         "amount": "10.00"}).status_code == 403
    assert api("CustomerService").get("/api/v1/card_ledger/").json["count"] == 1
    assert api("CustomerService").post(f"/api/v1/card/{stored.id}/top_up", json={
        "amount": "10.00", "reference": "R"}).status_code == 403
    for merchant in ("merchant_a", "merchant_b"):
        assert api(merchant).get("/api/v1/card/").status_code == 403
        assert api(merchant).get("/api/v1/card_ledger/").status_code == 403
    assert api("Operations").post("/api/v1/card/", json={"kind": "gift",
                                                         "amount": "10.00"}).status_code == 201
    page = browser("Finance").get("/cardview/list/")
    assert page.status_code == 200 and stored.card_no in page.get_data(as_text=True)
    assert browser("merchant_a").get("/cardview/list/").status_code in (302, 403)


# -- paying with a card ---------------------------------------------------------------------------

def test_a_trade_paid_with_the_buyers_card(app, api, placed):
    made, stored = placed
    answer = pay(api, made.trade_id, stored.card_no)
    assert answer.status_code == 201, answer.json
    result = answer.json["result"]
    assert set(result) == {"payment_id", "out_trade_no", "amount", "pay_url"}
    assert (result["amount"], result["pay_url"]) == ("198.00", None)
    record = reload(Payment, result["payment_id"])
    assert (record.channel, record.status, record.amount) == \
        ("card", "succeeded", Decimal("198.00"))
    assert reload(Trade, made.trade_id).status == OrderStatus.paid
    assert ledger(stored.id) == [("issue", Decimal("300.00"), Decimal("300.00")),
                                 ("spend", Decimal("-198.00"), Decimal("102.00"))]
    spent = CardLedger.query.filter_by(reason="spend").one()
    assert spent.reference == result["out_trade_no"]
    assert reload(Card, stored.id).balance == Decimal("102.00")
    assert events("trade.paid") == 1 and events("payment.succeeded") == 1
    again = pay(api, made.trade_id, stored.card_no)
    assert again.status_code == 409 and "status" in again.json["errors"]
    assert reload(Card, stored.id).balance == Decimal("102.00")


def test_a_card_that_does_not_cover_the_payable_is_409_and_nothing_changes(app, api, shops,
                                                                           users):
    made = make_order(shops["A"], quantity=2)                       # 198.00
    short = issue(member_id=made.member_id, amount="197.99")
    answer = pay(api, made.trade_id, short.card_no)
    assert answer.status_code == 409
    assert answer.json["errors"] == {"card_no": ["Balance 197.99, payable 198.00."]}
    assert nothing_paid(made.trade_id)
    assert ledger(short.id) == [("issue", Decimal("197.99"), Decimal("197.99"))]
    assert events("payment.created") == 0 and events("trade.paid") == 0


def test_another_members_card_is_409_and_nothing_changes(app, api, placed):
    made, _ = placed
    someone_else = issue(member_id=make_member().id, amount="500.00")
    unbound_gift = issue("gift", "500.00")
    for other in (someone_else, unbound_gift):
        answer = pay(api, made.trade_id, other.card_no)
        assert answer.status_code == 409 and "card_no" in answer.json["errors"]
        assert "500.00" not in str(answer.json)             # another's balance is not told
        assert reload(Card, other.id).balance == Decimal("500.00")
    assert nothing_paid(made.trade_id)


def test_a_refund_of_a_card_paid_order_comes_back_to_the_card_once(app, api, placed):
    made, stored = placed
    out_trade_no = pay(api, made.trade_id, stored.card_no).json["result"]["out_trade_no"]
    request = refund_through_after_sale(made, "50.00")
    refund = PaymentRefund.query.one()
    assert (refund.status, refund.amount, refund.attempts) == ("succeeded", Decimal("50.00"), 1)
    assert reload(AfterSale, request.id).status == "refunded"
    assert ledger(stored.id)[-1] == ("refund", Decimal("50.00"), Decimal("152.00"))
    assert CardLedger.query.filter_by(reason="refund").one().reference == refund.out_refund_no
    assert events("payment.refunded") == 1
    # the job again, and the card channel asked again with the same refund number
    with acting_as(Actor.job("test")):
        payment.submit_refund(refund.id)
        again = gateways.gateway("card").refund(out_trade_no, refund.out_refund_no,
                                                Decimal("50.00"), "CNY")
        db.session.commit()
    assert again == refund.gateway_refund_id
    assert reload(Card, stored.id).balance == Decimal("152.00") == card.balance_of_ledger(
        stored.id)
    assert events("payment.refunded") == 1
    assert reload(Payment, refund.payment_id).refunded_amount == Decimal("50.00")


def test_a_real_rq_worker_refunds_to_the_card_once(app, api, placed, monkeypatch):
    """The refund job and the events it publishes run in a real `rq worker --burst`; the
    same job queued again changes nothing."""
    from app.queue import rq_queue
    from tests.test_events import run_burst_worker

    made, stored = placed
    pay(api, made.trade_id, stored.card_no)                          # in-process: paid
    monkeypatch.setitem(app.config, "REDIS_URL", os.environ.get("REDIS_URL"))
    requires_redis(app)
    refund_through_after_sale(made, "50.00")                         # the job goes to RQ
    refund = PaymentRefund.query.one()
    assert refund.status == "pending" and rq_queue().count >= 1    # waits for the worker
    assert reload(Card, stored.id).balance == Decimal("102.00")
    run_burst_worker(app)
    refund = reload(PaymentRefund, refund.id)
    assert (refund.status, refund.attempts) == ("succeeded", 1)
    assert AfterSale.query.one().status == "refunded"                # payment.refunded, delivered
    assert reload(Card, stored.id).balance == Decimal("152.00")
    rq_queue().enqueue(payment.SUBMIT_REFUND_JOB, refund.id)        # at least once: again
    run_burst_worker(app)
    assert ledger(stored.id)[-1] == ("refund", Decimal("50.00"), Decimal("152.00"))
    assert CardLedger.query.filter_by(reason="refund").count() == 1
    assert reload(Card, stored.id).balance == Decimal("152.00") == card.balance_of_ledger(
        stored.id)


# -- the journal and reconciliation --------------------------------------------------------------

def test_card_money_is_a_liability_until_spent_and_postings_balance(app, api, placed):
    made, stored = placed                                            # issued 300.00
    with acting_as(Actor.system("test")):
        card.top_up(stored.id, Decimal("100.00"), "POS-1")
        db.session.commit()
        run_jobs()
    assert finance.balance(finance.OFFLINE_CASH) == Decimal("400.00")
    assert finance.balance(finance.STORED_VALUE) == Decimal("-400.00")
    pay(api, made.trade_id, stored.card_no)                          # 198.00, commission 5 %
    assert finance.balance(finance.STORED_VALUE) == Decimal("-202.00")
    assert finance.balance(finance.PAYABLES, made.shop_id) == Decimal("-188.10")
    assert finance.balance(finance.COMMISSION, made.shop_id) == Decimal("-9.90")
    assert finance.balance(finance.GATEWAY_CASH) == Decimal("0.00")
    refund_through_after_sale(made, "50.00")
    assert finance.balance(finance.STORED_VALUE) == Decimal("-252.00")
    assert finance.balance(finance.PAYABLES, made.shop_id) == Decimal("-140.60")
    assert finance.balance(finance.GATEWAY_CASH) == Decimal("0.00")
    assert unbalanced_entries() == []
    kinds = sorted(e.kind for e in JournalEntry.query)
    assert kinds == ["card", "card", "payment", "refund"]
    # a delivery again posts nothing twice
    with acting_as(Actor.job("test")):
        finance._trade_paid({"trade_id": made.trade_id})
        finance._card_loaded({"ledger_id": CardLedger.query.filter_by(reason="top_up").one().id})
        db.session.commit()
    assert JournalEntry.query.count() == 4
    # the stored value owed equals what the cards hold
    held = sum(c.balance for c in Card.query)
    assert -finance.balance(finance.STORED_VALUE) == held == Decimal("252.00")


def test_a_platform_funded_discount_is_owed_to_the_shop_and_settled(app, api, shops, users):
    yesterday = clock.now() - timedelta(days=1)
    clock.set_now(yesterday)
    made = make_order(shops["A"], quantity=1)                        # 99.00
    made.platform_discount = Decimal("20.00")
    db.session.commit()
    stored = issue(member_id=made.member_id, amount="99.00")
    assert pay(api, made.trade_id, stored.card_no).status_code == 201
    clock.set_now(None)
    subsidy = JournalEntry.query.filter_by(kind=finance.SUBSIDY).one()
    assert sorted((l.account, l.shop_id, l.debit, l.credit) for l in subsidy.lines) == [
        (finance.PAYABLES, shops["A"].id, Decimal("0.00"), Decimal("20.00")),
        (finance.MARKETING_EXPENSE, None, Decimal("20.00"), Decimal("0.00"))]
    with acting_as(Actor.job("test")):
        finance._platform_discounts({"trade_id": made.trade_id})      # delivered again
        db.session.commit()
    assert JournalEntry.query.filter_by(kind=finance.SUBSIDY).count() == 1
    assert finance.balance(finance.MARKETING_EXPENSE) == Decimal("20.00")
    assert finance.balance(finance.PAYABLES, shops["A"].id) == Decimal("-114.05")
    assert unbalanced_entries() == []
    answer = api("Finance").post("/api/v1/settlement/", json={
        "shop_id": shops["A"].id, "period_end": clock.business_date(yesterday).isoformat()})
    assert answer.status_code == 201, answer.json
    statement = answer.json["result"]
    assert (statement["paid_by_buyers"], statement["platform_discounts"],
            statement["commission"], statement["refunds"], statement["net"]) == \
        ("99.00", "20.00", "4.95", "0.00", "114.05")


def test_a_day_with_a_card_payment_and_a_card_refund_reconciles_clean(app, api, placed):
    from tests.test_finance import paid_by_gateway, reconcile

    made, stored = placed
    out_trade_no = pay(api, made.trade_id, stored.card_no).json["result"]["out_trade_no"]
    refund_through_after_sale(made, "50.00")
    paid_by_gateway(app, api, made.shop)                                # a sandbox one too
    lines = gateways.gateway("card").statement(clock.business_date())
    refund = PaymentRefund.query.one()
    assert [(l.kind, l.out_trade_no, l.out_refund_no, l.amount, l.status) for l in lines] == [
        ("payment", out_trade_no, None, Decimal("198.00"), "succeeded"),
        ("refund", out_trade_no, refund.out_refund_no, Decimal("50.00"), "succeeded")]
    run = reconcile()
    assert (run.status, run.mismatches) == ("clean", 0), [(i.kind, i.detail) for i in run.items]
    assert run.checked >= 5              # 2 payments, 1 refund, 2 trades
    # the card ledger is really compared: a refund it does not show is found
    CardLedger.query.filter_by(reason="refund").one().delta = Decimal("40.00")
    db.session.commit()
    assert [i.kind for i in reconcile().items] == ["refund_amount_differs"]


# -- concurrency -----------------------------------------------------------------------------------

def trades_of_one_member(shop, count: int) -> tuple[int, list[int]]:
    """`count` unpaid trades of 99.00 of the same member, placed through checkout."""
    spu = make_spu(shop, with_skus=True)
    with acting_as(Actor.system("factory")):
        from services import product

        product.submit_spu(spu.id)
        product.approve_spu(spu.id)
        db.session.commit()
    sku = spu.skus[0]
    stock_up(sku, make_warehouse(shop), count)
    buyer = make_member()
    address = MemberAddress(**address_body(buyer.id))
    db.session.add(address)
    db.session.commit()
    trade_ids = []
    with acting_as(Actor.system("factory")):
        for n in range(count):
            placed = orders.place({"member_id": buyer.id, "address_id": address.id,
                                   "lines": [{"sku_id": sku.id, "quantity": 1}]},
                                  f"card-race-{buyer.id}-{n}")
            db.session.commit()
            trade_ids.append(placed.trade_id)
    return buyer.id, trade_ids


def pay_in_threads(app, trade_ids, card_no, barrier=None):
    outcomes, errors = [], []

    def attempt(trade_id):
        with app.app_context(), acting_as(Actor.system(f"client-{trade_id}")):
            if barrier is not None:
                barrier.wait(timeout=10)
            try:
                payment.start_payment(db.session.get(Trade, trade_id), "card", card_no)
                db.session.commit()
                outcomes.append("paid")
            except ConflictError:
                db.session.rollback()                   # refused cleanly: not enough left
                outcomes.append("refused")
            except Exception as exc:  # noqa: BLE001 - reported below
                db.session.rollback()
                errors.append(repr(exc)[:300])
            finally:
                db.session.remove()

    threads = [threading.Thread(target=attempt, args=(t,)) for t in trade_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    db.session.expire_all()
    return outcomes, errors


def test_concurrent_card_payments_never_overspend(app, shops):
    requires_postgres(app)
    member_id, trade_ids = trades_of_one_member(shops["A"], 20)
    stored = issue(member_id=member_id, amount="495.00")             # exactly 5 × 99.00
    outcomes, errors = pay_in_threads(app, trade_ids, stored.card_no,
                                      threading.Barrier(len(trade_ids)))
    assert errors == []
    assert outcomes.count("paid") == 5 and outcomes.count("refused") == 15
    paid = db.session.scalars(select(Trade).where(Trade.id.in_(trade_ids),
                                                  Trade.status == OrderStatus.paid)).all()
    assert len(paid) == 5
    assert reload(Card, stored.id).balance == Decimal("0.00") == card.balance_of_ledger(
        stored.id)
    assert CardLedger.query.filter_by(reason="spend").count() == 5
    assert Payment.query.filter_by(channel="card").count() == 5


def test_control_an_unlocked_read_then_write_card_overspends(app, shops, monkeypatch):
    """Without the card's row lock two payments both read 99.00 on the card, both debit it
    and both succeed: 198.00 spent from 99.00, and the ledger no longer sums to the balance.
    The locked version above serves exactly what the card holds."""
    requires_postgres(app)
    member_id, trade_ids = trades_of_one_member(shops["A"], 2)
    stored = issue(member_id=member_id, amount="99.00")
    both_read = threading.Barrier(2)

    def unlocked(card_no):
        found = db.session.scalars(select(Card).where(Card.card_no == card_no)).one_or_none()
        both_read.wait(timeout=10)
        return found

    monkeypatch.setattr(card, "_card_no_for_update", unlocked)
    outcomes, errors = pay_in_threads(app, trade_ids, stored.card_no)
    assert errors == [] and outcomes == ["paid", "paid"]
    spent = -sum(r.delta for r in CardLedger.query.filter_by(reason="spend"))
    assert spent == Decimal("198.00") > Decimal("99.00")
    assert card.balance_of_ledger(stored.id) != reload(Card, stored.id).balance
