"""Events through the outbox: after commit, once per subscriber, retried, re-delivered."""
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from app.extensions import db
from app.queue import run_inprocess_jobs
from models.events import EventDelivery, OutboxEvent
from models.shop import Shop
from services import clock, events
from services.scheduler import run_due
from tests import event_probe
from tests.conftest import requires_redis

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def inprocess(app, monkeypatch):
    """In-process mode (no REDIS_URL), whatever the suite runs on."""
    monkeypatch.setitem(app.config, "REDIS_URL", None)
    clock.set_now(clock.now())


def publish_probe(shop, **payload):
    event = events.publish(event_probe.EVENT, {"shop_id": shop.id, **payload}, shop_id=shop.id)
    db.session.commit()
    return event.id


def name_of(shop):
    db.session.expire_all()
    return db.session.get(Shop, shop.id).name


def deliveries(event_id):
    db.session.expire_all()
    rows = EventDelivery.query.filter_by(event_id=event_id).order_by(EventDelivery.subscriber)
    return {d.subscriber: (d.status, d.attempts) for d in rows}


def test_handlers_run_once_after_commit(inprocess, shops):
    event_id = publish_probe(shops["A"])
    assert name_of(shops["A"]) == "Shop A"  # nothing ran before the commit's jobs
    run_inprocess_jobs(db.session)
    assert name_of(shops["A"]) == "Shop A!?"
    assert deliveries(event_id) == {"probe.bang": ("done", 1), "probe.flaky": ("done", 1)}


def test_rolled_back_change_publishes_nothing(inprocess, shops):
    events.publish(event_probe.EVENT, {"shop_id": shops["A"].id})
    db.session.rollback()
    run_inprocess_jobs(db.session)
    assert OutboxEvent.query.count() == 0
    assert name_of(shops["A"]) == "Shop A"


def test_redelivered_event_has_one_effect_per_subscriber(inprocess, shops):
    event_id = publish_probe(shops["A"])
    for _ in range(10):
        events.deliver(event_id)
    run_inprocess_jobs(db.session)
    assert name_of(shops["A"]) == "Shop A!?"


def test_failing_subscriber_retries_alone_with_backoff(inprocess, shops):
    shops["A"].settlement_account = "fail"
    db.session.commit()
    start = clock.now()
    event_id = publish_probe(shops["A"])
    run_inprocess_jobs(db.session)
    assert deliveries(event_id) == {"probe.bang": ("done", 1), "probe.flaky": ("retrying", 1)}
    flaky = EventDelivery.query.filter_by(event_id=event_id, subscriber="probe.flaky").one()
    assert flaky.next_attempt_at == start + timedelta(seconds=10)
    assert "downstream unavailable" in flaky.last_error

    clock.set_now(start + timedelta(seconds=9))
    assert run_due()["events.redeliver"] == 0
    db.session.get(Shop, shops["A"].id).settlement_account = None
    db.session.commit()
    clock.set_now(start + timedelta(seconds=11))
    assert run_due()["events.redeliver"] == 1
    run_inprocess_jobs(db.session)
    assert deliveries(event_id) == {"probe.bang": ("done", 1), "probe.flaky": ("done", 2)}
    assert name_of(shops["A"]) == "Shop A!?"


def test_subscriber_failing_every_attempt_ends_in_the_failed_list(inprocess, shops, api):
    shops["A"].settlement_account = "fail"
    db.session.commit()
    event_id = publish_probe(shops["A"])
    run_inprocess_jobs(db.session)
    for _ in range(events.MAX_ATTEMPTS):
        clock.set_now(clock.now() + timedelta(hours=1))
        run_due()
        run_inprocess_jobs(db.session)
    assert deliveries(event_id)["probe.flaky"] == ("failed", events.MAX_ATTEMPTS)
    listed = api("Operations").get(
        "/api/v1/event_delivery/?q=(filters:!((col:status,opr:eq,value:failed)))")
    assert [row["subscriber"] for row in listed.json["result"]] == ["probe.flaky"]

    failed = EventDelivery.query.filter_by(event_id=event_id, subscriber="probe.flaky").one()
    db.session.get(Shop, shops["A"].id).settlement_account = None
    events.retry_failed(failed.id)
    db.session.commit()
    run_inprocess_jobs(db.session)
    assert deliveries(event_id)["probe.flaky"] == ("done", 1)


def test_event_whose_enqueue_was_lost_is_picked_up_by_tick(inprocess, shops):
    start = clock.now()
    event_id = publish_probe(shops["A"])
    db.session.info.pop("houtai_jobs_inprocess", None)  # the process died before running it
    clock.set_now(start + events.REDELIVER_AFTER - timedelta(seconds=1))
    assert run_due()["events.redeliver"] == 0
    clock.set_now(start + events.REDELIVER_AFTER + timedelta(seconds=1))
    assert run_due()["events.redeliver"] == 1
    run_inprocess_jobs(db.session)
    assert deliveries(event_id) == {"probe.bang": ("done", 1), "probe.flaky": ("done", 1)}


def test_event_with_no_subscriber_enqueues_nothing(inprocess):
    events.publish("nobody.listens", {"x": 1})
    db.session.commit()
    assert db.session.info.get("houtai_jobs_inprocess", []) == []
    assert OutboxEvent.query.filter_by(name="nobody.listens").count() == 1


def run_burst_worker(app):
    """A real `rq worker --burst` process on the suite's database and queue."""
    env = dict(os.environ,
               DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
               REDIS_URL=app.config["REDIS_URL"],
               HOUTAI_QUEUE=app.config["HOUTAI_QUEUE"],
               HOUTAI_EXTENSIONS="tests.event_probe",
               SECRET_KEY=app.config["SECRET_KEY"],
               PYTHONPATH=str(ROOT))
    rq = Path(sys.executable).parent / "rq"
    done = subprocess.run(
        [str(rq), "worker", "--burst", "--url", app.config["REDIS_URL"],
         "--worker-class", "rq.worker.SimpleWorker", app.config["HOUTAI_QUEUE"]],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_real_rq_worker_delivers_events_once(app, shops):
    requires_redis(app)
    from app.queue import rq_queue

    event_id = publish_probe(shops["A"])
    assert rq_queue().count == 1
    run_burst_worker(app)
    assert deliveries(event_id) == {"probe.bang": ("done", 1), "probe.flaky": ("done", 1)}
    assert name_of(shops["A"]) == "Shop A!?"

    events.redeliver_due()  # nothing is due: the deliveries are done
    rq_queue().enqueue("workers.events.deliver_event", event_id)  # an at-least-once duplicate
    run_burst_worker(app)
    assert name_of(shops["A"]) == "Shop A!?"


def test_real_rq_worker_schedules_a_retry_for_a_failing_subscriber(app, shops):
    requires_redis(app)
    from rq.registry import ScheduledJobRegistry

    from app.queue import rq_queue

    shops["A"].settlement_account = "fail"
    db.session.commit()
    event_id = publish_probe(shops["A"])
    run_burst_worker(app)
    assert deliveries(event_id) == {"probe.bang": ("done", 1), "probe.flaky": ("retrying", 1)}
    assert ScheduledJobRegistry(queue=rq_queue()).count == 1


def test_job_is_enqueued_only_after_the_commit(app, shops):
    """Nothing reaches the queue while the transaction is open, or after a rollback."""
    requires_redis(app)
    from app.queue import rq_queue

    events.publish(event_probe.EVENT, {"shop_id": shops["A"].id})
    db.session.flush()
    assert rq_queue().count == 0
    db.session.rollback()
    assert rq_queue().count == 0
    events.publish(event_probe.EVENT, {"shop_id": shops["A"].id})
    db.session.commit()
    assert rq_queue().count == 1
    rq_queue().empty()
