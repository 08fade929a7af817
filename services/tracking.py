"""物流中心 tracking: carrier scans per shipment, pushed to a public signed webhook or polled,
kept once each; a signed scan delivers the order, an exception scan opens a ticket.

* A push (`handle_push`) is verified by its carrier's adapter (services/carriers: 401 and
  nothing stored when its signature is wrong), refused when its time is outside
  TRACKING_PUSH_WINDOW_SECONDS (401), and kept by its nonce (CarrierPush, unique per carrier):
  the same push again is answered as handled (200) and changes nothing. A carrier re-sends a
  push it got no success for, so a replay is not an error to it.
* Scans are stored once per shipment (unique notice + external id) under the notice's lock
  (the order's trade, then its orders: the order service's lock order); the notice's
  `tracking_status` follows its latest scan. A scan for a tracking number no shipped notice
  of that carrier has is ignored (the push is kept and answered 200, with `stored` 0).
* The first `signed` scan sets the notice's `delivered_at`; once every live notice of the
  order is signed, the order is delivered (`order.deliver_by_carrier`, once).
* A new `exception` scan publishes `tracking.exception`; its subscriber opens one ticket per
  exception episode of a notice (none while one is open).
* `tracking.poll` (the tick) polls shipped, undelivered notices whose carrier's adapter polls,
  TRACKING_POLL_BATCH at a time, least recently scanned first; `shipping_notice.shipped`
  subscribes the shipment at its carrier's adapter.
"""
import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from models.logistics import Carrier, CarrierPush, TrackingEvent
from models.order import NoticeStatus, ShippingNotice
from models.ticket import Ticket, TicketQueue
from services import carriers, order
from services.actor import Actor, acting_as
from services.clock import now
from services.errors import HoutaiError, NotFoundError
from services.events import publish, subscribe
from services.scheduler import scheduled

log = logging.getLogger(__name__)

TICKET_SKILL = "logistics"
TICKET_SOURCE = "tracking"
OPEN_TICKET = ("open", "pending")


# -- carriers and notices ----------------------------------------------------------------------

def carrier_by_code(code) -> Carrier:
    """An enabled carrier by its code: 404 naming `carrier_code` otherwise."""
    found = db.session.scalars(select(Carrier).where(Carrier.code == code)).one_or_none() \
        if isinstance(code, str) and len(code) <= 32 else None
    if found is None or not found.enabled:
        raise NotFoundError("Unknown carrier", {"carrier_code": ["No such carrier."]})
    return found


def _carrier_join():
    """Notice → carrier: the carrier it shipped with (`carrier_id`), else the one whose code
    it names (`carrier`)."""
    return or_(Carrier.id == ShippingNotice.carrier_id,
               and_(ShippingNotice.carrier_id.is_(None), Carrier.code == ShippingNotice.carrier))


def carrier_of(notice: ShippingNotice) -> Carrier | None:
    if notice.carrier_id is not None:
        return db.session.get(Carrier, notice.carrier_id)
    if notice.carrier:
        return db.session.scalars(select(Carrier).where(
            Carrier.code == notice.carrier)).one_or_none()
    return None


def _notice_id(carrier: Carrier, tracking_no: str) -> int | None:
    """The shipped notice of `carrier` with this tracking number."""
    return db.session.scalars(
        select(ShippingNotice.id).join(Carrier, _carrier_join())
        .where(Carrier.id == carrier.id, ShippingNotice.tracking_no == tracking_no,
               ShippingNotice.status == NoticeStatus.shipped)
        .order_by(ShippingNotice.id)).first()


# -- pushes ------------------------------------------------------------------------------------

def handle_push(carrier_code, body: bytes, headers) -> dict:
    """A carrier's push, verified, kept once, its scans stored once: the answer the carrier
    expects, with how many scans were new (`stored`) and whether it was a replay."""
    carrier = carrier_by_code(carrier_code)
    adapter = carriers.adapter_for(carrier)
    push = adapter.parse_push(carrier, body, headers)
    _check_window(push)
    record = CarrierPush(carrier_id=carrier.id, nonce=push.nonce[:64], received_at=now(),
                         events=0)
    try:
        with db.session.begin_nested():
            db.session.add(record)
            db.session.flush()
    except IntegrityError:
        return {**adapter.acknowledge(), "stored": 0, "replayed": True}
    with acting_as(Actor.system(f"carrier:{carrier.code}")):
        record.events = record_scans(carrier, push.scans)
    return {**adapter.acknowledge(), "stored": record.events, "replayed": False}


def _check_window(push: carriers.Push) -> None:
    if push.sent_at is None:
        return
    window = timedelta(seconds=current_app.config["TRACKING_PUSH_WINDOW_SECONDS"])
    if abs(now() - push.sent_at) > window:
        raise carriers.BadSignature("Stale or future push", {
            "X-Timestamp": [f"Must be within {int(window.total_seconds())} seconds of now."]})


# -- storing scans -----------------------------------------------------------------------------

def record_scans(carrier: Carrier, scans: list[carriers.Scan]) -> int:
    """Store the scans no shipment has yet (grouped by tracking number, each notice under its
    lock) and act on the new ones; returns how many were new."""
    stored = 0
    by_number: dict[str, list[carriers.Scan]] = {}
    for scan in scans:
        by_number.setdefault(scan.tracking_no, []).append(scan)
    for tracking_no, group in by_number.items():
        notice_id = _notice_id(carrier, tracking_no)
        if notice_id is None:
            log.info("carrier %s: no shipped notice has tracking number %s; %d scans ignored",
                     carrier.code, tracking_no, len(group))
            continue
        stored += _record_for_notice(order.notice_for_update(notice_id), carrier, group)
    return stored


def _record_for_notice(notice: ShippingNotice, carrier: Carrier,
                       scans: list[carriers.Scan]) -> int:
    known = set(db.session.scalars(select(TrackingEvent.external_id).where(
        TrackingEvent.notice_id == notice.id)))
    new = []
    for scan in sorted(scans, key=lambda s: s.occurred_at):
        if scan.external_id in known:
            continue
        known.add(scan.external_id)
        event = TrackingEvent(shop_id=notice.shop_id, notice_id=notice.id,
                              carrier_id=carrier.id, tracking_no=notice.tracking_no,
                              external_id=scan.external_id[:64], status=scan.status,
                              description=(scan.description or None) and scan.description[:255],
                              location=(scan.location or None) and scan.location[:64],
                              occurred_at=scan.occurred_at, received_at=now())
        db.session.add(event)
        new.append(event)
    if not new:
        return 0
    db.session.flush()
    latest = db.session.scalars(select(TrackingEvent).where(
        TrackingEvent.notice_id == notice.id).order_by(
        TrackingEvent.occurred_at.desc(), TrackingEvent.id.desc())).first()
    notice.tracking_status = latest.status
    for event in new:
        if event.status == "exception":
            publish("tracking.exception", {"notice_id": notice.id, "event_id": event.id,
                                           "order_id": notice.order_id},
                    shop_id=notice.shop_id)
    signed = [e for e in new if e.status == "signed"]
    if signed and notice.delivered_at is None:
        notice.delivered_at = signed[0].occurred_at
        publish("shipping_notice.signed", {"notice_id": notice.id, "order_id": notice.order_id},
                shop_id=notice.shop_id)
        order.deliver_by_carrier(notice.id)
    return len(new)


# -- polling and subscribing -------------------------------------------------------------------

def due_for_poll(limit: int) -> list[tuple[int, int]]:
    """(notice id, carrier id) of shipped, undelivered notices whose carrier's adapter polls,
    least recently scanned first (never scanned: shipped earliest first)."""
    adapters = carriers.polling_names()
    if not adapters or limit <= 0:
        return []
    last = select(TrackingEvent.notice_id, func.max(TrackingEvent.received_at).label("at")) \
        .group_by(TrackingEvent.notice_id).subquery()
    rows = db.session.execute(
        select(ShippingNotice.id, Carrier.id)
        .join(Carrier, _carrier_join())
        .outerjoin(last, last.c.notice_id == ShippingNotice.id)
        .where(ShippingNotice.status == NoticeStatus.shipped,
               ShippingNotice.delivered_at.is_(None), ShippingNotice.tracking_no.is_not(None),
               Carrier.enabled.is_(True), Carrier.adapter.in_(adapters))
        .order_by(func.coalesce(last.c.at, ShippingNotice.shipped_at), ShippingNotice.id)
        .limit(limit)).all()
    return [(row[0], row[1]) for row in rows]


def poll_notice(notice_id: int, carrier_id: int) -> int:
    """Ask the carrier's adapter for one shipment's scans and store the new ones."""
    notice = db.session.get(ShippingNotice, notice_id)
    carrier = db.session.get(Carrier, carrier_id)
    scans = carriers.adapter_for(carrier).poll(carrier, notice.tracking_no)
    scans = [s for s in scans if s.tracking_no == notice.tracking_no]
    if not scans:
        return 0
    return _record_for_notice(order.notice_for_update(notice_id), carrier, scans)


@scheduled("tracking.poll")
def poll_shipments() -> int:
    """Poll up to TRACKING_POLL_BATCH shipments; each in its own transaction (a failing
    carrier leaves the others alone). Returns how many new scans were stored."""
    due = due_for_poll(current_app.config["TRACKING_POLL_BATCH"])
    db.session.rollback()
    stored = 0
    with acting_as(Actor.job("tracking.poll")):
        for notice_id, carrier_id in due:
            try:
                stored += poll_notice(notice_id, carrier_id)
                db.session.commit()
            except HoutaiError as refusal:
                db.session.rollback()
                log.warning("polling notice %s: %s %s", notice_id, refusal.message,
                            refusal.errors)
    return stored


@subscribe("shipping_notice.shipped", "tracking.subscribe")
def _subscribe_shipment(payload: dict) -> None:
    """A shipment with a carrier that has a tracking adapter is registered for pushes
    (adapters' subscribe is idempotent)."""
    notice = db.session.get(ShippingNotice, payload["notice_id"])
    carrier = carrier_of(notice) if notice is not None else None
    if carrier is None or not carrier.enabled or not notice.tracking_no:
        return
    try:
        adapter = carriers.adapter_for(carrier)
    except NotFoundError:
        return
    adapter.subscribe(carrier, notice.tracking_no)


# -- exceptions open a ticket ------------------------------------------------------------------

def _subject_prefix(notice: ShippingNotice) -> str:
    return f"Shipment {notice.notice_no} exception"


@subscribe("tracking.exception", "tracking.exception_ticket")
def _exception_ticket(payload: dict) -> None:
    """One ticket per exception episode of a notice: none while a ticket about its exceptions
    is open, nor when one was opened after this scan arrived (this event's run already)."""
    from services import ticket

    event = db.session.get(TrackingEvent, payload["event_id"])
    if event is None:
        return
    try:
        notice = order.notice_for_update(payload["notice_id"])   # one check-then-open at a time
    except NotFoundError:
        return
    prefix = _subject_prefix(notice)
    handled = db.session.scalar(select(Ticket.id).where(
        Ticket.source == TICKET_SOURCE, Ticket.order_id == notice.order_id,
        Ticket.subject.like(f"{prefix}%"),
        or_(Ticket.status.in_(OPEN_TICKET), Ticket.created_at >= event.received_at)).limit(1))
    if handled:
        return
    queue = db.session.scalars(select(TicketQueue).where(TicketQueue.enabled.is_(True))
                               .order_by((TicketQueue.skill != TICKET_SKILL), TicketQueue.id)
                               ).first()
    if queue is None:
        log.warning("no ticket queue for the exception of notice %s", notice.notice_no)
        return
    ticket.open_ticket(
        queue.id, f"{prefix}: {event.description or event.status}"[:255],
        message=f"{notice.tracking_no}: {event.description or event.status}"
                f"{f' ({event.location})' if event.location else ''}",
        source=TICKET_SOURCE, order_id=notice.order_id, priority="high")
