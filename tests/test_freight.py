"""运费模板: each rule of a freight template, and checkout charging them (waived by free-shipping
coupons and the level's threshold, allocated over orders exactly, kept per process)."""
from decimal import Decimal as D

import pytest
from sqlalchemy import event

from app.extensions import db
from models.logistics import FreightTemplate
from models.member import Member, MemberAddress, MemberLevel
from models.order import Order, Trade
from models.product import Spu
from services import logistics, order
from services.actor import Actor, acting_as
from services.errors import ValidationFailed
from tests.factories import (address_body, make_coupon, make_freight_template, make_member,
                             refund_through_after_sale, stocked_cart)

SHANGHAI, XINJIANG, BEIJING = "310000", "650000", "110000"


@pytest.fixture(autouse=True)
def inprocess(app, monkeypatch):
    """Jobs and event handlers run in-process right after each commit."""
    monkeypatch.setitem(app.config, "REDIS_URL", None)


def line(shop, quantity=1, payable="10.00", weight=None, template=None):
    return logistics.FreightLine(shop.id, template.id if template else None,
                                 D(weight) if weight is not None else None, quantity, D(payable))


def freight(lines, province=SHANGHAI):
    logistics.forget_templates()
    return logistics.freight_for(lines, province)


# -- each rule ---------------------------------------------------------------------------------

def test_by_piece_first_piece_then_each_further(shops):
    make_freight_template(shops["A"], rules=(("", "1", "8.00", "1", "2.00"),))
    assert freight([line(shops["A"], 1)]) == D("8.00")
    assert freight([line(shops["A"], 3)]) == D("12.00")            # 8 + 2 × 2
    assert freight([line(shops["A"], 2), line(shops["A"], 2)]) == D("14.00")   # one charge


def test_by_weight_with_each_started_step_charged_whole(shops):
    make_freight_template(shops["A"], basis="weight", rules=(("", "1", "10.00", "0.5", "3.00"),))
    assert freight([line(shops["A"], 1, weight="0.800")]) == D("10.00")
    assert freight([line(shops["A"], 1, weight="1.000")]) == D("10.00")
    assert freight([line(shops["A"], 1, weight="1.001")]) == D("13.00")     # a started step
    assert freight([line(shops["A"], 2, weight="0.750")]) == D("13.00")     # 1.5 kg
    assert freight([line(shops["A"], 3, weight="0.700")]) == D("19.00")     # 2.1 kg: 3 steps
    assert freight([line(shops["A"], 1, weight=None)]) == D("10.00")        # unweighed: first


def test_region_lines_and_the_default_line(shops):
    make_freight_template(shops["A"], rules=(("", "1", "8.00", "1", "2.00"),
                                             ("650000,540000", "1", "20.00", "1", "10.00")))
    assert freight([line(shops["A"], 2)], SHANGHAI) == D("10.00")
    assert freight([line(shops["A"], 2)], XINJIANG) == D("30.00")


def test_a_province_no_line_covers_is_not_delivered_to(shops):
    make_freight_template(shops["A"], rules=(("310000", "1", "8.00", "1", "2.00"),))
    assert freight([line(shops["A"])], SHANGHAI) == D("8.00")
    with pytest.raises(ValidationFailed) as refused:
        freight([line(shops["A"])], BEIJING)
    assert "address_id" in refused.value.errors


def test_free_over_an_amount_on_what_the_lines_pay(shops):
    make_freight_template(shops["A"], free_over_amount=D("99.00"))
    assert freight([line(shops["A"], 1, payable="98.99")]) == D("8.00")
    assert freight([line(shops["A"], 1, payable="50.00"),
                    line(shops["A"], 1, payable="49.00")]) == D("0.00")


def test_free_over_a_number_of_pieces(shops):
    make_freight_template(shops["A"], free_over_pieces=3)
    assert freight([line(shops["A"], 2)]) == D("10.00")
    assert freight([line(shops["A"], 3)]) == D("0.00")


def test_remote_surcharge_unless_free(shops):
    make_freight_template(shops["A"], remote_regions=[XINJIANG], remote_surcharge=D("15.00"),
                          free_over_amount=D("200.00"))
    assert freight([line(shops["A"])], SHANGHAI) == D("8.00")
    assert freight([line(shops["A"])], XINJIANG) == D("23.00")
    assert freight([line(shops["A"], payable="200.00")], XINJIANG) == D("0.00")


def test_two_templates_in_one_order_are_each_charged_once(shops):
    default = make_freight_template(shops["A"], rules=(("", "1", "8.00", "1", "2.00"),))
    heavy = make_freight_template(shops["A"], basis="weight",
                                  rules=(("", "1", "12.00", "1", "5.00"),))
    assert default.is_default and not heavy.is_default
    lines = [line(shops["A"], 2), line(shops["A"], 1, weight="2.500", template=heavy),
             line(shops["A"], 1, template=default)]
    charges = logistics.charges(lines, SHANGHAI)
    assert [(c.template.id, c.pieces, c.freight) for c in charges] == [
        (default.id, 3, D("12.00")), (heavy.id, 1, D("22.00"))]
    assert freight(lines) == D("34.00")


def test_no_template_means_no_freight(shops):
    make_freight_template(shops["A"])
    assert freight([line(shops["B"], 5)]) == D("0.00")
    assert logistics.freight_by_shop([line(shops["A"]), line(shops["B"])], SHANGHAI) == {
        shops["A"].id: D("8.00"), shops["B"].id: D("0.00")}


def test_a_disabled_or_foreign_template_falls_back_to_the_default(shops):
    default = make_freight_template(shops["A"])
    other = make_freight_template(shops["B"], rules=(("", "1", "50.00", "1", "1.00"),))
    assert freight([line(shops["A"], template=other)]) == D("8.00")
    spare = make_freight_template(shops["A"], rules=(("", "1", "30.00", "1", "1.00"),))
    spare.enabled = False
    db.session.commit()
    assert freight([line(shops["A"], template=spare)]) == D("8.00")
    assert default.is_default


def test_exactly_one_default_per_shop(api, shops):
    merchant = api("merchant_a")
    first = merchant.post("/api/v1/freight_template/", json={"name": "Standard",
                                                            "basis": "piece"})
    assert first.status_code == 201, first.json
    assert first.json["result"]["is_default"] is True and \
        first.json["result"]["shop_id"] == shops["A"].id
    second = merchant.post("/api/v1/freight_template/", json={"name": "Bulky", "basis": "weight",
                                                             "is_default": True})
    assert second.status_code == 201
    db.session.expire_all()
    defaults = FreightTemplate.query.filter_by(shop_id=shops["A"].id, is_default=True).all()
    assert [t.id for t in defaults] == [second.json["id"]]
    refused = merchant.delete(f"/api/v1/freight_template/{second.json['id']}")
    assert refused.status_code == 409 and "is_default" in refused.json["errors"]
    assert merchant.put(f"/api/v1/freight_template/{first.json['id']}",
                        json={"is_default": True}).status_code == 200
    assert merchant.delete(f"/api/v1/freight_template/{second.json['id']}").status_code == 200
    bad = merchant.post("/api/v1/freight_template/", json={
        "name": "X", "basis": "volume", "remote_regions": ["65"], "free_over_pieces": 0})
    assert bad.status_code == 422
    assert {"basis", "remote_regions", "free_over_pieces"} <= set(bad.json["errors"])


def test_template_lines_are_checked_and_belong_to_the_template_shop(api, shops):
    template = make_freight_template(shops["A"], rules=(("", "1", "8.00", "1", "2.00"),))
    logistics_staff = api("Logistics")
    clash = logistics_staff.post("/api/v1/freight_rule/", json={
        "template_id": template.id, "regions": [], "first_units": "1", "first_fee": "9.00",
        "step_units": "1", "step_fee": "1.00"})
    assert clash.status_code == 422 and "regions" in clash.json["errors"]
    half = logistics_staff.post("/api/v1/freight_rule/", json={
        "template_id": template.id, "regions": [XINJIANG], "first_units": "1.5",
        "first_fee": "9.00", "step_units": "1", "step_fee": "1.00"})
    assert half.status_code == 422 and "first_units" in half.json["errors"]   # whole pieces
    made = logistics_staff.post("/api/v1/freight_rule/", json={
        "template_id": template.id, "regions": [XINJIANG], "first_units": "1",
        "first_fee": "20.00", "step_units": "1", "step_fee": "5.00"})
    assert made.status_code == 201 and made.json["result"]["shop_id"] == shops["A"].id
    other = api("merchant_b").post("/api/v1/freight_rule/", json={
        "template_id": template.id, "regions": [BEIJING], "first_units": "1",
        "first_fee": "1.00", "step_units": "1", "step_fee": "1.00"})
    assert other.status_code == 422 and "template_id" in other.json["errors"]


def test_the_quote_helper_answers_per_template(api, shops):
    cart = stocked_cart(shops)
    sku_a, sku_b = cart["skus"][0], cart["skus"][2]
    heavy = make_freight_template(shops["A"], basis="weight",
                                  rules=(("", "1", "12.00", "1", "5.00"),))
    make_freight_template(shops["A"], is_default=True)
    sku_a.weight_kg = D("1.200")
    db.session.commit()
    merchant = api("merchant_a")
    answer = merchant.post("/api/v1/freight_template/quote", json={
        "province_code": SHANGHAI, "lines": [{"sku_id": sku_a.id, "quantity": 2}]})
    assert answer.status_code == 200, answer.json
    result = answer.json["result"]
    assert result["freight"] == "10.00" and result["templates"][0]["pieces"] == 2
    db.session.get(Spu, sku_a.spu_id).freight_template_id = heavy.id
    db.session.commit()
    result = merchant.post("/api/v1/freight_template/quote", json={
        "province_code": SHANGHAI, "lines": [{"sku_id": sku_a.id, "quantity": 2}]}).json["result"]
    assert (result["templates"][0]["template_id"], result["templates"][0]["weight_kg"],
            result["freight"]) == (heavy.id, "2.400", "22.00")
    foreign = merchant.post("/api/v1/freight_template/quote", json={
        "province_code": SHANGHAI, "lines": [{"sku_id": sku_b.id, "quantity": 1}]})
    assert foreign.status_code == 422 and "lines.0.sku_id" in foreign.json["errors"]
    bad = merchant.post("/api/v1/freight_template/quote", json={
        "province_code": "31", "lines": [{"sku_id": sku_a.id, "quantity": 1}]})
    assert bad.status_code == 422 and "province_code" in bad.json["errors"]


# -- checkout ------------------------------------------------------------------------------------

@pytest.fixture
def cart(app, shops, users):
    return stocked_cart(shops, stock=50)


def body(cart, *quantities, **extra):
    return {"member_id": cart["member"].id, "address_id": cart["address"].id,
            "lines": [{"sku_id": sku.id, "quantity": q}
                      for sku, q in zip(cart["skus"], quantities) if q], **extra}


def quote(api, payload):
    return api("Storefront").post("/api/v1/checkout/quote", json=payload)


def place(api, payload, key):
    return api("Storefront").post("/api/v1/checkout/place", json=payload,
                                  headers={"Idempotency-Key": key})


def test_checkout_charges_each_shop_its_templates(api, cart, shops):
    make_freight_template(shops["A"])                               # 8 + 2 per further piece
    make_freight_template(shops["B"], rules=(("", "1", "6.00", "1", "1.00"),))
    result = quote(api, body(cart, 2, 1, 1)).json["result"]
    assert (result["goods_amount"], result["freight"], result["freight_before_waiver"],
            result["payable"]) == ("396.00", "18.00", "18.00", "414.00")
    placed = place(api, body(cart, 2, 1, 1), "freight-1")
    assert placed.status_code == 201, placed.json
    trade = db.session.get(Trade, placed.json["result"]["id"])
    assert (trade.freight, trade.payable) == (D("18.00"), D("414.00"))
    assert [(o.shop_id, o.freight, o.payable) for o in trade.orders] == [
        (shops["A"].id, D("12.00"), D("309.00")), (shops["B"].id, D("6.00"), D("105.00"))]
    assert sum(o.payable for o in trade.orders) == trade.payable


def test_the_buyers_province_prices_the_freight(api, cart, shops):
    make_freight_template(shops["A"], remote_regions=[XINJIANG], remote_surcharge=D("15.00"),
                          rules=(("", "1", "8.00", "1", "2.00"),
                                 (XINJIANG, "1", "20.00", "1", "10.00")))
    far = MemberAddress(**address_body(cart["member"].id, province_code=XINJIANG,
                                       city_code="650100", district_code="650102"))
    db.session.add(far)
    db.session.commit()
    result = quote(api, {**body(cart, 1), "address_id": far.id}).json["result"]
    assert result["freight"] == "35.00" and result["payable"] == "134.00"


def test_a_platform_free_shipping_coupon_waives_every_shop(api, cart, shops):
    make_freight_template(shops["A"])
    make_freight_template(shops["B"], rules=(("", "1", "6.00", "1", "1.00"),))
    make_coupon(None, kind="free_shipping", amount=None, threshold=None, code="SHIPFREE",
                stackable=True)
    result = quote(api, body(cart, 1, 0, 1, coupon_codes=["SHIPFREE"])).json["result"]
    assert (result["freight"], result["freight_before_waiver"], result["payable"]) == \
        ("0.00", "14.00", "198.00")
    placed = place(api, body(cart, 1, 0, 1, coupon_codes=["SHIPFREE"]), "free-1")
    trade = db.session.get(Trade, placed.json["result"]["id"])
    assert trade.freight == 0 and [o.freight for o in trade.orders] == [0, 0]
    assert trade.pricing["freight_waived"] == "14.00"


def test_a_shop_free_shipping_coupon_waives_only_that_shop(api, cart, shops):
    make_freight_template(shops["A"])
    make_freight_template(shops["B"], rules=(("", "1", "6.00", "1", "1.00"),))
    make_coupon(shops["B"], kind="free_shipping", amount=None, threshold=None, code="BFREE",
                stackable=True)
    result = quote(api, body(cart, 1, 0, 1, coupon_codes=["BFREE"])).json["result"]
    assert (result["freight"], result["freight_before_waiver"], result["payable"]) == \
        ("8.00", "14.00", "206.00")
    placed = place(api, body(cart, 1, 0, 1, coupon_codes=["BFREE"]), "free-2")
    trade = db.session.get(Trade, placed.json["result"]["id"])
    assert [(o.shop_id, o.freight) for o in trade.orders] == [
        (shops["A"].id, D("8.00")), (shops["B"].id, D("0.00"))]
    assert trade.payable == D("206.00") == sum(o.payable for o in trade.orders)


def test_the_levels_threshold_waives_freight(api, cart, shops):
    make_freight_template(shops["A"])
    gold = MemberLevel(name="Gold", growth_threshold=0, discount_percent=D("0"),
                       points_multiplier=D("1"), free_shipping_threshold=D("150.00"))
    db.session.add(gold)
    db.session.flush()
    db.session.get(Member, cart["member"].id).level_id = gold.id
    db.session.commit()
    assert quote(api, body(cart, 1)).json["result"]["freight"] == "8.00"
    assert quote(api, body(cart, 2)).json["result"]["freight"] == "0.00"


def test_free_over_amount_counts_what_the_lines_pay_after_discounts(api, cart, shops):
    from tests.factories import make_promotion

    make_freight_template(shops["A"], free_over_amount=D("150.00"))
    assert quote(api, body(cart, 2)).json["result"]["freight"] == "0.00"     # 198.00
    make_promotion(shops["A"], rules={"tiers": [{"threshold": "100.00", "amount": "50.00"}]})
    assert quote(api, body(cart, 2)).json["result"]["freight"] == "10.00"    # 148.00 paid


def test_a_shops_freight_is_allocated_over_its_orders_exactly(api, cart, shops):
    """A pre-sale and a normal order of one shop share its one freight charge."""
    from datetime import timedelta

    from services.clock import business_date

    make_freight_template(shops["A"], rules=(("", "1", "10.01", "1", "0.00"),))
    from tests.factories import make_spu, make_warehouse, stock_up
    from services import product

    presale = make_spu(shops["A"], with_skus=True,
                       presale_ships_on=business_date() + timedelta(days=10))
    with acting_as(Actor.system("test")):
        product.submit_spu(presale.id)
        product.approve_spu(presale.id)
        db.session.commit()
    stock_up(presale.skus[0], make_warehouse(shops["A"]), 5)
    payload = {**body(cart, 1), "lines": [{"sku_id": cart["skus"][0].id, "quantity": 1},
                                          {"sku_id": presale.skus[0].id, "quantity": 1}]}
    placed = place(api, payload, "split-1")
    assert placed.status_code == 201, placed.json
    trade = db.session.get(Trade, placed.json["result"]["id"])
    assert sorted(o.order_type for o in trade.orders) == ["normal", "pre_sale"]
    assert sorted(o.freight for o in trade.orders) == [D("5.00"), D("5.01")]
    assert trade.freight == D("10.01") == sum(o.freight for o in trade.orders)
    assert trade.payable == sum(o.payable for o in trade.orders) == D("208.01")


def test_a_full_refund_of_the_goods_closes_the_order_and_never_exceeds_what_was_paid(
        api, cart, shops):
    from models.finance import JournalLine
    from services import after_sale
    from services.errors import ConflictError

    make_freight_template(shops["A"])
    placed = place(api, body(cart, 1), "refund-1")
    trade = db.session.get(Trade, placed.json["result"]["id"])
    with acting_as(Actor.system("test")):
        order.mark_paid(trade.id, "cash")
        db.session.commit()
    from app.queue import run_inprocess_jobs
    run_inprocess_jobs(db.session)
    the_order = db.session.get(Trade, trade.id).orders[0]
    assert (the_order.freight, the_order.payable) == (D("8.00"), D("107.00"))
    credited = db.session.query(JournalLine).filter(
        JournalLine.shop_id == shops["A"].id, JournalLine.credit > 0).all()
    assert sum(line.credit for line in credited) == D("107.00")     # the shop's part + commission
    with acting_as(Actor.system("test")), pytest.raises(Exception) as over:
        after_sale.request(the_order.lines[0].id, "refund_only", 1, D("107.00"), "Too much")
    assert isinstance(over.value, (ConflictError, ValidationFailed))
    db.session.rollback()
    refund_through_after_sale(db.session.get(Order, the_order.id), "99.00")
    db.session.expire_all()
    assert db.session.get(Order, the_order.id).status == "closed"


def test_changing_an_orders_price_keeps_its_freight(api, cart, shops):
    make_freight_template(shops["A"])
    placed = place(api, body(cart, 1), "price-1")
    order_id = placed.json["result"]["orders"][0]["id"]
    with acting_as(Actor.system("test")):
        changed = order.change_order_price(order_id, D("58.00"), "regular customer")
        db.session.commit()
    assert (changed.freight, changed.payable, changed.discount_amount) == \
        (D("8.00"), D("58.00"), D("49.00"))
    assert sum(line.payable for line in changed.lines) == D("50.00")
    with acting_as(Actor.system("test")), pytest.raises(ValidationFailed):
        order.change_order_price(order_id, D("107.01"), "too much")


def test_templates_are_kept_per_process_and_forgotten_on_change(app, api, cart, shops,
                                                                  monkeypatch):
    """Quotes read the templates once per FREIGHT_CACHE_SECONDS; a change in this process is
    seen at once; a change elsewhere after the kept copy expires."""
    from sqlalchemy import text

    monkeypatch.setitem(app.config, "FREIGHT_CACHE_SECONDS", 60)
    template = make_freight_template(shops["A"])
    seen = []

    def count(conn, cursor, statement, *args):
        if "FROM freight_template LEFT OUTER JOIN freight_rule" in statement:
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        assert quote(api, body(cart, 1)).json["result"]["freight"] == "8.00"
        assert quote(api, body(cart, 1)).json["result"]["freight"] == "8.00"
        assert len(seen) == 1
        with db.engine.begin() as other:               # another process changes a line
            other.execute(text("UPDATE freight_rule SET first_fee = 9 WHERE template_id = :id"),
                          {"id": template.id})
        assert quote(api, body(cart, 1)).json["result"]["freight"] == "8.00"   # the kept copy
        template = db.session.get(FreightTemplate, template.id)
        template.remote_surcharge = D("1.00")          # a change in this process
        db.session.commit()
        assert quote(api, body(cart, 1)).json["result"]["freight"] == "9.00"
        assert len(seen) == 2
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def test_shops_without_templates_pay_no_freight(api, cart):
    result = quote(api, body(cart, 2, 1, 1)).json["result"]
    assert (result["freight"], result["payable"]) == ("0.00", "396.00")


def test_template_units_finer_than_the_column_keeps_are_refused(api, browser, shops):
    from models.logistics import FreightRule

    template = make_freight_template(shops["A"], basis="weight", rules=())
    for field, value in (("step_units", D("0.0001")), ("first_units", D("0.0005")),
                         ("step_units", D("1.2345"))):
        fields = {"first_units": D("1"), "step_units": D("1"), field: value}
        rule = FreightRule(template_id=template.id, regions=[], first_fee=D("8.00"),
                           step_fee=D("1.00"), **fields)
        with acting_as(Actor.system("test")), pytest.raises(ValidationFailed) as refused:
            logistics.check_freight_rule(rule)
        assert field in refused.value.errors, (field, value)
        db.session.rollback()
    screen = browser("merchant_a").post_form("/freightruleview/add", {
        "template": str(template.id), "regions": "", "first_units": "1", "first_fee": "8.00",
        "step_units": "0.0001", "step_fee": "2.00"})
    assert screen.status_code in (200, 302)                         # the form's error
    db.session.expire_all()
    assert FreightRule.query.filter_by(template_id=template.id).count() == 0


def test_a_template_line_with_a_step_of_zero_is_refused_not_divided_by(shops):
    rule = logistics.TemplateRule(frozenset(), D("1"), D("8.00"), D("0.000"), D("1.00"))
    template = logistics.Template(1, shops["A"].id, "Broken", "weight", None, None,
                                  frozenset(), D("0.00"), True, (rule,))
    lines = [line(shops["A"], quantity=3, weight="1.000")]
    with pytest.raises(ValidationFailed) as refused:
        logistics.charge(template, lines, SHANGHAI, "province_code")
    assert "province_code" in refused.value.errors
    light = [line(shops["A"], quantity=1, weight="0.500")]
    assert logistics.charge(template, light, SHANGHAI).freight == D("8.00")
