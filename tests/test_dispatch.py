"""调度中心 and the order kinds: warehouse rules by region, notice steps, pre-sale, service goods
with codes, drop-shipping, and the merchant's order tools (remarks, address, tracking import)."""
from datetime import timedelta
from decimal import Decimal

import pytest

from app.extensions import db
from models.events import OutboxEvent
from models.inventory import Stock, StockLedger
from models.member import MemberAddress
from models.order import Order, ServiceCode, ShippingNotice
from services import clock, order
from services.actor import Actor, acting_as
from tests.factories import address_body, make_member, make_spu, make_warehouse, stock_up


def on_sale(shop, **terms):
    """An on-sale SPU of `shop` (2×2 SKU grid at 99.00) with the given selling terms."""
    from services import product

    spu = make_spu(shop, with_skus=True, **terms)
    with acting_as(Actor.system("test")):
        product.submit_spu(spu.id)
        product.approve_spu(spu.id)
        db.session.commit()
    return spu


@pytest.fixture
def buyer(app):
    """A member in Guangzhou (province 440000)."""
    member = make_member("buyer-gz")
    address = MemberAddress(**address_body(member.id, province_code="440000",
                                           city_code="440100", district_code="440106"))
    db.session.add(address)
    db.session.commit()
    return {"member": member, "address": address}


def checkout(api, buyer, lines, key):
    answer = api("Storefront").post(
        "/api/v1/checkout/place", headers={"Idempotency-Key": key},
        json={"member_id": buyer["member"].id, "address_id": buyer["address"].id,
              "lines": [{"sku_id": sku.id, "quantity": q} for sku, q in lines]})
    assert answer.status_code == 201, answer.json
    return answer.json["result"]


def pay(api, trade_id):
    answer = api("OrderOps").post(f"/api/v1/trade/{trade_id}/mark-paid", json={"reason": "bank"})
    assert answer.status_code == 200, answer.json
    return answer.json["result"]


def reservations_of(order_id):
    row = db.session.get(Order, order_id)
    db.session.refresh(row)
    return sorted((r.warehouse_id, r.quantity) for r in row.reservations)


def events(name):
    return [e.payload for e in OutboxEvent.query.filter_by(name=name).order_by(OutboxEvent.id)]


# -- warehouse rules -----------------------------------------------------------------------------

def test_a_warehouse_serving_the_buyers_province_is_chosen_before_a_fuller_one(api, shops, buyer):
    sku = on_sale(shops["A"]).skus[0]
    shanghai, guangzhou = make_warehouse(shops["A"], "SH"), make_warehouse(shops["A"], "GZ")
    shanghai.region, guangzhou.region = "310000", "440000"
    db.session.commit()
    stock_up(sku, shanghai, 50)
    stock_up(sku, guangzhou, 3)
    trade = checkout(api, buyer, [(sku, 2)], "near")
    assert reservations_of(trade["orders"][0]["id"]) == [(guangzhou.id, 2)]
    # more than the near warehouse holds: the whole line from one warehouse beats a split
    trade = checkout(api, buyer, [(sku, 5)], "whole")
    assert reservations_of(trade["orders"][0]["id"]) == [(shanghai.id, 5)]


def test_service_regions_and_priority_rank_the_warehouses(api, shops, buyer):
    sku = on_sale(shops["A"]).skus[0]
    first, second, far = (make_warehouse(shops["A"], code) for code in ("P1", "P2", "FAR"))
    for warehouse, priority in ((first, 5), (second, 1)):
        answer = api("merchant_a").put(f"/api/v1/warehouse/{warehouse.id}", json={
            "service_regions": ["440000", "450000"], "priority": priority})
        assert answer.status_code == 200, answer.json
    for warehouse in (first, second, far):
        stock_up(sku, warehouse, 10 if warehouse is not far else 40)
    trade = checkout(api, buyer, [(sku, 4)], "ranked")
    assert reservations_of(trade["orders"][0]["id"]) == [(second.id, 4)]
    # none can send it whole: pieces in the same order of preference
    trade = checkout(api, buyer, [(sku, 45)], "pieces")
    assert reservations_of(trade["orders"][0]["id"]) == sorted(
        [(second.id, 6), (first.id, 10), (far.id, 29)])


@pytest.mark.parametrize("payload, field", [
    ({"service_regions": ["44000"]}, "service_regions"),
    ({"service_regions": "440000"}, "service_regions"),
    ({"priority": -1}, "priority"),
    ({"region": "Guangdong"}, "region"),
])
def test_bad_warehouse_rules_are_422(api, shops, payload, field):
    answer = api("merchant_a").post("/api/v1/warehouse/", json={
        "code": "BAD", "name": "Bad", **payload})
    assert answer.status_code == 422 and field in answer.json["errors"], answer.json


# -- notice steps --------------------------------------------------------------------------------

def test_warehouse_steps_pick_pack_hold_release_and_ship(api, shops, buyer):
    sku = on_sale(shops["A"]).skus[0]
    stock_up(sku, make_warehouse(shops["A"]), 5)
    trade = pay(api, checkout(api, buyer, [(sku, 2)], "steps")["id"])
    notice = ShippingNotice.query.one()
    url = f"/api/v1/shipping_notice/{notice.id}"
    assert api("Warehouse").post(f"{url}/pack").status_code == 409  # not picking yet
    assert api("Warehouse").post(f"{url}/pick").json["result"]["status"] == "picking"
    assert api("Warehouse").post(f"{url}/hold", json={"reason": ""}).status_code == 422
    held = api("Warehouse").post(f"{url}/hold", json={"reason": "address unclear"})
    assert (held.json["result"]["status"], held.json["result"]["hold_reason"]) == \
        ("held", "address unclear")
    assert api("Warehouse").post(f"{url}/ship", json={"carrier": "SF", "tracking_no": "1"}) \
        .status_code == 409
    assert api("Warehouse").post(f"{url}/release").json["result"]["status"] == "picking"
    assert api("Warehouse").post(f"{url}/pack").json["result"]["status"] == "packed"
    shipped = api("Warehouse").post(f"{url}/ship", json={"carrier": "SF", "tracking_no": "SF1"})
    assert shipped.json["result"]["status"] == "shipped"
    shown = api("Admin").get(f"/api/v1/order/{trade['orders'][0]['id']}").json["result"]
    assert shown["status"] == "shipped"
    assert [s["status"] for s in shown["shipments"]] == ["shipped"]
    notes = [h["note"] or "" for h in shown["history"]]
    assert any("pick" in n for n in notes) and any("address unclear" in n for n in notes)
    assert [e["notice_id"] for e in events("shipping_notice.picking")] == [notice.id]
    assert len(events("shipping_notice.held")) == 1
    assert api("merchant_b").post(f"{url}/pick").status_code == 404


# -- order kinds ---------------------------------------------------------------------------------

def test_pre_sale_waits_for_its_day_then_splits(app, api, shops, buyer):
    ships_on = clock.business_date() + timedelta(days=10)
    presale = on_sale(shops["A"], presale_ships_on=ships_on,
                      presale_deposit=Decimal("20.00")).skus[0]
    normal = on_sale(shops["A"]).skus[0]
    warehouse = make_warehouse(shops["A"])
    stock_up(presale, warehouse, 5)
    stock_up(normal, warehouse, 5)
    trade = checkout(api, buyer, [(presale, 2), (normal, 1)], "pre")
    kinds = {o["id"]: db.session.get(Order, o["id"]).order_type for o in trade["orders"]}
    assert sorted(kinds.values()) == ["normal", "pre_sale"]
    pre_id = next(i for i, kind in kinds.items() if kind == "pre_sale")
    shown = api("Admin").get(f"/api/v1/order/{pre_id}").json["result"]
    assert (shown["deposit"], shown["balance"], shown["ships_after"], shown["payable"]) == \
        ("40.00", "158.00", ships_on.isoformat(), "198.00")
    assert pay(api, trade["id"])["status"] == "paid"
    assert db.session.get(Order, pre_id).status.value == "paid"
    assert ShippingNotice.query.filter_by(order_id=pre_id).count() == 0
    start = clock.now()
    clock.set_now(start + timedelta(days=9))
    app.test_cli_runner().invoke(args=["houtai", "tick"])
    assert ShippingNotice.query.filter_by(order_id=pre_id).count() == 0
    clock.set_now(start + timedelta(days=10, hours=1))
    app.test_cli_runner().invoke(args=["houtai", "tick"])
    db.session.expire_all()
    assert ShippingNotice.query.filter_by(order_id=pre_id).count() == 1
    assert db.session.get(Order, pre_id).status.value == "fulfilling"


def test_service_goods_need_no_stock_and_are_delivered_by_a_code(api, shops, buyer):
    service = on_sale(shops["A"], goods_kind="service").skus[0]
    trade = checkout(api, buyer, [(service, 3)], "svc")
    order_id = trade["orders"][0]["id"]
    assert db.session.get(Order, order_id).order_type == "virtual"
    assert reservations_of(order_id) == [] and Stock.query.count() == 0
    pay(api, trade["id"])
    shown = api("Storefront").get(f"/api/v1/order/{order_id}").json["result"]
    assert shown["status"] == "delivered" and shown["shipments"] == []
    [code] = shown["service_codes"]
    assert (code["uses_total"], code["uses_left"]) == (3, 3) and len(code["code"]) == 12
    merchant_view = api("merchant_a").get(f"/api/v1/order/{order_id}").json["result"]
    assert merchant_view["service_codes"][0]["code"].endswith(code["code"][-4:])
    assert "*" in merchant_view["service_codes"][0]["code"]
    listed = api("merchant_a").get("/api/v1/service_code/").json["result"]
    assert "code" not in listed[0] and listed[0]["code_hint"].endswith(code["code"][-4:])

    redeem = "/api/v1/service_code/redeem"
    assert api("merchant_b").post(redeem, json={"code": code["code"]}).status_code == 404
    assert api("merchant_a").post(redeem, json={"code": code["code"], "uses": 4}) \
        .status_code == 409
    once = api("merchant_a").post(redeem, json={"code": code["code"].lower(), "uses": 2})
    assert once.status_code == 200 and once.json["result"]["uses_left"] == 1
    assert db.session.get(Order, order_id).status.value == "delivered"
    api("merchant_a").post(redeem, json={"code": code["code"]})
    db.session.expire_all()
    assert db.session.get(Order, order_id).status.value == "completed"
    assert api("merchant_a").post(redeem, json={"code": code["code"]}).status_code == 409


def test_service_plus_physical_ships_and_issues_a_code(api, shops, buyer):
    sku = on_sale(shops["A"], goods_kind="service_physical").skus[0]
    stock_up(sku, make_warehouse(shops["A"]), 2)
    trade = pay(api, checkout(api, buyer, [(sku, 1)], "both")["id"])
    order_id = trade["orders"][0]["id"]
    assert db.session.get(Order, order_id).status.value == "fulfilling"
    assert ShippingNotice.query.filter_by(order_id=order_id).count() == 1
    assert ServiceCode.query.filter_by(order_id=order_id).one().uses_total == 1


def test_drop_shipped_goods_go_to_the_supplier_without_our_stock(api, shops, buyer):
    dropship = on_sale(shops["A"], fulfilment="dropship").skus[0]
    own = on_sale(shops["A"]).skus[0]
    stock_up(own, make_warehouse(shops["A"]), 3)
    trade = pay(api, checkout(api, buyer, [(dropship, 2), (own, 1)], "drop")["id"])
    order_id = trade["orders"][0]["id"]
    notices = {n.route: n for n in ShippingNotice.query.filter_by(order_id=order_id)}
    assert set(notices) == {"warehouse", "dropship"}
    supplier = notices["dropship"]
    assert (supplier.status.value, supplier.warehouse_id) == ("pending", None)
    assert sum(n.payable for n in notices.values()) == Decimal("297.00")
    assert supplier.lines == [{"sku_id": dropship.id, "payable": "198.00", "quantity": 2}]
    ledger_before = StockLedger.query.count()
    assert api("merchant_a").post(f"/api/v1/shipping_notice/{supplier.id}/ship", json={
        "carrier": "YTO", "tracking_no": "YT1"}).status_code == 200
    assert StockLedger.query.count() == ledger_before  # the supplier's stock, not ours
    assert db.session.get(Order, order_id).status.value == "fulfilling"


@pytest.mark.parametrize("terms, field", [
    ({"presale_deposit": "10.00"}, "presale_ships_on"),
    ({"presale_ships_on": "2030-01-01", "presale_deposit": "0"}, "presale_deposit"),
    ({"goods_kind": "service", "fulfilment": "dropship"}, "fulfilment"),
    ({"goods_kind": "gift"}, "goods_kind"),
])
def test_bad_selling_terms_are_422(api, shops, terms, field):
    from tests.factories import spu_body

    answer = api("merchant_a").post("/api/v1/spu/", json={**spu_body(), **terms})
    assert answer.status_code == 422 and field in answer.json["errors"], answer.json


# -- merchant tools ------------------------------------------------------------------------------

@pytest.fixture
def placed(api, shops, buyer):
    sku = on_sale(shops["A"]).skus[0]
    stock_up(sku, make_warehouse(shops["A"]), 10)
    return {"sku": sku, "trade": checkout(api, buyer, [(sku, 1)], "tools")}


def test_merchant_flags_and_remarks_its_own_orders(api, placed):
    order_id = placed["trade"]["orders"][0]["id"]
    url = f"/api/v1/order/{order_id}/remark"
    answer = api("merchant_a").post(url, json={"remark": "gift wrap", "flag": "red"})
    assert answer.status_code == 200
    assert (answer.json["result"]["seller_remark"], answer.json["result"]["seller_flag"]) == \
        ("gift wrap", "red")
    assert api("merchant_a").post(url, json={"flag": "pink"}).status_code == 422
    assert api("merchant_a").post(url, json={}).status_code == 422
    assert api("merchant_b").post(url, json={"flag": "red"}).status_code == 404
    flagged = api("merchant_a").get(
        "/api/v1/order/?q=(filters:!((col:seller_flag,opr:eq,value:red)))").json
    assert flagged["ids"] == [order_id]


NEW_ADDRESS = {"recipient": "韩梅梅", "phone": "13900002222", "province_code": "440000",
               "city_code": "440100", "district_code": "440106", "detail": "天河路 385 号"}


def test_address_changes_before_shipping_only(api, placed):
    order_id = placed["trade"]["orders"][0]["id"]
    url = f"/api/v1/order/{order_id}/change-address"
    bad = api("merchant_a").post(url, json={"address": {**NEW_ADDRESS, "city_code": "44"},
                                            "reason": "buyer asked"})
    assert bad.status_code == 422 and "address.city_code" in bad.json["errors"]
    assert api("merchant_a").post(url, json={"address": NEW_ADDRESS}).status_code == 422
    changed = api("merchant_a").post(url, json={"address": NEW_ADDRESS, "reason": "buyer asked"})
    assert changed.status_code == 200
    assert changed.json["result"]["address"]["phone"] == "139****2222"  # merchants see it masked
    assert db.session.get(Order, order_id).address == NEW_ADDRESS
    assert api("OrderOps").get(f"/api/v1/order/{order_id}").json["result"]["address"] \
        == NEW_ADDRESS
    assert events("order.address_changed")[0]["order_id"] == order_id
    pay(api, placed["trade"]["id"])
    notice = ShippingNotice.query.filter_by(order_id=order_id).one()
    api("merchant_a").post(f"/api/v1/shipping_notice/{notice.id}/ship",
                           json={"carrier": "SF", "tracking_no": "SF9"})
    late = api("merchant_a").post(url, json={"address": NEW_ADDRESS, "reason": "too late"})
    assert late.status_code == 409


def _paid_orders(api, shops, buyer, count):
    sku = on_sale(shops["A"]).skus[0]
    stock_up(sku, make_warehouse(shops["A"]), 10)
    trades = [pay(api, checkout(api, buyer, [(sku, 1)], f"bulk-{n}")["id"]) for n in range(count)]
    return [t["orders"][0] for t in trades]


def test_bulk_tracking_import_is_all_or_nothing(api, shops, buyer):
    orders = _paid_orders(api, shops, buyer, 3)
    notices = [ShippingNotice.query.filter_by(order_id=o["id"]).one() for o in orders]
    url = "/api/v1/shipping_notice/import-tracking"
    bad = api("merchant_a").post(url, json={"rows": [
        {"notice_no": notices[0].notice_no, "carrier": "SF", "tracking_no": "SF100"},
        {"notice_no": "S-NOPE", "carrier": "SF", "tracking_no": "SF101"},
        {"order_no": orders[2]["order_no"], "carrier": "", "tracking_no": "SF102"}]})
    assert bad.status_code == 422
    assert set(bad.json["errors"]) == {"rows.2.notice_no", "rows.3.carrier"}
    db.session.expire_all()
    assert {n.status.value for n in ShippingNotice.query} == {"assigned"}
    good = api("merchant_a").post(url, json={"rows": [
        {"notice_no": notices[0].notice_no, "carrier": "SF", "tracking_no": "SF100"},
        {"order_no": orders[1]["order_no"], "carrier": "SF", "tracking_no": "SF101"}]})
    assert good.status_code == 200 and good.json["result"]["shipped"] == 2
    csv_body = f"\ufefforder_no,carrier,tracking_no\n{orders[2]['order_no']},ZTO,ZT7\n"
    as_csv = api("merchant_a").post(url, data=csv_body.encode(),
                                    headers={"Content-Type": "text/csv"})
    assert as_csv.status_code == 200, as_csv.json
    db.session.expire_all()
    assert [(n.carrier, n.tracking_no) for n in ShippingNotice.query.order_by(ShippingNotice.id)] \
        == [("SF", "SF100"), ("SF", "SF101"), ("ZTO", "ZT7")]
    assert {db.session.get(Order, o["id"]).status.value for o in orders} == {"shipped"}
    again = api("merchant_b").post(url, json={"rows": [
        {"notice_no": notices[0].notice_no, "carrier": "SF", "tracking_no": "X"}]})
    assert again.status_code == 422  # another shop's notice is not found


def test_orders_filter_by_member_and_sku(app, api, shops, buyer, browser):
    sku = on_sale(shops["A"]).skus[0]
    other = on_sale(shops["A"]).skus[1]
    stock_up(sku, make_warehouse(shops["A"]), 5)
    stock_up(other, make_warehouse(shops["A"]), 5)
    first = checkout(api, buyer, [(sku, 1)], "f1")["orders"][0]["id"]
    checkout(api, buyer, [(other, 1)], "f2")
    found = api("merchant_a").get(
        f"/api/v1/order/?q=(filters:!((col:lines,opr:has_sku,value:{sku.id})))").json
    assert found["ids"] == [first]
    by_member = api("merchant_a").get(
        f"/api/v1/order/?q=(filters:!((col:member_id,opr:eq,value:{buyer['member'].id})))").json
    assert by_member["count"] == 2
    from views.order import OrderView

    screen = next(v for v in app.appbuilder.baseviews if isinstance(v, OrderView))
    index = [f.arg_name for f in screen._filters.get_search_filters()["order_no"]] \
        .index("has_sku_code")
    page = browser("merchant_a").get(
        f"/orderview/list/?_flt_{index}_order_no={sku.code}").get_data(as_text=True)
    numbers = {o.id: o.order_no for o in Order.query}
    assert [n for n in numbers.values() if n in page] == [numbers[first]]


def test_merchant_imports_tracking_numbers_in_the_console(api, shops, buyer, browser):
    import io

    orders = _paid_orders(api, shops, buyer, 2)
    merchant = browser("merchant_a")
    assert "Import tracking numbers" in merchant.get("/").get_data(as_text=True) or \
        "导入运单号" in merchant.get("/").get_data(as_text=True)
    wrong = merchant.post_form("/shippingnoticeview/import", {
        "text": f"order_no,carrier,tracking_no\n{orders[0]['order_no']},SF,\n"})
    assert wrong.status_code == 200 and "rows.1.tracking_no" in wrong.get_data(as_text=True)
    csv_file = f"order_no,carrier,tracking_no\n{orders[0]['order_no']},SF,SF1\n" \
               f"{orders[1]['order_no']},SF,SF2\n".encode()
    done = merchant.post_form("/shippingnoticeview/import",
                              {"file": (io.BytesIO(csv_file), "tracking.csv")},
                              content_type="multipart/form-data")
    assert done.status_code == 302
    db.session.expire_all()
    assert {db.session.get(Order, o["id"]).status.value for o in orders} == {"shipped"}
    assert browser("Warehouse").get("/shippingnoticeview/import").status_code == 200


def test_buyers_data_stays_masked_in_the_audit_log_and_for_customer_service(api, placed):
    from models.audit import AuditLog

    order_id = placed["trade"]["orders"][0]["id"]
    api("merchant_a").post(f"/api/v1/order/{order_id}/change-address",
                           json={"address": NEW_ADDRESS, "reason": "buyer asked"})
    entries = api("merchant_a").get(
        "/api/v1/audit_log/?q=(filters:!((col:model,opr:eq,value:Order)),page_size:100)").json
    text = str(entries["result"])
    assert entries["count"] >= 2 and "13900002222" not in text and "13812345678" not in text
    assert AuditLog.query.filter_by(model="Order").count() >= 2
    seen = api("CustomerService").get(f"/api/v1/order/{order_id}")
    assert seen.status_code == 200 and seen.json["result"]["address"]["phone"] == "139****2222"


def test_only_the_buyer_side_confirms_receipt(api, placed):
    order_id = placed["trade"]["orders"][0]["id"]
    assert api("merchant_a").post(f"/api/v1/order/{order_id}/confirm-receipt").status_code == 403
    assert api("Storefront").post(f"/api/v1/order/{order_id}/confirm-receipt").status_code == 409
