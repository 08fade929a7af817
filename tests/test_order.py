"""订单中心: checkout quote and place, idempotency, zero oversell, cancel, payment, timeout."""
from datetime import timedelta
from decimal import Decimal

import pytest

from app.extensions import db
from models.inventory import Stock
from models.member import MemberAddress
from models.order import Order, Trade
from services import clock, order
from services.actor import Actor, acting_as
from tests.factories import (address_body, make_member, make_spu, make_warehouse, stock_up,
                             stocked_cart)


@pytest.fixture
def cart(app, shops, users):
    """Two on-sale SKUs of shop A and one of shop B, stocked; a member with an address."""
    return stocked_cart(shops, stock=5)


def body(cart, *quantities):
    return {"member_id": cart["member"].id, "address_id": cart["address"].id,
            "lines": [{"sku_id": sku.id, "quantity": q}
                      for sku, q in zip(cart["skus"], quantities) if q]}


def place(api, payload, key="k-1"):
    return api("Storefront").post("/api/v1/checkout/place", json=payload,
                                  headers={"Idempotency-Key": key})


def reserved():
    db.session.expire_all()
    return [s.reserved for s in Stock.query.order_by(Stock.id)]


def test_quote_prices_the_cart_without_reserving(api, cart):
    answer = api("Storefront").post("/api/v1/checkout/quote", json=body(cart, 2, 1, 1))
    assert answer.status_code == 200
    result = answer.json["result"]
    assert [(line["quantity"], line["unit_price"], line["payable"]) for line in result["lines"]] \
        == [(2, "99.00", "198.00"), (1, "99.00", "99.00"), (1, "99.00", "99.00")]
    assert (result["goods_amount"], result["discount_amount"], result["freight"],
            result["payable"]) == ("396.00", "0.00", "0.00", "396.00")
    assert reserved() == [0, 0, 0]


def test_place_makes_one_trade_with_one_order_per_shop_and_reserves(api, cart, shops):
    answer = place(api, body(cart, 2, 1, 1))
    assert answer.status_code == 201, answer.json
    result = answer.json["result"]
    assert result["status"] == "pending_payment" and result["payable"] == "396.00"
    assert [(o["shop_id"], o["payable"], len(o["lines"])) for o in result["orders"]] == [
        (shops["A"].id, "297.00", 2), (shops["B"].id, "99.00", 1)]
    assert sum(Decimal(o["payable"]) for o in result["orders"]) == Decimal(result["payable"])
    assert reserved() == [2, 1, 1]


def test_order_lines_are_snapshots(api, cart):
    result = place(api, body(cart, 1, 0, 0)).json["result"]
    sku = cart["skus"][0]
    with acting_as(Actor.system("test")):
        from services import product

        product.change_price(sku.id, Decimal("89.00"), "later sale")
        db.session.commit()
    line = api("Admin").get(f"/api/v1/order/{result['orders'][0]['id']}").json["result"][
        "line_items"][0]
    assert (line["unit_price"], line["sku_code"]) == ("99.00", sku.code)


def test_short_stock_is_409_with_what_is_missing_and_reserves_nothing(api, cart):
    answer = place(api, body(cart, 2, 6, 0))
    assert answer.status_code == 409
    assert answer.json["short"] == [{"sku_id": cart["skus"][1].id, "requested": 6,
                                     "available": 5}]
    assert "lines" in answer.json["errors"]
    assert reserved() == [0, 0, 0] and Trade.query.count() == 0


@pytest.mark.parametrize("change, field", [
    ({"lines": [{"sku_id": 987654, "quantity": 1}]}, "lines.0.sku_id"),
    ({"lines": [{"quantity": 0}]}, "lines.0.quantity"),
    ({"member_id": 987654}, "member_id"),
    ({"lines": []}, "lines"),
])
def test_bad_checkout_bodies_are_422(api, cart, change, field):
    payload = {**body(cart, 1, 0, 0), **change}
    if change.get("lines") and "sku_id" not in change["lines"][0]:
        payload["lines"] = [{"sku_id": cart["skus"][0].id, **change["lines"][0]}]
    answer = place(api, payload)
    assert answer.status_code == 422 and field in answer.json["errors"]
    assert Trade.query.count() == 0


def test_address_of_another_member_and_sku_not_on_sale_are_refused(api, cart, shops):
    other = make_member("other")
    address = MemberAddress(**address_body(other.id))
    db.session.add(address)
    db.session.commit()
    answer = place(api, {**body(cart, 1, 0, 0), "address_id": address.id})
    assert answer.status_code == 422 and "address_id" in answer.json["errors"]
    draft = make_spu(shops["A"], with_skus=True).skus[0]
    answer = place(api, {**body(cart, 0, 0, 0), "lines": [{"sku_id": draft.id, "quantity": 1}]},
                   key="k-2")
    assert answer.json["errors"] == {"lines.0.sku_id": ["Not on sale."]}


def test_idempotency_key_replays_the_same_trade(api, cart):
    first = place(api, body(cart, 1, 0, 0), key="same")
    again = place(api, body(cart, 1, 0, 0), key="same")
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json == again.json
    assert Trade.query.count() == 1 and reserved() == [1, 0, 0]
    other_body = place(api, body(cart, 2, 0, 0), key="same")
    assert other_body.status_code == 422 and "idempotency_key" in other_body.json["errors"]


def test_missing_idempotency_key_is_400(api, cart):
    answer = api("Storefront").post("/api/v1/checkout/place", json=body(cart, 1, 0, 0))
    assert answer.status_code == 400 and "idempotency_key" in answer.json["errors"]


def test_cancel_releases_stock_once_and_is_kept_in_the_timeline(api, cart):
    trade_id = place(api, body(cart, 2, 1, 0)).json["result"]["id"]
    answer = api("Storefront").post(f"/api/v1/trade/{trade_id}/cancel",
                                    json={"reason": "changed my mind"})
    assert answer.status_code == 200 and answer.json["result"]["status"] == "cancelled"
    assert reserved() == [0, 0, 0]
    again = api("Storefront").post(f"/api/v1/trade/{trade_id}/cancel", json={"reason": "again"})
    assert again.status_code == 409 and reserved() == [0, 0, 0]
    history = api("Admin").get(f"/api/v1/order/{answer.json['result']['orders'][0]['id']}") \
        .json["result"]["history"]
    assert [(h["from"], h["to"], h["note"]) for h in history] == [
        (None, "pending_payment", None), ("pending_payment", "cancelled", "changed my mind")]


def test_mark_paid_is_staff_only_and_paid_trades_cannot_be_cancelled(api, cart):
    trade_id = place(api, body(cart, 1, 0, 0)).json["result"]["id"]
    assert api("Storefront").post(f"/api/v1/trade/{trade_id}/mark-paid",
                                  json={"reason": "x"}).status_code == 403
    assert api("OrderOps").post(f"/api/v1/trade/{trade_id}/mark-paid",
                                json={"reason": ""}).status_code == 422
    paid = api("OrderOps").post(f"/api/v1/trade/{trade_id}/mark-paid",
                                json={"reason": "bank transfer 8812"})
    assert paid.json["result"]["status"] == "paid"
    assert api("Storefront").post(f"/api/v1/trade/{trade_id}/cancel",
                                  json={"reason": "late"}).status_code == 409
    assert reserved() == [1, 0, 0]


def test_tick_cancels_unpaid_trades_after_the_timeout(app, api, cart):
    start = clock.now()
    clock.set_now(start)
    trade_id = place(api, body(cart, 1, 0, 0)).json["result"]["id"]
    clock.set_now(start + timedelta(minutes=app.config["UNPAID_TIMEOUT_MINUTES"] - 1))
    assert order.cancel_unpaid_trades() == 0
    clock.set_now(start + timedelta(minutes=app.config["UNPAID_TIMEOUT_MINUTES"] + 1))
    assert order.cancel_unpaid_trades() == 1
    assert order.cancel_unpaid_trades() == 0
    db.session.expire_all()
    assert db.session.get(Trade, trade_id).status == "cancelled" and reserved() == [0, 0, 0]


def test_merchants_see_their_own_orders_only_and_no_trades(api, cart, shops):
    place(api, body(cart, 1, 0, 1))
    mine = api("merchant_a").get("/api/v1/order/").json
    assert {o["shop_id"] for o in mine["result"]} == {shops["A"].id}
    assert api("merchant_a").get("/api/v1/trade/").status_code == 403
    assert Order.query.count() == 2


def test_merchant_changes_an_unpaid_orders_price_apportioned_to_the_cent(api, cart, shops):
    result = place(api, body(cart, 2, 1, 1)).json["result"]
    order_a = result["orders"][0]
    answer = api("merchant_a").post(f"/api/v1/order/{order_a['id']}/change-price",
                                    json={"payable": "200.00", "reason": "regular customer"})
    assert answer.status_code == 200, answer.json
    lines = answer.json["result"]["line_items"]
    assert [line["payable"] for line in lines] == ["133.33", "66.67"]
    assert sum(Decimal(line["payable"]) for line in lines) == Decimal("200.00")
    db.session.expire_all()
    trade = db.session.get(Trade, result["id"])
    assert trade.payable == Decimal("299.00") and trade.discount_amount == Decimal("97.00")
    assert answer.json["result"]["history"][-1]["note"] == "price 297.00 → 200.00: regular customer"


@pytest.mark.parametrize("payload, status, field", [
    ({"payable": "-1", "reason": "x"}, 422, "payable"),
    ({"payable": "500.00", "reason": "x"}, 422, "payable"),
    ({"payable": "10.00", "reason": ""}, 422, "reason"),
])
def test_bad_price_changes_are_refused(api, cart, payload, status, field):
    order_id = place(api, body(cart, 1, 0, 0)).json["result"]["orders"][0]["id"]
    answer = api("merchant_a").post(f"/api/v1/order/{order_id}/change-price", json=payload)
    assert answer.status_code == status and field in answer.json["errors"]


def test_price_of_a_paid_or_foreign_order_cannot_change(api, cart, shops):
    result = place(api, body(cart, 1, 0, 1)).json["result"]
    order_b = result["orders"][1]
    assert api("merchant_a").post(f"/api/v1/order/{order_b['id']}/change-price",
                                  json={"payable": "1.00", "reason": "x"}).status_code == 404
    api("OrderOps").post(f"/api/v1/trade/{result['id']}/mark-paid", json={"reason": "paid"})
    order_a = result["orders"][0]
    assert api("merchant_a").post(f"/api/v1/order/{order_a['id']}/change-price",
                                  json={"payable": "1.00", "reason": "x"}).status_code == 409


def test_order_list_pages_by_cursor_newest_first(api, cart, shops):
    for n in range(5):
        place(api, body(cart, 1, 0, 0), key=f"page-{n}")
    admin = api("Admin")
    first = admin.get("/api/v1/order/?q=(page_size:2)").json
    assert len(first["ids"]) == 2 and first["next_cursor"]
    seen = list(first["ids"])
    cursor = first["next_cursor"]
    while cursor:
        page = admin.get(f"/api/v1/order/?q=(page_size:2)&cursor={cursor}").json
        assert page["count"] == first["count"] == 5  # the whole list, on every page
        seen += page["ids"]
        cursor = page["next_cursor"]
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) == 5
    assert admin.get("/api/v1/order/?cursor=not-a-cursor").status_code == 400


def test_cursor_pages_keep_the_shop_filter(api, cart, shops):
    for n in range(3):
        place(api, body(cart, 1, 0, 1), key=f"mixed-{n}")
    merchant = api("merchant_a")
    first = merchant.get("/api/v1/order/?q=(page_size:1)").json
    rest = merchant.get(f"/api/v1/order/?q=(page_size:10)&cursor={first['next_cursor']}").json
    assert {o["shop_id"] for o in first["result"] + rest["result"]} == {shops["A"].id}
    assert len(first["ids"] + rest["ids"]) == 3 and rest["next_cursor"] is None
    assert rest["count"] == first["count"] == 3


def test_payment_splits_orders_per_warehouse_and_shipping_moves_them_on(app, api, cart, shops):
    from models.inventory import StockLedger
    from models.order import ShippingNotice

    second = make_warehouse(shops["A"])
    stock_up(cart["skus"][0], second, 5)  # SKU 0 now in two warehouses of shop A: 5 + 5
    result = place(api, body(cart, 8, 1, 1)).json["result"]
    api("OrderOps").post(f"/api/v1/trade/{result['id']}/mark-paid", json={"reason": "paid"})
    order_a = result["orders"][0]
    notices = ShippingNotice.query.filter_by(order_id=order_a["id"]).order_by(
        ShippingNotice.id).all()
    assert len(notices) == 2
    assert sum(n.payable for n in notices) == Decimal(order_a["payable"])
    assert api("Admin").get(f"/api/v1/order/{order_a['id']}").json["result"]["status"] == \
        "fulfilling"

    for n, notice in enumerate(notices):
        answer = api("merchant_a").post(f"/api/v1/shipping_notice/{notice.id}/ship",
                                        json={"carrier": "SF", "tracking_no": f"SF{n}"})
        assert answer.status_code == 200, answer.json
    shown = api("Admin").get(f"/api/v1/order/{order_a['id']}").json["result"]
    assert shown["status"] == "shipped"
    assert StockLedger.query.filter_by(reason="deduct").count() == 3
    again = api("merchant_a").post(f"/api/v1/shipping_notice/{notices[0].id}/ship",
                                   json={"carrier": "SF", "tracking_no": "x"})
    assert again.status_code == 409

    assert api("Storefront").post(f"/api/v1/order/{order_a['id']}/deliver").status_code == 403
    assert api("OrderOps").post(f"/api/v1/order/{order_a['id']}/deliver").json["result"][
        "status"] == "delivered"
    done = api("Storefront").post(f"/api/v1/order/{order_a['id']}/confirm-receipt")
    assert done.json["result"]["status"] == "completed"
    assert api("Storefront").post(f"/api/v1/order/{order_a['id']}/confirm-receipt") \
        .status_code == 409


def test_delivered_orders_complete_by_themselves_after_auto_confirm_days(app, api, cart):
    from models.order import ShippingNotice

    start = clock.now()
    clock.set_now(start)
    result = place(api, body(cart, 1, 0, 0)).json["result"]
    api("OrderOps").post(f"/api/v1/trade/{result['id']}/mark-paid", json={"reason": "paid"})
    order_id = result["orders"][0]["id"]
    notice = ShippingNotice.query.filter_by(order_id=order_id).one()
    api("merchant_a").post(f"/api/v1/shipping_notice/{notice.id}/ship",
                           json={"carrier": "YTO", "tracking_no": "YT1"})
    api("OrderOps").post(f"/api/v1/order/{order_id}/deliver")
    with acting_as(Actor.system("tick")):
        clock.set_now(start + timedelta(days=app.config["AUTO_CONFIRM_DAYS"], minutes=-1))
        assert order.auto_confirm_delivered() == 0
        clock.set_now(start + timedelta(days=app.config["AUTO_CONFIRM_DAYS"], minutes=1))
        assert order.auto_confirm_delivered() == 1
    db.session.expire_all()
    assert db.session.get(Order, order_id).status == "completed"
