"""物流中心: carriers' rate cards, selection rules, stamping shipping notices (estimate when
made, real cost when shipped), the freight report against SQL, the REST resources and their
isolation."""
from datetime import timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import text

from app.extensions import db
from app.queue import run_inprocess_jobs
from models.logistics import Carrier, CarrierRule
from models.member import MemberAddress
from models.order import ShippingNotice, Trade
from services import logistics, order, product
from services.actor import Actor, acting_as
from services.errors import ValidationFailed
from tests.factories import (address_body, make_carrier, make_freight_template, make_member,
                             make_spu, make_warehouse, stock_up)
from tests.isolation import Walk, shop_owned_views

SHANGHAI, XINJIANG, BEIJING = "310000", "650000", "110000"


@pytest.fixture(autouse=True)
def inprocess(app, monkeypatch):
    """Jobs and event handlers run in-process right after each commit."""
    monkeypatch.setitem(app.config, "REDIS_URL", None)


# -- rate cards ----------------------------------------------------------------------------------

def test_carrier_cost_first_kg_each_started_step_and_remote_surcharge(app):
    sf = make_carrier("SF", rates=(("", "12.00", "2.00"), ("650000,540000", "20.00", "8.00")),
                      remote="6.00")
    assert logistics.carrier_cost(sf, SHANGHAI, D("0.300")) == D("12.00")
    assert logistics.carrier_cost(sf, SHANGHAI, D("1")) == D("12.00")
    assert logistics.carrier_cost(sf, SHANGHAI, D("1.001")) == D("14.00")
    assert logistics.carrier_cost(sf, SHANGHAI, D("3.5")) == D("18.00")       # 1 + 3 steps
    assert logistics.carrier_cost(sf, XINJIANG, D("2")) == D("34.00")        # 20 + 8 + remote 6
    assert logistics.carrier_cost(sf, "630000", D("1")) == D("18.00")        # Qinghai: remote


def test_remote_regions_are_a_setting(app, monkeypatch):
    zto = make_carrier("ZTO", rates=(("", "8.00", "1.00"),), remote="5.00")
    monkeypatch.setitem(app.config, "REMOTE_REGIONS", [SHANGHAI])
    assert logistics.carrier_cost(zto, SHANGHAI, D("1")) == D("13.00")
    assert logistics.carrier_cost(zto, XINJIANG, D("1")) == D("8.00")


@pytest.mark.parametrize("province, weight, field", [
    ("31", D("1"), "province_code"), (310000, D("1"), "province_code"),
    ("910000", D("1"), "province_code"), (SHANGHAI, D("-1"), "weight_kg"),
    (SHANGHAI, 1.5, "weight_kg"), (SHANGHAI, D("NaN"), "weight_kg"),
    (SHANGHAI, D("0.0001"), "weight_kg"), (SHANGHAI, True, "weight_kg"),
    (BEIJING, D("1"), "province_code"),             # the card does not serve it
])
def test_carrier_cost_refuses_bad_input(app, province, weight, field):
    carrier = make_carrier(rates=((SHANGHAI, "8.00", "1.00"),))
    with pytest.raises(ValidationFailed) as refused:
        logistics.carrier_cost(carrier, province, weight)
    assert field in refused.value.errors


# -- selection rules -----------------------------------------------------------------------------

def rule(name, priority, **fields):
    made = CarrierRule(name=name, priority=priority, regions=fields.pop("regions", []),
                       enabled=fields.pop("enabled", True), **fields)
    logistics.check_rule(made)
    db.session.add(made)
    db.session.commit()
    return made


def test_rules_by_priority_region_warehouse_weight_and_cod(app, shops):
    sf = make_carrier("SF", rates=(("", "12.00", "2.00"),), supports_cod=True)
    zto = make_carrier("ZTO", rates=(("", "8.00", "1.00"),))
    ems = make_carrier("EMS", rates=(("", "15.00", "1.00"),))
    east = make_warehouse(shops["A"])
    heavy = rule("heavy goes EMS", 10, min_weight_kg=D("20"), carrier_id=ems.id)
    far = rule("Xinjiang by SF", 20, regions=[XINJIANG], carrier_id=sf.id)
    depot = rule("east depot by SF", 30, warehouse_id=east.id, max_weight_kg=D("5"),
                 carrier_id=sf.id)
    cod = rule("cash on delivery", 40, cod=True, carrier_id=sf.id)
    cheapest = rule("otherwise the cheapest", 50)
    assert logistics.choose_carrier(None, SHANGHAI, D("25"), False) == (ems, heavy)
    assert logistics.choose_carrier(None, XINJIANG, D("2"), False) == (sf, far)
    assert logistics.choose_carrier(east.id, SHANGHAI, D("5"), False) == (sf, depot)
    assert logistics.choose_carrier(east.id, SHANGHAI, D("5.001"), False) == (zto, cheapest)
    assert logistics.choose_carrier(None, SHANGHAI, D("1"), True) == (sf, cod)
    assert logistics.choose_carrier(None, SHANGHAI, D("1"), False) == (zto, cheapest)


def test_a_rule_whose_carrier_cannot_serve_falls_through_and_no_rule_means_cheapest(app):
    sf = make_carrier("SF", rates=((SHANGHAI, "12.00", "2.00"),))
    zto = make_carrier("ZTO", rates=(("", "8.00", "1.00"),))
    only_sf = rule("everything by SF", 10, carrier_id=sf.id)
    assert logistics.choose_carrier(None, SHANGHAI, D("1")) == (sf, only_sf)
    assert logistics.choose_carrier(None, BEIJING, D("1")) == (zto, None)     # SF: no Beijing
    zto.enabled = False
    db.session.commit()
    assert logistics.choose_carrier(None, BEIJING, D("1")) == (None, None)
    only_sf.enabled = False
    db.session.commit()
    assert logistics.choose_carrier(None, SHANGHAI, D("1")) == (sf, None)     # cheapest left


def test_rules_are_checked(api):
    staff = api("Logistics")
    unknown = staff.post("/api/v1/carrier_rule/", json={"name": "x", "carrier_id": 987654})
    assert unknown.status_code == 422 and "carrier_id" in unknown.json["errors"]
    bad = staff.post("/api/v1/carrier_rule/", json={"name": "x", "regions": ["12"]})
    assert bad.status_code == 422 and "regions" in bad.json["errors"]
    inverted = staff.post("/api/v1/carrier_rule/", json={
        "name": "x", "min_weight_kg": "5", "max_weight_kg": "1"})
    assert inverted.status_code == 422 and "max_weight_kg" in inverted.json["errors"]


def test_carriers_and_rate_cards_over_rest(api, users):
    staff = api("Logistics")
    made = staff.post("/api/v1/carrier/", json={"code": "SF", "name": "顺丰速运",
                                                "adapter": "sandbox", "supports_cod": True})
    assert made.status_code == 201, made.json
    twice = staff.post("/api/v1/carrier/", json={"code": "sf", "name": "again"})
    assert twice.status_code == 422 and "code" in twice.json["errors"]
    carrier_id = made.json["id"]
    line = {"carrier_id": carrier_id, "regions": [], "first_kg": "1", "first_fee": "12.00",
            "step_kg": "1", "step_fee": "2.00", "remote_surcharge": "6.00"}
    assert staff.post("/api/v1/carrier_rate/", json=line).status_code == 201
    again = staff.post("/api/v1/carrier_rate/", json=line)
    assert again.status_code == 422 and "regions" in again.json["errors"]
    for field, value in (("first_kg", "0"), ("step_fee", "-1"), ("regions", ["65"])):
        bad = staff.post("/api/v1/carrier_rate/", json={**line, "regions": ["650000"],
                                                        field: value})
        assert bad.status_code == 422 and field in bad.json["errors"], field
    assert api("merchant_a").get(f"/api/v1/carrier/{carrier_id}").status_code == 200
    assert api("merchant_a").post("/api/v1/carrier/", json={"code": "X", "name": "X"}) \
        .status_code == 403


# -- stamping shipping notices -------------------------------------------------------------------

def split_cart(shops, province=SHANGHAI):
    """Shop A: SKU 1 (0.6 kg, 99.00) in warehouse 1 only, SKU 2 (1.5 kg, 99.00) in warehouse 2
    only, so an order of both makes two shipping notices; a buyer in `province`."""
    spu = make_spu(shops["A"], with_skus=True)
    with acting_as(Actor.system("test")):
        product.submit_spu(spu.id)
        product.approve_spu(spu.id)
        db.session.commit()
    first, second = spu.skus[0], spu.skus[1]
    first.weight_kg, second.weight_kg = D("0.600"), D("1.500")
    db.session.commit()
    one, two = make_warehouse(shops["A"]), make_warehouse(shops["A"])
    stock_up(first, one, 10)
    stock_up(second, two, 10)
    buyer = make_member()
    address = MemberAddress(**address_body(buyer.id, province_code=province))
    db.session.add(address)
    db.session.commit()
    return {"skus": [first, second], "warehouses": [one, two], "member": buyer,
            "address": address}


def paid_trade(cart, quantities=(1, 2), key="paid-1") -> Trade:
    with acting_as(Actor.system("test")):
        placed = order.place({"member_id": cart["member"].id, "address_id": cart["address"].id,
                              "lines": [{"sku_id": sku.id, "quantity": q}
                                        for sku, q in zip(cart["skus"], quantities) if q]}, key)
        db.session.commit()
        order.mark_paid(placed.trade_id, "cash")
        db.session.commit()
        run_inprocess_jobs(db.session)
    db.session.expire_all()
    return db.session.get(Trade, placed.trade_id)


def test_new_notices_are_stamped_with_province_weight_freight_share_carrier_and_estimate(
        app, shops):
    zto = make_carrier("ZTO", rates=(("", "8.00", "1.00"),))
    make_carrier("SF", rates=(("", "12.00", "2.00"),))
    make_freight_template(shops["A"], rules=(("", "1", "10.01", "1", "0.00"),))
    cart = split_cart(shops)
    trade = paid_trade(cart)
    notices = trade.orders[0].notices
    assert len(notices) == 2
    assert [n.province_code for n in notices] == [SHANGHAI, SHANGHAI]
    assert [n.weight_kg for n in notices] == [D("0.600"), D("3.000")]
    assert [n.payable for n in notices] == [D("99.00"), D("198.00")]
    assert [n.freight for n in notices] == [D("3.34"), D("6.67")]    # 10.01 by payable
    assert sum(n.freight for n in notices) == trade.orders[0].freight == D("10.01")
    assert [n.carrier_id for n in notices] == [zto.id, zto.id]       # the cheapest
    assert [n.cost for n in notices] == [D("8.00"), D("10.00")]      # 3 kg: 8 + 2 × 1
    before = [(n.carrier_id, n.weight_kg, n.freight, n.cost) for n in notices]
    with acting_as(Actor.job("test")):
        for n in notices:
            logistics.stamp_notice(n.id)                            # again: nothing changes
        db.session.commit()
    db.session.expire_all()
    assert [(n.carrier_id, n.weight_kg, n.freight, n.cost)
            for n in db.session.get(Trade, trade.id).orders[0].notices] == before


def test_a_carrier_already_set_is_kept_and_rules_choose_otherwise(app, shops):
    zto = make_carrier("ZTO", rates=(("", "8.00", "1.00"),))
    sf = make_carrier("SF", rates=(("", "12.00", "2.00"),))
    cart = split_cart(shops)
    rule("second warehouse by SF", 10, warehouse_id=cart["warehouses"][1].id, carrier_id=sf.id)
    trade = paid_trade(cart)
    first, second = trade.orders[0].notices
    assert (first.carrier_id, second.carrier_id) == (zto.id, sf.id)
    assert second.cost == D("16.00")                                   # 3 kg by SF
    second.carrier_id = zto.id                                         # the warehouse's choice
    db.session.commit()
    with acting_as(Actor.job("test")):
        logistics.stamp_notice(second.id)
        db.session.commit()
    db.session.expire_all()
    second = db.session.get(ShippingNotice, second.id)
    assert (second.carrier_id, second.cost) == (zto.id, D("10.00"))


def test_shipping_records_the_real_cost_at_the_packed_weight(app, shops):
    zto = make_carrier("ZTO", rates=(("", "8.00", "1.00"),))
    sf = make_carrier("SF", rates=(("", "12.00", "2.00"),), name="顺丰")
    make_freight_template(shops["A"])
    cart = split_cart(shops)
    trade = paid_trade(cart)
    first, second = trade.orders[0].notices
    first.weight_kg = D("2.400")                                       # weighed when packed
    db.session.commit()
    with acting_as(Actor.system("test")):
        order.ship_notice(first.id, "SF Express", "SF0000000001")      # its code, first word
        order.ship_notice(second.id, "Someone else", "X0001")          # unknown: stamped one
        db.session.commit()
        run_inprocess_jobs(db.session)
    db.session.expire_all()
    first, second = (db.session.get(ShippingNotice, n) for n in (first.id, second.id))
    assert (first.carrier_id, first.cost) == (sf.id, D("16.00"))       # 12 + 2 × 2
    assert (second.carrier_id, second.cost) == (zto.id, D("10.00"))
    assert first.freight + second.freight == D("12.00")
    with acting_as(Actor.job("test")):
        logistics.cost_shipped(first.id)                               # again: the same
        db.session.commit()
    db.session.expire_all()
    assert db.session.get(ShippingNotice, first.id).cost == D("16.00")


# -- the report ----------------------------------------------------------------------------------

def shipped_data(shops):
    """Two shipped notices of shop A (SF, ZTO), one of shop B (ZTO, Xinjiang)."""
    make_carrier("ZTO", rates=(("", "8.00", "1.00"),), remote="5.00")
    make_carrier("SF", rates=(("", "12.00", "2.00"),))
    make_freight_template(shops["A"])
    make_freight_template(shops["B"], rules=(("", "1", "20.00", "1", "3.00"),))
    trades = [paid_trade(split_cart(shops), key="r-1")]
    cart_b = split_cart({"A": shops["B"]}, province=XINJIANG)
    trades.append(paid_trade(cart_b, quantities=(1, 0), key="r-2"))
    with acting_as(Actor.system("test")):
        first, second = trades[0].orders[0].notices
        order.ship_notice(first.id, "SF", "SF1")
        order.ship_notice(second.id, "ZTO", "ZTO1")
        order.ship_notice(trades[1].orders[0].notices[0].id, "ZTO", "ZTO2")
        db.session.commit()
        run_inprocess_jobs(db.session)
    db.session.expire_all()


def sql_sums(group: str, shop_id=None) -> dict:
    where = "status = 'shipped'" + (f" AND shop_id = {int(shop_id)}" if shop_id else "")
    rows = db.session.execute(text(
        f"SELECT {group}, count(*), sum(freight), sum(cost) FROM shipping_notice "
        f"WHERE {where} GROUP BY {group}")).all()
    return {key: (n, f"{D(paid):.2f}", f"{D(cost):.2f}") for key, n, paid, cost in rows}


def test_the_report_matches_sql_and_merchants_see_their_own(api, shops, users, browser):
    shipped_data(shops)
    staff = api("Logistics").get("/api/v1/freight_report/")
    assert staff.status_code == 200, staff.json
    result = staff.json["result"]
    carriers = {row["code"]: row for row in result["carriers"]}
    by_sql = sql_sums("carrier_id")
    ids = {c.code: c.id for c in Carrier.query}
    for code, row in carriers.items():
        assert (row["shipments"], row["freight"], row["cost"]) == by_sql[ids[code]]
        assert D(row["difference"]) == D(row["freight"]) - D(row["cost"])
    # A: 8 + 2 × 2 = 12 over 99/198 → 4.00 / 8.00; SF 0.6 kg 12.00, ZTO 3 kg 10.00
    # B: 20.00 to Xinjiang; ZTO 0.6 kg 8 + remote 5
    assert (carriers["SF"]["freight"], carriers["SF"]["cost"]) == ("4.00", "12.00")
    assert (carriers["ZTO"]["freight"], carriers["ZTO"]["cost"], carriers["ZTO"]["shipments"]) \
        == ("28.00", "23.00", 2)
    provinces = {row["province_code"]: row for row in result["provinces"]}
    assert {k: (v["shipments"], v["freight"], v["cost"]) for k, v in provinces.items()} == \
        sql_sums("province_code")
    assert result["total"]["difference"] == "-3.00"
    mine = api("merchant_a").get("/api/v1/freight_report/").json["result"]
    assert {k: (v["shipments"], v["freight"], v["cost"]) for k, v in
            ((r["province_code"], r) for r in mine["provinces"])} == \
        sql_sums("province_code", shops["A"].id)
    assert mine["total"]["freight"] == "12.00" and mine["total"]["cost"] == "22.00"
    from services import dashboard
    with acting_as(Actor(name="merchant_a", shop_id=shops["A"].id, authenticated=True)):
        panel = dashboard.freight_paid_vs_cost()
    assert dict(zip(panel["keys"], panel["values"])) == {
        "ZTO:freight": "8.00", "ZTO:cost": "10.00", "SF:freight": "4.00", "SF:cost": "12.00"}
    page = browser("merchant_a").get("/").get_data(as_text=True)
    assert 'data-panel="freight_paid_vs_cost"' in page


def test_the_report_period_and_bad_dates(api, shops, users):
    shipped_data(shops)
    staff = api("Logistics")
    tomorrow = (ShippingNotice.query.first().shipped_at + timedelta(days=2)).date()
    later = staff.get(f"/api/v1/freight_report/?from={tomorrow}&to={tomorrow}").json["result"]
    assert later["total"]["shipments"] == 0
    for query, field in (("from=2026-13-01", "from"), ("to=yesterday", "to"),
                         ("from=2026-02-01&to=2026-01-01", "from"),
                         ("from=2020-01-01&to=2026-01-01", "from")):
        answer = staff.get(f"/api/v1/freight_report/?{query}")
        assert answer.status_code == 422 and field in answer.json["errors"], query


def test_logistics_views_are_isolated(app, shops, users):
    from tests.test_isolation import probe_user
    from views.logistics import (FreightRuleApi, FreightRuleView, FreightTemplateApi,
                                 FreightTemplateView)

    views = shop_owned_views(app.appbuilder, only={FreightRuleApi, FreightRuleView,
                                                   FreightTemplateApi, FreightTemplateView})
    assert len(views) == 4
    assert Walk(app, probe_user(app, shops), shops["A"], shops["B"]).run(views) == []


def test_the_screens_list_and_add(browser, shops):
    staff = browser("Logistics")
    for url in ("/carrierview/list/", "/carrierview/add", "/carrierrateview/list/",
                "/carrierrateview/add", "/carrierruleview/list/", "/carrierruleview/add",
                "/freighttemplateview/list/", "/freighttemplateview/add",
                "/freightruleview/list/", "/freightruleview/add"):
        assert staff.get(url).status_code == 200, url
    added = staff.post_form("/carrierview/add", {"code": "YTO", "name": "圆通速递",
                                                 "adapter": "sandbox", "enabled": "y"})
    assert added.status_code == 302 and Carrier.query.filter_by(code="YTO").count() == 1
    merchant = browser("merchant_a")
    made = merchant.post_form("/freighttemplateview/add", {
        "shop": str(shops["A"].id), "name": "By piece", "basis": "piece",
        "remote_regions": "650000\n540000",
        "remote_surcharge": "10.00", "enabled": "y"})
    assert made.status_code == 302
    from models.logistics import FreightTemplate

    template = FreightTemplate.query.filter_by(name="By piece").one()
    assert (template.shop_id, template.is_default, template.remote_regions) == \
        (shops["A"].id, True, ["650000", "540000"])
    line = merchant.post_form("/freightruleview/add", {
        "template": str(template.id), "regions": "", "first_units": "1", "first_fee": "8.00",
        "step_units": "1", "step_fee": "2.00"})
    assert line.status_code == 302
    db.session.expire_all()
    assert [(r.shop_id, r.first_fee) for r in
            FreightTemplate.query.filter_by(name="By piece").one().rules] == \
        [(shops["A"].id, D("8.00"))]


# -- units finer than the columns keep, parcels that cannot be priced, extreme dates --------------

def test_rate_units_finer_than_a_gram_are_refused_from_the_api_the_service_and_the_screen(
        api, browser):
    from models.logistics import CarrierRate

    carrier = make_carrier("FINE", rates=())
    for field, value in (("step_kg", D("0.0001")), ("first_kg", D("1.0005")),
                         ("step_kg", D("0")), ("first_kg", D("100000.001"))):
        fields = {"first_kg": D("1"), "step_kg": D("1"), field: value}
        rate = CarrierRate(carrier_id=carrier.id, regions=[], first_fee=D("8.00"),
                           step_fee=D("1.00"), **fields)
        with pytest.raises(ValidationFailed) as refused:
            logistics.check_rate(rate)
        assert field in refused.value.errors, (field, value)
        db.session.rollback()
    line = {"carrier_id": carrier.id, "regions": [], "first_kg": "1", "first_fee": "8.00",
            "step_kg": "0.0001", "step_fee": "1.00"}
    answer = api("Logistics").post("/api/v1/carrier_rate/", json=line)
    assert answer.status_code == 422 and "step_kg" in answer.json["errors"]
    screen = browser("Logistics").post_form("/carrierrateview/add", {
        "carrier": str(carrier.id), "regions": "", "first_kg": "1", "first_fee": "8.00",
        "step_kg": "0.0001", "step_fee": "1.00", "remote_surcharge": "0.00"})
    assert screen.status_code in (200, 302)                         # the form's error
    db.session.expire_all()
    assert CarrierRate.query.filter_by(carrier_id=carrier.id).count() == 0


def test_a_step_of_zero_is_refused_rather_than_divided_by(app):
    from models.logistics import CarrierRate

    with pytest.raises(ValidationFailed) as refused:
        logistics._steps(D("3"), D("1"), D("0.000"), "step_kg")
    assert "step_kg" in refused.value.errors
    assert logistics._steps(D("1"), D("1"), D("0.000")) == 0        # within the first units
    broken = Carrier(code="BROKEN", name="Broken", enabled=True, rates=[CarrierRate(
        regions=[], first_kg=D("1"), first_fee=D("8.00"), step_kg=D("0.000"),
        step_fee=D("1.00"), remote_surcharge=D("0.00"))])
    with pytest.raises(ValidationFailed) as refused:
        logistics.carrier_cost(broken, SHANGHAI, D("2"))
    assert "step_kg" in refused.value.errors
    assert logistics._estimate(broken, SHANGHAI, D("2")) is None
    db.session.rollback()


def test_a_notice_too_heavy_to_price_is_left_unweighed_and_its_handlers_finish(app, shops):
    from models.events import EventDelivery, OutboxEvent

    make_carrier("ZTO", rates=(("", "8.00", "1.00"),))
    cart = split_cart(shops)
    cart["skus"][0].weight_kg = D("150000.000")                    # over MAX_KG in one piece
    db.session.commit()
    trade = paid_trade(cart, quantities=(1, 1))
    heavy, light = trade.orders[0].notices
    assert (heavy.weight_kg, heavy.carrier_id, heavy.cost) == (None, None, None)
    assert heavy.freight is not None and heavy.province_code == SHANGHAI
    assert light.weight_kg == D("1.500") and light.cost == D("9.00")
    with acting_as(Actor.system("test")):
        order.ship_notice(heavy.id, "ZTO", "ZTO0001")
        db.session.commit()
        run_inprocess_jobs(db.session)
    db.session.expire_all()
    heavy = db.session.get(ShippingNotice, heavy.id)
    assert (heavy.status, heavy.weight_kg, heavy.cost) == ("shipped", None, None)
    handled = db.session.query(EventDelivery.status).join(
        OutboxEvent, OutboxEvent.id == EventDelivery.event_id).filter(
        EventDelivery.subscriber.in_(("logistics.stamp_notice", "logistics.cost_shipped"))).all()
    assert handled and {status for status, in handled} == {"done"}


@pytest.mark.parametrize("query, field", [
    ("from=9999-12-01&to=9999-12-31", "to"), ("from=0001-01-01", "from"),
    ("from=0001-01-01&to=0001-01-02", "to"), ("from=1999-12-31&to=2000-01-05", "from"),
    ("to=9999-01-01", "to"),
])
def test_report_dates_out_of_range_are_refused(api, query, field):
    answer = api("Logistics").get(f"/api/v1/freight_report/?{query}")
    assert answer.status_code == 422 and field in answer.json["errors"], answer.json


def test_report_dates_at_the_edges_answer(api):
    staff = api("Logistics")
    for query in ("from=9998-12-01&to=9998-12-31", "from=2000-01-01&to=2000-01-31"):
        answer = staff.get(f"/api/v1/freight_report/?{query}")
        assert answer.status_code == 200 and answer.json["result"]["total"]["shipments"] == 0
