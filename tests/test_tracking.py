"""物流中心 tracking: the sandbox carrier end to end, the signed push webhook (signature, replay,
stale pushes, duplicates, unknown numbers), signed scans delivering the order once, exception
scans opening one ticket, polling, and the Kuaidi100-style adapter on recorded payloads."""
import json
import threading
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlencode

import pytest

from app.extensions import db
from app.queue import run_inprocess_jobs
from models.events import OutboxEvent
from models.logistics import CarrierPush, SandboxShipment, TrackingEvent
from models.order import Order, OrderStatus, ShippingNotice
from models.ticket import Ticket
from services import clock, tracking
from services.actor import Actor, acting_as
from services.carriers import kuaidi100, sandbox
from tests.conftest import requires_postgres
from tests.factories import (make_carrier, paid_order, sandbox_carrier, shipped_notice,
                             ticket_queue)
from tests.race import met_or_blocked

SAMPLES = {
    # a Kuaidi100 push as its documentation records one (param of the form POST)
    "push": {"status": "polling", "billstatus": "check", "message": "", "autoCheck": "0",
             "comOld": "", "comNew": "",
             "lastResult": {"message": "ok", "nu": "SF1234567890", "ischeck": "1",
                            "condition": "F00", "com": "shunfeng", "status": "200",
                            "state": "3",
                            "data": [{"time": "2024-05-02 15:20:11", "ftime": "2024-05-02 15:20:11",
                                      "context": "[上海市]已签收，签收人：本人", "status": "签收",
                                      "statusCode": "301", "areaName": "上海,上海市"},
                                     {"time": "2024-05-02 09:02:45", "ftime": "2024-05-02 09:02:45",
                                      "context": "[上海市]快件派送中", "status": "派件",
                                      "statusCode": "5", "areaName": "上海,上海市"},
                                     {"time": "2024-05-01 21:10:03", "ftime": "2024-05-01 21:10:03",
                                      "context": "[杭州市]快件已发往上海", "status": "在途",
                                      "statusCode": "1002", "areaName": "浙江,杭州市"},
                                     {"time": "2024-05-01 18:30:00", "ftime": "2024-05-01 18:30:00",
                                      "context": "[杭州市]已揽收", "status": "揽收",
                                      "statusCode": "103", "areaName": "浙江,杭州市"}]}},
    # the real-time query's answer for a parcel in trouble
    "query": {"message": "ok", "nu": "SF1234567890", "ischeck": "0", "condition": "00",
              "com": "shunfeng", "status": "200", "state": "2",
              "data": [{"time": "2024-05-03 10:00:00", "ftime": "2024-05-03 10:00:00",
                        "context": "[上海市]收件人电话无人接听，待再次派送"},
                       {"time": "2024-05-01 18:30:00", "ftime": "2024-05-01 18:30:00",
                        "context": "[杭州市]已揽收", "status": "揽收"}]},
}


@pytest.fixture(autouse=True)
def inprocess(app, monkeypatch):
    """Jobs and event handlers run in-process; the sandbox carrier's book starts empty."""
    monkeypatch.setitem(app.config, "REDIS_URL", None)
    sandbox.forget_book()
    yield
    app.extensions.pop(sandbox.TRANSPORT_KEY, None)
    app.extensions.pop(kuaidi100.TRANSPORT_KEY, None)


def reload(model, pk):
    db.session.expire_all()
    return db.session.get(model, pk)


def signed_push(tracking_no, scans, nonce="n-1", moment=None):
    body = json.dumps({"tracking_no": tracking_no, "scans": scans}).encode()
    timestamp = str(int((moment or clock.now()).timestamp()))
    return body, {"Content-Type": "application/json", "X-Timestamp": timestamp,
                  "X-Nonce": nonce, "X-Signature": sandbox.sign(timestamp, nonce, body)}


def scan(n, status="in_transit", minutes=0, description="到达上海转运中心"):
    return {"id": f"S-{n}", "status": status, "description": description, "location": "上海",
            "occurred_at": (clock.now() - timedelta(hours=1) + timedelta(minutes=minutes))
            .isoformat()}


def post(app, code, body, headers):
    with app.app_context():
        return app.test_client().post(f"/api/v1/carrier_push/{code}", data=body,
                                      headers=headers)


def advance(api, tracking_no, status, who="Logistics", **extra):
    return api(who).post("/api/v1/sandbox_carrier/advance",
                         json={"tracking_no": tracking_no, "status": status, **extra})


def outbox(name):
    return OutboxEvent.query.filter_by(name=name).count()


# -- the sandbox carrier, end to end -------------------------------------------------------------

def test_sandbox_shipment_is_tracked_to_signed_and_the_order_delivered_once(app, api, shops):
    notice = shipped_notice(shops["A"])
    for status, text in (("collected", "已揽收"), ("in_transit", "发往上海"),
                         ("out_for_delivery", "派送中")):
        answer = advance(api, notice.tracking_no, status, description=text, location="上海")
        assert answer.status_code == 200, answer.json
        assert answer.json["push_status"] == 200
    assert reload(ShippingNotice, notice.id).tracking_status == "out_for_delivery"
    assert reload(Order, notice.order_id).status == OrderStatus.shipped
    assert advance(api, notice.tracking_no, "signed", description="本人签收").json[
        "push_status"] == 200
    done = reload(ShippingNotice, notice.id)
    assert done.tracking_status == "signed" and done.delivered_at is not None
    assert reload(Order, notice.order_id).status == OrderStatus.delivered
    assert outbox("order.delivered") == 1
    # a second signed scan (and every earlier scan pushed again) changes nothing
    assert advance(api, notice.tracking_no, "signed").status_code == 200
    assert reload(Order, notice.order_id).status == OrderStatus.delivered
    assert outbox("order.delivered") == 1
    assert [e.status for e in TrackingEvent.query.filter_by(notice_id=notice.id)
            .order_by(TrackingEvent.id)] == ["collected", "in_transit", "out_for_delivery",
                                             "signed", "signed"]
    listed = api("merchant_a").get(
        f"/api/v1/tracking_event/?q=(filters:!((col:notice_id,opr:eq,value:{notice.id})))")
    assert listed.status_code == 200 and listed.json["count"] == 5
    assert api("merchant_b").get("/api/v1/tracking_event/").json["count"] == 0


def test_the_order_is_delivered_only_when_every_live_notice_is_signed(app, api, shops):
    from services import order as orders

    placed = paid_order(shops["A"])
    first = ShippingNotice.query.filter_by(order_id=placed.id).one()
    # a second shipment of the same order (another warehouse), as dispatch splits orders
    second = ShippingNotice(notice_no="S-second", shop_id=first.shop_id, order_id=placed.id,
                            warehouse_id=None, route="dropship", status="pending",
                            lines=[], payable=Decimal("0.00"), created_at=clock.now())
    db.session.add(second)
    db.session.commit()
    sandbox_carrier()
    with acting_as(Actor.system("test")):
        for notice in (first, second):
            orders.ship_notice(notice.id, "SBX", f"SBX-{notice.id}")
        db.session.commit()
    run_inprocess_jobs(db.session)
    for n, notice in enumerate((first, second)):
        assert advance(api, f"SBX-{notice.id}", "signed").status_code == 200
        expected = OrderStatus.shipped if n == 0 else OrderStatus.delivered
        assert reload(Order, placed.id).status == expected
    assert outbox("order.delivered") == 1


def test_shipping_with_the_sandbox_carrier_subscribes_the_shipment(app, api, shops):
    notice = shipped_notice(shops["A"])
    assert sandbox.book().carrier_of(notice.tracking_no) == "SBX"
    unknown = advance(api, "NOT-SHIPPED-1", "collected")
    assert unknown.status_code == 404 and "tracking_no" in unknown.json["errors"]


def test_advance_is_staff_work_and_refused_while_the_sandbox_is_off(app, api, shops,
                                                                    monkeypatch):
    notice = shipped_notice(shops["A"])
    assert advance(api, notice.tracking_no, "collected", who="merchant_a").status_code == 403
    bad = advance(api, notice.tracking_no, "teleported")
    assert bad.status_code == 422 and "status" in bad.json["errors"]
    monkeypatch.setitem(app.config, "SANDBOX_CARRIER_SECRET", None)
    off = advance(api, notice.tracking_no, "collected")
    assert off.status_code == 409 and TrackingEvent.query.count() == 0


# -- the webhook ---------------------------------------------------------------------------------

def test_a_wrong_signature_is_401_and_stores_nothing(app, shops):
    notice = shipped_notice(shops["A"])
    body, headers = signed_push(notice.tracking_no, [scan(1)])
    for spoiled in ({**headers, "X-Signature": "0" * 64}, {**headers, "X-Nonce": "other"},
                    {k: v for k, v in headers.items() if k != "X-Signature"},
                    # made-up headers: non-ASCII text and digits are refused, not an error
                    {**headers, "X-Signature": "é" * 64}, {**headers, "X-Timestamp": "²"}):
        answer = post(app, "SBX", body, spoiled)
        assert answer.status_code == 401 and set(answer.json) == {"message", "errors"}
    tampered = body.replace(b"in_transit", b"signed")
    assert post(app, "SBX", tampered, headers).status_code == 401
    assert TrackingEvent.query.count() == 0 and CarrierPush.query.count() == 0
    assert reload(ShippingNotice, notice.id).tracking_status is None


def test_a_replayed_push_is_answered_but_has_no_second_effect(app, shops):
    notice = shipped_notice(shops["A"])
    ticket_queue("logistics")
    body, headers = signed_push(notice.tracking_no, [scan(1, "exception",
                                                          description="地址不详")])
    first = post(app, "SBX", body, headers)
    assert first.status_code == 200 and first.json["stored"] == 1
    assert first.json["replayed"] is False
    db.session.query(TrackingEvent).delete()   # even were the scan gone, a replay adds nothing
    db.session.commit()
    again = post(app, "SBX", body, headers)
    assert again.status_code == 200
    assert (again.json["stored"], again.json["replayed"]) == (0, True)
    assert TrackingEvent.query.count() == 0 and CarrierPush.query.count() == 1
    assert Ticket.query.count() == 1


def test_a_stale_or_future_push_is_refused(app, shops):
    notice = shipped_notice(shops["A"])
    window = app.config["TRACKING_PUSH_WINDOW_SECONDS"]
    for offset in (-window - 5, window + 5):
        body, headers = signed_push(notice.tracking_no, [scan(1)], nonce=f"n{offset}",
                                    moment=clock.now() + timedelta(seconds=offset))
        answer = post(app, "SBX", body, headers)
        assert answer.status_code == 401 and "X-Timestamp" in answer.json["errors"]
    assert TrackingEvent.query.count() == 0 and CarrierPush.query.count() == 0


def test_the_same_scan_in_two_pushes_is_stored_once(app, shops):
    notice = shipped_notice(shops["A"])
    body, headers = signed_push(notice.tracking_no, [scan(1, "collected")], nonce="a")
    assert post(app, "SBX", body, headers).json["stored"] == 1
    body, headers = signed_push(notice.tracking_no,
                                [scan(1, "collected"), scan(2, "in_transit", 10)], nonce="b")
    assert post(app, "SBX", body, headers).json["stored"] == 1
    assert TrackingEvent.query.filter_by(notice_id=notice.id).count() == 2
    assert reload(ShippingNotice, notice.id).tracking_status == "in_transit"


def test_a_late_earlier_scan_does_not_move_the_status_back(app, shops):
    notice = shipped_notice(shops["A"])
    body, headers = signed_push(notice.tracking_no, [scan(2, "out_for_delivery", 30)], "a")
    post(app, "SBX", body, headers)
    body, headers = signed_push(notice.tracking_no, [scan(1, "in_transit", 0)], "b")
    assert post(app, "SBX", body, headers).json["stored"] == 1
    assert reload(ShippingNotice, notice.id).tracking_status == "out_for_delivery"


def test_an_unknown_tracking_number_is_answered_and_ignored(app, shops):
    shipped_notice(shops["A"])
    body, headers = signed_push("SBX-NOBODY", [scan(1)])
    answer = post(app, "SBX", body, headers)
    assert answer.status_code == 200 and answer.json["stored"] == 0
    assert TrackingEvent.query.count() == 0
    assert CarrierPush.query.one().events == 0


def test_unknown_carrier_and_malformed_scans_are_refused_without_effect(app, shops):
    notice = shipped_notice(shops["A"])
    body, headers = signed_push(notice.tracking_no, [scan(1)])
    assert post(app, "NOPE", body, headers).status_code == 404
    body, headers = signed_push(notice.tracking_no, [{**scan(1), "status": "lost"}])
    refused = post(app, "SBX", body, headers)
    assert refused.status_code == 422 and "scans.0.status" in refused.json["errors"]
    body, headers = signed_push(notice.tracking_no, [{**scan(1), "occurred_at": "noon"}])
    assert post(app, "SBX", body, headers).status_code == 422
    assert TrackingEvent.query.count() == 0 and CarrierPush.query.count() == 0


def test_an_exception_opens_one_ticket_per_episode(app, api, shops):
    notice = shipped_notice(shops["A"])
    queue = ticket_queue("logistics")
    advance(api, notice.tracking_no, "exception", description="收件人电话无人接听")
    advance(api, notice.tracking_no, "exception", description="再次派送失败")
    tickets = Ticket.query.all()
    assert len(tickets) == 1
    opened = tickets[0]
    assert (opened.source, opened.order_id, opened.queue_id, opened.priority) == \
        ("tracking", notice.order_id, queue.id, "high")
    assert opened.subject.startswith(f"Shipment {notice.notice_no} exception")
    assert opened.shop_id == shops["A"].id
    # once resolved, a later exception is a new episode
    opened.status = "resolved"
    db.session.commit()
    clock.set_now(clock.now() + timedelta(minutes=5))
    advance(api, notice.tracking_no, "exception", description="包裹破损")
    assert Ticket.query.count() == 2


# -- polling -------------------------------------------------------------------------------------

class Unreachable:
    def __init__(self):
        self.calls = 0

    def post(self, url, body, headers):
        self.calls += 1
        return 503, b"down"


def test_a_lost_push_is_caught_up_by_the_poll_tick_once(app, api, shops):
    notice = shipped_notice(shops["A"])
    down = Unreachable()
    app.extensions[sandbox.TRANSPORT_KEY] = down
    answer = advance(api, notice.tracking_no, "signed")
    assert answer.status_code == 200 and answer.json["push_status"] == 503
    assert down.calls == 1 and TrackingEvent.query.count() == 0
    assert tracking.poll_shipments() == 1
    assert reload(Order, notice.order_id).status == OrderStatus.delivered
    # delivered notices are not polled again; a second tick changes nothing
    assert tracking.poll_shipments() == 0
    assert TrackingEvent.query.count() == 1 and outbox("order.delivered") == 1


def test_polling_takes_at_most_a_batch_least_recently_scanned_first(app, shops, monkeypatch):
    notices = [shipped_notice(shops["A"]) for _ in range(3)]
    for notice in notices:
        sandbox.book().add_scan(notice.tracking_no, {
            "status": "in_transit", "description": None, "location": None,
            "occurred_at": clock.now().isoformat()})
    db.session.commit()
    monkeypatch.setitem(app.config, "TRACKING_POLL_BATCH", 2)
    assert [n for n, _ in tracking.due_for_poll(2)] == [notices[0].id, notices[1].id]
    assert tracking.poll_shipments() == 2
    assert tracking.due_for_poll(2)[0][0] == notices[2].id
    assert tracking.poll_shipments() == 1
    assert tracking.poll_shipments() == 0


# -- the sandbox's book under concurrency (PostgreSQL, real threads) ----------------------------

RACERS = 12


def _in_threads(app, work):
    """Run work(n) in RACERS threads released together, each with its own session and
    transaction; answers the errors raised."""
    barrier = threading.Barrier(RACERS)
    errors, lock = [], threading.Lock()

    def client(n):
        with app.app_context(), acting_as(Actor.system(f"scanner-{n}")):
            barrier.wait(timeout=10)
            try:
                work(n)
                db.session.commit()
            except Exception as exc:  # noqa: BLE001 (collected for the assertion)
                db.session.rollback()
                with lock:
                    errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def _scan_of(n):
    return {"status": "in_transit", "description": f"scan {n}", "location": "上海",
            "occurred_at": clock.now().isoformat()}


def _advance_concurrently(app, tracking_no):
    sandbox.book().register("SBX", tracking_no)
    db.session.commit()
    errors = _in_threads(app, lambda n: sandbox.book().add_scan(tracking_no, _scan_of(n)))
    db.session.expire_all()
    return errors, sandbox.book().scans(tracking_no)


def test_concurrent_advances_of_one_shipment_keep_every_scan_with_distinct_ids(app):
    requires_postgres(app)
    errors, kept = _advance_concurrently(app, "SBX-RACE-1")
    assert errors == []
    assert sorted(s["description"] for s in kept) == sorted(f"scan {n}" for n in range(RACERS))
    assert [s["id"] for s in kept] == [f"SBX-RACE-1-{n:03d}" for n in range(1, RACERS + 1)]


def test_control_appending_without_the_row_lock_loses_scans(app, monkeypatch):
    """Reading the shipment without its lock, then writing its scans back, loses scans and
    repeats ids: the check above would catch a book without the lock."""
    requires_postgres(app)
    from sqlalchemy import select

    everyone_read = threading.Barrier(RACERS)

    def unlocked(tracking_no):
        shipment = db.session.scalars(select(SandboxShipment).where(
            SandboxShipment.tracking_no == tracking_no)).one_or_none()
        everyone_read.wait(timeout=10)           # everyone read before anyone writes
        return shipment

    monkeypatch.setattr(sandbox, "_locked", unlocked)
    errors, kept = _advance_concurrently(app, "SBX-RACE-2")
    assert errors == []
    assert len(kept) < RACERS
    assert [s["id"] for s in kept] != [f"SBX-RACE-2-{n:03d}" for n in range(1, RACERS + 1)]


def test_concurrent_registrations_of_one_shipment_are_absorbed(app):
    requires_postgres(app)
    errors = _in_threads(app, lambda n: sandbox.book().register(f"C{n}", "SBX-RACE-3"))
    assert errors == []
    rows = SandboxShipment.query.filter_by(tracking_no="SBX-RACE-3").all()
    assert len(rows) == 1 and rows[0].carrier_code in {f"C{n}" for n in range(RACERS)}
    assert rows[0].scans == []


def test_control_plain_inserts_of_one_shipment_collide(app):
    """Without ON CONFLICT DO NOTHING concurrent registrations fail on the unique tracking
    number: the check above (no errors) would catch it."""
    requires_postgres(app)

    def plain_insert(n):
        db.session.execute(SandboxShipment.__table__.insert().values(
            tracking_no="SBX-RACE-4", carrier_code=f"C{n}", scans=[], created_at=clock.now(),
            updated_at=clock.now()))

    errors = _in_threads(app, plain_insert)
    assert len(errors) == RACERS - 1
    assert SandboxShipment.query.filter_by(tracking_no="SBX-RACE-4").count() == 1

# -- the Kuaidi100-style adapter ------------------------------------------------------------------

class RecordedKuaidi100:
    """Kuaidi100's side, answering from recorded payloads and keeping what it was sent."""

    def __init__(self, answers):
        self.answers = answers
        self.sent = []

    def post_form(self, url, form):
        self.sent.append((url, form))
        return 200, json.dumps(self.answers[url]).encode()


@pytest.fixture
def kuaidi(app, monkeypatch):
    for name, value in (("KUAIDI100_KEY", "k-key"), ("KUAIDI100_CUSTOMER", "C-CUSTOMER"),
                        ("KUAIDI100_SALT", "s-salt")):
        monkeypatch.setitem(app.config, name, value)
    recorded = RecordedKuaidi100({
        app.config["KUAIDI100_SUBSCRIBE_URL"]: {"result": True, "returnCode": "200",
                                                "message": "提交成功"},
        app.config["KUAIDI100_QUERY_URL"]: SAMPLES["query"]})
    app.extensions[kuaidi100.TRANSPORT_KEY] = recorded
    return recorded


def kuaidi_push(param: dict, salt="s-salt") -> tuple[bytes, dict]:
    text = json.dumps(param, ensure_ascii=False)
    return urlencode({"param": text, "sign": kuaidi100.md5_upper(text + salt)}).encode(), \
        {"Content-Type": "application/x-www-form-urlencoded"}


def sf_notice(shops, tracking_no="SF1234567890"):
    from services import order as orders

    carrier = make_carrier("SF", rates=(), name="顺丰", adapter_code="shunfeng")
    carrier.adapter = "kuaidi100"
    db.session.commit()
    notice = ShippingNotice.query.filter_by(order_id=paid_order(shops["A"]).id).first()
    with acting_as(Actor.system("test")):
        orders.ship_notice(notice.id, "SF", tracking_no)
        db.session.commit()
    run_inprocess_jobs(db.session)
    return notice


def test_kuaidi100_states_map_to_tracking_statuses():
    expected = {"0": "in_transit", "1": "collected", "2": "exception", "3": "signed",
                "4": "returned", "5": "out_for_delivery", "6": "returned", "14": "exception",
                "301": "signed", "103": "collected", "501": "out_for_delivery",
                "1002": "in_transit", "204": "exception", "abc": None, "": None}
    assert {code: kuaidi100.status_of(code) for code in expected} == expected


def test_kuaidi100_shipment_is_subscribed_with_its_callback(app, shops, kuaidi):
    notice = sf_notice(shops)
    (url, form), = kuaidi.sent
    assert url == app.config["KUAIDI100_SUBSCRIBE_URL"] and form["schema"] == "json"
    param = json.loads(form["param"])
    assert (param["company"], param["number"], param["key"]) == \
        ("shunfeng", notice.tracking_no, "k-key")
    assert param["parameters"]["callbackurl"].endswith("/api/v1/carrier_push/SF")
    assert param["parameters"]["salt"] == "s-salt"


def test_kuaidi100_push_is_verified_and_its_scans_stored_once(app, shops, kuaidi):
    notice = sf_notice(shops)
    body, headers = kuaidi_push(SAMPLES["push"])
    answer = post(app, "SF", body, headers)
    assert answer.status_code == 200, answer.json
    assert answer.json["returnCode"] == "200" and answer.json["stored"] == 4
    events = TrackingEvent.query.filter_by(notice_id=notice.id).order_by(
        TrackingEvent.occurred_at).all()
    assert [e.status for e in events] == ["collected", "in_transit", "out_for_delivery",
                                          "signed"]
    assert events[0].occurred_at.isoformat() == "2024-05-01T10:30:00+00:00"  # 18:30 Shanghai
    assert events[-1].location == "上海,上海市"
    assert reload(Order, notice.order_id).status == OrderStatus.delivered
    # the same push again (Kuaidi100 re-sends): no second effect
    assert post(app, "SF", body, headers).json["replayed"] is True
    # a later push repeating the history stores nothing new
    later = json.loads(json.dumps(SAMPLES["push"]))
    later["billstatus"] = "check2"
    body, headers = kuaidi_push(later)
    assert post(app, "SF", body, headers).json["stored"] == 0
    assert TrackingEvent.query.count() == 4 and outbox("order.delivered") == 1


def test_kuaidi100_push_with_a_wrong_sign_is_refused(app, shops, kuaidi):
    sf_notice(shops)
    body, headers = kuaidi_push(SAMPLES["push"], salt="guessed")
    answer = post(app, "SF", body, headers)
    assert answer.status_code == 401 and "sign" in answer.json["errors"]
    assert post(app, "SF", b"param=%7B%7D", headers).status_code == 401
    assert TrackingEvent.query.count() == 0 and CarrierPush.query.count() == 0


def test_kuaidi100_is_polled_with_its_signed_query(app, shops, kuaidi):
    notice = sf_notice(shops)
    ticket_queue("logistics")
    assert tracking.poll_shipments() == 2
    run_inprocess_jobs(db.session)     # as `houtai tick` does after its tasks
    url, form = kuaidi.sent[-1]
    assert url == app.config["KUAIDI100_QUERY_URL"] and form["customer"] == "C-CUSTOMER"
    assert form["sign"] == kuaidi100.md5_upper(form["param"] + "k-key" + "C-CUSTOMER")
    assert json.loads(form["param"])["num"] == notice.tracking_no
    statuses = [e.status for e in TrackingEvent.query.order_by(TrackingEvent.occurred_at)]
    assert statuses == ["collected", "exception"]       # the newest takes the parcel's state
    assert Ticket.query.count() == 1
    assert tracking.poll_shipments() == 0


def test_kuaidi100_without_credentials_is_neither_subscribed_nor_polled(app, shops):
    recorded = RecordedKuaidi100({})
    app.extensions[kuaidi100.TRANSPORT_KEY] = recorded
    sf_notice(shops)
    assert recorded.sent == [] and tracking.poll_shipments() == 0


def test_a_real_rq_worker_subscribes_the_shipment_in_the_shared_book(app, api, shops,
                                                                     monkeypatch):
    """With Redis, the subscription runs in a real `rq worker --burst`; the sandbox's book is
    a table: what the worker registered, this process advances."""
    import os

    from app.queue import rq_queue
    from tests.conftest import requires_redis
    from tests.test_events import run_burst_worker

    monkeypatch.setitem(app.config, "REDIS_URL", os.environ.get("REDIS_URL"))
    requires_redis(app)
    sandbox.forget_book()
    notice = shipped_notice(shops["A"])              # the subscription job goes to RQ
    assert sandbox.book().carrier_of(notice.tracking_no) is None and rq_queue().count >= 1
    run_burst_worker(app)
    assert sandbox.book().carrier_of(notice.tracking_no) == "SBX"
    assert advance(api, notice.tracking_no, "signed").json["push_status"] == 200
    assert sandbox.book().scans(notice.tracking_no)[0]["status"] == "signed"
    assert reload(ShippingNotice, notice.id).delivered_at is not None
    sandbox.forget_book()


# -- non-ASCII signatures, and one exception ticket when two workers see the exception --------

def test_kuaidi100_push_with_a_non_ascii_sign_is_refused(app, shops, kuaidi):
    sf_notice(shops)
    body, headers = kuaidi_push(SAMPLES["push"])
    param = json.dumps(SAMPLES["push"], ensure_ascii=False)
    good = kuaidi100.md5_upper(param + "s-salt")
    for sign in ("é" * 32, good[:-1] + "É", "０" * 32, good + "é"):
        forged = urlencode({"param": param, "sign": sign}).encode()
        answer = post(app, "SF", forged, headers)
        assert answer.status_code == 401 and "sign" in answer.json["errors"], sign
    assert TrackingEvent.query.count() == 0 and CarrierPush.query.count() == 0
    assert kuaidi100.status_of("٣") is None and kuaidi100.status_of("３01") is None


@pytest.mark.parametrize("notice_locked", [True, False], ids=["locked", "control_unlocked"])
def test_two_workers_on_two_exceptions_of_one_notice_open_one_ticket(app, shops, monkeypatch,
                                                                     notice_locked):
    """Each worker checks for an open ticket, then opens one: under the notice's lock the
    second finds the first's. The control takes no lock and both open one (the test would
    catch a handler without it)."""
    from services import order as orders
    from services import ticket

    requires_postgres(app)
    ticket_queue("logistics")
    notice = ShippingNotice.query.filter_by(order_id=paid_order(shops["A"]).id).first()
    events = []
    for n, description in enumerate(("收件人电话无人接听", "再次派送失败")):
        event = TrackingEvent(shop_id=notice.shop_id, notice_id=notice.id, tracking_no="T1",
                              external_id=f"E-{n}", status="exception",
                              description=description, occurred_at=clock.now(),
                              received_at=clock.now())
        db.session.add(event)
        db.session.flush()
        events.append({"event_id": event.id, "notice_id": notice.id})
    db.session.commit()
    if not notice_locked:
        monkeypatch.setattr(orders, "notice_for_update",
                            lambda pk: db.session.get(ShippingNotice, pk))
    real_open, arrived, lock = ticket.open_ticket, [], threading.Lock()

    def opening(*args, **kwargs):        # reached only when no ticket was found
        met_or_blocked(arrived, lock, threading.current_thread().name)
        return real_open(*args, **kwargs)

    monkeypatch.setattr(ticket, "open_ticket", opening)
    barrier = threading.Barrier(2)

    def worker(n):
        with app.app_context(), acting_as(Actor.job("tracking.exception_ticket")):
            barrier.wait(timeout=10)
            try:
                tracking._exception_ticket(events[n])
                db.session.commit()
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker, args=(n,), name=f"w{n}") for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    db.session.expire_all()
    assert Ticket.query.filter_by(order_id=notice.order_id).count() == \
        (1 if notice_locked else 2)
