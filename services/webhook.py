"""Webhooks (integrations): storefronts and ERPs told of status changes of trades, orders,
shipments and refunds by signed POSTs, retried with exponential back-off, each one logged.

A subscriber on every webhook event writes one `WebhookDelivery` per matching, enabled
subscription (the shop's own and the platform's; unique per subscription and event, so an
event delivered twice makes one delivery) in the event's transaction, and a job sends it after
the commit. Sending claims the delivery with a conditional update (a lease on
`next_attempt_at`), commits, POSTs with no transaction open, then records the answer: so two
workers never send one attempt twice, and a worker that dies mid-way leaves a delivery that
`houtai tick` (`webhooks.retry`) picks up when the lease ends.
"""
import json
import time
from datetime import timedelta
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import or_, select, update

from app.extensions import db
from app.queue import enqueue_after_commit, enqueue_now
from models.events import OutboxEvent
from models.webhook import WebhookDelivery, WebhookSubscription
from services import keys
from services.actor import visible_row
from services.clock import now
from services.errors import ConflictError, NotFoundError, ValidationFailed
from services.events import Listeners, current_event, subscribe
from services.scheduler import scheduled

# What a subscription may ask for: status changes of trades, orders, shipments and refunds.
WEBHOOK_EVENTS = (
    "trade.placed", "trade.paid", "trade.cancelled",
    "order.paid", "order.cancelled", "order.shipped", "order.delivered", "order.completed",
    "order.closed",
    "shipping_notice.shipped", "shipping_notice.signed",
    "payment.refunded",
    "after_sale.requested", "after_sale.approved", "after_sale.rejected",
    "after_sale.return_shipped", "after_sale.received", "after_sale.refunding",
    "after_sale.refunded", "after_sale.closed",
)
PREFIXES = tuple(sorted({name.split(".")[0] for name in WEBHOOK_EVENTS}))
SEND_JOB = "workers.webhook.send_delivery"
RETRY_BASE_SECONDS = 60          # attempt n+1 waits 60 s × 2^(n-1): 1, 2, 4, 8 … minutes
RETRY_MAX_SECONDS = 6 * 3600
RETRY_BATCH = 200
SUBSCRIBER = "webhook.deliveries"
USER_AGENT = "Houtai-Webhooks/1"


# -- keys and signatures (services/keys.py, as suppliers' keys) ---------------------------------

KEY_PREFIX, KEY_PURPOSE = "whsec_", "webhook-key"


def assign_key(subscription: WebhookSubscription) -> str:
    """A new signing key for the subscription (an earlier one stops signing), answered once."""
    key, subscription.signing_key_hash = keys.new_key(KEY_PREFIX, KEY_PURPOSE)
    return key


def signing_key(subscription: WebhookSubscription) -> str | None:
    return keys.stored_key(subscription.signing_key_hash, KEY_PREFIX, KEY_PURPOSE)


def sign(key: str, timestamp: str, body: bytes) -> str:
    """`sha256=` + hex HMAC-SHA256 of `<timestamp>.<raw body>` under the subscription's key."""
    return "sha256=" + keys.sign(key, timestamp, body)


# -- subscriptions ------------------------------------------------------------------------------

def event_matches(patterns, name: str) -> bool:
    return any(p == name or (p.endswith(".*") and name.startswith(p[:-1])) for p in patterns or [])


def _checked_events(events) -> list[str]:
    if not isinstance(events, list) or not events or len(events) > len(WEBHOOK_EVENTS) or \
            not all(isinstance(e, str) for e in events):
        raise ValidationFailed.field("events", "A list of webhook events (names or prefix.*).")
    cleaned = list(dict.fromkeys(e.strip() for e in events))
    unknown = [e for e in cleaned
               if e not in WEBHOOK_EVENTS and not (e.endswith(".*") and e[:-2] in PREFIXES)]
    if unknown:
        raise ValidationFailed.field("events", f"Unknown webhook events: {', '.join(unknown)}. "
                                     f"Known: {', '.join(WEBHOOK_EVENTS)}, or a prefix such as "
                                     "order.*")
    return cleaned


def _checked_url(url) -> str:
    url = url.strip() if isinstance(url, str) else None
    parts = urlsplit(url) if url else None
    if not url or len(url) > 512 or parts.scheme not in ("http", "https") or \
            not parts.hostname or any(c.isspace() for c in url):
        raise ValidationFailed.field("url", "An absolute http(s) URL of at most 512 characters.")
    return url


def check_subscription(item: WebhookSubscription) -> WebhookSubscription:
    """The fields of a subscription (screens and REST), every error at once."""
    errors = {}
    name = item.name.strip() if isinstance(item.name, str) else ""
    if not name or len(name) > 64:
        errors["name"] = ["Required, at most 64 characters."]
    for field, check in (("url", _checked_url), ("events", _checked_events)):
        try:
            setattr(item, field, check(getattr(item, field)))
        except ValidationFailed as err:
            errors.update(err.errors)
    if item.enabled is None:
        item.enabled = True
    elif not isinstance(item.enabled, bool):
        errors["enabled"] = ["true or false."]
    if errors:
        raise ValidationFailed("Validation failed", errors)
    item.name = name
    if item.shop_id is None and getattr(item, "shop", None) is not None:
        item.shop_id = item.shop.id
    return item


def create_subscription(item: WebhookSubscription) -> str:
    """Check a new subscription and give it its signing key (answered once)."""
    check_subscription(item)
    return assign_key(item)


def _visible_subscription(subscription_id) -> WebhookSubscription:
    found = visible_row(WebhookSubscription, subscription_id)
    if found is None:
        raise NotFoundError("Not found")
    return db.session.scalars(select(WebhookSubscription).where(
        WebhookSubscription.id == found.id).with_for_update()).one()


def rotate_key(subscription_id) -> tuple[WebhookSubscription, str]:
    """A new signing key; deliveries sent from now on are signed with it."""
    subscription = _visible_subscription(subscription_id)
    return subscription, assign_key(subscription)


# -- deliveries: made from events ---------------------------------------------------------------

def _subscriptions_for(name: str, shop_id: int | None) -> list[WebhookSubscription]:
    own = or_(WebhookSubscription.shop_id.is_(None), WebhookSubscription.shop_id == shop_id) \
        if shop_id is not None else WebhookSubscription.shop_id.is_(None)
    rows = db.session.scalars(select(WebhookSubscription).where(
        WebhookSubscription.enabled.is_(True), own).order_by(WebhookSubscription.id))
    return [row for row in rows if event_matches(row.events, name)]


def _make_deliveries(payload: dict) -> None:
    """One delivery per matching subscription for the running event (none twice)."""
    event = current_event()
    if event is None:
        return
    done = set(db.session.scalars(select(WebhookDelivery.subscription_id).where(
        WebhookDelivery.event_id == event.id)))
    stamp = now()
    for subscription in _subscriptions_for(event.name, event.shop_id):
        if subscription.id in done:
            continue
        delivery = WebhookDelivery(subscription_id=subscription.id, shop_id=event.shop_id,
                                   event_id=event.id, event_name=event.name,
                                   payload=payload, status="pending", attempts=0,
                                   next_attempt_at=stamp, created_at=stamp)
        db.session.add(delivery)
        db.session.flush()
        enqueue_after_commit(db.session, SEND_JOB, delivery.id)


_listening = Listeners(WebhookSubscription, lambda: db.session.execute(
    select(WebhookSubscription.shop_id, WebhookSubscription.events)
    .where(WebhookSubscription.enabled.is_(True))).all())


def _wanted(name: str, shop_id: int | None) -> bool:
    """Whether an enabled subscription (platform-wide or the event's shop's) hears `name`."""
    return any((owner is None or owner == shop_id) and event_matches(events, name)
               for owner, events in _listening.current())


for _name in WEBHOOK_EVENTS:
    subscribe(_name, SUBSCRIBER, wanted=_wanted)(_make_deliveries)


# -- sending ------------------------------------------------------------------------------------

def max_attempts() -> int:
    return current_app.config.get("WEBHOOK_MAX_ATTEMPTS", 8)


def timeout_seconds() -> int:
    return current_app.config.get("WEBHOOK_TIMEOUT_SECONDS", 10)


def retry_delay(attempts: int) -> timedelta:
    """How long after its `attempts`-th failed attempt a delivery is tried again."""
    return timedelta(seconds=min(RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0),
                                 RETRY_MAX_SECONDS))


def request_body(delivery: WebhookDelivery, occurred_at=None) -> bytes:
    """What the receiver gets: the delivery id, the event, when it happened, the shop, data."""
    if occurred_at is None:
        occurred_at = db.session.scalar(select(OutboxEvent.created_at).where(
            OutboxEvent.id == delivery.event_id))
    return json.dumps({"id": delivery.id, "event": delivery.event_name,
                       "occurred_at": occurred_at.isoformat() if occurred_at else None,
                       "shop_id": delivery.shop_id, "data": delivery.payload},
                      ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def claim(delivery_id: int) -> int | None:
    """Take a due delivery for one attempt (a conditional update: one sender wins), and hold
    it for the timeout plus a minute. Commits. The attempt's number, or None."""
    stamp = now()
    lease = stamp + timedelta(seconds=timeout_seconds() + 60)
    claimed = db.session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id,
               WebhookDelivery.status.in_(("pending", "retrying")),
               WebhookDelivery.next_attempt_at <= stamp)
        .values(attempts=WebhookDelivery.attempts + 1, next_attempt_at=lease)
        .returning(WebhookDelivery.attempts)
        .execution_options(synchronize_session=False)).scalar_one_or_none()
    db.session.commit()
    return claimed


def post(url: str, body: bytes, headers: dict, timeout: float) -> tuple[int, str | None]:
    """POST with the standard library (as drop-ship notices are sent): (status, error)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - http(s)
            return answer.status, None
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code}: {exc.read(500).decode('utf-8', 'replace')}"


def send(delivery_id: int) -> str | None:
    """Claim → commit → POST (no transaction open) → record. The delivery's status after
    this attempt, or None when another sender has it or it is not due."""
    attempt = claim(delivery_id)
    if attempt is None:
        return None
    delivery = db.session.get(WebhookDelivery, delivery_id)
    subscription = db.session.get(WebhookSubscription, delivery.subscription_id)
    key = signing_key(subscription)
    body = request_body(delivery)
    timestamp = str(int(now().timestamp()))
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               "X-Houtai-Event": delivery.event_name, "X-Houtai-Delivery": str(delivery.id),
               "X-Houtai-Timestamp": timestamp,
               "X-Houtai-Signature": sign(key, timestamp, body) if key else ""}
    url, enabled = subscription.url, subscription.enabled
    db.session.rollback()                     # nothing is held while the receiver answers
    started = time.monotonic()
    if not enabled:
        status, error = None, "The subscription is disabled."
    elif key is None:
        status, error = None, "The subscription has no valid signing key (SECRET_KEY changed?)."
    else:
        try:
            status, error = post(url, body, headers, timeout_seconds())
        except Exception as exc:  # noqa: BLE001 - any failure to reach the receiver is retried
            status, error = None, f"{type(exc).__name__}: {exc}"
    return record(delivery_id, attempt, status, error,
                  int((time.monotonic() - started) * 1000))


def record(delivery_id: int, attempt: int, status: int | None, error: str | None,
           duration_ms: int) -> str | None:
    """Write an attempt's answer (only if the delivery is still in this attempt). Commits."""
    succeeded = status is not None and 200 <= status < 300
    if not succeeded and error is None:
        error = f"HTTP {status}"
    stamp = now()
    values = {"last_status_code": status, "duration_ms": duration_ms,
              "last_error": None if succeeded else error[-2000:]}
    if succeeded:
        values.update(status="succeeded", delivered_at=stamp)
    elif attempt >= max_attempts():
        values.update(status="failed")
    else:
        values.update(status="retrying", next_attempt_at=stamp + retry_delay(attempt))
    done = db.session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.attempts == attempt,
               WebhookDelivery.status.in_(("pending", "retrying")))
        .values(**values).returning(WebhookDelivery.status)
        .execution_options(synchronize_session=False)).scalar_one_or_none()
    db.session.commit()
    return done


@scheduled("webhooks.retry")
def retry_due() -> int:
    """Hand every due delivery (a retry, or one whose job or sender was lost) to the queue."""
    ids = db.session.scalars(select(WebhookDelivery.id).where(
        WebhookDelivery.status.in_(("pending", "retrying")),
        WebhookDelivery.next_attempt_at <= now())
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(RETRY_BATCH)).all()
    db.session.rollback()
    for delivery_id in ids:
        enqueue_now(SEND_JOB, delivery_id)
    return len(ids)


def redeliver(delivery_id) -> WebhookDelivery:
    """Send a failed (or succeeded) delivery again, with a fresh set of attempts; a delivery
    still being tried answers 409."""
    found = visible_row(WebhookDelivery, delivery_id)
    if found is None:
        raise NotFoundError("Not found")
    delivery = db.session.scalars(select(WebhookDelivery).where(
        WebhookDelivery.id == found.id).with_for_update()).one()
    db.session.refresh(delivery)
    if delivery.status not in ("failed", "succeeded"):
        raise ConflictError("The delivery is still being tried",
                            {"status": [delivery.status]})
    delivery.status, delivery.attempts, delivery.next_attempt_at = "pending", 0, now()
    enqueue_after_commit(db.session, SEND_JOB, delivery.id)
    return delivery

