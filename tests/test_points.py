"""会员中心 points: earned when an order completes, reversed with refunds (never below zero),
expired at the end of the following year; the balance is the sum of the ledger."""
import threading
from datetime import timedelta

import pytest

from app.extensions import db
from models.member import PointsLedger
from services import clock, order, points, scheduler
from services.actor import Actor, acting_as
from tests.conftest import requires_postgres
from tests.factories import make_member, paid_order, refund_through_after_sale


@pytest.fixture(autouse=True)
def inprocess(app, monkeypatch):
    monkeypatch.setitem(app.config, "REDIS_URL", None)


def complete(placed):
    from app.queue import run_inprocess_jobs
    from models.order import ShippingNotice

    with acting_as(Actor.system("test")):
        for notice in ShippingNotice.query.filter_by(order_id=placed.id):
            order.ship_notice(notice.id, "SF", f"SF{notice.id:010d}")
        db.session.commit()
        order.deliver_order(placed.id)
        db.session.commit()
        order.confirm_receipt(placed.id)
        db.session.commit()
        run_inprocess_jobs(db.session)


def test_points_are_earned_on_completion_and_reversed_with_refunds(app, shops):
    placed = paid_order(shops["A"], quantity=2)            # 198.00
    assert points.balance(placed.member_id) == 0            # nothing before completion
    complete(placed)
    assert points.balance(placed.member_id) == 198
    refund_through_after_sale(placed, "99.00", kind="return_refund")
    assert points.balance(placed.member_id) == 99
    rows = [(r.reason, r.delta, r.balance_after) for r in
            PointsLedger.query.filter_by(member_id=placed.member_id).order_by(PointsLedger.id)]
    assert rows == [("earn", 198, 198), ("reverse", -99, 99)]
    assert sum(r.delta for r in PointsLedger.query) == points.balance(placed.member_id)


def test_a_reversal_never_takes_the_balance_below_zero(app, shops):
    member_id = make_member().id
    with acting_as(Actor.system("test")):
        points.earn(member_id, 50, "O-1")
        points.take(member_id, 30, "spend", "O-2")
        points.take(member_id, 80, "reverse", "AS-1", partial=True)   # only 20 are left
        with pytest.raises(points.ConflictError):
            points.take(member_id, 1, "spend", "O-3")       # a spend is all or nothing
        db.session.commit()
    assert points.balance(member_id) == 0
    assert min(r.balance_after for r in PointsLedger.query) == 0


def test_points_expire_at_the_end_of_the_following_year_oldest_first(app, shops):
    member_id = make_member().id
    clock.set_now(clock.now().replace(month=6, day=15))
    with acting_as(Actor.system("test")):
        points.earn(member_id, 100, "O-old")
        db.session.commit()
    clock.set_now(clock.now() + timedelta(days=365))
    with acting_as(Actor.system("test")):
        points.earn(member_id, 40, "O-new")
        points.take(member_id, 30, "spend", "O-spend")      # from the old lot
        db.session.commit()
        assert scheduler.tasks()["points.expire"]() == 0
        clock.set_now(clock.now() + timedelta(days=200))     # past the old lot's year
        assert scheduler.tasks()["points.expire"]() == 1
    assert points.balance(member_id) == 40
    assert PointsLedger.query.filter_by(reason="expire").one().delta == -70


def test_concurrent_spending_never_overdraws(app, shops):
    requires_postgres(app)
    member_id = make_member().id
    with acting_as(Actor.system("test")):
        points.earn(member_id, 100, "O-1")
        db.session.commit()
    barrier = threading.Barrier(8)
    errors = []

    def spend(n):
        with app.app_context(), acting_as(Actor.system(f"client-{n}")):
            barrier.wait(timeout=10)
            try:
                points.take(member_id, 30, "spend", f"O-spend-{n}")
                db.session.commit()
            except points.ConflictError:
                db.session.rollback()            # refused cleanly: not enough left
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(repr(exc)[:200])
            db.session.remove()

    threads = [threading.Thread(target=spend, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    db.session.expire_all()
    assert errors == []
    assert points.balance(member_id) == 10                    # three spends of 30 fit
    assert sum(r.delta for r in PointsLedger.query) == 10
    assert sum(-r.delta for r in PointsLedger.query.filter_by(reason="spend")) == 90


def test_control_unlocked_spending_breaks(app, shops, monkeypatch):
    """Without the member's row lock two spends both see 100 and both try to take 60: only
    the database's own checks stop the second, with an error (a 500 to its caller) instead of
    a clean answer; the locked version above serves every spend it can and refuses the
    rest without error."""
    requires_postgres(app)
    member_id = make_member().id
    with acting_as(Actor.system("test")):
        points.earn(member_id, 100, "O-1")
        db.session.commit()
    both_read = threading.Barrier(2)
    monkeypatch.setattr(points, "_lock_member", lambda member_id: both_read.wait(timeout=10))

    errors = []

    def spend(n):
        with app.app_context(), acting_as(Actor.system(f"client-{n}")):
            try:
                points.take(member_id, 60, "spend", f"O-spend-{n}")
                db.session.commit()
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(repr(exc)[:300])
            db.session.remove()

    threads = [threading.Thread(target=spend, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    db.session.expire_all()
    spent = sum(-r.delta for r in PointsLedger.query.filter_by(reason="spend"))
    assert spent == 60 and len(errors) == 1 and "CheckViolation" in errors[0], errors
