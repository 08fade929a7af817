"""WMS 仓库管理: inbound receipts, pick lists with packing and shipping, stocktaking,
transfers; refusals change nothing; merchants see their own work only; the ledger always
explains the stock (property test); the stock value panel matches SQL."""
import threading
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from app.extensions import db
from models.events import OutboxEvent
from models.inventory import Stock, StockLedger
from models.logistics import Carrier
from models.member import MemberAddress
from models.order import Order, OrderEvent, ShippingNotice, Trade
from models.purchasing import PurchaseOrder, PurchaseOrderLine, Supplier
from models.wms import PickList, Receipt, StockCount, StockTransfer
from services import inventory, order, wms
from services.actor import Actor, acting_as
from services.errors import HoutaiError
from tests.conftest import requires_postgres
from tests.factories import address_body, make_member, make_spu, make_warehouse, stock_up


def on_sale(shop):
    from services import product

    spu = make_spu(shop, with_skus=True)
    with acting_as(Actor.system("test")):
        product.submit_spu(spu.id)
        product.approve_spu(spu.id)
        db.session.commit()
    return spu.skus


@pytest.fixture
def goods(shops):
    """Shop A: four on-sale SKUs (cost 10.00, 20.00, 30.00, none), its own warehouse WA and
    a platform warehouse P; shop B: a SKU and its own warehouse WB."""
    skus = on_sale(shops["A"])
    for sku, cost in zip(skus, ("10.00", "20.00", "30.00", None)):
        sku.cost_price = Decimal(cost) if cost else None
    db.session.commit()
    return {"skus": skus, "wa": make_warehouse(shops["A"], "WA"),
            "wa2": make_warehouse(shops["A"], "WA2"), "p": make_warehouse(None, "P"),
            "sku_b": on_sale(shops["B"])[0], "wb": make_warehouse(shops["B"], "WB")}


def stock_of(sku, warehouse):
    db.session.expire_all()
    return db.session.scalars(select(Stock).where(Stock.sku_id == sku.id,
                                                  Stock.warehouse_id == warehouse.id)).one_or_none()


def put_away(sku, warehouse, location):
    stock_of(sku, warehouse).location = location
    db.session.commit()


def on_hand(sku, warehouse):
    stock = stock_of(sku, warehouse)
    return None if stock is None else stock.on_hand


def ledger_count():
    return db.session.scalar(select(func.count(StockLedger.id)))


def events(name):
    db.session.expire_all()
    return [e.payload for e in OutboxEvent.query.filter_by(name=name).order_by(OutboxEvent.id)]


def refused(answer, status, field=None):
    assert answer.status_code == status, answer.json
    assert set(answer.json) == {"message", "errors"}
    if field is not None:
        assert field in answer.json["errors"], answer.json


# -- inbound -----------------------------------------------------------------------------------

def new_receipt(client, goods, shop, **overrides):
    body = {"warehouse_id": goods["p"].id, "source": "other", "shop_id": shop.id,
            "lines": [{"sku_id": goods["skus"][0].id, "expected": 10},
                      {"sku_id": goods["skus"][1].id, "expected": 4}], **overrides}
    answer = client.post("/api/v1/receipt/", json=body)
    assert answer.status_code == 201, answer.json
    return answer.json["result"]


def test_a_receipt_puts_what_was_received_on_hand_once(api, shops, goods):
    staff = api("Warehouse")
    receipt = new_receipt(staff, goods, shops["A"])
    assert receipt["status"] == "draft" and [l["expected"] for l in receipt["lines"]] == [10, 4]
    assert on_hand(goods["skus"][0], goods["p"]) is None        # nothing moves on a draft
    first, second = receipt["lines"]
    recorded = staff.post(f"/api/v1/receipt/{receipt['id']}/lines", json={"lines": [
        {"line_id": first["id"], "received": 8, "rejected": 2, "reject_reason": "crushed",
         "location": "a-01-02"},
        {"line_id": second["id"], "received": 4, "location": "B-02-01"}]})
    assert recorded.status_code == 200, recorded.json
    assert [(l["received"], l["rejected"], l["location"]) for l in recorded.json["result"]["lines"]] \
        == [(8, 2, "A-01-02"), (4, 0, "B-02-01")]
    confirmed = staff.post(f"/api/v1/receipt/{receipt['id']}/confirm")
    assert confirmed.status_code == 200 and confirmed.json["result"]["status"] == "confirmed"
    assert confirmed.json["result"]["confirmed_by"] == "warehouse"
    assert on_hand(goods["skus"][0], goods["p"]) == 8 and on_hand(goods["skus"][1], goods["p"]) == 4
    assert stock_of(goods["skus"][0], goods["p"]).location == "A-01-02"
    rows = StockLedger.query.filter_by(reason="receipt").order_by(StockLedger.id).all()
    assert [(r.reference, r.on_hand_before, r.on_hand_after) for r in rows] == [
        (receipt["receipt_no"], 0, 8), (receipt["receipt_no"], 0, 4)]
    assert events("receipt.confirmed") == [{"receipt_id": receipt["id"], "purchase_order_id": None}]
    before = ledger_count()
    refused(staff.post(f"/api/v1/receipt/{receipt['id']}/confirm"), 409, "status")
    refused(staff.post(f"/api/v1/receipt/{receipt['id']}/cancel"), 409, "status")
    refused(staff.post(f"/api/v1/receipt/{receipt['id']}/lines",
                       json={"lines": [{"line_id": first["id"], "received": 9}]}), 409, "status")
    assert ledger_count() == before and on_hand(goods["skus"][0], goods["p"]) == 8
    assert len(events("receipt.confirmed")) == 1


def test_a_draft_receipt_is_cancelled_and_then_never_confirmed(api, shops, goods):
    staff = api("Warehouse")
    receipt = new_receipt(staff, goods, shops["A"])
    staff.post(f"/api/v1/receipt/{receipt['id']}/lines",
               json={"lines": [{"line_id": receipt["lines"][0]["id"], "received": 3}]})
    assert staff.post(f"/api/v1/receipt/{receipt['id']}/cancel").json["result"]["status"] == \
        "cancelled"
    refused(staff.post(f"/api/v1/receipt/{receipt['id']}/confirm"), 409, "status")
    assert on_hand(goods["skus"][0], goods["p"]) is None and ledger_count() == 0


@pytest.mark.parametrize("change, status, field", [
    ({"lines": []}, 422, "lines"),
    ({"lines": None}, 422, "lines"),
    ({"source": "gift"}, 422, "source"),
    ({"source": "transfer"}, 422, "source"),
    ({"warehouse_id": 987654}, 422, "warehouse_id"),
    ({"warehouse_id": "WB"}, 422, "warehouse_id"),
    ({"shop_id": "B"}, 422, "warehouse_id"),           # shop B's goods, into shop A's warehouse
    ({"lines": [{"sku_id": "B", "expected": 1}], "shop_id": "SA"}, 422, "lines.0.sku_id"),
    ({"lines": [{"sku_id": 987654, "expected": 1}]}, 422, "lines.0.sku_id"),
    ({"lines": [{"sku_id": 0, "expected": 0}]}, 422, "lines.0.sku_id"),
    ({"lines": [{"sku_id": "A0", "expected": 0}]}, 422, "lines.0.expected"),
    ({"lines": [{"sku_id": "A0", "expected": -2}]}, 422, "lines.0.expected"),
    ({"lines": [{"sku_id": "A0", "expected": "5"}]}, 422, "lines"),
    ({"lines": [{"sku_id": "A0", "expected": 1}, {"sku_id": "A0", "expected": 1}]}, 422,
     "lines.1.sku_id"),
    ({"purchase_order_id": 1}, 422, "purchase_order_id"),
    ({"note": "x" * 300}, 422, "note"),
    ({"surprise": 1}, 422, "surprise"),
])
def test_bad_receipts_are_refused_and_nothing_is_made(api, shops, goods, change, status, field):
    names = {"WB": goods["wb"].id, "B": goods["sku_b"].id, "A0": goods["skus"][0].id,
             "SA": shops["A"].id}
    change = {k: names.get(v, v) if isinstance(v, str) else v for k, v in change.items()}
    if change.get("shop_id") == goods["sku_b"].id:
        change = {"shop_id": shops["B"].id, "warehouse_id": goods["wa"].id,
                  "lines": [{"sku_id": goods["sku_b"].id, "expected": 1}]}
    for line in change.get("lines") or []:
        if isinstance(line.get("sku_id"), str):
            line["sku_id"] = names[line["sku_id"]]
    body = {"warehouse_id": goods["p"].id, "source": "other",
            "lines": [{"sku_id": goods["skus"][0].id, "expected": 1}], **change}
    refused(api("Warehouse").post("/api/v1/receipt/", json=body), status, field)
    assert Receipt.query.count() == 0


def test_bad_receipt_lines_are_refused_and_nothing_changes(api, shops, goods):
    staff = api("Warehouse")
    receipt = new_receipt(staff, goods, shops["A"])
    url, line = f"/api/v1/receipt/{receipt['id']}/lines", receipt["lines"][0]["id"]
    for lines, field in (
            ([{"line_id": 987654, "received": 1}], "lines.0.line_id"),
            ([{"line_id": line, "received": -1}], "lines.0.received"),
            ([{"line_id": line, "rejected": 1}], "lines.0.reject_reason"),
            ([{"line_id": line, "received": 1, "location": "A--1"}], "lines.0.location"),
            ([{"line_id": line, "received": 1, "location": "A 1"}], "lines.0.location"),
            ([], "lines")):
        refused(staff.post(url, json={"lines": lines}), 422, field)
    refused(staff.post(f"/api/v1/receipt/{receipt['id']}/confirm"), 422, "lines")
    refused(staff.post("/api/v1/receipt/987654/confirm"), 404)
    db.session.expire_all()
    assert [(l.received, l.rejected, l.location) for l in db.session.get(Receipt, receipt["id"]).lines] \
        == [(0, 0, None), (0, 0, None)]
    assert db.session.get(Receipt, receipt["id"]).status == "draft" and ledger_count() == 0


def sent_purchase_order(shop, warehouse, lines, status="sent"):
    supplier = Supplier(shop_id=shop.id, code=f"SUP{warehouse.id}", name="Supplier",
                        status="active")
    db.session.add(supplier)
    db.session.flush()
    po = PurchaseOrder(shop_id=shop.id, po_no=f"PO{warehouse.id}-{status}", supplier_id=supplier.id,
                       warehouse_id=warehouse.id, status=status, total=Decimal("0.00"))
    po.lines = [PurchaseOrderLine(shop_id=shop.id, sku_id=sku.id, quantity=quantity,
                                  unit_price=Decimal("5.00"), amount=Decimal(5 * quantity),
                                  received=received)
                for sku, quantity, received in lines]
    db.session.add(po)
    db.session.commit()
    return po


def test_a_purchase_receipt_takes_what_is_outstanding_and_never_more(api, shops, goods):
    merchant = api("merchant_a")
    sku0, sku1 = goods["skus"][:2]
    po = sent_purchase_order(shops["A"], goods["wa"], [(sku0, 10, 4), (sku1, 5, 0)])
    answer = merchant.post("/api/v1/receipt/", json={"source": "purchase",
                                                     "purchase_order_id": po.id})
    assert answer.status_code == 201, answer.json
    receipt = answer.json["result"]
    assert receipt["warehouse_id"] == goods["wa"].id and receipt["shop_id"] == shops["A"].id
    assert [(l["sku_id"], l["expected"], l["purchase_order_line_id"]) for l in receipt["lines"]] \
        == [(sku0.id, 6, po.lines[0].id), (sku1.id, 5, po.lines[1].id)]
    url = f"/api/v1/receipt/{receipt['id']}/lines"
    first, second = (l["id"] for l in receipt["lines"])
    refused(merchant.post(url, json={"lines": [{"line_id": first, "received": 6, "rejected": 1,
                                                "reject_reason": "wet"}]}),
            422, "lines.0.received")
    assert merchant.post(url, json={"lines": [
        {"line_id": first, "received": 5, "rejected": 1, "reject_reason": "wet"},
        {"line_id": second, "received": 5}]}).status_code == 200
    # a second receipt drafted at the same time, for what the first one will cover
    other = merchant.post("/api/v1/receipt/", json={"source": "purchase",
                                                    "purchase_order_id": po.id}).json["result"]
    merchant.post(f"/api/v1/receipt/{other['id']}/lines",
                  json={"lines": [{"line_id": other["lines"][1]["id"], "received": 5}]})
    assert merchant.post(f"/api/v1/receipt/{receipt['id']}/confirm").status_code == 200
    assert wms.received_for_purchase_order(po.id) == {po.lines[0].id: (5, 1),
                                                       po.lines[1].id: (5, 0)}
    assert events("receipt.confirmed")[-1] == {"receipt_id": receipt["id"],
                                               "purchase_order_id": po.id}
    before = ledger_count()
    refused(merchant.post(f"/api/v1/receipt/{other['id']}/confirm"), 409, "lines")
    assert ledger_count() == before and on_hand(sku1, goods["wa"]) == 5
    assert db.session.get(Receipt, other["id"]).status == "draft"


@pytest.mark.parametrize("case, status, field", [
    ("draft_po", 409, "status"), ("unknown_po", 422, "purchase_order_id"),
    ("other_warehouse", 422, "warehouse_id"), ("with_lines", 422, "lines"),
    ("no_po", 422, "purchase_order_id"), ("shop_b_po", 422, "purchase_order_id")])
def test_bad_purchase_receipts_are_refused(api, shops, goods, case, status, field):
    po = sent_purchase_order(shops["A"], goods["wa"], [(goods["skus"][0], 3, 0)],
                             status="draft" if case == "draft_po" else "sent")
    po_b = sent_purchase_order(shops["B"], goods["wb"], [(goods["sku_b"], 3, 0)])
    body = {"source": "purchase", "purchase_order_id": po.id}
    body.update({"unknown_po": {"purchase_order_id": 987654},
                 "other_warehouse": {"warehouse_id": goods["wa2"].id},
                 "with_lines": {"lines": [{"sku_id": goods["skus"][0].id, "expected": 1}]},
                 "no_po": {"purchase_order_id": None},
                 "shop_b_po": {"purchase_order_id": po_b.id}}.get(case, {}))
    refused(api("merchant_a").post("/api/v1/receipt/", json=body), status, field)
    assert Receipt.query.count() == 0


def _confirm_race(app, receipt_id, confirm):
    barrier = threading.Barrier(2)
    outcomes, lock = [], threading.Lock()

    def client(n):
        with app.app_context(), acting_as(Actor.system(f"clerk-{n}")):
            barrier.wait(timeout=10)
            try:
                confirm(receipt_id, barrier)
                db.session.commit()
                outcome = "confirmed"
            except HoutaiError as err:
                db.session.rollback()
                outcome = err.status
            finally:
                db.session.remove()
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes, key=str)


def _drafted_receipt(shops, goods, received=7):
    with acting_as(Actor.system("test")):
        receipt = wms.create_receipt(goods["p"].id, "other", [
            {"sku_id": goods["skus"][0].id, "expected": received}], shop_id=shops["A"].id)
        wms.record_receipt_lines(receipt.id, [{"line_id": receipt.lines[0].id,
                                               "received": received}])
        db.session.commit()
    return receipt.id


def test_two_clerks_confirming_at_once_put_the_goods_on_hand_once(app, shops, goods):
    requires_postgres(app)
    receipt_id = _drafted_receipt(shops, goods)

    def confirm(pk, barrier):
        wms.confirm_receipt(pk)

    assert _confirm_race(app, receipt_id, confirm) == [409, "confirmed"]
    assert on_hand(goods["skus"][0], goods["p"]) == 7
    assert StockLedger.query.filter_by(reason="receipt").count() == 1
    assert len(events("receipt.confirmed")) == 1


def test_control_confirming_by_reading_then_writing_puts_the_goods_on_hand_twice(app, shops,
                                                                                  goods):
    """Without the row lock (read the status, then write), both clerks confirm: the race
    test above would see 14 on hand and two ledger rows."""
    requires_postgres(app)
    receipt_id = _drafted_receipt(shops, goods)

    def confirm_unlocked(pk, barrier):
        receipt = db.session.get(Receipt, pk)
        ready = receipt.status == "draft"
        barrier.wait(timeout=10)                 # both have read `draft`
        if ready:
            receipt.status = "confirmed"
            for line in receipt.lines:
                inventory.receive(line.sku_id, receipt.warehouse_id, line.received,
                                  receipt.receipt_no)

    assert _confirm_race(app, receipt_id, confirm_unlocked) == ["confirmed", "confirmed"]
    assert on_hand(goods["skus"][0], goods["p"]) == 14


# -- outbound ----------------------------------------------------------------------------------

def paid_notices(shop, sku, warehouse, quantities):
    """Paid orders of `shop` (one per quantity) reserving `sku` in `warehouse`: their
    assigned notices."""
    notices = []
    for n, quantity in enumerate(quantities):
        member = make_member()
        address = MemberAddress(**address_body(member.id))
        db.session.add(address)
        db.session.commit()
        with acting_as(Actor.system("test")):
            placed = order.place({"member_id": member.id, "address_id": address.id,
                                  "lines": [{"sku_id": sku.id, "quantity": quantity}]},
                                 f"wms-{sku.id}-{warehouse.id}-{n}")
            db.session.commit()
            order.mark_paid(placed.trade_id, "bank")
            db.session.commit()
        trade = db.session.get(Trade, placed.trade_id)
        notices.append(ShippingNotice.query.filter_by(order_id=trade.orders[0].id).one())
    return notices


@pytest.fixture
def outbound(shops, goods):
    """Two SKUs of shop A in the platform warehouse at known bins; three paid orders."""
    sku0, sku1 = goods["skus"][:2]
    stock_up(sku0, goods["p"], 20)
    stock_up(sku1, goods["p"], 20)
    put_away(sku0, goods["p"], "B-01-01")
    put_away(sku1, goods["p"], "A-03-02")
    first = paid_notices(shops["A"], sku0, goods["p"], [2, 3])
    second = paid_notices(shops["A"], sku1, goods["p"], [1])
    carrier = Carrier(code="SF", name="顺丰", enabled=True)
    db.session.add_all([carrier, Carrier(code="OLD", name="Old", enabled=False)])
    db.session.commit()
    return {"notices": first + second, "carrier": carrier}


def test_a_pick_list_walks_the_bins_then_notices_are_packed_and_shipped(api, goods, outbound):
    staff = api("Warehouse")
    ids = [n.id for n in outbound["notices"]]
    answer = staff.post("/api/v1/pick_list/", json={"notice_ids": ids})
    assert answer.status_code == 201, answer.json
    pick = answer.json["result"]
    sku0, sku1 = goods["skus"][:2]
    assert pick["status"] == "open" and pick["notice_ids"] == ids
    assert pick["shop_id"] is None and pick["warehouse_id"] == goods["p"].id
    assert [(l["location"], l["sku_id"], l["quantity"], l["sku_code"]) for l in pick["lines"]] == [
        ("A-03-02", sku1.id, 1, sku1.code), ("B-01-01", sku0.id, 5, sku0.code)]
    db.session.expire_all()
    assert {n.status.value for n in ShippingNotice.query} == {"picking"}
    assert sorted(e["notice_id"] for e in events("shipping_notice.picking")) == ids
    assert OrderEvent.query.filter(OrderEvent.note.like("% pick")).count() == 3
    first = ids[0]
    refused(staff.post(f"/api/v1/wms_notice/{first}/pack", json={"weight_kg": "1.2"}), 409,
            "pick_list_id")                                     # not picked yet
    assert staff.post(f"/api/v1/pick_list/{pick['id']}/picked").json["result"]["status"] == "picked"
    refused(staff.post(f"/api/v1/pick_list/{pick['id']}/picked"), 409, "status")
    refused(staff.post(f"/api/v1/pick_list/{pick['id']}/cancel"), 409, "status")
    refused(staff.post(f"/api/v1/wms_notice/{first}/ship", json={"carrier": "SF",
                                                                 "tracking_no": "SF1"}),
            409, "status")                                       # not packed yet
    for weight in ("0", "-1", "1.2345", "abc", None):
        refused(staff.post(f"/api/v1/wms_notice/{first}/pack", json={"weight_kg": weight}), 422,
                "weight_kg")
    packed = staff.post(f"/api/v1/wms_notice/{first}/pack", json={"weight_kg": "1.250"})
    assert packed.status_code == 200 and packed.json["result"]["status"] == "packed"
    assert packed.json["result"]["weight_kg"] == "1.250"
    assert events("shipping_notice.packed") == [{"notice_id": first,
                                                 "order_id": outbound["notices"][0].order_id}]
    for carrier, field in (("NOPE", "carrier"), ("OLD", "carrier"), (None, "carrier")):
        refused(staff.post(f"/api/v1/wms_notice/{first}/ship",
                           json={"carrier": carrier, "tracking_no": "SF1"}), 422, field)
    assert on_hand(sku0, goods["p"]) == 20
    notice = db.session.get(ShippingNotice, first)
    notice.carrier_id = outbound["carrier"].id           # logistics stamped it
    db.session.commit()
    shipped = staff.post(f"/api/v1/wms_notice/{first}/ship", json={"tracking_no": "SF100"})
    assert shipped.status_code == 200, shipped.json
    assert (shipped.json["result"]["status"], shipped.json["result"]["carrier"],
            shipped.json["result"]["carrier_id"]) == ("shipped", "SF", outbound["carrier"].id)
    stock = stock_of(sku0, goods["p"])
    assert (stock.on_hand, stock.reserved) == (18, 3)
    assert db.session.get(Order, outbound["notices"][0].order_id).status.value == "shipped"
    assert events("shipping_notice.shipped")[0]["notice_id"] == first


def test_bad_pick_lists_are_refused_and_nothing_moves(api, shops, goods, outbound):
    staff = api("Warehouse")
    ids = [n.id for n in outbound["notices"]]
    stock_up(goods["skus"][2], goods["wa"], 5)
    elsewhere = paid_notices(shops["A"], goods["skus"][2], goods["wa"], [1])[0]
    with acting_as(Actor.system("test")):
        order.move_notice(ids[1], "hold", "Address check")
        db.session.commit()
    for body, status, field in (
            ({"notice_ids": []}, 422, "notice_ids"),
            ({"notice_ids": [ids[0], ids[0]]}, 422, "notice_ids"),
            ({"notice_ids": [987654]}, 422, "notice_ids"),
            ({"notice_ids": ["1"]}, 422, "notice_ids"),
            ({"notice_ids": [ids[0], elsewhere.id]}, 422, "notice_ids"),
            ({"notice_ids": [ids[0], ids[1]]}, 409, "notice_ids"),      # held
            ({}, 422, "notice_ids")):
        refused(staff.post("/api/v1/pick_list/", json=body), status, field)
    assert PickList.query.count() == 0
    db.session.expire_all()
    assert db.session.get(ShippingNotice, ids[0]).status.value == "assigned"
    staff.post("/api/v1/pick_list/", json={"notice_ids": [ids[0]]})
    refused(staff.post("/api/v1/pick_list/", json={"notice_ids": [ids[0], ids[2]]}), 409,
            "notice_ids")                                       # on an open list already
    assert PickList.query.count() == 1


def test_cancelling_an_open_pick_list_gives_its_notices_back(api, goods, outbound):
    staff = api("Warehouse")
    ids = [n.id for n in outbound["notices"]]
    pick = staff.post("/api/v1/pick_list/", json={"notice_ids": ids}).json["result"]
    with acting_as(Actor.system("test")):
        order.move_notice(ids[2], "hold", "Buyer called")      # held while picking
        db.session.commit()
    cancelled = staff.post(f"/api/v1/pick_list/{pick['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json["result"]["notice_ids"] == []
    db.session.expire_all()
    notices = [db.session.get(ShippingNotice, i) for i in ids]
    assert [(n.status.value, n.pick_list_id) for n in notices] == [
        ("assigned", None), ("assigned", None), ("held", None)]
    assert len(events("shipping_notice.assigned")) == 2
    with acting_as(Actor.system("test")):
        assert order.release_notice(ids[2]).status.value == "assigned"
        db.session.commit()
    again = staff.post("/api/v1/pick_list/", json={"notice_ids": ids})
    assert again.status_code == 201, again.json
    refused(staff.post(f"/api/v1/pick_list/{pick['id']}/cancel"), 409, "status")


# -- stocktaking -------------------------------------------------------------------------------

@pytest.fixture
def counted(shops, goods):
    """Shop A's warehouse: three SKUs, two of them in zone A."""
    sku0, sku1, sku2 = goods["skus"][:3]
    for sku, quantity, location in ((sku0, 10, "A-01-01"), (sku1, 6, "A-02-01"),
                                    (sku2, 4, "B-01-01")):
        stock_up(sku, goods["wa"], quantity)
        put_away(sku, goods["wa"], location)
    return goods


def test_a_blind_count_hides_the_books_then_approval_posts_the_variances(api, browser, counted):
    merchant = api("merchant_a")
    sku0, sku1 = counted["skus"][:2]
    answer = merchant.post("/api/v1/stock_count/", json={"warehouse_id": counted["wa"].id,
                                                         "zone": "a"})
    assert answer.status_code == 201, answer.json
    sheet = answer.json["result"]
    assert sheet["zone"] == "A" and sheet["blind"] is True and sheet["status"] == "counting"
    assert [(l["sku_id"], l["location"], l["expected"]) for l in sheet["lines"]] == [
        (sku0.id, "A-01-01", None), (sku1.id, "A-02-01", None)]
    shown = merchant.get(f"/api/v1/stock_count/{sheet['id']}").json["result"]
    assert all(l["expected"] is None and l["variance"] is None for l in shown["lines"])
    page = browser("merchant_a").get(f"/stockcountview/show/{sheet['id']}").get_data(as_text=True)
    assert "A-01-01" in page and "expected" not in page
    first, second = (l["id"] for l in sheet["lines"])
    url = f"/api/v1/stock_count/{sheet['id']}"
    merchant.post(f"{url}/count", json={"lines": [{"line_id": first, "counted": 7}]})
    refused(merchant.post(f"{url}/submit"), 422, "lines")     # one line not counted
    merchant.post(f"{url}/count", json={"lines": [{"line_id": second, "counted": 9}]})
    submitted = merchant.post(f"{url}/submit").json["result"]
    assert submitted["status"] == "submitted"
    assert [(l["expected"], l["counted"], l["variance"]) for l in submitted["lines"]] == [
        (10, 7, -3), (6, 9, 3)]
    refused(merchant.post(f"{url}/count", json={"lines": [{"line_id": first, "counted": 1}]}),
            409, "status")
    stock_up(sku0, counted["wa"], 5)            # goods arrive between counting and approval
    approved = merchant.post(f"{url}/approve").json["result"]
    assert approved["status"] == "approved" and approved["decided_by"] == "merchant_a"
    assert [l["adjusted"] for l in approved["lines"]] == [-3, 3]
    assert on_hand(sku0, counted["wa"]) == 12 and on_hand(sku1, counted["wa"]) == 9
    rows = StockLedger.query.filter_by(reason="stocktake").order_by(StockLedger.id).all()
    assert [(r.reference, r.on_hand_before, r.on_hand_after) for r in rows] == [
        (sheet["count_no"], 15, 12), (sheet["count_no"], 6, 9)]
    before = ledger_count()
    refused(merchant.post(f"{url}/approve"), 409, "status")
    refused(merchant.post(f"{url}/reject"), 409, "status")
    assert ledger_count() == before


def test_an_approval_that_would_leave_less_than_reserved_is_refused(api, shops, counted):
    staff = api("Warehouse")
    sku0 = counted["skus"][0]
    sheet = staff.post("/api/v1/stock_count/", json={"warehouse_id": counted["wa"].id,
                                                     "blind": False}).json["result"]
    assert [l["expected"] for l in sheet["lines"]] == [10, 6, 4]     # not blind: shown
    url = f"/api/v1/stock_count/{sheet['id']}"
    staff.post(f"{url}/count", json={"lines": [{"line_id": l["id"], "counted": c}
                                               for l, c in zip(sheet["lines"], (1, 6, 4))]})
    staff.post(f"{url}/submit")
    with acting_as(Actor.system("test")):
        inventory.reserve([(sku0.id, 8)], "held-for-buyers")
        db.session.commit()
    before = ledger_count()
    refused(staff.post(f"{url}/approve"), 409, "lines")
    assert ledger_count() == before and on_hand(sku0, counted["wa"]) == 10
    db.session.expire_all()
    assert db.session.get(StockCount, sheet["id"]).status == "submitted"
    rejected = staff.post(f"{url}/reject").json["result"]
    assert rejected["status"] == "rejected" and on_hand(sku0, counted["wa"]) == 10


def test_bad_count_sheets_are_refused(api, shops, counted):
    staff = api("Warehouse")
    for body, field in (({"warehouse_id": counted["wb"].id, "zone": "Z"}, "zone"),
                        ({"warehouse_id": counted["wa"].id, "zone": "Z"}, "zone"),
                        ({"warehouse_id": counted["wa"].id, "zone": "A-1"}, "zone"),
                        ({"warehouse_id": counted["p"].id}, "warehouse_id"),
                        ({"warehouse_id": 987654}, "warehouse_id"),
                        ({"zone": "A"}, "warehouse_id")):
        refused(staff.post("/api/v1/stock_count/", json=body), 422, field)
    refused(api("merchant_a").post("/api/v1/stock_count/",
                                   json={"warehouse_id": counted["wb"].id}), 422, "warehouse_id")
    assert StockCount.query.count() == 0
    sheet = staff.post("/api/v1/stock_count/", json={"warehouse_id": counted["wa"].id}).json["result"]
    url = f"/api/v1/stock_count/{sheet['id']}/count"
    for lines, field in (([{"line_id": 987654, "counted": 1}], "lines.0.line_id"),
                         ([{"line_id": sheet["lines"][0]["id"], "counted": -1}], "lines.0.counted"),
                         ([{"line_id": sheet["lines"][0]["id"]}], "lines")):
        refused(staff.post(url, json={"lines": lines}), 422, field)
    refused(staff.post(f"/api/v1/stock_count/{sheet['id']}/approve"), 409, "status")
    db.session.expire_all()
    assert all(l.counted is None for l in db.session.get(StockCount, sheet["id"]).lines)


def move_sku0(kind, goods):
    """A booked movement of shop A's first SKU out of or into WA (the goods move on the
    shelf as the books say); returns its change to on hand."""
    sku0, wa = goods["skus"][0], goods["wa"]
    with acting_as(Actor.system("test")):
        if kind == "receipt":
            receipt = wms.create_receipt(wa.id, "other", [{"sku_id": sku0.id, "expected": 5}])
            wms.record_receipt_lines(receipt.id, [{"line_id": receipt.lines[0].id, "received": 5}])
            wms.confirm_receipt(receipt.id)
            change = 5
        elif kind == "adjust":
            inventory.adjust(sku0.id, wa.id, -3, "damaged")
            change = -3
        elif kind == "shipment":
            taken = inventory.reserve([(sku0.id, 4)], "shipped-order")
            inventory.deduct(taken, "shipped-order")
            change = -4
        else:
            transfer = wms.create_transfer(wa.id, goods["wa2"].id,
                                           [{"sku_id": sku0.id, "quantity": 2}])
            wms.ship_transfer(transfer.id)
            change = -2
        db.session.commit()
    return change


def test_the_adjustment_repro_ends_with_what_is_on_the_shelf(api, counted):
    """On hand 10; a sheet is made; 3 are written off (books and shelf both 7); 7 are counted:
    approval posts nothing and on hand stays 7."""
    staff, sku0 = api("Warehouse"), counted["skus"][0]
    sheet = staff.post("/api/v1/stock_count/", json={"warehouse_id": counted["wa"].id,
                                                     "zone": "A"}).json["result"]
    assert move_sku0("adjust", counted) == -3 and on_hand(sku0, counted["wa"]) == 7
    url = f"/api/v1/stock_count/{sheet['id']}"
    staff.post(f"{url}/count", json={"lines": [{"line_id": l["id"], "counted": c}
                                               for l, c in zip(sheet["lines"], (7, 6))]})
    staff.post(f"{url}/submit")
    approved = staff.post(f"{url}/approve").json["result"]
    assert approved["status"] == "approved", approved
    assert on_hand(sku0, counted["wa"]) == 7
    assert [(l["expected"], l["counted"], l["adjusted"]) for l in approved["lines"]] == [
        (7, 7, 0), (6, 6, 0)]
    assert StockLedger.query.filter_by(reason="stocktake").count() == 0


@pytest.mark.parametrize("missing", [0, 2])
@pytest.mark.parametrize("when", ["before counting", "after counting"])
@pytest.mark.parametrize("kind", ["receipt", "adjust", "shipment", "transfer"])
def test_goods_moved_while_a_count_is_open_are_not_counted_twice(api, counted, kind, when,
                                                                 missing):
    """Books say 10 of the first SKU, `missing` of them are gone from the shelf unbooked; goods
    are received, written off, shipped or transferred out between making the (blind) sheet and
    counting, or between counting and approval. Approval posts only what went missing, and on
    hand ends equal to what is on the shelf."""
    staff, sku0, sku1 = api("Warehouse"), *counted["skus"][:2]
    shelf = 10 - missing
    sheet = staff.post("/api/v1/stock_count/", json={"warehouse_id": counted["wa"].id,
                                                     "zone": "A"}).json["result"]
    url = f"/api/v1/stock_count/{sheet['id']}"
    first, second = (l["id"] for l in sheet["lines"])
    if when == "before counting":
        shelf += move_sku0(kind, counted)
    books_when_counted = on_hand(sku0, counted["wa"])
    answer = staff.post(f"{url}/count", json={"lines": [{"line_id": first, "counted": shelf},
                                                        {"line_id": second, "counted": 6}]})
    assert answer.status_code == 200, answer.json
    assert all(l["expected"] is None and l["variance"] is None          # blind until submitted
               for l in staff.get(url).json["result"]["lines"])
    if when == "after counting":
        shelf += move_sku0(kind, counted)
    submitted = staff.post(f"{url}/submit").json["result"]
    approved = staff.post(f"{url}/approve").json["result"]
    assert approved["status"] == "approved", approved
    assert on_hand(sku0, counted["wa"]) == shelf and on_hand(sku1, counted["wa"]) == 6
    assert [(l["expected"], l["counted"], l["variance"]) for l in submitted["lines"]] == [
        (books_when_counted, books_when_counted - missing, -missing), (6, 6, 0)]
    assert [l["adjusted"] for l in approved["lines"]] == [-missing, 0]
    rows = StockLedger.query.filter_by(reason="stocktake").all()
    assert [(r.on_hand_after - r.on_hand_before) for r in rows] == ([-missing] if missing else [])


# -- transfers ---------------------------------------------------------------------------------

def test_a_transfer_leaves_the_source_and_arrives_at_the_destination(api, shops, goods):
    merchant = api("merchant_a")
    sku0, sku1 = goods["skus"][:2]
    stock_up(sku0, goods["wa"], 10)
    stock_up(sku1, goods["wa"], 3)
    answer = merchant.post("/api/v1/stock_transfer/", json={
        "from_warehouse_id": goods["wa"].id, "to_warehouse_id": goods["wa2"].id,
        "lines": [{"sku_id": sku0.id, "quantity": 6}, {"sku_id": sku1.id, "quantity": 3}]})
    assert answer.status_code == 201, answer.json
    transfer = answer.json["result"]
    assert transfer["status"] == "draft" and transfer["shop_id"] == shops["A"].id
    url = f"/api/v1/stock_transfer/{transfer['id']}"
    refused(merchant.post(f"{url}/receive"), 409, "status")
    shipped = merchant.post(f"{url}/ship", json={"carrier": "SF", "tracking_no": "SF9"})
    assert shipped.status_code == 200 and shipped.json["result"]["status"] == "in_transit"
    assert on_hand(sku0, goods["wa"]) == 4 and on_hand(sku1, goods["wa"]) == 0
    assert on_hand(sku0, goods["wa2"]) is None
    refused(merchant.post(f"{url}/cancel"), 409, "status")
    refused(merchant.post(f"{url}/ship"), 409, "status")
    first, second = (l["id"] for l in transfer["lines"])
    refused(merchant.post(f"{url}/receive", json={"lines": [{"line_id": first, "received": 7}]}),
            422, "lines.0.received")
    received = merchant.post(f"{url}/receive", json={"lines": [{"line_id": second, "received": 2}]})
    assert received.status_code == 200, received.json
    assert [(l["quantity"], l["received"]) for l in received.json["result"]["lines"]] == [
        (6, 6), (3, 2)]
    assert on_hand(sku0, goods["wa2"]) == 6 and on_hand(sku1, goods["wa2"]) == 2
    reasons = [(r.reason, r.on_hand_after - r.on_hand_before) for r in StockLedger.query.filter(
        StockLedger.reference == transfer["transfer_no"]).order_by(StockLedger.id)]
    assert reasons == [("transfer_out", -6), ("transfer_out", -3), ("transfer_in", 6),
                       ("transfer_in", 2)]
    refused(merchant.post(f"{url}/receive"), 409, "status")


def test_a_transfer_needs_available_stock_and_two_usable_warehouses(api, shops, goods):
    staff = api("Warehouse")
    sku0 = goods["skus"][0]
    stock_up(sku0, goods["wa"], 5)
    with acting_as(Actor.system("test")):
        inventory.reserve([(sku0.id, 2)], "held")
        db.session.commit()
    base = {"from_warehouse_id": goods["wa"].id, "to_warehouse_id": goods["p"].id,
            "lines": [{"sku_id": sku0.id, "quantity": 4}]}
    for change, field in (({"to_warehouse_id": goods["wa"].id}, "to_warehouse_id"),
                          ({"to_warehouse_id": goods["wb"].id}, "to_warehouse_id"),
                          ({"from_warehouse_id": 987654}, "from_warehouse_id"),
                          ({"lines": [{"sku_id": sku0.id, "quantity": 0}]}, "lines.0.quantity"),
                          ({"lines": [{"sku_id": goods["sku_b"].id, "quantity": 1}]},
                           "from_warehouse_id"),      # shop B's goods are not in shop A's
                          ({"lines": [{"sku_id": goods["sku_b"].id, "quantity": 1}],
                            "shop_id": shops["A"].id}, "lines.0.sku_id"),
                          ({"lines": []}, "lines")):
        refused(staff.post("/api/v1/stock_transfer/", json={**base, **change}), 422, field)
    refused(api("merchant_a").post("/api/v1/stock_transfer/", json=base), 422, "to_warehouse_id")
    assert StockTransfer.query.count() == 0
    transfer = staff.post("/api/v1/stock_transfer/", json=base).json["result"]
    before = ledger_count()
    refused(staff.post(f"/api/v1/stock_transfer/{transfer['id']}/ship"), 409, "lines")
    assert ledger_count() == before and on_hand(sku0, goods["wa"]) == 5
    db.session.expire_all()
    assert db.session.get(StockTransfer, transfer["id"]).status == "draft"
    assert staff.post(f"/api/v1/stock_transfer/{transfer['id']}/cancel").json["result"][
        "status"] == "cancelled"


# -- isolation ---------------------------------------------------------------------------------

def test_merchants_see_only_their_own_warehouse_work(api, shops, goods, outbound):
    from tests.factories import make_pick_list, make_receipt, make_stock_count, make_transfer

    mine = {"receipt": make_receipt(shops["A"]).id, "stock_transfer": make_transfer(shops["A"]).id,
            "pick_list": make_pick_list(shops["A"]).id,
            "stock_count": make_stock_count(shops["A"]).id}
    theirs = {"receipt": make_receipt(shops["B"]).id,
              "stock_transfer": make_transfer(shops["B"]).id,
              "pick_list": make_pick_list(shops["B"]).id,
              "stock_count": make_stock_count(shops["B"]).id}
    with acting_as(Actor.system("test")):      # work in the platform warehouse: staff only
        platform_pick = wms.create_pick_list([outbound["notices"][0].id]).id
        db.session.commit()
    merchant = api("merchant_a")
    for resource in mine:
        listed = merchant.get(f"/api/v1/{resource}/?q=(page_size:100)").json["ids"]
        assert mine[resource] in listed and theirs[resource] not in listed, resource
        refused(merchant.get(f"/api/v1/{resource}/{theirs[resource]}"), 404)
    assert platform_pick not in merchant.get("/api/v1/pick_list/").json["ids"]
    refused(merchant.post(f"/api/v1/pick_list/{platform_pick}/cancel"), 404)
    refused(merchant.post(f"/api/v1/wms_notice/{outbound['notices'][1].id}/pack",
                          json={"weight_kg": "1.000"}), 404)    # its goods, the platform's floor
    refused(merchant.post("/api/v1/pick_list/", json={"notice_ids": [outbound["notices"][1].id]}),
            422, "notice_ids")
    refused(merchant.post(f"/api/v1/receipt/{theirs['receipt']}/confirm"), 404)
    refused(merchant.post("/api/v1/receipt/", json={
        "warehouse_id": goods["p"].id, "lines": [{"sku_id": goods["skus"][0].id,
                                                  "expected": 1}]}), 422, "warehouse_id")
    refused(merchant.post("/api/v1/receipt/", json={
        "warehouse_id": goods["wa"].id, "shop_id": shops["B"].id,
        "lines": [{"sku_id": goods["skus"][0].id, "expected": 1}]}), 422, "shop_id")
    staff = api("Warehouse")
    assert {platform_pick, mine["pick_list"], theirs["pick_list"]} <= set(
        staff.get("/api/v1/pick_list/?q=(page_size:100)").json["ids"])
    for elsewhere in ("/api/v1/order/", "/api/v1/member/", "/api/v1/payment/", "/api/v1/coupon/"):
        assert staff.get(elsewhere).status_code == 403, elsewhere
    for resource in ("receipt", "pick_list", "stock_count", "stock_transfer", "wms_notice",
                     "stock", "shipping_notice"):
        assert staff.get(f"/api/v1/{resource}/").status_code == 200, resource
    assert api("Purchasing").post(f"/api/v1/receipt/{mine['receipt']}/cancel").status_code == 403


def test_screens_list_show_and_act(browser, shops, goods, outbound):
    from tests.factories import make_pick_list, make_receipt, make_stock_count, make_transfer

    receipt = make_receipt(shops["A"])
    rows = {"receiptview": receipt.id, "picklistview": make_pick_list(shops["A"]).id,
            "stockcountview": make_stock_count(shops["A"]).id,
            "stocktransferview": make_transfer(shops["A"]).id}
    clerk = browser("Warehouse")
    for view, pk in rows.items():
        assert clerk.get(f"/{view}/list/").status_code == 200, view
        assert clerk.get(f"/{view}/show/{pk}").status_code == 200, view
    with acting_as(Actor.system("test")):
        wms.record_receipt_lines(receipt.id, [{"line_id": receipt.lines[0].id, "received": 2}])
        db.session.commit()
    done = clerk.post_form(f"/receiptview/action/confirm/{receipt.id}", {},
                           token_from="/receiptview/list/")
    assert done.status_code == 302
    db.session.expire_all()
    assert db.session.get(Receipt, receipt.id).status == "confirmed"
    clerk.post_form(f"/receiptview/action/confirm/{receipt.id}", {},
                    token_from="/receiptview/list/")          # refused: flashed, no effect
    assert StockLedger.query.filter_by(reason="receipt").count() == 1


# -- the ledger explains the stock, the books match the shelf (property test) -----------------

OPERATIONS = st.lists(st.tuples(
    st.sampled_from(["receipt", "adjust", "transfer", "reserve", "ship", "release", "lose",
                     "find", "count", "count", "approve"]),
    st.integers(0, 1), st.integers(0, 1), st.integers(1, 6)), min_size=1, max_size=12)


class Shelves:
    """The simulated warehouse floor. `physical` is what is on each stock row's shelf: booked
    movements move the goods and the books alike; goods lost or found move the shelf alone.
    `unbooked` is what the books should be short of the shelf (lost or found since the row
    was last counted and that count approved). At most one count sheet is open: `counted`
    holds, per line, what was unbooked when the line was counted (what approval must post)."""

    def __init__(self):
        self.physical = dict(books())
        self.unbooked = {stock_id: 0 for stock_id in self.physical}
        self.sheet, self.counted = None, {}

    def snapshot(self):
        return (dict(self.physical), dict(self.unbooked), self.sheet, dict(self.counted))

    def restore(self, snapshot):
        self.physical, self.unbooked, self.sheet, self.counted = (
            dict(snapshot[0]), dict(snapshot[1]), snapshot[2], dict(snapshot[3]))

    def count(self, sheet, lines):
        """Count the named lines of the open sheet: what is on the shelf now."""
        wms.record_counts(sheet.id, [{"line_id": l.id, "counted": self.physical[l.stock_id]}
                                     for l in lines])
        for line in lines:
            self.counted[line.id] = (line.stock_id, self.unbooked[line.stock_id])


def books():
    return dict(db.session.execute(select(Stock.id, Stock.on_hand)).all())


def _stock_id(sku, warehouse):
    return db.session.scalar(select(Stock.id).where(Stock.sku_id == sku.id,
                                                    Stock.warehouse_id == warehouse.id))


def _apply(operation, skus, warehouses, held, shelves):
    """One step; returns True when it booked a movement of goods (the shelf follows the
    books), False when it touched the shelf or the count sheet alone."""
    kind, s, w, n = operation
    sku, warehouse, other = skus[s], warehouses[w], warehouses[1 - w]
    if kind == "receipt":
        receipt = wms.create_receipt(warehouse.id, "other", [{"sku_id": sku.id, "expected": n}])
        wms.record_receipt_lines(receipt.id, [{"line_id": receipt.lines[0].id, "received": n}])
        wms.confirm_receipt(receipt.id)
    elif kind == "adjust":
        inventory.adjust(sku.id, warehouse.id, n if n % 2 else -n, "property")
    elif kind == "transfer":
        transfer = wms.create_transfer(warehouse.id, other.id, [{"sku_id": sku.id, "quantity": n}])
        wms.ship_transfer(transfer.id)
        wms.receive_transfer(transfer.id)
    elif kind == "reserve":
        held.append(inventory.reserve([(sku.id, n)], f"property-{len(held)}"))
    elif kind in ("ship", "release"):
        if held:
            taken = held.pop(0)
            (inventory.deduct if kind == "ship" else inventory.release)(taken, "property")
    elif kind in ("lose", "find"):              # goods gone or turned up, nothing booked
        stock_id = _stock_id(sku, warehouse)
        change = -n if kind == "lose" else n
        if stock_id is not None and shelves.physical[stock_id] + change >= 0:
            shelves.physical[stock_id] += change
            shelves.unbooked[stock_id] += change
        return False
    elif kind == "count":                       # open a sheet, or count one SKU's line on it
        if shelves.sheet is None:
            shelves.sheet = wms.create_count(warehouse.id, blind=bool(n % 2)).id
        else:
            sheet = db.session.get(StockCount, shelves.sheet)
            shelves.count(sheet, [l for l in sheet.lines if l.sku_id == sku.id])
        return False
    else:                                       # count what is left, submit, approve
        sheet = (db.session.get(StockCount, shelves.sheet) if shelves.sheet is not None
                 else wms.create_count(warehouse.id, blind=False))
        shelves.count(sheet, [l for l in sheet.lines if l.counted is None])
        wms.submit_count(sheet.id)
        wms.approve_count(sheet.id)
        for stock_id, unbooked_when_counted in shelves.counted.values():
            shelves.unbooked[stock_id] -= unbooked_when_counted
        shelves.sheet, shelves.counted = None, {}
        return False
    return True


def assert_ledger_explains_stock():
    db.session.expire_all()
    for stock in Stock.query.order_by(Stock.id):
        rows = StockLedger.query.filter_by(stock_id=stock.id).order_by(StockLedger.id).all()
        assert stock.on_hand == sum(r.on_hand_after - r.on_hand_before for r in rows)
        assert stock.reserved == sum(r.reserved_after - r.reserved_before for r in rows)
        for earlier, later in zip([None] + rows, rows):
            assert later.on_hand_before == (earlier.on_hand_after if earlier else 0)
            assert later.reserved_before == (earlier.reserved_after if earlier else 0)


def assert_books_match_the_shelf(shelves):
    """On hand is what is on the shelf, short only of what was lost or found unbooked since
    the row's last approved count: a count never posts a movement a second time."""
    for stock_id, on_hand_now in books().items():
        assert on_hand_now == shelves.physical[stock_id] - shelves.unbooked[stock_id], (
            stock_id, on_hand_now, shelves.physical[stock_id], shelves.unbooked[stock_id])


def test_every_stock_row_is_the_sum_of_its_ledger_whatever_happens(app, shops, goods):
    """Receipts, adjustments, transfers, reservations and shipments, goods lost or found off
    the books, and count sheets made, counted line by line and approved with any of these in
    between: the ledger explains every stock row, and after each step on hand is what is on
    the shelf except what went missing or turned up since the row was last counted."""
    skus, warehouses = goods["skus"][:2], [goods["wa"], goods["wa2"]]
    for sku in skus:
        stock_up(sku, warehouses[0], 5)

    @settings(max_examples=20, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(OPERATIONS)
    @example([("count", 0, 0, 2), ("receipt", 0, 0, 3), ("count", 0, 0, 1), ("lose", 0, 0, 2),
              ("adjust", 0, 0, 2), ("approve", 0, 0, 1)])
    def run(operations):
        held = []
        with acting_as(Actor.system("property")):
            shelves = Shelves()
            for operation in operations:
                before, snapshot, was_held = books(), shelves.snapshot(), list(held)
                try:
                    if _apply(operation, skus, warehouses, held, shelves):
                        after = books()
                        for stock_id, quantity in after.items():
                            shelves.physical.setdefault(stock_id, 0)
                            shelves.unbooked.setdefault(stock_id, 0)
                            shelves.physical[stock_id] += quantity - before.get(stock_id, 0)
                        if min(shelves.physical.values()) < 0:
                            raise ShelfEmpty    # the books moved goods the shelf does not have
                    db.session.commit()
                except (HoutaiError, ShelfEmpty):   # a refused step changes nothing
                    db.session.rollback()
                    shelves.restore(snapshot)
                    held[:] = was_held
                assert_books_match_the_shelf(shelves)
            for taken in held:                  # what is still reserved goes back
                inventory.release(taken, "property")
            db.session.commit()
            assert_books_match_the_shelf(shelves)
        assert_ledger_explains_stock()

    run()
    assert StockLedger.query.filter(StockLedger.reason.in_(
        ["receipt", "stocktake", "transfer_out", "transfer_in"])).count() > 0


class ShelfEmpty(Exception):
    """The simulated shelf has less than a step would take."""


# -- the stock value panel ---------------------------------------------------------------------

def test_the_stock_value_panel_matches_sql_and_merchants_see_their_goods(api, browser, shops,
                                                                        goods):
    from tests.test_dashboard import panels_on

    sku0, sku1, sku2, sku3 = goods["skus"]
    stock_up(sku0, goods["wa"], 3)          # 3 × 10.00
    stock_up(sku1, goods["wa"], 2)          # 2 × 20.00
    stock_up(sku2, goods["p"], 5)           # 5 × 30.00
    stock_up(sku3, goods["p"], 7)           # no cost price: 0
    stock_up(goods["sku_b"], goods["wb"], 4)
    db.session.get(type(goods["sku_b"]), goods["sku_b"].id).cost_price = Decimal("2.50")
    db.session.commit()
    admin = panels_on(browser("Admin").get("/").get_data(as_text=True))["stock_value"]
    merchant = panels_on(browser("merchant_a").get("/").get_data(as_text=True))["stock_value"]
    expected = {code: f"{total:.2f}" for code, total in db.session.execute(text(
        "SELECT w.code, SUM(s.on_hand * COALESCE(k.cost_price, 0)) FROM stock s "
        "JOIN warehouse w ON w.id = s.warehouse_id JOIN sku k ON k.id = s.sku_id "
        "GROUP BY w.code"))}
    assert dict(zip(admin["labels"], admin["values"])) == expected == {
        "WA": "70.00", "P": "150.00", "WB": "10.00"}
    shop_a = {code: f"{total:.2f}" for code, total in db.session.execute(text(
        "SELECT w.code, SUM(s.on_hand * COALESCE(k.cost_price, 0)) FROM stock s "
        "JOIN warehouse w ON w.id = s.warehouse_id JOIN sku k ON k.id = s.sku_id "
        "WHERE s.shop_id = :shop GROUP BY w.code"), {"shop": shops["A"].id})}
    assert dict(zip(merchant["labels"], merchant["values"])) == shop_a == {
        "WA": "70.00", "P": "150.00"}
