"""物流中心 customs declarations: declared values allocated exactly, HS codes, the buyer's
identity checked and never kept in full, the sandbox customs' decisions (cleared, held over
the single-transaction limit or for a restricted HS code) by signed callback or by polling,
revising after a hold, cancelling, and no shipping from a bonded warehouse until cleared."""
import json
from decimal import Decimal

import pytest

from app.extensions import db
from models.events import OutboxEvent
from models.logistics import CustomsDeclaration
from models.order import NoticeStatus, ShippingNotice
from services import customs
from services.customs_adapters import sandbox as customs_sandbox
from tests.factories import (BUYER_ID_NUMBER, cross_border_notice, declaration_body,
                             make_declaration, paid_order)
from tests.race import met_or_blocked


@pytest.fixture(autouse=True)
def inprocess(app, monkeypatch):
    """Jobs (the sandbox customs' decisions) run in-process after each commit."""
    monkeypatch.setitem(app.config, "REDIS_URL", None)
    yield
    app.extensions.pop(customs_sandbox.TRANSPORT_KEY, None)


def reload(model, pk):
    db.session.expire_all()
    return db.session.get(model, pk)


def declare(api, body, who="merchant_a"):
    return api(who).post("/api/v1/customs_declaration/", json=body)


def step(api, pk, name, who="merchant_a", **body):
    return api(who).post(f"/api/v1/customs_declaration/{pk}/{name}", json=body)


def ship(api, notice, who="Warehouse"):
    return api(who).post(f"/api/v1/shipping_notice/{notice.id}/ship",
                         json={"carrier": "SF", "tracking_no": f"SF{notice.id:010d}"})


def test_resident_identity_numbers_are_checked_per_gb_11643():
    assert customs.valid_resident_id(BUYER_ID_NUMBER)
    assert customs.valid_resident_id("110101199003074477")
    for wrong in ("110101199003074478",      # check digit
                  "110101199013074475",      # month 13
                  "11010119900307447",       # 17 digits
                  "110101209903074479"):     # born in 2099 (its check digit is right)
        assert not customs.valid_resident_id(wrong), wrong
    assert customs.id_hint(BUYER_ID_NUMBER) == "110105********002X"


def test_a_declaration_takes_the_shipments_values_and_keeps_only_a_hint(app, api, shops):
    notice = cross_border_notice(shops["A"], quantity=3)
    answer = declare(api, declaration_body(shops["A"], notice))
    assert answer.status_code == 201, answer.json
    made = answer.json["result"]
    assert made["status"] == "draft" and made["buyer_id_hint"] == "110105********002X"
    assert Decimal(made["total_value"]) == reload(ShippingNotice, notice.id).payable
    (item,) = made["items"]
    assert (item["hs_code"], item["origin"], item["quantity"]) == ("6109100010", "JP", 3)
    assert Decimal(item["value"]) == Decimal(made["total_value"])
    stored = reload(CustomsDeclaration, made["id"])
    assert stored.buyer_id_digest == customs.id_digest(BUYER_ID_NUMBER)
    assert BUYER_ID_NUMBER not in json.dumps(answer.json)
    assert BUYER_ID_NUMBER not in json.dumps(api("Logistics").get(
        f"/api/v1/customs_declaration/{made['id']}").json)
    assert api("merchant_b").get(f"/api/v1/customs_declaration/{made['id']}").status_code == 404


@pytest.mark.parametrize("change, field", [
    ({"buyer_id_number": "110105194912310021"}, "buyer_id_number"),
    ({"buyer_name": "李雷"}, "buyer_name"),
    ({"items": [{"sku_id": 1, "hs_code": "610910001", "origin": "JP"}]}, "items.0.hs_code"),
    ({"items": [{"sku_id": 1, "hs_code": "6109100010", "origin": "jp"}]}, "items.0.origin"),
    ({"items": [{"sku_id": 987654, "hs_code": "6109100010", "origin": "JP"}]}, "items"),
])
def test_bad_declarations_name_the_field_and_store_nothing(app, api, shops, change, field):
    notice = cross_border_notice(shops["A"])
    body = declaration_body(shops["A"], notice)
    if "items" in change and change["items"][0]["sku_id"] == 1:
        change["items"][0]["sku_id"] = notice.lines[0]["sku_id"]
    answer = declare(api, {**body, **change})
    assert answer.status_code == 422 and field in answer.json["errors"], answer.json
    assert CustomsDeclaration.query.count() == 0


def test_only_shipments_from_a_cross_border_warehouse_are_declared(app, api, shops):
    domestic = ShippingNotice.query.filter_by(order_id=paid_order(shops["A"]).id).first()
    answer = declare(api, declaration_body(shops["A"], domestic))
    assert answer.status_code == 422 and "notice_id" in answer.json["errors"]
    other = declare(api, declaration_body(shops["B"]))
    assert other.status_code == 422 and "notice_id" in other.json["errors"]
    assert CustomsDeclaration.query.count() == 0


def test_a_bonded_shipment_ships_only_once_cleared(app, api, shops):
    notice = cross_border_notice(shops["A"])
    refused = ship(api, notice)
    assert refused.status_code == 409 and refused.json["errors"]["customs"] == ["missing"]
    made = make_declaration(shops["A"], notice)
    assert ship(api, notice).json["errors"]["customs"] == ["draft"]
    submitted = step(api, made.id, "submit")
    assert submitted.status_code == 200 and submitted.json["result"]["status"] == "submitted"
    cleared = reload(CustomsDeclaration, made.id)
    assert (cleared.status, cleared.message) == ("cleared", None)
    assert cleared.customs_no.startswith("SBC") and cleared.decided_at is not None
    assert OutboxEvent.query.filter_by(name="customs_declaration.cleared").count() == 1
    assert ship(api, notice).status_code == 200
    assert reload(ShippingNotice, notice.id).status == NoticeStatus.shipped


def test_over_the_single_limit_is_held_with_its_message(app, api, shops, monkeypatch):
    monkeypatch.setitem(app.config, "CUSTOMS_SINGLE_LIMIT", Decimal("150.00"))
    notice = cross_border_notice(shops["A"], quantity=2)        # 2 × 99.00
    made = make_declaration(shops["A"], notice)
    step(api, made.id, "submit")
    held = reload(CustomsDeclaration, made.id)
    assert held.status == "held"
    assert held.message == "Declared value 198.00 is over the single-transaction limit of 150.00"
    assert ship(api, notice).json["errors"]["customs"] == ["held"]


def test_a_held_declaration_is_revised_and_cleared_on_resubmission(app, api, shops):
    notice = cross_border_notice(shops["A"])
    sku_id = notice.lines[0]["sku_id"]
    made = make_declaration(shops["A"], notice, items=[
        {"sku_id": sku_id, "hs_code": "3004909099", "origin": "DE"}])
    step(api, made.id, "submit")
    assert reload(CustomsDeclaration, made.id).message == \
        "HS code 3004909099 is on the restricted list"
    again = step(api, made.id, "submit")
    assert again.status_code == 409 and again.json["errors"]["status"] == ["held"]
    revised = step(api, made.id, "revise", buyer_name="王小明",
                   buyer_id_number=BUYER_ID_NUMBER,
                   items=[{"sku_id": sku_id, "hs_code": "6109100010", "origin": "DE"}])
    assert revised.status_code == 200 and revised.json["result"]["status"] == "draft"
    assert revised.json["result"]["message"] is None
    first_no = reload(CustomsDeclaration, made.id).customs_no
    assert step(api, made.id, "submit").status_code == 200
    done = reload(CustomsDeclaration, made.id)
    assert done.status == "cleared" and done.customs_no != first_no


def test_cancel_a_draft_and_declare_again(app, api, shops):
    notice = cross_border_notice(shops["A"])
    made = make_declaration(shops["A"], notice)
    assert step(api, made.id, "cancel").json["result"]["status"] == "cancelled"
    assert step(api, made.id, "cancel").status_code == 409
    assert step(api, made.id, "submit").status_code == 409
    again = declare(api, declaration_body(shops["A"], notice))
    assert again.status_code == 201 and again.json["id"] == made.id
    assert again.json["result"]["status"] == "draft"
    twice = declare(api, declaration_body(shops["A"], notice))
    assert twice.status_code == 409 and "notice_id" in twice.json["errors"]


def test_submitted_and_cleared_declarations_cannot_be_cancelled(app, api, shops):
    made = make_declaration(shops["A"])
    step(api, made.id, "submit")
    answer = step(api, made.id, "cancel")
    assert answer.status_code == 409 and answer.json["errors"]["status"] == ["cleared"]


class Unreachable:
    def post(self, url, body, headers):
        return 0, b"connection refused"


def test_callback_signature_repeat_and_lost_callback(app, api, shops):
    app.extensions[customs_sandbox.TRANSPORT_KEY] = Unreachable()
    made = make_declaration(shops["A"])
    step(api, made.id, "submit")
    waiting = reload(CustomsDeclaration, made.id)
    assert waiting.status == "submitted"
    body = json.dumps({"customs_no": waiting.customs_no, "status": "HELD",
                       "message": "查验"}).encode()
    client = app.test_client()
    forged = client.post("/api/v1/customs_declaration/callback/sandbox", data=body,
                         headers={"Content-Type": "application/json", "X-Signature": "00"})
    assert forged.status_code == 401
    assert reload(CustomsDeclaration, made.id).status == "submitted"
    # the lost callback is caught up by the tick, once
    assert customs.poll_submitted() == 1
    assert reload(CustomsDeclaration, made.id).status == "cleared"
    assert customs.poll_submitted() == 0
    # a late (or repeated) signed callback changes nothing once decided
    signed = {"Content-Type": "application/json", "X-Signature": customs_sandbox.sign(body)}
    late = client.post("/api/v1/customs_declaration/callback/sandbox", data=body,
                       headers=signed)
    assert late.status_code == 200
    assert reload(CustomsDeclaration, made.id).status == "cleared"
    assert OutboxEvent.query.filter_by(name="customs_declaration.cleared").count() == 1
    assert OutboxEvent.query.filter_by(name="customs_declaration.held").count() == 0


def test_warehouse_staff_read_declarations_but_do_not_declare(app, api, shops):
    made = make_declaration(shops["A"])
    assert api("Warehouse").get(f"/api/v1/customs_declaration/{made.id}").status_code == 200
    assert step(api, made.id, "submit", who="Warehouse").status_code == 403
    assert declare(api, declaration_body(shops["A"]), who="Warehouse").status_code == 403


def test_a_real_rq_worker_sends_the_decision_once(app, api, shops, monkeypatch):
    """The sandbox customs' decision job runs in a real `rq worker --burst` (calling the
    application back through its own WSGI stack); queued again, it changes nothing."""
    import os

    from app.queue import rq_queue
    from services.actor import Actor, acting_as
    from tests.conftest import requires_redis
    from tests.test_events import run_burst_worker

    made = make_declaration(shops["A"])
    monkeypatch.setitem(app.config, "REDIS_URL", os.environ.get("REDIS_URL"))
    requires_redis(app)
    monkeypatch.setenv("SANDBOX_NOTIFY_TRANSPORT", "wsgi")
    with acting_as(Actor.system("test")):
        customs.submit(made.id)
        db.session.commit()
    submitted = reload(CustomsDeclaration, made.id)
    assert submitted.status == "submitted" and rq_queue().count >= 1
    run_burst_worker(app)
    assert reload(CustomsDeclaration, made.id).status == "cleared"
    rq_queue().enqueue(customs_sandbox.DECIDE_JOB, made.id, submitted.customs_no)
    run_burst_worker(app)
    assert reload(CustomsDeclaration, made.id).status == "cleared"
    assert OutboxEvent.query.filter_by(name="customs_declaration.cleared").count() == 1


# -- non-ASCII input, and two declarations of one shipment at once --------------------------------

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def test_digits_must_be_ascii_digits(app, api, shops):
    foreign = BUYER_ID_NUMBER[:17].translate(ARABIC_INDIC) + BUYER_ID_NUMBER[17]
    assert not customs.valid_resident_id(foreign)
    notice = cross_border_notice(shops["A"])
    body = declaration_body(shops["A"], notice)
    answer = declare(api, {**body, "buyer_id_number": foreign})
    assert answer.status_code == 422 and "buyer_id_number" in answer.json["errors"]
    items = [{**body["items"][0], "hs_code": "6109100010".translate(ARABIC_INDIC)}]
    answer = declare(api, {**body, "items": items})
    assert answer.status_code == 422 and "items.0.hs_code" in answer.json["errors"]
    assert CustomsDeclaration.query.count() == 0


def test_a_non_ascii_signature_is_refused_with_401(app, api, shops):
    app.extensions[customs_sandbox.TRANSPORT_KEY] = Unreachable()
    made = make_declaration(shops["A"])
    step(api, made.id, "submit")
    waiting = reload(CustomsDeclaration, made.id)
    body = json.dumps({"customs_no": waiting.customs_no, "status": "HELD"}).encode()
    client = app.test_client()
    for signature in ("é" * 64, customs_sandbox.sign(body)[:-1] + "é", "ａ" * 64):
        try:
            answer = client.post("/api/v1/customs_declaration/callback/sandbox", data=body,
                                 headers={"Content-Type": "application/json",
                                          "X-Signature": signature})
        except UnicodeEncodeError:       # a header the client cannot even send
            continue
        assert answer.status_code == 401 and "X-Signature" in answer.json["errors"], signature
    assert reload(CustomsDeclaration, made.id).status == "submitted"
    assert OutboxEvent.query.filter_by(name="customs_declaration.held").count() == 0


@pytest.mark.parametrize("notice_locked", [True, False], ids=["locked", "control_unlocked"])
def test_two_declarations_of_one_shipment_at_once_make_one_and_a_409(app, shops, monkeypatch,
                                                                    notice_locked):
    """Both clients find no declaration; the notice's lock makes the second wait and find the
    first's. The control takes no lock: both pass the check (the race is real) and the
    unique notice_id still answers 409, never a 500."""
    import threading

    from services import order as orders
    from services.actor import Actor, acting_as
    from services.errors import ConflictError
    from tests.conftest import requires_postgres

    requires_postgres(app)
    notice = cross_border_notice(shops["A"])
    body = declaration_body(shops["A"], notice)
    db.session.commit()
    if not notice_locked:
        monkeypatch.setattr(orders, "notice_for_update",
                            lambda pk: db.session.get(ShippingNotice, pk))
    real_number, arrived, lock = customs.number, [], threading.Lock()

    def numbered(prefix):                # reached only when no declaration was found
        met_or_blocked(arrived, lock, threading.current_thread().name)
        return real_number(prefix)

    monkeypatch.setattr(customs, "number", numbered)
    barrier = threading.Barrier(2)
    outcomes = []

    def client(n):
        with app.app_context(), acting_as(Actor.system(f"client-{n}")):
            barrier.wait(timeout=10)
            try:
                customs.declare(dict(body))
                db.session.commit()
                outcome = "created"
            except ConflictError as err:
                db.session.rollback()
                outcome = f"conflict:{','.join(err.errors)}"
            except Exception as err:  # noqa: BLE001 - a 500 is what the test looks for
                db.session.rollback()
                outcome = f"error:{type(err).__name__}"
            finally:
                db.session.remove()
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=client, args=(n,), name=f"c{n}") for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict:notice_id", "created"]
    assert len(arrived) == (1 if notice_locked else 2)
    db.session.expire_all()
    assert CustomsDeclaration.query.filter_by(notice_id=notice.id).count() == 1
