"""Integrations: message templates and messages. Rendering; unknown fields refused; an event
sends one SMS and one 站内信 exactly once even when delivered twice; the sandbox refuses,
the tick retries, then gives up after the last attempt; mobile numbers masked; merchants see
their own shop's messages only; the storefront reads and marks a member's 站内信."""
from datetime import datetime, timedelta, timezone

import pytest

from app.extensions import db
from app.queue import run_inprocess_jobs
from models.events import EventDelivery, OutboxEvent
from models.message import Message
from services import clock, events, message
from tests.factories import _message_row, shipped_notice

T0 = datetime(2025, 3, 1, 10, 0, tzinfo=timezone.utc)
API = "/api/v1/message_template/"
SHIPPED = "您的订单{order_no}已由{carrier}发出，运单号{tracking_no}"


@pytest.fixture(autouse=True)
def inprocess(app, monkeypatch):
    from services.carriers import sandbox

    monkeypatch.setitem(app.config, "REDIS_URL", None)
    sandbox.forget_book()
    yield
    app.extensions.pop(sandbox.TRANSPORT_KEY, None)


def run_jobs():
    run_inprocess_jobs(db.session)


def messages(**filters):
    db.session.expire_all()
    return Message.query.filter_by(**filters).order_by(Message.id).all()


def templates(api, event="shipping_notice.shipped"):
    ops = api("Operations")
    for channel, title in (("sms", None), ("inbox", "订单已发货")):
        answer = ops.post(API, json={"code": "order_shipped", "channel": channel,
                                     "locale": "zh", "event_name": event, "title": title,
                                     "body": SHIPPED, "enabled": True})
        assert answer.status_code == 201, answer.json


def test_render_fills_the_fields_and_leaves_the_rest():
    assert message.render("订单{order_no}，{member_name}", {"order_no": "O1"}) == "订单O1，"
    assert message.render("{amount}", {"amount": __import__("decimal").Decimal("9.5")}) == "9.50"


@pytest.mark.parametrize("body, field", [
    ({"body": "订单{password}已发货"}, "body"),
    ({"body": "{order_no.__class__}"}, "body"),
    ({"title": "{secret}"}, "title"),
    ({"body": ""}, "body"),
    ({"channel": "email"}, "channel"),
    ({"locale": "fr"}, "locale"),
    ({"event_name": "order.teleported"}, "event_name"),
    ({"code": "bad code!"}, "code"),
    ({"event_name": None, "body": "{order_no}"}, "body"),   # no event: the member only
])
def test_a_bad_template_is_refused_naming_the_field(api, shops, body, field):
    good = {"code": "order_shipped", "channel": "sms", "locale": "zh",
            "event_name": "shipping_notice.shipped", "body": SHIPPED}
    answer = api("Operations").post(API, json={**good, **body})
    assert answer.status_code == 422, answer.json
    assert field in answer.json["errors"]
    assert api("Operations").get(API).json["count"] == 0


def test_the_same_code_channel_and_locale_twice_is_refused_not_a_500(api, shops):
    templates(api)
    again = api("Operations").post(API, json={"code": "order_shipped", "channel": "sms",
                                              "locale": "zh", "body": "x"})
    assert again.status_code in (409, 422) and again.json["errors"]
    other = api("Operations").post(API, json={"code": "order_shipped", "channel": "sms",
                                              "locale": "en", "body": "Shipped"})
    assert other.status_code == 201
    assert api("merchant_a").get(API).status_code == 403       # platform data


def test_a_shipment_sends_one_sms_and_one_inbox_message_once(api, shops):
    templates(api)
    notice = shipped_notice(shops["A"])
    run_jobs()
    sms, inbox = messages()
    expected = f"您的订单{notice.order.order_no}已由{notice.carrier}发出，运单号{notice.tracking_no}"
    assert (sms.channel, sms.status, sms.recipient, sms.body, sms.attempts) == \
        ("sms", "sent", "13812345678", expected, 1)
    assert sms.provider_ref.startswith("sbx-") and sms.sent_at is not None
    assert (inbox.channel, inbox.status, inbox.title, inbox.body) == \
        ("inbox", "sent", "订单已发货", expected)
    assert sms.shop_id == inbox.shop_id == shops["A"].id
    assert sms.member_id == inbox.member_id == notice.order.member_id

    event = OutboxEvent.query.filter_by(name="shipping_notice.shipped").one()
    marker = EventDelivery.query.filter_by(event_id=event.id,
                                           subscriber=message.SUBSCRIBER).one()
    marker.status = "retrying"                          # at least once: delivered again
    db.session.commit()
    events.deliver(event.id)
    run_jobs()
    assert len(messages()) == 2
    from workers.message import send_message

    assert send_message(sms.id) is None                 # the send job repeated: nothing
    assert messages(channel="sms")[0].attempts == 1

    member_id = inbox.member_id
    store = api("Storefront")
    listed = store.get(f"/api/v1/member_message/?q=(filters:!((col:member_id,opr:eq,"
                       f"value:{member_id})))")
    assert listed.status_code == 200
    assert [(r["id"], r["body"], r["read_at"]) for r in listed.json["result"]] == \
        [(inbox.id, expected, None)]
    assert store.get(f"/api/v1/member_message/{sms.id}").status_code == 404   # SMS: not inbox
    wrong = store.post(f"/api/v1/member_message/{inbox.id}/read",
                       json={"member_id": member_id + 1000})
    assert wrong.status_code == 404
    read = store.post(f"/api/v1/member_message/{inbox.id}/read", json={"member_id": member_id})
    assert read.status_code == 200 and read.json["result"]["read_at"]


def test_a_refused_sms_is_retried_by_the_tick_then_sent(app, api, shops, monkeypatch):
    templates(api)
    clock.set_now(T0)
    monkeypatch.setitem(app.config, "SANDBOX_SMS_FAIL_PATTERN", r"5678$")
    shipped_notice(shops["A"])
    run_jobs()
    [sms] = messages(channel="sms")
    assert (sms.status, sms.attempts) == ("queued", 1)
    assert "SANDBOX_SMS_FAIL_PATTERN" in sms.error
    assert sms.next_attempt_at == T0 + timedelta(seconds=60)
    assert message.retry_due() == 0
    monkeypatch.setitem(app.config, "SANDBOX_SMS_FAIL_PATTERN", None)
    clock.set_now(T0 + timedelta(seconds=61))
    assert message.retry_due() == 1
    run_jobs()
    [sms] = messages(channel="sms")
    assert (sms.status, sms.attempts, sms.error) == ("sent", 2, None)


def test_an_sms_the_sandbox_keeps_refusing_fails_after_the_last_attempt(app, api, shops,
                                                                       monkeypatch):
    templates(api)
    monkeypatch.setitem(app.config, "MESSAGE_MAX_ATTEMPTS", 2)
    monkeypatch.setitem(app.config, "SANDBOX_SMS_FAIL_PATTERN", r".")
    clock.set_now(T0)
    shipped_notice(shops["A"])
    run_jobs()
    clock.set_now(T0 + timedelta(minutes=5))
    message.retry_due()
    run_jobs()
    [sms] = messages(channel="sms")
    assert (sms.status, sms.attempts) == ("failed", 2)
    clock.set_now(T0 + timedelta(days=1))
    assert message.retry_due() == 0


def test_mobile_numbers_are_masked_on_screens_and_in_answers(api, browser, shops):
    row = _message_row(shops["A"])
    listed = api("Operations").get("/api/v1/message/").json["result"]
    assert [r["recipient"] for r in listed] == ["138****5678"]
    shown = api("Operations").get(f"/api/v1/message/{row.id}").json["result"]
    assert shown["recipient"] == "138****5678"
    for url in ("/messageview/list/", f"/messageview/show/{row.id}"):
        page = browser("Operations").get(url).get_data(as_text=True)
        assert "138****5678" in page and "13812345678" not in page


def test_a_merchant_sees_only_its_own_shops_messages(api, shops):
    own, other = _message_row(shops["A"]), _message_row(shops["B"])
    merchant = api("merchant_a")
    assert [r["id"] for r in merchant.get("/api/v1/message/").json["result"]] == [own.id]
    assert merchant.get(f"/api/v1/message/{other.id}").status_code == 404


def test_send_test_renders_samples_to_a_mobile_number(api, shops):
    templates(api)
    sms_template = next(r for r in api("Operations").get(API).json["result"]
                        if r["channel"] == "sms")
    bad = api("Operations").post(f"{API}{sms_template['id']}/send_test", json={"mobile": "12"})
    assert bad.status_code == 422 and "mobile" in bad.json["errors"]
    sent = api("Operations").post(f"{API}{sms_template['id']}/send_test",
                                  json={"mobile": "13900001111"})
    assert sent.status_code == 201, sent.json
    assert sent.json["result"]["recipient"] == "139****1111"
    [row] = messages()
    assert (row.status, row.recipient) == ("sent", "13900001111")
    assert row.body == message.render(SHIPPED, message.SAMPLE)
