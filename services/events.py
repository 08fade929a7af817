"""Domain events through an outbox: centers react to each other without reaching into tables.

`publish()` writes the event and one delivery row per subscriber in the caller's transaction;
after the commit, one job per event (`workers.events.deliver_event`) runs every subscriber that
has not yet succeeded. Each subscriber runs in its own transaction together with its delivery
row (the idempotency marker), so a re-delivered event has one effect per subscriber, and each
subscriber keeps its own attempts and back-off. `redeliver_due()` (run by `houtai tick`) picks
up deliveries whose enqueue was lost or whose retry is due.
"""
import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

from flask import current_app
from sqlalchemy import event as sa_event
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app.extensions import db
from app.queue import RETRY_INTERVALS, enqueue_after_commit, enqueue_now
from models.events import EventDelivery, OutboxEvent
from services.actor import Actor, acting_as
from services.clock import now

log = logging.getLogger(__name__)

MAX_ATTEMPTS = len(RETRY_INTERVALS) + 1
# A delivery not done this long after it was due was lost on its way to the queue.
REDELIVER_AFTER = timedelta(minutes=5)
DELIVER_JOB = "workers.events.deliver_event"


@dataclass(frozen=True)
class Subscriber:
    event: str
    name: str
    handler: Callable[[dict], None]
    # asked at publish time (event name, shop id): False means nobody listens through this
    # subscriber now, so no delivery row and no job are made for it
    wanted: Callable[[str, int | None], bool] | None = None


_subscribers: dict[str, list[Subscriber]] = {}


def subscribe(event_name: str, name: str | None = None,
              wanted: Callable[[str, int | None], bool] | None = None):
    """Register `handler(payload)` for `event_name`; the name is its idempotency key.
    `wanted(event_name, shop_id)`, when given, decides at publish time whether the event is
    delivered to this subscriber at all (see `Listeners`)."""

    def register(handler):
        key = name or f"{handler.__module__}.{handler.__qualname__}"
        listeners = _subscribers.setdefault(event_name, [])
        if all(s.name != key for s in listeners):
            listeners.append(Subscriber(event_name, key, handler, wanted))
        return handler

    return register


def unsubscribe(event_name: str, name: str) -> None:
    _subscribers[event_name] = [s for s in _subscribers.get(event_name, []) if s.name != name]


def subscribers_of(event_name: str) -> list[Subscriber]:
    return list(_subscribers.get(event_name, []))


@dataclass(frozen=True)
class Published:
    id: int
    name: str
    payload: dict


@dataclass(frozen=True)
class Delivered:
    """The event a subscriber is running for (`current_event()`)."""
    id: int
    name: str
    payload: dict
    shop_id: int | None
    created_at: object


_delivering: ContextVar[Delivered | None] = ContextVar("houtai_event", default=None)


def current_event() -> Delivered | None:
    """The event whose subscriber is running: for subscribers that key their own work by
    the event (its id) or need its name and shop (one handler for several events)."""
    return _delivering.get()


_INSERT_EVENT = insert(OutboxEvent.__table__).returning(OutboxEvent.__table__.c.id)
_INSERT_DELIVERIES = insert(EventDelivery.__table__)


def publish(name: str, payload: dict, *, shop_id: int | None = None) -> Published:
    """Record event `name` in the current transaction; its handlers run after the commit.
    The rows go straight in with SQLAlchemy Core (the outbox and its delivery rows are
    bookkeeping, not audited), in the caller's transaction."""
    connection = db.session.connection()
    stamp = now()
    event_id = connection.execute(_INSERT_EVENT, {
        "name": name, "payload": payload, "shop_id": shop_id, "created_at": stamp}).scalar_one()
    subscribers = [s for s in subscribers_of(name) if s.wanted is None or s.wanted(name, shop_id)]
    if subscribers:
        due = stamp + REDELIVER_AFTER
        connection.execute(_INSERT_DELIVERIES, [
            {"event_id": event_id, "subscriber": subscriber.name, "next_attempt_at": due}
            for subscriber in subscribers])
        enqueue_after_commit(db.session, DELIVER_JOB, event_id, job_id=f"event-{event_id}")
    return Published(event_id, name, payload)


class Listeners:
    """The rows (webhook subscriptions, message templates) a subscriber delivers to, read by
    `load()` and kept per process for LISTENERS_CACHE_SECONDS, so that publishing an event
    nobody listens to costs no query, no delivery row and no job. A change of `model` flushed
    in this process forgets them at once; other processes see it within the setting."""

    _all: list["Listeners"] = []

    def __init__(self, model, load: Callable[[], list]):
        self.model, self.load = model, load
        self.rows: list | None = None
        self.read_at = 0.0
        Listeners._all.append(self)

    def current(self) -> list:
        seconds = current_app.config.get("LISTENERS_CACHE_SECONDS", 5)
        moment = time.monotonic()
        if self.rows is None or moment - self.read_at >= seconds:
            self.rows, self.read_at = list(self.load()), moment
        return self.rows

    def forget(self) -> None:
        self.rows = None

    @classmethod
    def forget_all(cls) -> None:
        for listeners in cls._all:
            listeners.forget()


@sa_event.listens_for(Session, "before_flush")
def _forget_changed_listeners(session, flush_context, instances) -> None:
    changed = {type(row) for row in (*session.new, *session.dirty, *session.deleted)}
    for listeners in Listeners._all:
        if listeners.model in changed:
            listeners.forget()


def _handler(event_name: str, subscriber_name: str):
    for subscriber in subscribers_of(event_name):
        if subscriber.name == subscriber_name:
            return subscriber.handler
    return None


def _locked_delivery(delivery_id: int) -> EventDelivery | None:
    return db.session.execute(
        select(EventDelivery).where(EventDelivery.id == delivery_id).with_for_update()
    ).scalar_one_or_none()


def _record_failure(delivery_id: int, error: str) -> EventDelivery:
    delivery = _locked_delivery(delivery_id)
    delivery.attempts += 1
    delivery.last_error = error[-2000:]
    if delivery.attempts >= MAX_ATTEMPTS:
        delivery.status = "failed"
    else:
        delivery.status = "retrying"
        delivery.next_attempt_at = now() + timedelta(seconds=RETRY_INTERVALS[delivery.attempts - 1])
    db.session.commit()
    return delivery


def deliver_one(delivery_id: int) -> bool:
    """Run one subscriber for one event at most once; True when it is (now or already) done."""
    delivery = _locked_delivery(delivery_id)
    if delivery is None or delivery.status == "done":
        db.session.rollback()
        return True
    handler = _handler(delivery.event.name, delivery.subscriber)
    if handler is None:
        db.session.rollback()
        _record_failure(delivery_id, f"no subscriber named {delivery.subscriber}")
        return False
    try:
        event = delivery.event
        token = _delivering.set(Delivered(event.id, event.name, dict(event.payload),
                                          event.shop_id, event.created_at))
        with acting_as(Actor.job(delivery.subscriber)):
            try:
                handler(dict(event.payload))
            finally:
                _delivering.reset(token)
            delivery.status = "done"
            delivery.attempts += 1
            delivery.done_at = now()
            delivery.last_error = None
            db.session.commit()
        return True
    except Exception as exc:  # noqa: BLE001 - any handler failure is recorded and retried
        db.session.rollback()
        log.exception("subscriber %s failed on event %s", delivery.subscriber, delivery.event_id)
        _record_failure(delivery_id, f"{type(exc).__name__}: {exc}")
        return False


class DeliveryIncomplete(RuntimeError):
    """Some subscribers of an event failed; raising it makes RQ retry the job."""


def deliver(event_id: int) -> None:
    """Run every subscriber of an event that is not done; raise if one failed and may retry."""
    ids = db.session.execute(
        select(EventDelivery.id).where(EventDelivery.event_id == event_id,
                                       EventDelivery.status.in_(("pending", "retrying")))
        .order_by(EventDelivery.id)
    ).scalars().all()
    db.session.rollback()
    failed = [delivery_id for delivery_id in ids if not deliver_one(delivery_id)]
    retryable = [d for d in failed if db.session.get(EventDelivery, d).status == "retrying"]
    db.session.rollback()
    if retryable:
        raise DeliveryIncomplete(f"event {event_id}: deliveries {retryable} will be retried")


def redeliver_due() -> int:
    """Hand every event with a due, unfinished delivery to the queue again; returns how many."""
    due = now()
    deliveries = db.session.execute(
        select(EventDelivery).where(EventDelivery.status.in_(("pending", "retrying")),
                                    EventDelivery.next_attempt_at <= due)
        .order_by(EventDelivery.id).with_for_update(skip_locked=True)
    ).scalars().all()
    event_ids = sorted({d.event_id for d in deliveries})
    for delivery in deliveries:
        delivery.next_attempt_at = due + REDELIVER_AFTER
    db.session.commit()
    for event_id in event_ids:
        enqueue_now(DELIVER_JOB, event_id, job_id=None)
    return len(event_ids)


def retry_failed(delivery_id: int) -> EventDelivery:
    """Give a failed delivery a fresh set of attempts (a person decided the cause is fixed)."""
    delivery = _locked_delivery(delivery_id)
    if delivery is None:
        from services.errors import NotFoundError

        raise NotFoundError("Not found")
    if delivery.status == "failed":
        delivery.status = "retrying"
        delivery.attempts = 0
        delivery.next_attempt_at = now()
        enqueue_after_commit(db.session, DELIVER_JOB, delivery.event_id)
    return delivery
