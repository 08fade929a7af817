"""采购中心: suppliers and their lifecycle, documents, price lists, the scorecard, replenishment
(once per rule, even concurrently), purchase orders through WMS inbound, the journal,
statements paid once, consignment and drop-shipping on the supplier's side."""
import threading
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text

from app.extensions import db
from app.queue import run_inprocess_jobs
from models.events import OutboxEvent
from models.finance import JournalEntry, JournalLine
from models.order import Order, ShippingNotice
from models.product import Sku, Spu
from models.purchasing import (PurchaseOrder, PurchaseOrderLine, ReplenishmentRule, Supplier,
                               SupplierDocument, SupplierStatement, SupplierStatementItem,
                               SupplierTransition)
from services import clock, finance, inventory, order, purchasing
from services.actor import Actor, acting_as
from tests.conftest import requires_postgres
from tests.factories import (_sku_row, make_order, make_purchase_order, make_rule,
                             make_supplier, make_supplier_document, make_supplier_price,
                             make_warehouse, receive_purchase_order, stock_up)


@pytest.fixture(autouse=True)
def inprocess(app, monkeypatch):
    """Jobs and event handlers run in-process right after each commit."""
    monkeypatch.setitem(app.config, "REDIS_URL", None)


def reload(model, pk):
    db.session.expire_all()
    return db.session.get(model, pk)


def events(name):
    db.session.expire_all()
    return [e.payload for e in OutboxEvent.query.filter_by(name=name).order_by(OutboxEvent.id)]


def as_system(step, *args):
    with acting_as(Actor.system("test")):
        result = step(*args)
        db.session.commit()
        run_inprocess_jobs(db.session)
    return result


def entries(kind):
    db.session.expire_all()
    return JournalEntry.query.filter_by(kind=kind).order_by(JournalEntry.id).all()


def lines_of(entry):
    return sorted((l.account, l.shop_id, l.debit, l.credit) for l in entry.lines)


# -- suppliers ---------------------------------------------------------------------------------

def test_supplier_lifecycle_needs_a_verified_licence_and_keeps_every_step(api, shops, users):
    merchant = api("merchant_a")
    made = merchant.post("/api/v1/supplier/", json={"code": "ACME", "name": "Acme 工厂",
                                                    "email": "sales@acme.cn"})
    assert made.status_code == 201, made.json
    supplier_id = made.json["id"]
    assert made.json["result"]["status"] == "prospect"
    assert made.json["result"]["shop_id"] == shops["A"].id
    refused = merchant.post(f"/api/v1/supplier/{supplier_id}/qualify", json={})
    assert refused.status_code == 409 and "documents" in refused.json["errors"]
    supplier = db.session.get(Supplier, supplier_id)
    expired = make_supplier_document(supplier, valid_until=date(2020, 1, 1))
    assert merchant.post(f"/api/v1/supplier_document/{expired.id}/verify",
                         json={}).status_code == 409
    document = make_supplier_document(supplier)
    verified = merchant.post(f"/api/v1/supplier_document/{document.id}/verify", json={})
    assert verified.status_code == 200 and verified.json["result"]["verified"] is True
    assert merchant.post(f"/api/v1/supplier_document/{document.id}/verify",
                         json={}).status_code == 409
    assert merchant.post(f"/api/v1/supplier/{supplier_id}/qualify", json={}).status_code == 200
    # a qualified supplier gets no orders yet
    po = merchant.post("/api/v1/purchase_order/", json={
        "supplier_id": supplier_id, "warehouse_id": make_warehouse(shops["A"]).id,
        "lines": [{"sku_id": _sku_row(shops["A"]).id, "quantity": 1, "unit_price": "1.00"}]})
    assert po.status_code == 409 and "supplier_id" in po.json["errors"]
    assert merchant.post(f"/api/v1/supplier/{supplier_id}/activate", json={}).status_code == 200
    assert merchant.post(f"/api/v1/supplier/{supplier_id}/suspend", json={}).status_code == 422
    suspended = merchant.post(f"/api/v1/supplier/{supplier_id}/suspend",
                              json={"reason": "Late twice"})
    assert suspended.json["result"]["status"] == "suspended"
    assert suspended.json["result"]["status_reason"] == "Late twice"
    assert merchant.post(f"/api/v1/supplier/{supplier_id}/suspend",
                         json={"reason": "again"}).status_code == 409
    assert merchant.post(f"/api/v1/supplier/{supplier_id}/activate", json={}).status_code == 200
    history = SupplierTransition.query.filter_by(supplier_id=supplier_id).order_by(
        SupplierTransition.id).all()
    assert [(h.from_status, h.to_status) for h in history] == [
        (None, "prospect"), ("prospect", "qualified"), ("qualified", "active"),
        ("active", "suspended"), ("suspended", "active")]
    assert {h.actor for h in history} == {"merchant_a"}
    assert history[3].reason == "Late twice"


def test_supplier_fields_are_checked_and_a_refusal_creates_nothing(api, shops, users):
    answer = api("merchant_a").post("/api/v1/supplier/", json={
        "code": "bad code!", "name": "", "email": "nope", "notify_url": "ftp://x",
        "lead_time_days": 400})
    assert answer.status_code == 422
    assert {"code", "name", "email", "notify_url", "lead_time_days"} <= set(answer.json["errors"])
    assert Supplier.query.count() == 0
    make_supplier(shops["A"], code="DUP")
    twice = api("merchant_a").post("/api/v1/supplier/", json={"code": "DUP", "name": "x"})
    assert twice.status_code == 422 and "code" in twice.json["errors"]
    # the same code in another shop is another supplier
    assert api("merchant_b").post("/api/v1/supplier/", json={
        "code": "DUP", "name": "B's"}).status_code == 201


def test_only_an_unused_prospect_is_deleted(api, shops, users):
    prospect = make_supplier(shops["A"])
    active = make_supplier(shops["A"], "active")
    assert api("merchant_a").delete(f"/api/v1/supplier/{active.id}").status_code == 409
    assert api("merchant_a").delete(f"/api/v1/supplier/{prospect.id}").status_code == 200
    assert reload(Supplier, prospect.id) is None
    assert reload(Supplier, active.id).status == "active"


def test_changing_a_verified_document_takes_its_verification_back(api, shops, users):
    supplier = make_supplier(shops["A"], "active")
    document = SupplierDocument.query.filter_by(supplier_id=supplier.id).one()
    assert document.verified
    changed = api("merchant_a").put(f"/api/v1/supplier_document/{document.id}",
                                    json={"number": "NEW-NUMBER"})
    assert changed.status_code == 200 and changed.json["result"]["verified"] is False
    # an upload of another shop is not evidence
    other = make_supplier_document(make_supplier(shops["B"]))
    foreign = api("merchant_a").put(f"/api/v1/supplier_document/{document.id}",
                                    json={"file_id": other.file_id})
    assert foreign.status_code == 422 and "file_id" in foreign.json["errors"]


def test_price_for_picks_the_quantity_tier_valid_that_day(shops):
    supplier = make_supplier(shops["A"], "active")
    sku = _sku_row(shops["A"])
    make_supplier_price(supplier, sku, "10.00", 1, date(2026, 1, 1))
    make_supplier_price(supplier, sku, "9.00", 100, date(2026, 1, 1))
    make_supplier_price(supplier, sku, "8.50", 100, date(2026, 6, 1), date(2026, 6, 30))
    assert purchasing.price_for(supplier.id, sku.id, 99, date(2026, 6, 15)) == Decimal("10.00")
    assert purchasing.price_for(supplier.id, sku.id, 100, date(2026, 6, 15)) == Decimal("8.50")
    assert purchasing.price_for(supplier.id, sku.id, 100, date(2026, 7, 1)) == Decimal("9.00")
    assert purchasing.price_for(supplier.id, sku.id, 5, date(2025, 12, 31)) is None


def test_a_price_list_row_is_checked(api, shops, users):
    supplier = make_supplier(shops["A"], "active")
    sku_b = _sku_row(shops["B"])
    answer = api("merchant_a").post("/api/v1/supplier_price/", json={
        "supplier_id": supplier.id, "sku_id": sku_b.id, "price": "1.00",
        "valid_from": "2026-01-01"})
    assert answer.status_code == 422 and "sku_id" in answer.json["errors"]
    for body, field in (({"price": "1.005"}, "price"), ({"price": "-1"}, "price"),
                        ({"min_quantity": 0}, "min_quantity"),
                        ({"valid_until": "2025-01-01"}, "valid_until")):
        answer = api("merchant_a").post("/api/v1/supplier_price/", json={
            "supplier_id": supplier.id, "sku_id": _sku_row(shops["A"]).id, "price": "1.00",
            "valid_from": "2026-01-01", **body})
        assert answer.status_code == 422 and field in answer.json["errors"], (body, answer.json)


# -- purchase orders, WMS inbound and the journal ------------------------------------------

def test_a_purchase_order_goes_from_draft_to_received_through_wms(api, shops, users):
    supplier = make_supplier(shops["A"], "active")
    sku = _sku_row(shops["A"])
    warehouse = make_warehouse(shops["A"])
    make_supplier_price(supplier, sku, "12.00")
    made = api("merchant_a").post("/api/v1/purchase_order/", json={
        "supplier_id": supplier.id, "warehouse_id": warehouse.id,
        "lines": [{"sku_id": sku.id, "quantity": 10}]})
    assert made.status_code == 201, made.json
    po_id = made.json["id"]
    assert made.json["result"]["total"] == "120.00" and made.json["result"]["status"] == "draft"
    assert api("Purchasing").post(f"/api/v1/purchase_order/{po_id}/send",
                                  json={}).status_code == 409          # not approved yet
    assert api("Purchasing").post(f"/api/v1/purchase_order/{po_id}/approve",
                                  json={}).json["result"]["approved_by"] == "purchasing"
    sent = api("merchant_a").post(f"/api/v1/purchase_order/{po_id}/send", json={})
    assert sent.json["result"]["status"] == "sent" and sent.json["result"]["sent_at"]
    assert [e["purchase_order_id"] for e in events("purchase_order.sent")] == [po_id]
    line_id = PurchaseOrderLine.query.filter_by(purchase_order_id=po_id).one().id
    with acting_as(Actor.system("test")):
        assert purchasing.receivable_lines(po_id) == [{
            "purchase_order_line_id": line_id, "sku_id": sku.id, "outstanding": 10,
            "unit_price": Decimal("12.00")}]
    po = db.session.get(PurchaseOrder, po_id)
    first = receive_purchase_order(po, received=4, rejected=1)
    db.session.expire_all()
    line = db.session.get(PurchaseOrderLine, line_id)
    assert (line.received, line.rejected) == (4, 1)
    assert reload(PurchaseOrder, po_id).status == "partially_received"
    assert inventory.available(sku.id, warehouse.id) == 4
    [entry] = entries("purchase")
    assert lines_of(entry) == [("1405", shops["A"].id, Decimal("48.00"), Decimal("0.00")),
                               ("2204", shops["A"].id, Decimal("0.00"), Decimal("48.00"))]
    assert entry.source == f"purchase.receipt:{first.id}"
    with acting_as(Actor.system("test")):
        assert purchasing.receivable_lines(po_id)[0]["outstanding"] == 6
    receive_purchase_order(reload(PurchaseOrder, po_id))
    assert reload(PurchaseOrder, po_id).status == "received"
    assert reload(PurchaseOrder, po_id).received_at is not None
    assert [sum(l.debit for l in e.lines) for e in entries("purchase")] == \
        [Decimal("48.00"), Decimal("72.00")]
    assert finance.balance("2204", shops["A"].id) == Decimal("-120.00")
    with acting_as(Actor.system("test")):
        with pytest.raises(purchasing.ConflictError):
            purchasing.receivable_lines(po_id)
    closed = api("merchant_a").post(f"/api/v1/purchase_order/{po_id}/close", json={})
    assert closed.json["result"]["status"] == "closed"


def test_the_receipt_subscriber_is_idempotent(shops):
    po = make_purchase_order(shops["A"], "sent", quantity=5)
    receipt = receive_purchase_order(po, received=3)
    payload = {"receipt_id": receipt.id, "purchase_order_id": po.id}
    for _ in range(2):
        with acting_as(Actor.job("again")):
            purchasing._receipt_confirmed(payload)
            purchasing._post_receipt(payload)
            db.session.commit()
    line = reload(PurchaseOrderLine, po.lines[0].id)
    assert (line.received, line.rejected) == (3, 0)
    assert len(entries("purchase")) == 1


def test_cancel_only_before_anything_arrived_and_close_short_closes(api, shops, users):
    draft = make_purchase_order(shops["A"])
    assert api("merchant_a").post(f"/api/v1/purchase_order/{draft.id}/cancel",
                                  json={}).status_code == 422           # a reason is required
    cancelled = api("merchant_a").post(f"/api/v1/purchase_order/{draft.id}/cancel",
                                       json={"reason": "Ordered twice"})
    assert cancelled.json["result"]["status"] == "cancelled"
    assert api("merchant_a").post(f"/api/v1/purchase_order/{draft.id}/approve",
                                  json={}).status_code == 409
    sent = make_purchase_order(shops["A"], "sent", quantity=5)
    receive_purchase_order(sent, received=2)
    refused = api("merchant_a").post(f"/api/v1/purchase_order/{sent.id}/cancel",
                                     json={"reason": "Too late"})
    assert refused.status_code == 409
    closed = api("merchant_a").post(f"/api/v1/purchase_order/{sent.id}/close",
                                    json={"reason": "Supplier out of stock"})
    assert closed.json["result"]["status"] == "closed"
    with acting_as(Actor.system("test")):
        assert purchasing.on_order(sent.lines[0].sku_id, sent.warehouse_id) == 0


def confirm_receipt_only(po, received):
    """A WMS receipt of the order confirmed and committed; the `receipt.confirmed` handlers
    have not run yet (their jobs are left pending)."""
    from services import wms

    with acting_as(Actor.system("wms")):
        receipt = wms.create_receipt(source="purchase", purchase_order_id=po.id)
        wms.record_receipt_lines(receipt.id, [{"line_id": line.id, "received": received,
                                               "rejected": 0} for line in receipt.lines])
        wms.confirm_receipt(receipt.id)
        db.session.commit()
    return receipt


def test_an_order_whose_receipt_is_confirmed_is_not_cancelled_before_the_handler_runs(shops):
    supplier = make_supplier(shops["A"], "active")
    rule = stocked_rule(shops["A"], supplier, on_hand=0)
    make_supplier_price(supplier, rule.sku, "5.00")
    purchasing.replenish_tick()
    po = reload(PurchaseOrder, reload(ReplenishmentRule, rule.id).open_po_id)
    as_system(purchasing.approve_purchase_order, po.id)
    as_system(purchasing.send_purchase_order, po.id)
    quantity = reload(PurchaseOrder, po.id).lines[0].quantity
    confirm_receipt_only(reload(PurchaseOrder, po.id), quantity)
    assert reload(PurchaseOrder, po.id).lines[0].received == 0      # the handler is behind
    with acting_as(Actor.system("test")):
        with pytest.raises(purchasing.ConflictError):
            purchasing.cancel_purchase_order(po.id, "Too late")
        db.session.rollback()
        run_inprocess_jobs(db.session)
    assert reload(PurchaseOrder, po.id).status == "received"
    assert events("purchase_order.cancelled") == []
    assert inventory.available(rule.sku_id, rule.warehouse_id) == quantity
    assert finance.balance("2204", shops["A"].id) == Decimal("-5.00") * quantity


def test_closing_before_the_handler_runs_keeps_what_arrived(shops):
    po = make_purchase_order(shops["A"], "sent", quantity=5)
    confirm_receipt_only(po, 3)
    with acting_as(Actor.system("test")):
        purchasing.close_purchase_order(po.id, "Rest not needed")
        db.session.commit()
    line = reload(PurchaseOrderLine, po.lines[0].id)
    assert (line.received, line.rejected) == (3, 0)                 # before the handler ran
    run_inprocess_jobs(db.session)
    line = reload(PurchaseOrderLine, po.lines[0].id)
    assert (line.received, line.rejected) == (3, 0)
    assert reload(PurchaseOrder, po.id).status == "closed"


def test_steps_with_an_optional_body_take_none(api, shops, users):
    merchant = api("merchant_a")
    supplier = make_supplier(shops["A"])
    document = make_supplier_document(supplier)
    with acting_as(Actor.system("test")):
        purchasing.verify_document(document.id)
        db.session.commit()
    qualified = merchant.post(f"/api/v1/supplier/{supplier.id}/qualify")
    assert qualified.status_code == 200, qualified.json
    activated = merchant.post(f"/api/v1/supplier/{supplier.id}/activate", data=b"",
                              content_type="application/json")
    assert activated.status_code == 200 and activated.json["result"]["status"] == "active"
    assert merchant.post(f"/api/v1/supplier/{supplier.id}/suspend").status_code == 422
    sent = make_purchase_order(shops["A"], "sent", supplier=supplier)
    closed = merchant.post(f"/api/v1/purchase_order/{sent.id}/close")
    assert closed.status_code == 200 and closed.json["result"]["status"] == "closed"
    assert merchant.post(f"/api/v1/purchase_order/{sent.id}/close", data="not json",
                         content_type="text/plain").status_code == 400


def test_purchase_order_input_is_refused_naming_the_field(api, shops, users):
    supplier = make_supplier(shops["A"], "active")
    warehouse = make_warehouse(shops["A"])
    sku = _sku_row(shops["A"])
    for line, field in (({"sku_id": sku.id, "quantity": 0}, "quantity"),
                        ({"sku_id": sku.id, "quantity": 2}, "lines.0.unit_price"),  # no list
                        ({"sku_id": _sku_row(shops["B"]).id, "quantity": 1,
                          "unit_price": "1.00"}, "lines.0.sku_id"),
                        ({"sku_id": sku.id, "quantity": 1, "unit_price": "1.001"},
                         "unit_price")):
        answer = api("merchant_a").post("/api/v1/purchase_order/", json={
            "supplier_id": supplier.id, "warehouse_id": warehouse.id, "lines": [line]})
        assert answer.status_code == 422, answer.json
        assert field in str(answer.json["errors"]), (field, answer.json)
    other_warehouse = api("merchant_a").post("/api/v1/purchase_order/", json={
        "supplier_id": supplier.id, "warehouse_id": make_warehouse(shops["B"]).id,
        "lines": [{"sku_id": sku.id, "quantity": 1, "unit_price": "1.00"}]})
    assert other_warehouse.status_code == 422 and "warehouse_id" in other_warehouse.json["errors"]
    other_supplier = api("merchant_b").post("/api/v1/purchase_order/", json={
        "supplier_id": supplier.id, "warehouse_id": make_warehouse(shops["B"]).id,
        "lines": [{"sku_id": _sku_row(shops["B"]).id, "quantity": 1, "unit_price": "1.00"}]})
    assert other_supplier.status_code == 422 and "supplier_id" in other_supplier.json["errors"]
    assert PurchaseOrder.query.count() == 0


def test_a_merchant_never_reaches_another_shops_purchasing_rows(api, shops, users):
    po = make_purchase_order(shops["A"], "sent")
    supplier = po.supplier
    for url in (f"/api/v1/supplier/{supplier.id}", f"/api/v1/purchase_order/{po.id}"):
        assert api("merchant_b").get(url).status_code == 404
    for url in (f"/api/v1/supplier/{supplier.id}/suspend", f"/api/v1/purchase_order/{po.id}/close",
                f"/api/v1/supplier/{supplier.id}/key"):
        assert api("merchant_b").post(url, json={"reason": "x"}).status_code == 404
    with acting_as(Actor(name="b", shop_id=shops["B"].id, authenticated=True, merchant=True)):
        with pytest.raises(purchasing.NotFoundError):
            purchasing.receivable_lines(po.id)
    assert reload(PurchaseOrder, po.id).status == "sent"


# -- replenishment -----------------------------------------------------------------------------

def stocked_rule(shop, supplier, on_hand=3, **numbers):
    sku = _sku_row(shop)
    warehouse = make_warehouse(shop)
    if on_hand:
        stock_up(sku, warehouse, on_hand)
    return make_rule(shop, sku=sku, warehouse=warehouse, supplier=supplier, **numbers)


def test_the_job_drafts_one_order_per_supplier_and_warehouse_and_running_twice_drafts_once(
        app, shops):
    supplier = make_supplier(shops["A"], "active")
    warehouse = make_warehouse(shops["A"])
    skus = [_sku_row(shops["A"]) for _ in range(3)]
    for sku, on_hand in zip(skus, (3, 10, 1)):
        stock_up(sku, warehouse, on_hand)
        make_supplier_price(supplier, sku, "5.00")
    low = make_rule(shops["A"], sku=skus[0], warehouse=warehouse, supplier=supplier,
                    safety_stock=4, reorder_point=5, reorder_quantity=20)
    make_rule(shops["A"], sku=skus[1], warehouse=warehouse, supplier=supplier)   # above point
    lower = make_rule(shops["A"], sku=skus[2], warehouse=warehouse, supplier=supplier,
                      reorder_point=2, reorder_quantity=10)
    no_supplier = stocked_rule(shops["A"], None)
    no_price = stocked_rule(shops["A"], make_supplier(shops["A"], "active"))
    first = purchasing.replenish_tick()
    second = purchasing.replenish_tick()
    assert (first, second) == (2 + 4, 0)              # lines drafted + alerts, then nothing
    [po] = PurchaseOrder.query.all()
    assert (po.source, po.status, po.supplier_id, po.warehouse_id) == \
        ("replenishment", "draft", supplier.id, warehouse.id)
    # 3 available ≤ 5: 20 plus what restores the safety stock (4 − 3); 1 ≤ 2: 10
    assert sorted((l.rule_id, l.sku_id, l.quantity, l.amount) for l in po.lines) == [
        (low.id, skus[0].id, 21, Decimal("105.00")), (lower.id, skus[2].id, 10, Decimal("50.00"))]
    assert po.total == Decimal("155.00")
    assert reload(ReplenishmentRule, low.id).open_po_id == po.id
    alerts = events("replenishment.alert")
    assert sorted((a["rule_id"], a.get("reason"), a.get("purchase_order_id")) for a in alerts) \
        == sorted([(low.id, None, po.id), (lower.id, None, po.id),
                   (no_supplier.id, "no_supplier", None), (no_price.id, "no_price", None)])
    # a day later the rules that cannot order warn again; the drafted ones wait for their order
    with clock.frozen_at(clock.now() + timedelta(hours=25)):
        assert purchasing.replenish_tick() == 2
    assert PurchaseOrder.query.count() == 1


def test_the_order_on_its_way_counts_and_a_cancelled_order_frees_the_rule(api, shops, users):
    supplier = make_supplier(shops["A"], "active")
    rule = stocked_rule(shops["A"], supplier, on_hand=3)
    make_supplier_price(supplier, rule.sku, "5.00")
    assert api("merchant_a").post("/api/v1/replenishment_rule/run",
                                  json={}).json["result"]["lines"] == 1
    po_id = reload(ReplenishmentRule, rule.id).open_po_id
    assert api("merchant_a").post(f"/api/v1/purchase_order/{po_id}/cancel",
                                  json={"reason": "Wrong supplier"}).status_code == 200
    assert reload(ReplenishmentRule, rule.id).open_po_id is None
    # a manual order on its way lifts the position above the reorder point
    make_purchase_order(shops["A"], "sent", quantity=10, supplier=supplier, sku=rule.sku,
                        warehouse=rule.warehouse)
    assert api("merchant_a").post("/api/v1/replenishment_rule/run",
                                  json={}).json["result"]["lines"] == 0
    # merchant B's run never touches shop A's rules
    assert api("merchant_b").post("/api/v1/replenishment_rule/run",
                                  json={}).json["result"] == {"drafted": [], "lines": 0,
                                                              "alerts": 0}


def test_a_received_order_frees_its_rule(shops):
    supplier = make_supplier(shops["A"], "active")
    rule = stocked_rule(shops["A"], supplier, on_hand=0)
    make_supplier_price(supplier, rule.sku, "5.00")
    purchasing.replenish_tick()
    po = reload(PurchaseOrder, reload(ReplenishmentRule, rule.id).open_po_id)
    as_system(purchasing.approve_purchase_order, po.id)
    as_system(purchasing.send_purchase_order, po.id)
    receive_purchase_order(reload(PurchaseOrder, po.id))
    assert reload(PurchaseOrder, po.id).status == "received"
    assert reload(ReplenishmentRule, rule.id).open_po_id is None


def test_stock_low_runs_the_rules_of_that_sku(shops):
    supplier = make_supplier(shops["A"], "active")
    rule = stocked_rule(shops["A"], supplier, on_hand=8, reorder_point=5)
    make_supplier_price(supplier, rule.sku, "5.00")
    other = stocked_rule(shops["A"], supplier, on_hand=1)
    make_supplier_price(supplier, other.sku, "5.00")
    with acting_as(Actor.system("test")):
        inventory.adjust(rule.sku_id, rule.warehouse_id, -4, "damaged")   # 4 left
        db.session.commit()
        from services.events import publish

        publish("stock.low", {"sku_id": rule.sku_id, "warehouse_id": rule.warehouse_id,
                              "available": 4, "alert": 5}, shop_id=shops["A"].id)
        db.session.commit()
        run_inprocess_jobs(db.session)
    assert reload(ReplenishmentRule, rule.id).open_po_id is not None
    assert reload(ReplenishmentRule, other.id).open_po_id is None     # not its SKU


def test_rule_input_is_checked(api, shops, users):
    sku_a = _sku_row(shops["A"])
    body = {"sku_id": sku_a.id, "warehouse_id": make_warehouse(shops["A"]).id,
            "reorder_quantity": 10}
    for extra, field in (({"warehouse_id": make_warehouse(shops["B"]).id}, "warehouse_id"),
                         ({"supplier_id": make_supplier(shops["B"]).id}, "supplier_id"),
                         ({"reorder_quantity": 0}, "reorder_quantity"),
                         ({"safety_stock": -1}, "safety_stock")):
        answer = api("merchant_a").post("/api/v1/replenishment_rule/", json={**body, **extra})
        assert answer.status_code == 422 and field in answer.json["errors"], (extra, answer.json)
    assert api("merchant_a").post("/api/v1/replenishment_rule/", json=body).status_code == 201
    again = api("merchant_a").post("/api/v1/replenishment_rule/", json=body)
    assert again.status_code == 422                                  # one rule per SKU+warehouse


def _run_concurrently(app, work, clients=8):
    barrier = threading.Barrier(clients)
    outcomes, lock = [], threading.Lock()

    def client(n):
        with app.app_context(), acting_as(Actor.system(f"client-{n}")):
            barrier.wait(timeout=10)
            try:
                outcome = work()
                db.session.commit()
            except purchasing.HoutaiError as refusal:
                db.session.rollback()
                outcome = (refusal.status, refusal.errors)
            finally:
                db.session.remove()
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def _everyone_reads_first(monkeypatch, name, clients):
    """Every client has made its read (`name` returned) before any of them writes."""
    barrier = threading.Barrier(clients)
    original = getattr(purchasing, name)

    def read_then_wait(*args, **kwargs):
        result = original(*args, **kwargs)
        barrier.wait(timeout=10)
        return result

    monkeypatch.setattr(purchasing, name, read_then_wait)


def test_concurrent_runs_draft_one_line_per_rule(app, shops, monkeypatch):
    requires_postgres(app)
    supplier = make_supplier(shops["A"], "active")
    rules = [stocked_rule(shops["A"], supplier, on_hand=1) for _ in range(3)]
    for rule in rules:
        make_supplier_price(supplier, rule.sku, "5.00")
    rule_ids = sorted(rule.id for rule in rules)
    db.session.remove()
    clients = 8
    original_plan = purchasing._plan
    seen = threading.Barrier(clients)
    calls = threading.local()

    def plan_then_wait(rule, today):
        result = original_plan(rule, today)
        calls.n = getattr(calls, "n", 0) + 1
        if calls.n == len(rule_ids):          # this client has read all its rules
            seen.wait(timeout=10)
        return result

    monkeypatch.setattr(purchasing, "_plan", plan_then_wait)
    _run_concurrently(app, purchasing.replenish, clients=clients)
    lines = PurchaseOrderLine.query.all()
    assert sorted(l.rule_id for l in lines) == rule_ids
    assert PurchaseOrder.query.count() == 3                # one per warehouse
    assert all(po.lines for po in PurchaseOrder.query.all())


def test_control_drafting_without_the_claim_drafts_twice(app, shops, monkeypatch):
    """Without the conditional claim every concurrent run drafts: the check above would
    catch a version that reads `open_po_id` and writes it back."""
    requires_postgres(app)
    supplier = make_supplier(shops["A"], "active")
    rule = stocked_rule(shops["A"], supplier, on_hand=1)
    make_supplier_price(supplier, rule.sku, "5.00")
    rule_id = rule.id
    monkeypatch.setattr(purchasing, "_claim_rule", lambda rule, po: True)
    _everyone_reads_first(monkeypatch, "_plan", 4)
    db.session.remove()
    _run_concurrently(app, purchasing.replenish, clients=4)
    assert PurchaseOrderLine.query.filter_by(rule_id=rule_id).count() == 4


# -- scorecard ---------------------------------------------------------------------------------

def test_the_rating_combines_on_time_quality_returns_and_fill_rate(api, shops, users):
    supplier = make_supplier(shops["A"], "active")
    sku = _sku_row(shops["A"])
    warehouse = make_warehouse(shops["A"])
    late = make_purchase_order(shops["A"], "sent", quantity=10, supplier=supplier, sku=sku,
                               warehouse=warehouse)
    on_time = make_purchase_order(shops["A"], "sent", quantity=10, supplier=supplier, sku=sku,
                                  warehouse=warehouse)
    db.session.execute(text("UPDATE purchase_order SET expected_on = :day WHERE id = :id"),
                       {"day": clock.business_date() - timedelta(days=1), "id": late.id})
    db.session.commit()
    receive_purchase_order(reload(PurchaseOrder, late.id), received=8, rejected=2)   # 8 of 10
    receive_purchase_order(reload(PurchaseOrder, on_time.id))                        # 10 of 10
    as_system(purchasing.close_purchase_order, late.id)
    rated = api("merchant_a").post(f"/api/v1/supplier/{supplier.id}/rate", json={})
    factors = rated.json["result"]["rating_factors"]
    assert factors["on_time"]["value"] == 0.5                 # one receipt of two in time
    assert factors["quality"]["value"] == 0.9                 # 2 rejected of 20
    assert factors["fill_rate"]["value"] == 0.9               # 18 received of 20 ordered
    assert factors["returns"]["value"] is None                # nothing sold yet: left out
    # (30 × 0.5 + 30 × 0.9 + 20 × 0.9) ÷ 80 × 100
    assert rated.json["result"]["rating"] == "75.00"
    assert rated.json["result"]["rated_at"]


def test_quality_reasons_count_against_the_supplier_and_others_do_not(app, shops):
    assert purchasing.is_quality_reason("Arrived damaged")
    assert purchasing.is_quality_reason("质量问题")
    assert purchasing.is_quality_reason("NOT AS DESCRIBED")
    assert not purchasing.is_quality_reason("Changed my mind")
    factors = {"on_time": {"value": None}, "quality": {"value": 1.0},
               "returns": {"value": 0.5}, "fill_rate": {"value": None}}
    assert purchasing.rating_of(factors, purchasing.DEFAULT_WEIGHTS) == Decimal("80.00")
    assert purchasing.rating_of({k: {"value": None} for k in purchasing.FACTORS},
                                purchasing.DEFAULT_WEIGHTS) is None


def test_returns_with_a_quality_reason_lower_the_returns_factor(shops):
    from tests.factories import refund_through_after_sale

    placed = make_order(shops["A"], quantity=4)
    with acting_as(Actor.system("test")):
        order.mark_paid(placed.trade_id, "paid offline")
        db.session.commit()
    supplier = make_supplier(shops["A"], "active")
    spu = db.session.get(Spu, placed.lines[0].spu_id)
    spu.supplier_id = supplier.id
    db.session.commit()
    refund = refund_through_after_sale(reload(Order, placed.id), "10.00")
    refund.reason = "Arrived damaged"
    db.session.commit()
    with acting_as(Actor.system("test")):
        factors = purchasing.scorecard(reload(Supplier, supplier.id))
    assert factors["returns"]["basis"] == {"quality_returns": 1, "sold": 4}
    assert factors["returns"]["value"] == 0.75


def test_the_tick_rates_suppliers_not_rated_lately(shops):
    supplier = make_supplier(shops["A"], "active")
    assert purchasing.rate_tick() == 1
    assert purchasing.rate_tick() == 0
    with clock.frozen_at(clock.now() + timedelta(hours=25)):
        assert purchasing.rate_tick() == 1
    assert reload(Supplier, supplier.id).rating_factors["weights"] == purchasing.DEFAULT_WEIGHTS


# -- consignment, statements, payment ----------------------------------------------------------

def completed_consigned_order(shop, supplier, quantity=2):
    placed = make_order(shop, quantity=quantity, fulfilment="consignment")
    spu = db.session.get(Spu, placed.lines[0].spu_id)
    spu.supplier_id = supplier.id
    db.session.commit()
    make_supplier_price(supplier, db.session.get(Sku, placed.lines[0].sku_id), "30.00")
    with acting_as(Actor.system("test")):
        order.mark_paid(placed.trade_id, "paid offline")
        db.session.commit()
        for notice in ShippingNotice.query.filter_by(order_id=placed.id):
            order.ship_notice(notice.id, "SF", f"SF{notice.id:08d}")
        db.session.commit()
        order.deliver_order(placed.id)
        order.confirm_receipt(placed.id)
        db.session.commit()
        run_inprocess_jobs(db.session)
    return reload(Order, placed.id)


def test_statements_collect_receipts_and_consigned_sales_and_are_paid_once(api, shops, users):
    supplier = make_supplier(shops["A"], "active")
    po = make_purchase_order(shops["A"], "sent", quantity=5, unit_price="10.00",
                             supplier=supplier)
    receive_purchase_order(po)
    sold = completed_consigned_order(shops["A"], supplier, quantity=2)
    [consigned] = entries("consignment")
    assert lines_of(consigned) == [("2204", shops["A"].id, Decimal("0.00"), Decimal("60.00")),
                                   ("5401", shops["A"].id, Decimal("60.00"), Decimal("0.00"))]
    assert consigned.reference == sold.order_no
    today = clock.business_date().isoformat()
    body = {"supplier_id": supplier.id, "period_start": today, "period_end": today}
    drafted = api("Purchasing").post("/api/v1/supplier_statement/", json=body)
    assert drafted.status_code == 201, drafted.json
    statement_id = drafted.json["id"]
    assert drafted.json["result"]["amount"] == "110.00"
    items = SupplierStatementItem.query.filter_by(statement_id=statement_id).all()
    assert sorted((i.source_kind, i.quantity, i.amount) for i in items) == [
        ("consignment", 2, Decimal("60.00")), ("receipt_line", 5, Decimal("50.00"))]
    again = api("Purchasing").post("/api/v1/supplier_statement/", json=body)
    assert again.status_code == 409                                  # nothing left unsettled
    assert api("Finance").post(f"/api/v1/supplier_statement/{statement_id}/pay",
                               json={"reference": "T1"}).status_code == 409   # not confirmed
    assert api("Purchasing").post(f"/api/v1/supplier_statement/{statement_id}/confirm",
                                  json={}).json["result"]["status"] == "confirmed"
    # paying is Finance's decision: neither purchasing staff nor the merchant
    assert api("Purchasing").post(f"/api/v1/supplier_statement/{statement_id}/pay",
                                  json={"reference": "T1"}).status_code == 403
    assert api("merchant_a").post(f"/api/v1/supplier_statement/{statement_id}/pay",
                                  json={"reference": "T1"}).status_code == 403
    assert api("Finance").post(f"/api/v1/supplier_statement/{statement_id}/pay",
                               json={}).status_code == 422
    paid = api("Finance").post(f"/api/v1/supplier_statement/{statement_id}/pay",
                               json={"reference": "BANK-0001"})
    assert paid.json["result"]["status"] == "paid"
    assert api("Finance").post(f"/api/v1/supplier_statement/{statement_id}/pay",
                               json={"reference": "BANK-0002"}).status_code == 409
    [payment] = entries("supplier_payment")
    assert lines_of(payment) == [("1003", None, Decimal("0.00"), Decimal("110.00")),
                                 ("2204", shops["A"].id, Decimal("110.00"), Decimal("0.00"))]
    assert finance.balance("2204", shops["A"].id) == Decimal("0.00")
    assert [e["statement_id"] for e in events("supplier_statement.paid")] == [statement_id]
    for entry in JournalEntry.query.all():
        assert sum(l.debit for l in entry.lines) == sum(l.credit for l in entry.lines)


def test_a_cancelled_statement_gives_its_sources_back(api, shops, users):
    po = make_purchase_order(shops["A"], "sent")
    receive_purchase_order(po)
    today = clock.business_date()
    with acting_as(Actor.system("test")):
        first = purchasing.draft_statement(po.supplier_id, today, today)
        db.session.commit()
    assert api("Purchasing").post(f"/api/v1/supplier_statement/{first.id}/cancel",
                                  json={}).json["result"]["status"] == "cancelled"
    with acting_as(Actor.system("test")):
        second = purchasing.draft_statement(po.supplier_id, today, today)
        db.session.commit()
    assert second.amount == Decimal("50.00")
    refused = api("Purchasing").post("/api/v1/supplier_statement/", json={
        "supplier_id": po.supplier_id, "period_start": today.isoformat(),
        "period_end": (today + timedelta(days=1)).isoformat()})
    assert refused.status_code == 422 and "period_end" in refused.json["errors"]


def _confirmed_statement(shops):
    po = make_purchase_order(shops["A"], "sent")
    receive_purchase_order(po)
    today = clock.business_date()
    with acting_as(Actor.system("test")):
        statement = purchasing.draft_statement(po.supplier_id, today, today)
        purchasing.confirm_statement(statement.id)
        db.session.commit()
    return statement.id


def test_concurrent_payments_pay_a_statement_once(app, shops, monkeypatch):
    requires_postgres(app)
    statement_id = _confirmed_statement(shops)
    _everyone_reads_first(monkeypatch, "visible_row", 8)   # all reach the lock together
    db.session.remove()
    outcomes = _run_concurrently(app, lambda: purchasing.pay_statement(statement_id, "T") and
                                 "paid")
    assert outcomes.count("paid") == 1
    assert sorted(map(str, outcomes)) == [str((409, {"status": ["paid"]}))] * 7 + ["paid"]
    assert len(events("supplier_statement.paid")) == 1


def test_control_paying_without_the_row_lock_pays_twice(app, shops, monkeypatch):
    """Read without the lock, every concurrent payment sees `confirmed`: the check above
    would catch a version that forgets the lock."""
    requires_postgres(app)
    statement_id = _confirmed_statement(shops)
    barrier = threading.Barrier(4)
    monkeypatch.setattr(purchasing, "_locked", lambda model, pk: (
        db.session.get(model, pk), barrier.wait(timeout=10))[0])
    db.session.remove()
    outcomes = _run_concurrently(app, lambda: purchasing.pay_statement(statement_id, "T") and
                                 "paid", clients=4)
    assert outcomes.count("paid") == 4


# -- drop-shipping -------------------------------------------------------------------------------

def dropship_notice(shop, supplier):
    placed = make_order(shop, fulfilment="dropship")
    spu = db.session.get(Spu, placed.lines[0].spu_id)
    spu.supplier_id = supplier.id
    db.session.commit()
    with acting_as(Actor.system("test")):
        order.mark_paid(placed.trade_id, "paid offline")
        db.session.commit()
        run_inprocess_jobs(db.session)
    return ShippingNotice.query.filter_by(order_id=placed.id, route="dropship").one()


def signed_post(app, supplier_code, key, body: bytes, timestamp=None, signature=None):
    timestamp = timestamp or str(int(clock.now().timestamp()))
    signature = signature or purchasing.sign(key, timestamp, body)
    with app.app_context():     # its own session, as a request in a server has
        return app.test_client().post("/api/v1/supplier_shipment/", data=body,
                                      content_type="application/json",
                                      headers={"X-Supplier-Code": supplier_code,
                                               "X-Timestamp": timestamp,
                                               "X-Signature": signature})


def test_drop_shipped_notices_go_to_their_supplier_who_reports_the_shipment(app, api, shops,
                                                                           users):
    supplier = make_supplier(shops["A"], "active", notify_url="https://supplier.example/hook")
    issued = api("merchant_a").post(f"/api/v1/supplier/{supplier.id}/key", json={})
    assert issued.status_code == 201
    key = issued.json["result"]["key"]
    stored = reload(Supplier, supplier.id).api_key_hash
    assert key not in stored and "key" not in api("merchant_a").get(
        f"/api/v1/supplier/{supplier.id}").json["result"]
    purchasing.SANDBOX_NOTICES.clear()
    notice = dropship_notice(shops["A"], supplier)
    assert notice.supplier_id == supplier.id
    assert [e["notice_id"] for e in events("dropship.requested")] == [notice.id]
    [sent] = purchasing.SANDBOX_NOTICES
    assert sent["url"] == "https://supplier.example/hook"
    assert sent["headers"]["X-Signature"] == purchasing.sign(key, sent["headers"]["X-Timestamp"],
                                                              sent["body"])
    body = (f'{{"notice_no": "{notice.notice_no}", "carrier": "SF", '
            f'"tracking_no": "SF123456"}}').encode()
    assert signed_post(app, supplier.code, key, body, signature="0" * 64).status_code == 401
    assert signed_post(app, supplier.code, "sk_wrong", body).status_code == 401
    stale = str(int(clock.now().timestamp()) - 3600)
    assert signed_post(app, supplier.code, key, body, timestamp=stale).status_code == 401
    unsigned = app.test_client().post("/api/v1/supplier_shipment/", data=body,
                                      content_type="application/json")
    assert unsigned.status_code == 401 and set(unsigned.json) == {"message", "errors"}
    assert reload(ShippingNotice, notice.id).status.value == "pending"
    shipped = signed_post(app, supplier.code, key, body)
    assert shipped.status_code == 200, shipped.json
    assert shipped.json["result"]["status"] == "shipped"
    assert reload(ShippingNotice, notice.id).tracking_no == "SF123456"
    assert reload(Order, notice.order_id).status.value == "shipped"
    replay = signed_post(app, supplier.code, key, body)
    assert replay.status_code == 200 and replay.json == shipped.json
    other = (f'{{"notice_no": "{notice.notice_no}", "carrier": "SF", '
             f'"tracking_no": "SF999"}}').encode()
    assert signed_post(app, supplier.code, key, other).status_code == 409
    # a new key: the old one stops working
    api("merchant_a").post(f"/api/v1/supplier/{supplier.id}/key", json={})
    assert signed_post(app, supplier.code, key, body).status_code == 401


def test_a_supplier_reports_only_its_own_notices(app, api, shops, users):
    mine = make_supplier(shops["A"], "active")
    theirs = make_supplier(shops["A"], "active")
    notice = dropship_notice(shops["A"], theirs)
    key = api("merchant_a").post(f"/api/v1/supplier/{mine.id}/key", json={}).json["result"]["key"]
    body = (f'{{"notice_no": "{notice.notice_no}", "carrier": "SF", '
            f'"tracking_no": "SF1"}}').encode()
    assert signed_post(app, mine.code, key, body).status_code == 404
    bad = signed_post(app, mine.code, key, b'{"notice_no": ""}')
    assert bad.status_code == 422 and {"notice_no", "carrier", "tracking_no"} <= set(
        bad.json["errors"])
    assert reload(ShippingNotice, notice.id).status.value == "pending"


def test_malformed_signature_headers_are_refused_and_a_suspended_supplier_is_forbidden(
        app, api, shops, users):
    supplier = make_supplier(shops["A"], "active")
    notice = dropship_notice(shops["A"], supplier)
    key = api("merchant_a").post(f"/api/v1/supplier/{supplier.id}/key",
                                 json={}).json["result"]["key"]
    body = (f'{{"notice_no": "{notice.notice_no}", "carrier": "SF", '
            f'"tracking_no": "SF42"}}').encode()
    now_ts = str(int(clock.now().timestamp()))
    for timestamp, signature in (("\u00b2", None), (now_ts + "\u00b9", None),
                                 (now_ts, "\u00e9" * 64), (now_ts, "g" * 64),
                                 (now_ts, purchasing.sign(key, now_ts, body)[:63])):
        answer = signed_post(app, supplier.code, key, body, timestamp=timestamp,
                             signature=signature or purchasing.sign(key, now_ts, body))
        assert answer.status_code == 401, (timestamp, signature, answer.status_code)
        assert set(answer.json) == {"message", "errors"}
    with acting_as(Actor.system("test")):
        for timestamp, signature in (("\uff11\uff17", "0" * 64), ("\u0661", "0" * 64),
                                     (now_ts, "\u0661" * 64), (now_ts, "\u00e9" * 64),
                                     (now_ts, purchasing.sign(key, now_ts, body) + "\n"),
                                     (now_ts + "\n", purchasing.sign(key, now_ts, body))):
            with pytest.raises(purchasing.BadSignature):
                purchasing.signed_supplier(supplier.code, timestamp, signature, body)
    upper = signed_post(app, supplier.code, key, body,
                        signature=purchasing.sign(key, now_ts, body).upper(), timestamp=now_ts)
    assert upper.status_code == 200, upper.json               # hex is case-insensitive
    # a suspended supplier is refused even with a good signature
    other = dropship_notice(shops["A"], supplier)
    with acting_as(Actor.system("test")):
        purchasing.suspend(supplier.id, "Late twice")
        db.session.commit()
    late = (f'{{"notice_no": "{other.notice_no}", "carrier": "SF", '
            f'"tracking_no": "SF43"}}').encode()
    refused = signed_post(app, supplier.code, key, late)
    assert refused.status_code == 403 and set(refused.json) == {"message", "errors"}
    assert reload(ShippingNotice, other.id).status.value == "pending"


def test_statement_periods_out_of_range_are_refused_naming_the_field(api, shops, users):
    po = make_purchase_order(shops["A"], "sent")
    receive_purchase_order(po)
    today = clock.business_date().isoformat()
    for start, end, field in (("0001-01-01", today, "period_start"),
                              ("1999-12-31", today, "period_start"),
                              ("9999-12-31", "9999-12-31", "period_start"),
                              (today, "9999-12-31", "period_end")):
        refused = api("Purchasing").post("/api/v1/supplier_statement/", json={
            "supplier_id": po.supplier_id, "period_start": start, "period_end": end})
        assert refused.status_code == 422, (start, end, refused.status_code)
        assert field in refused.json["errors"]
    assert SupplierStatement.query.count() == 0
    drafted = api("Purchasing").post("/api/v1/supplier_statement/", json={
        "supplier_id": po.supplier_id, "period_start": "2000-01-01", "period_end": today})
    assert drafted.status_code == 201, drafted.json


# -- dashboard ----------------------------------------------------------------------------------

def test_panels_match_sql_and_merchants_see_their_own(browser, shops):
    from tests.test_dashboard import panels_on

    po_a = make_purchase_order(shops["A"], quantity=3, unit_price="10.00")
    make_purchase_order(shops["A"], "sent", quantity=2, unit_price="7.50", supplier=po_a.supplier)
    make_purchase_order(shops["B"], quantity=1, unit_price="99.00")
    cancelled = make_purchase_order(shops["A"], quantity=1)
    as_system(purchasing.cancel_purchase_order, cancelled.id, "no")
    delivered = make_purchase_order(shops["A"], "sent", quantity=4)     # not open once received
    receive_purchase_order(delivered)
    as_system(purchasing.rate, delivered.supplier_id)
    expected = {code: (n, f"{total:.2f}") for code, n, total in db.session.execute(text(
        "SELECT s.code, COUNT(p.id), SUM(p.total) FROM purchase_order p JOIN supplier s "
        "ON s.id = p.supplier_id WHERE p.status IN ('draft', 'approved', 'sent', "
        "'partially_received') GROUP BY s.id, s.code"))}
    admin = panels_on(browser("Admin").get("/").get_data(as_text=True))
    assert dict(zip(admin["open_po_count"]["keys"], admin["open_po_count"]["values"])) == \
        {code: n for code, (n, _) in expected.items()}
    assert dict(zip(admin["open_po_value"]["keys"], admin["open_po_value"]["values"])) == \
        {code: total for code, (_, total) in expected.items()}
    merchant = panels_on(browser("merchant_a").get("/").get_data(as_text=True))
    assert merchant["open_po_count"]["keys"] == [po_a.supplier.code]
    assert merchant["open_po_count"]["values"] == [2]
    assert merchant["open_po_value"]["values"] == ["45.00"]
    rated = db.session.execute(text(
        "SELECT code, rating FROM supplier WHERE shop_id = :shop AND rating IS NOT NULL"),
        {"shop": shops["A"].id}).all()
    assert [(code, f"{rating:.2f}") for code, rating in rated] == [(delivered.supplier.code,
                                                                     "100.00")]
    assert list(zip(merchant["supplier_ratings"]["keys"],
                    merchant["supplier_ratings"]["values"])) == [(delivered.supplier.code,
                                                                  "100.00")]
