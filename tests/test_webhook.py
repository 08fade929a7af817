"""Integrations: webhooks. A real HTTP receiver on 127.0.0.1 checks each POST's signature
with the key shown once; shop isolation; retries with back-off driven by the clock and the
tick; failed after the last attempt, then redelivered; an event delivered twice posts once;
bad subscriptions refused; a real `rq worker` delivers; two senders of one delivery post once."""
import hashlib
import hmac
import json
import os
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from app.extensions import db
from app.queue import run_inprocess_jobs
from models.events import EventDelivery, OutboxEvent
from models.webhook import WebhookDelivery
from services import clock, events, webhook
from tests.conftest import requires_postgres, requires_redis
from tests.factories import make_subscription, paid_order
from tests.race import met_or_blocked

T0 = datetime(2025, 3, 1, 10, 0, tzinfo=timezone.utc)
API = "/api/v1/webhook_subscription/"


@pytest.fixture(autouse=True)
def inprocess(app, monkeypatch):
    monkeypatch.setitem(app.config, "REDIS_URL", None)


@pytest.fixture
def receiver():
    """An HTTP server in a thread: records each POST, answers the queued statuses (200 when
    none is left)."""
    got, answers = [], []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append({"path": self.path, "headers": dict(self.headers), "body": body})
            status = answers.pop(0) if answers else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{server.server_port}", got=got, answers=answers)
    server.shutdown()
    server.server_close()


def verified(key: str, request: dict) -> bool:
    """What a receiver does (docs/integrators.md): HMAC-SHA256 of "<timestamp>.<body>"."""
    timestamp = request["headers"]["X-Houtai-Timestamp"]
    expected = "sha256=" + hmac.new(key.encode(), timestamp.encode() + b"." + request["body"],
                                    hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, request["headers"]["X-Houtai-Signature"])


def run_jobs():
    run_inprocess_jobs(db.session)


def deliveries(**filters):
    db.session.expire_all()
    return WebhookDelivery.query.filter_by(**filters).order_by(WebhookDelivery.id).all()


def subscribe_as(client, url, events_=("order.paid",), **extra):
    answer = client.post(API, json={"name": "ERP", "url": url, "events": list(events_),
                                    **extra})
    assert answer.status_code == 201, answer.json
    return answer.json["id"], answer.json["result"]["signing_key"]


def test_a_signed_delivery_verifies_with_the_key_shown_once(api, shops, receiver):
    merchant = api("merchant_a")
    sub_id, key = subscribe_as(merchant, receiver.url + "/erp")
    shown = merchant.get(f"{API}{sub_id}").json["result"]
    assert "signing_key" not in shown and "signing_key_hash" not in shown
    assert shown["shop_id"] == shops["A"].id

    placed = paid_order(shops["A"])
    run_jobs()
    [request] = receiver.got
    [delivery] = deliveries()
    body = json.loads(request["body"])
    assert request["path"] == "/erp"
    assert request["headers"]["X-Houtai-Event"] == "order.paid"
    assert request["headers"]["X-Houtai-Delivery"] == str(delivery.id)
    assert body["id"] == delivery.id and body["event"] == "order.paid"
    assert body["shop_id"] == shops["A"].id and body["data"]["order_id"] == placed.id
    assert body["occurred_at"]
    assert verified(key, request)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == \
        ("succeeded", 1, 200)

    rotated = merchant.post(f"{API}{sub_id}/rotate_key")
    assert rotated.status_code == 201
    new_key = rotated.json["result"]["signing_key"]
    assert new_key != key
    paid_order(shops["A"])
    run_jobs()
    assert verified(new_key, receiver.got[-1]) and not verified(key, receiver.got[-1])


def test_a_merchants_subscription_hears_only_its_own_shop(api, shops, receiver):
    subscribe_as(api("merchant_a"), receiver.url + "/a", ["order.*"])
    subscribe_as(api("merchant_b"), receiver.url + "/b", ["order.*", "trade.paid"])
    subscribe_as(api("Admin"), receiver.url + "/platform", ["order.paid", "trade.paid"])
    paid_order(shops["B"])
    run_jobs()
    heard = sorted((r["path"], r["headers"]["X-Houtai-Event"]) for r in receiver.got)
    # trade events belong to no shop (a trade may span shops): the platform's only
    assert heard == [("/b", "order.paid"), ("/platform", "order.paid"),
                     ("/platform", "trade.paid")]
    listed = api("merchant_a").get(API).json["result"]
    assert [row["shop_id"] for row in listed] == [shops["A"].id]
    b_delivery = deliveries(shop_id=shops["B"].id)[0]
    assert api("merchant_a").get(f"/api/v1/webhook_delivery/{b_delivery.id}").status_code == 404
    assert api("merchant_a").post(
        f"/api/v1/webhook_delivery/{b_delivery.id}/redeliver").status_code == 404


def test_a_500_is_retried_with_back_off_by_the_tick_then_succeeds(app, shops, receiver):
    clock.set_now(T0)
    make_subscription(shops["A"], url=receiver.url, events=["order.paid"])
    receiver.answers.append(500)
    paid_order(shops["A"])
    run_jobs()
    [delivery] = deliveries()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == \
        ("retrying", 1, 500)
    assert delivery.next_attempt_at == T0 + timedelta(seconds=60)
    assert webhook.retry_due() == 0                      # not due yet
    clock.set_now(T0 + timedelta(seconds=61))
    assert webhook.retry_due() == 1
    run_jobs()
    [delivery] = deliveries()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == \
        ("succeeded", 2, 200)
    assert [r["headers"]["X-Houtai-Delivery"] for r in receiver.got] == [str(delivery.id)] * 2


def test_failed_after_the_last_attempt_shown_and_redelivered(app, api, browser, shops,
                                                             receiver, monkeypatch):
    monkeypatch.setitem(app.config, "WEBHOOK_MAX_ATTEMPTS", 3)
    clock.set_now(T0)
    make_subscription(shops["A"], url=receiver.url, events=["order.paid"])
    receiver.answers.extend([500, 503, 502])
    paid_order(shops["A"])
    run_jobs()
    for minutes in (2, 5):                              # waits of 1 and then 2 minutes
        clock.set_now(T0 + timedelta(minutes=minutes))
        webhook.retry_due()
        run_jobs()
    [delivery] = deliveries()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 3, 502)
    clock.set_now(T0 + timedelta(days=1))
    assert webhook.retry_due() == 0                      # failed is final
    page = browser("merchant_a").get("/webhookdeliveryview/list/").get_data(as_text=True)
    assert "order.paid" in page and ("Failed" in page or "失败" in page)
    shown = browser("merchant_a").get(f"/webhookdeliveryview/show/{delivery.id}")
    assert shown.status_code == 200 and f'&#34;id&#34;:{delivery.id}' in shown.get_data(
        as_text=True)

    answer = api("merchant_a").post(f"/api/v1/webhook_delivery/{delivery.id}/redeliver")
    assert answer.status_code == 200, answer.json
    [delivery] = deliveries()
    assert (delivery.status, delivery.attempts) == ("succeeded", 1)
    assert len(receiver.got) == 4
    again = api("merchant_a").post(f"/api/v1/webhook_delivery/{delivery.id}/redeliver")
    assert again.status_code == 200                     # a receiver asked for it again
    run_jobs()
    assert len(receiver.got) == 5


def test_an_event_delivered_twice_makes_one_delivery_and_one_post(shops, receiver):
    make_subscription(shops["A"], url=receiver.url, events=["order.paid"])
    paid_order(shops["A"])
    run_jobs()
    event = OutboxEvent.query.filter_by(name="order.paid").one()
    marker = EventDelivery.query.filter_by(event_id=event.id,
                                           subscriber=webhook.SUBSCRIBER).one()
    marker.status = "retrying"                          # at least once: delivered again
    db.session.commit()
    events.deliver(event.id)
    run_jobs()
    [delivery] = deliveries()
    from workers.webhook import send_delivery

    assert send_delivery(delivery.id) is None           # the send job repeated: nothing
    assert len(receiver.got) == 1 and delivery.status == "succeeded"


@pytest.mark.parametrize("body, field", [
    ({"url": "ftp://example.com/hook"}, "url"),
    ({"url": "/hooks"}, "url"),
    ({"url": "http://"}, "url"),
    ({"url": "https://exa mple.com/x"}, "url"),
    ({"url": 12}, "url"),
    ({"events": ["order.nope"]}, "events"),
    ({"events": []}, "events"),
    ({"events": "order.*"}, "events"),
    ({"events": ["nope.*"]}, "events"),
    ({"events": [3]}, "events"),
    ({"name": ""}, "name"),
])
def test_bad_subscriptions_are_refused_naming_the_field(api, shops, body, field):
    good = {"name": "ERP", "url": "https://erp.example.com/hooks", "events": ["order.*"]}
    answer = api("merchant_a").post(API, json={**good, **body})
    assert answer.status_code == 422, answer.json
    assert field in answer.json["errors"]
    assert api("merchant_a").get(API).json["count"] == 0


def test_a_merchant_cannot_subscribe_for_another_shop(api, shops):
    answer = api("merchant_a").post(API, json={"name": "x", "url": "https://e.example/h",
                                               "events": ["order.*"], "shop_id": shops["B"].id})
    assert answer.status_code == 422 and "shop_id" in answer.json["errors"]


def test_a_real_rq_worker_delivers_the_webhook(app, shops, receiver, monkeypatch):
    from tests.test_events import run_burst_worker

    monkeypatch.setitem(app.config, "REDIS_URL", os.environ.get("REDIS_URL"))
    requires_redis(app)
    requires_postgres(app)
    _, key = make_subscription(shops["A"], url=receiver.url, events=["order.paid"])
    paid_order(shops["A"])
    assert receiver.got == []                           # queued for the worker
    run_burst_worker(app)
    [request] = receiver.got
    assert verified(key, request)
    [delivery] = deliveries()
    assert (delivery.status, delivery.attempts) == ("succeeded", 1)


def _pending_delivery(shop, url):
    from services.actor import Actor, acting_as

    subscription, _ = make_subscription(shop, url=url, events=["order.paid"])
    with acting_as(Actor.system("test")):
        event = OutboxEvent(name="order.paid", payload={"order_id": 1}, shop_id=shop.id,
                            created_at=clock.now())
        db.session.add(event)
        db.session.flush()
        delivery = WebhookDelivery(subscription_id=subscription.id, shop_id=shop.id,
                                   event_id=event.id, event_name=event.name,
                                   payload=event.payload, status="pending", attempts=0,
                                   next_attempt_at=clock.now() - timedelta(seconds=1))
        db.session.add(delivery)
        db.session.commit()
    return delivery.id


def _two_senders(app, delivery_id, monkeypatch, claim):
    arrived, lock, results = [], threading.Lock(), []

    def meeting_claim(pk):
        met_or_blocked(arrived, lock, threading.get_ident())
        return claim(pk)

    monkeypatch.setattr(webhook, "claim", meeting_claim)

    def sender():
        with app.app_context():
            results.append(webhook.send(delivery_id))
            db.session.remove()

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return sorted(results, key=str)


def test_two_senders_of_one_delivery_post_once(app, shops, receiver, monkeypatch):
    requires_postgres(app)
    delivery_id = _pending_delivery(shops["A"], receiver.url)
    results = _two_senders(app, delivery_id, monkeypatch, webhook.claim)
    assert results == [None, "succeeded"]
    assert len(receiver.got) == 1
    assert (deliveries()[0].attempts, deliveries()[0].status) == (1, "succeeded")


def test_control_senders_without_the_conditional_claim_post_twice(app, shops, receiver,
                                                                  monkeypatch):
    requires_postgres(app)
    delivery_id = _pending_delivery(shops["A"], receiver.url)

    def naive_claim(pk):                                 # read, then send: no condition
        attempts = db.session.get(WebhookDelivery, pk).attempts + 1
        db.session.commit()
        return attempts

    _two_senders(app, delivery_id, monkeypatch, naive_claim)
    assert len(receiver.got) == 2
