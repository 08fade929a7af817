"""Checkout races on PostgreSQL with real threads: idempotent place, cancel vs pay."""
import threading

import pytest

from app.extensions import db
from models.inventory import Stock
from models.order import IdempotencyKey, Trade
from services import order
from services.actor import Actor, acting_as
from services.errors import HoutaiError
from tests.conftest import requires_postgres
from tests.factories import make_order


def together(app, *steps):
    """Run each step in its own thread, all released at once; returns their outcomes."""
    barrier = threading.Barrier(len(steps))
    outcomes = [None] * len(steps)

    def run(n, step):
        with app.app_context(), acting_as(Actor(name="storefront", authenticated=True)):
            barrier.wait()
            try:
                outcomes[n] = step()
                db.session.commit()
            except HoutaiError as err:
                db.session.rollback()
                outcomes[n] = err
            except Exception as exc:  # noqa: BLE001 - any other failure fails the test
                db.session.rollback()
                outcomes[n] = exc
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(n, step)) for n, step in enumerate(steps)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


@pytest.fixture
def placed(app, shops, users):
    requires_postgres(app)
    unpaid = make_order(shops["A"], quantity=2)
    return {"trade_id": unpaid.trade_id, "body": None}


def test_concurrent_duplicates_of_one_idempotency_key_make_one_trade(app, shops, users):
    requires_postgres(app)
    first = make_order(shops["A"])
    line = first.lines[0]
    trade = db.session.get(Trade, first.trade_id)
    payload = {"member_id": trade.member_id, "address_id": None,
               "lines": [{"sku_id": line.sku_id, "quantity": 1}]}
    from models.member import MemberAddress

    payload["address_id"] = MemberAddress.query.filter_by(member_id=trade.member_id).one().id
    outcomes = together(app, *[lambda: order.place(payload, "dup-key").trade_id] * 6)
    trade_ids = {o for o in outcomes if isinstance(o, int)}
    refused = [o for o in outcomes if not isinstance(o, int)]
    assert len(trade_ids) == 1, outcomes
    assert all(getattr(o, "status", None) == 409 for o in refused), refused
    assert IdempotencyKey.query.filter_by(key="dup-key").count() == 1


@pytest.mark.parametrize("rounds", range(3))
def test_cancel_and_pay_at_the_same_moment_one_wins_and_stock_is_released_at_most_once(
        app, placed, rounds):
    trade_id = placed["trade_id"]
    outcomes = together(app, lambda: order.cancel_trade(trade_id, "buyer cancelled").id,
                        lambda: order.mark_paid(trade_id, "paid offline").id)
    winners = [o for o in outcomes if o == trade_id]
    losers = [o for o in outcomes if isinstance(o, order.IllegalOrderTransitionError)]
    assert (len(winners), len(losers)) == (1, 1), outcomes
    db.session.expire_all()
    trade = db.session.get(Trade, trade_id)
    stock = Stock.query.one()
    if trade.status == "cancelled":
        assert stock.reserved == 0
    else:
        assert trade.status == "paid" and stock.reserved == 2


def test_control_without_the_trade_lock_both_steps_win(app, placed, monkeypatch):
    """The same race with the lock taken away: both succeed, which the test above refuses."""
    def without_lock(trade_id):
        return db.session.get(Trade, trade_id)

    monkeypatch.setattr(order, "trade_for_update", without_lock)
    trade_id = placed["trade_id"]
    gate = threading.Barrier(2)
    real_move = order._move_trade

    def slow_move(trade, step, note):
        gate.wait()  # both have read the unpaid trade before either writes
        return real_move(trade, step, note)

    monkeypatch.setattr(order, "_move_trade", slow_move)
    outcomes = together(app, lambda: order.cancel_trade(trade_id, "buyer cancelled").id,
                        lambda: order.mark_paid(trade_id, "paid offline").id)
    one_clean_winner = sorted(map(type, outcomes), key=str) == sorted(
        [int, order.IllegalOrderTransitionError], key=str)
    assert not one_clean_winner, outcomes


def test_timeout_and_payment_at_the_same_moment_one_wins(app, placed):
    """The unpaid-timeout job and a payment racing: never both, stock released at most once."""
    from datetime import timedelta

    from services import clock

    trade_id = placed["trade_id"]
    clock.set_now(clock.now() + timedelta(minutes=app.config["UNPAID_TIMEOUT_MINUTES"] + 1))
    outcomes = together(app, order.cancel_unpaid_trades,
                        lambda: order.mark_paid(trade_id, "paid offline").id)
    db.session.expire_all()
    trade = db.session.get(Trade, trade_id)
    stock = Stock.query.one()
    if outcomes[0] == 1:
        assert isinstance(outcomes[1], order.IllegalOrderTransitionError)
        assert trade.status == "cancelled" and stock.reserved == 0
    else:
        assert outcomes == [0, trade_id]
        assert trade.status == "paid" and stock.reserved == 2


def _service_code(app, shops, uses: int):
    """A paid order of service goods: one code with `uses` uses."""
    from models.order import ServiceCode

    placed = make_order(shops["A"], quantity=uses, goods_kind="service")
    with acting_as(Actor.system("test")):
        order.mark_paid(placed.trade_id, "paid")
        db.session.commit()
    return ServiceCode.query.filter_by(order_id=placed.id).one()


def test_redeeming_one_code_from_many_counters_never_exceeds_its_uses(app, shops, users):
    requires_postgres(app)
    from models.order import ServiceCode

    code = _service_code(app, shops, 5)
    text, code_id = code.code, code.id
    outcomes = together(app, *[lambda: order.redeem_service_code(text, 1).id] * 12)
    assert sum(o == code_id for o in outcomes) == 5, outcomes
    assert all(getattr(o, "status", None) == 409 for o in outcomes if o != code_id), outcomes
    db.session.expire_all()
    assert db.session.get(ServiceCode, code_id).uses_left == 0


def test_control_a_read_then_write_redeem_is_caught_by_the_same_check(app, shops, users):
    """The check above would catch a redeem that reads uses_left and writes it back: here
    every counter reads before any writes (a barrier makes the interleaving certain)."""
    requires_postgres(app)
    from models.order import ServiceCode

    code_id = _service_code(app, shops, 5).id
    counters = 12
    all_read = threading.Barrier(counters)

    def naive_redeem():
        row = db.session.get(ServiceCode, code_id)
        left = row.uses_left
        all_read.wait()
        if left < 1:
            raise order.IllegalOrderTransitionError("none left")
        row.uses_left = left - 1
        return code_id

    outcomes = together(app, *[naive_redeem] * counters)
    assert sum(o == code_id for o in outcomes) > 5  # the bug the real test rules out
