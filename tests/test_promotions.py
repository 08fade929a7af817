"""营销中心 promotions through checkout: the quote and place contract, what a placed order
keeps of its price, usage, budgets and flash-sale units taken race-free and given back
exactly once, coupon codes, batch issues, member levels, and the preview screen."""
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.extensions import db
from app.queue import run_inprocess_jobs
from models.marketing import Coupon, CouponIssue, MemberCoupon, Promotion, PromotionUsage
from models.member import Member, MemberAddress, PointsLedger
from models.order import Order, OrderLine, Trade
from services import clock, finance, marketing, order, points
from services.actor import Actor, acting_as
from tests.conftest import requires_postgres
from tests.factories import (address_body, make_coupon, make_member, make_promotion,
                             promotion_body, refund_through_after_sale, stocked_cart)


@pytest.fixture(autouse=True)
def inprocess(app, monkeypatch):
    """Jobs (batch issues, refunds) run in-process after each commit."""
    monkeypatch.setitem(app.config, "REDIS_URL", None)


@pytest.fixture
def cart(app, shops, users):
    """Two on-sale SKUs of shop A (99.00 each) and one of shop B, 50 in stock; a member."""
    return stocked_cart(shops, stock=50)


def body(cart, *quantities, member=None, address=None, **extra):
    return {"member_id": (member or cart["member"]).id,
            "address_id": (address or cart["address"]).id,
            "lines": [{"sku_id": sku.id, "quantity": q}
                      for sku, q in zip(cart["skus"], quantities) if q], **extra}


def quote(api, payload):
    return api("Storefront").post("/api/v1/checkout/quote", json=payload)


def place(api, payload, key):
    return api("Storefront").post("/api/v1/checkout/place", json=payload,
                                  headers={"Idempotency-Key": key})


def wallet_coupon(coupon, member) -> MemberCoupon:
    with acting_as(Actor.system("test")):
        granted = marketing.claim(coupon.id, member.id)
        db.session.commit()
    return granted


def explained(answer, rule):
    return next(e for e in answer["explanation"] if e["rule"] == rule)


def test_staff_and_merchants_define_promotions_checked_on_save(api, shops, users):
    platform = api("Marketing").post("/api/v1/promotion/", json=promotion_body(None))
    assert platform.status_code == 201 and platform.json["result"]["funded_by"] == "platform"
    own = api("merchant_a").post("/api/v1/promotion/", json=promotion_body(shops["A"]))
    assert own.status_code == 201 and own.json["result"]["funded_by"] == "merchant"
    subsidy = api("merchant_a").post("/api/v1/promotion/",
                                     json=promotion_body(shops["A"], funded_by="platform"))
    assert subsidy.status_code == 422 and "funded_by" in subsidy.json["errors"]
    for bad, field in ((dict(kind="lottery"), "kind"),
                       (dict(rules={"tiers": [{"threshold": "10.00", "amount": "10.00"}]}),
                        "rules"),
                       (dict(kind="multi_buy", rules={"tiers": [{"count": 1,
                                                                 "percent_off": "5"}]}),
                        "rules"),
                       (dict(kind="flash_sale", rules={"prices": {"1": "9.90"}}), "quantity"),
                       (dict(kind="special_price", rules={"prices": {"x": "9.90"}}), "rules"),
                       (dict(scope="category"), "scope_ids"),
                       (dict(ends_at=clock.now().isoformat(),
                             starts_at=clock.now().isoformat()), "ends_at")):
        answer = api("Marketing").post("/api/v1/promotion/", json=promotion_body(None, **bad))
        assert answer.status_code == 422 and field in answer.json["errors"], (bad, answer.json)
    assert api("merchant_b").get(f"/api/v1/promotion/{own.json['id']}").status_code == 404
    zone = api("Marketing").post("/api/v1/promotion_zone/", json={
        "name": "双十一专场", "kind": "event", "spu_ids": [], "banner_url": "/b.png",
        "starts_at": clock.now().isoformat(),
        "ends_at": (clock.now() + timedelta(days=1)).isoformat()})
    assert zone.status_code == 422 and "spu_ids" in zone.json["errors"]


def test_quote_explains_every_rule_and_lines_carry_their_discounts(api, cart, shops):
    member = cart["member"]
    spend = make_promotion(shops["A"], rules={"tiers": [{"threshold": "150.00",
                                                         "amount": "20.00"}]})
    far = make_promotion(shops["A"], rules={"tiers": [{"threshold": "900.00",
                                                       "amount": "90.00"}]})
    elsewhere = make_promotion(shops["B"])                      # B is not in the cart
    coupon = make_coupon(None, kind="fixed", amount="5.00", threshold=None, stackable=True)
    code = wallet_coupon(coupon, member).code
    with acting_as(Actor.system("test")):
        points.earn(member.id, 1000, "gift")
        db.session.commit()
    answer = quote(api, body(cart, 1, 1, coupon_codes=[code], points=300))
    assert answer.status_code == 200, answer.json
    result = answer.json["result"]
    assert result["goods_amount"] == "198.00" and result["payable"] == "170.00"
    assert result["points_used"] == 300
    assert explained(result, f"promotion:{spend.id}") == {
        "rule": f"promotion:{spend.id}", "layer": "shop", "applied": True, "amount": "20.00",
        "reason": "applied"}
    assert explained(result, f"promotion:{far.id}")["reason"] == "threshold_not_met"
    assert not [e for e in result["explanation"] if e["rule"] == f"promotion:{elsewhere.id}"]
    assert explained(result, f"coupon:{coupon.id}")["layer"] == "coupon"
    assert explained(result, "points")["amount"] == "3.00"
    for line in result["lines"]:
        assert sum(Decimal(d["amount"]) for d in line["discounts"]) == Decimal(line["discount"])
        assert set(line["discounts"][0]) == {"rule", "amount"}
    unknown = quote(api, body(cart, 1, coupon_codes=["NOPE"]))
    assert unknown.status_code == 422 and "coupon_codes.0" in unknown.json["errors"]
    bad_points = quote(api, body(cart, 1, points=-1))
    assert bad_points.status_code == 422 and "points" in bad_points.json["errors"]


def test_a_placed_order_keeps_how_its_price_came_about(api, cart, shops):
    member = cart["member"]
    spend = make_promotion(None, rules={"tiers": [{"threshold": "200.00", "amount": "30.00"}]})
    coupon = make_coupon(shops["A"], kind="fixed", amount="10.00", threshold=None)
    code = wallet_coupon(coupon, member).code
    placed = place(api, body(cart, 1, 1, 1, coupon_codes=[code]), "promo-1")
    assert placed.status_code == 201, placed.json
    trade = db.session.get(Trade, placed.json["result"]["id"])
    assert trade.discount_amount == Decimal("40.00") and trade.payable == Decimal("257.00")
    assert {e["rule"] for e in trade.pricing["explanation"]} == {f"promotion:{spend.id}",
                                                                  f"coupon:{coupon.id}"}
    lines = OrderLine.query.all()
    for line in lines:
        assert sum(Decimal(d["amount"]) for d in line.discounts) == line.discount
    assert sum(Decimal(d["amount"]) for line in lines for d in line.discounts
               if d["rule"] == f"promotion:{spend.id}") == Decimal("30.00")
    platform = sum((o.platform_discount for o in trade.orders), Decimal(0))
    assert platform == Decimal("30.00")                         # the coupon is shop A's own
    usage = PromotionUsage.query.all()
    assert {u.order_id for u in usage if u.promotion_id} == {o.id for o in trade.orders}
    assert sum((u.amount for u in usage if u.promotion_id), Decimal(0)) == Decimal("30.00")
    db.session.expire_all()
    assert db.session.get(Promotion, spend.id).spent == Decimal("30.00")
    wallet = MemberCoupon.query.filter_by(code=code).one()
    assert (wallet.status, wallet.trade_id, wallet.amount) == ("locked", trade.id,
                                                              Decimal("10.00"))
    shown = api("Storefront").get(f"/api/v1/trade/{trade.id}").json["result"]
    assert shown["discount_amount"] == "40.00"
    assert shown["pricing"]["explanation"] == trade.pricing["explanation"]
    first = trade.orders[0]
    detail = api("merchant_a").get(f"/api/v1/order/{first.id}").json["result"]
    assert detail["platform_discount"] == f"{first.platform_discount:.2f}"
    assert [d["rule"] for d in detail["line_items"][0]["discounts"]] == \
        [d["rule"] for d in first.lines[0].discounts]
    with acting_as(Actor.system("test")):
        order.mark_paid(trade.id, "cash")
        db.session.commit()
    db.session.expire_all()
    assert MemberCoupon.query.filter_by(code=code).one().status == "used"
    assert db.session.get(Coupon, coupon.id).used == 1
    again = place(api, body(cart, 1, coupon_codes=[code]), "promo-2")
    assert again.status_code == 201        # placed without it: a used coupon takes nothing
    assert explained(again.json["result"], f"coupon:{coupon.id}")["reason"] == "limit_reached"
    assert again.json["result"]["payable"] == "99.00"


def snapshot(member_id, promotion_id):
    db.session.expire_all()
    promotion = db.session.get(Promotion, promotion_id)
    return {"spent": promotion.spent, "sold": promotion.sold, "points": points.balance(member_id),
            "wallet": sorted(w.status for w in MemberCoupon.query.filter_by(member_id=member_id)),
            "open_usage": PromotionUsage.query.filter_by(returned=False).count()}


def test_a_cancelled_trade_gives_everything_back_exactly_once(api, cart, shops):
    member = cart["member"]
    flash = make_promotion(shops["A"], kind="flash_sale",
                           rules={"prices": {str(cart["skus"][0].id): "49.00"}}, quantity=10,
                           budget="1000.00")
    code = wallet_coupon(make_coupon(None, kind="fixed", amount="5.00", threshold=None),
                         member).code
    with acting_as(Actor.system("test")):
        points.earn(member.id, 500, "gift")
        db.session.commit()
    before = snapshot(member.id, flash.id)
    placed = place(api, body(cart, 2, coupon_codes=[code], points=500), "cancel-1")
    assert placed.status_code == 201, placed.json
    trade_id = placed.json["result"]["id"]
    assert db.session.get(Trade, trade_id).orders[0].order_type == "flash_sale"
    taken = snapshot(member.id, flash.id)
    assert taken["sold"] == 2 and taken["spent"] == Decimal("100.00")
    assert taken["points"] == 0 and taken["wallet"] == ["locked"]
    cancelled = api("Storefront").post(f"/api/v1/trade/{trade_id}/cancel",
                                       json={"reason": "changed my mind"})
    assert cancelled.status_code == 200, cancelled.json
    assert snapshot(member.id, flash.id) == before
    with acting_as(Actor.system("test")):           # a second give-back changes nothing
        marketing.give_back_trade(db.session.get(Trade, trade_id))
        db.session.commit()
    assert snapshot(member.id, flash.id) == before
    assert PointsLedger.query.filter_by(reason="return").count() == 1


def test_a_fully_refunded_order_gives_back_its_coupon_and_budget(api, cart, shops):
    member = cart["member"]
    spend = make_promotion(None, rules={"tiers": [{"threshold": "50.00", "amount": "9.00"}]},
                           budget="100.00")
    coupon = make_coupon(None, kind="fixed", amount="10.00", threshold=None, stackable=True)
    code = wallet_coupon(coupon, member).code
    placed = place(api, body(cart, 1, coupon_codes=[code]), "refund-1")
    trade_id = placed.json["result"]["id"]
    with acting_as(Actor.system("test")):
        order.mark_paid(trade_id, "cash")
        db.session.commit()
    run_inprocess_jobs(db.session)
    the_order = db.session.get(Trade, trade_id).orders[0]
    assert the_order.payable == Decimal("80.00")
    assert the_order.platform_discount == Decimal("19.00")      # both are the platform's
    assert finance.balance(finance.MARKETING_EXPENSE) == Decimal("19.00")
    refund_through_after_sale(the_order, "80.00")
    assert finance.balance(finance.MARKETING_EXPENSE) == Decimal("0.00")   # taken back
    db.session.expire_all()
    assert db.session.get(Order, the_order.id).status.value == "closed"
    assert db.session.get(Promotion, spend.id).spent == Decimal("0.00")
    assert MemberCoupon.query.filter_by(code=code).one().status == "granted"
    assert db.session.get(Coupon, coupon.id).used == 0
    with acting_as(Actor.system("test")):
        marketing.give_back_order(db.session.get(Order, the_order.id))
        db.session.commit()
    db.session.expire_all()
    assert db.session.get(Promotion, spend.id).spent == Decimal("0.00")
    assert db.session.get(Coupon, coupon.id).used == 0


def test_a_public_code_is_claimed_and_used_in_one_step(api, cart):
    coupon = make_coupon(None, kind="fixed", amount="8.00", threshold=None, code="WELCOME8",
                         claimable=False)
    answer = quote(api, body(cart, 1, coupon_codes=["welcome8"])).json["result"]
    assert answer["payable"] == "91.00"
    placed = place(api, body(cart, 1, coupon_codes=["WELCOME8"]), "code-1")
    assert placed.status_code == 201, placed.json
    wallet = MemberCoupon.query.filter_by(coupon_id=coupon.id).one()
    assert (wallet.source, wallet.status) == ("code", "locked")
    twice = place(api, body(cart, 1, coupon_codes=["WELCOME8"]), "code-2")
    assert twice.status_code == 409 and twice.json["errors"]["coupon"] == ["member_limit"]
    assert MemberCoupon.query.filter_by(coupon_id=coupon.id).count() == 1


def test_a_sold_out_flash_sale_prices_at_the_list_price_and_a_stale_price_is_409(
        api, cart, shops, monkeypatch):
    flash = make_promotion(shops["A"], kind="flash_sale", quantity=1,
                           rules={"prices": {str(cart["skus"][0].id): "20.00"}},
                           per_member_limit=1)
    first = place(api, body(cart, 1), "flash-1")
    assert first.json["result"]["payable"] == "20.00"
    second = quote(api, body(cart, 1)).json["result"]
    assert second["payable"] == "99.00"
    assert explained(second, f"promotion:{flash.id}")["reason"] == "limit_reached"
    live = marketing.active_promotions

    def stale(shop_ids, moment):                 # read before the last unit went
        found = live(shop_ids, moment)
        for promotion in found:
            promotion.units_left = promotion.per_member_limit = None
        return found

    monkeypatch.setattr(marketing, "active_promotions", stale)
    other = make_member()
    address = MemberAddress(**address_body(other.id))
    db.session.add(address)
    db.session.commit()
    late = place(api, body(cart, 1, member=other, address=address), "flash-2")
    assert late.status_code == 409 and "promotions" in late.json["errors"], late.json
    db.session.expire_all()
    assert db.session.get(Promotion, flash.id).sold == 1
    assert Trade.query.count() == 1


def test_batch_issue_runs_as_a_job_once_per_member(app, api, cart, shops):
    coupon = make_coupon(None, total_quantity=3, claimable=False)
    members = [make_member().id for _ in range(4)]
    answer = api("Marketing").post(f"/api/v1/coupon/{coupon.id}/issue",
                                   json={"member_ids": members + [members[0]]})
    assert answer.status_code == 202, answer.json
    batch = db.session.get(CouponIssue, answer.json["result"]["id"])
    db.session.expire_all()
    assert (batch.status, batch.issued, batch.refused) == ("done", 3, {"sold_out": 1})
    with acting_as(Actor.system("test")):
        batch.status = "queued"
        db.session.commit()
        marketing.run_issue(batch.id)                # the job again: nothing twice
    assert MemberCoupon.query.filter_by(coupon_id=coupon.id).count() == 3
    assert api("Marketing").post(f"/api/v1/coupon/{coupon.id}/issue",
                                 json={"member_ids": []}).status_code == 422
    assert api("merchant_a").post(f"/api/v1/coupon/{coupon.id}/issue",
                                  json={"member_ids": members}).status_code in (403, 404)


def test_levels_follow_growth_and_give_their_benefits(app, api, cart):
    for name, growth, discount, multiplier in (("普通", 0, "0", "1"), ("黄金", 100, "5.00", "2")):
        made = api("Marketing").post("/api/v1/member_level/", json={
            "name": name, "growth_threshold": growth, "discount_percent": discount,
            "points_multiplier": multiplier})
        assert made.status_code == 201, made.json
    bad = api("Marketing").post("/api/v1/member_level/", json={
        "name": "x", "growth_threshold": 5, "discount_percent": "100"})
    assert bad.status_code == 422 and "discount_percent" in bad.json["errors"]
    member = cart["member"]
    db.session.expire_all()
    assert db.session.get(Member, member.id).level.name == "普通"
    placed = place(api, body(cart, 2), "level-1")
    trade_id = placed.json["result"]["id"]
    with acting_as(Actor.system("test")):
        order.mark_paid(trade_id, "cash")
        db.session.commit()
        the_order = db.session.get(Trade, trade_id).orders[0]
        for notice in the_order.notices:
            order.ship_notice(notice.id, "SF", f"SF{notice.id:010d}")
        db.session.commit()
        order.deliver_order(the_order.id)
        order.confirm_receipt(the_order.id)
        db.session.commit()
        run_inprocess_jobs(db.session)
    db.session.expire_all()
    gold = db.session.get(Member, member.id)
    assert gold.growth == 198 and gold.level.name == "黄金"
    assert points.balance(member.id) == 198                  # earned at the old level
    answer = quote(api, body(cart, 1)).json["result"]
    assert answer["payable"] == "94.05" and explained(answer, "level")["amount"] == "4.95"
    assert api("Marketing").delete(f"/api/v1/member_level/{gold.level_id}").status_code == 200
    db.session.expire_all()
    assert db.session.get(Member, member.id).level.name == "普通"     # back to what it reached


def test_the_members_promotion_cap_guards_against_abuse(app, api, cart, shops, monkeypatch):
    monkeypatch.setitem(app.config, "MEMBER_PROMOTION_CAP", 1)
    spend = make_promotion(shops["A"], rules={"tiers": [{"threshold": "50.00",
                                                         "amount": "5.00"}]})
    assert place(api, body(cart, 1), "cap-1").json["result"]["payable"] == "94.00"
    second = quote(api, body(cart, 1)).json["result"]
    assert second["payable"] == "99.00"
    assert explained(second, f"promotion:{spend.id}")["reason"] == "limit_reached"


def test_expired_wallet_coupons_are_marked_by_tick(app, cart):
    coupon = make_coupon(None)
    granted = wallet_coupon(coupon, cart["member"])
    with acting_as(Actor.system("test")):
        with clock.frozen_at(coupon.ends_at + timedelta(seconds=1)):
            assert marketing.expire_coupons() == 1
    db.session.expire_all()
    assert db.session.get(MemberCoupon, granted.id).status == "expired"


def test_the_preview_screen_prices_a_cart_against_the_live_rules(browser, cart, shops):
    spend = make_promotion(shops["A"], rules={"tiers": [{"threshold": "50.00",
                                                         "amount": "5.00"}]})
    screen = browser("Marketing")
    page = screen.get("/pricingpreview/")
    assert page.status_code == 200
    answer = screen.post_form("/pricingpreview/", {
        "member_id": str(cart["member"].id), "lines": f"{cart['skus'][0].id} x 1",
        "coupon_codes": "", "points": "0"}, token_from="/pricingpreview/")
    text = answer.get_data(as_text=True)
    assert answer.status_code == 200 and f"promotion:{spend.id}" in text and "94.00" in text
    assert browser("merchant_a").get("/pricingpreview/").status_code in (302, 403)


@pytest.mark.parametrize("limit", [{"kind": "flash_sale", "quantity": 5},
                                   {"kind": "special_price", "budget": "395.50"}],
                         ids=["flash_sale_units", "budget"])
def test_concurrent_checkouts_never_oversell_a_flash_sale_or_a_budget(app, cart, shops, limit):
    """20 members buy at once what 5 flash-sale units (or a budget of 5 × 79.10) allow:
    exactly 5 orders get the price."""
    requires_postgres(app)
    flash_id = make_promotion(shops["A"], rules={"prices": {str(cart["skus"][0].id): "19.90"}},
                              **limit).id
    buyers = []
    for _ in range(20):
        member = make_member()
        address = MemberAddress(**address_body(member.id))
        db.session.add(address)
        db.session.commit()
        buyers.append((member, address))
    outcomes = _race(app, [body(cart, 1, member=m, address=a) for m, a in buyers])
    db.session.expire_all()
    promotion = db.session.get(Promotion, flash_id)
    at_flash_price = OrderLine.query.filter_by(unit_price=Decimal("99.00"),
                                               payable=Decimal("19.90")).count()
    assert at_flash_price == 5
    assert promotion.sold == 5 if promotion.quantity else promotion.spent == promotion.budget
    assert PromotionUsage.query.filter_by(promotion_id=flash_id).count() == 5
    assert outcomes.count("placed") + outcomes.count("conflict") == 20


def _race(app, bodies):
    barrier = threading.Barrier(len(bodies))
    outcomes, lock = [], threading.Lock()

    def client(n):
        with app.app_context(), acting_as(Actor.system(f"client-{n}")):
            barrier.wait(timeout=10)
            try:
                order.place(bodies[n], f"race-{n}")
                db.session.commit()
                outcome = "placed"
            except marketing.PriceChanged:
                db.session.rollback()
                outcome = "conflict"
            finally:
                db.session.remove()
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_control_read_then_write_units_oversell(app, cart, shops):
    """Reading what is left, then writing it back, lets several clients take the last units:
    the check above (exactly 5) would catch such a version."""
    requires_postgres(app)
    flash_id = make_promotion(shops["A"], kind="flash_sale", quantity=5,
                              rules={"prices": {str(cart["skus"][0].id): "9.90"}}).id
    barrier = threading.Barrier(20)
    taken, lock = [], threading.Lock()

    def client(n):
        with app.app_context():
            barrier.wait(timeout=10)
            sold = db.session.scalar(select(Promotion.sold).where(Promotion.id == flash_id))
            barrier.wait(timeout=10)           # everyone read before anyone writes
            if sold < 5:
                db.session.execute(Promotion.__table__.update()
                                   .where(Promotion.id == flash_id).values(sold=sold + 1))
                db.session.commit()
                with lock:
                    taken.append(n)
            db.session.remove()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(taken) > 5


def test_marketing_panels_match_sql_and_merchants_see_their_shop(api, browser, cart, shops):
    from sqlalchemy import text

    from tests.test_dashboard import panels_on

    spend_a = make_promotion(shops["A"], name="A 满减",
                             rules={"tiers": [{"threshold": "50.00", "amount": "5.00"}]})
    make_promotion(shops["B"], name="B 满减",
                   rules={"tiers": [{"threshold": "50.00", "amount": "7.00"}]})
    coupon = make_coupon(None, name="平台券", kind="fixed", amount="3.00", threshold=None,
                         stackable=True)
    code = wallet_coupon(coupon, cart["member"]).code
    placed = place(api, body(cart, 1, 0, 1, coupon_codes=[code]), "panel-1")
    unpaid = place(api, body(cart, 0, 1), "panel-2")           # not sold: not counted
    assert unpaid.status_code == 201
    with acting_as(Actor.system("test")):
        order.mark_paid(placed.json["result"]["id"], "cash")
        db.session.commit()
    admin = panels_on(browser("Admin").get("/").get_data(as_text=True))
    merchant = panels_on(browser("merchant_a").get("/").get_data(as_text=True))
    gmv = dict(db.session.execute(text(
        "SELECT p.name, SUM(o.payable) FROM promotion_usage u JOIN promotion p "
        "ON p.id = u.promotion_id JOIN \"order\" o ON o.id = u.order_id "
        "WHERE o.paid_at IS NOT NULL AND NOT u.returned GROUP BY p.name")).all())
    assert dict(zip(admin["promotion_gmv"]["labels"], admin["promotion_gmv"]["values"])) == \
        {name: f"{total:.2f}" for name, total in gmv.items()}
    assert merchant["promotion_gmv"]["labels"] == [spend_a.name]
    cost = db.session.execute(text(
        "SELECT SUM(amount) FROM promotion_usage WHERE coupon_id = :c"), {"c": coupon.id}).scalar()
    assert admin["coupon_usage"]["values"] == [f"{cost:.2f}"] == ["3.00"]
    assert sum(Decimal(v) for v in merchant["coupon_usage"]["values"]) < Decimal("3.00")
    assert "members_by_level" in admin and "members_by_level" not in merchant
    assert sum(admin["members_by_level"]["values"]) == Member.query.count()


def test_a_process_keeps_live_promotions_but_never_places_a_stale_one(app, api, cart, shops,
                                                                       monkeypatch):
    """Quotes may use a copy kept for PROMOTION_CACHE_SECONDS; placing re-checks the window,
    the enabled flag and what is left, so a promotion another process ended is refused
    (409) rather than given."""
    from sqlalchemy import text

    monkeypatch.setitem(app.config, "PROMOTION_CACHE_SECONDS", 60)
    spend = make_promotion(shops["A"], rules={"tiers": [{"threshold": "50.00",
                                                         "amount": "5.00"}]})
    assert quote(api, body(cart, 1)).json["result"]["payable"] == "94.00"
    with db.engine.begin() as other:              # another process switches it off
        other.execute(text("UPDATE promotion SET enabled = false WHERE id = :id"),
                      {"id": spend.id})
    assert quote(api, body(cart, 1)).json["result"]["payable"] == "94.00"   # the kept copy
    refused = place(api, body(cart, 1), "stale-1")
    assert refused.status_code == 409 and refused.json["errors"]["promotions"] == [
        f"promotion:{spend.id} limit_reached"]
    assert Trade.query.count() == 0
    assert quote(api, body(cart, 1)).json["result"]["payable"] == "99.00"   # read again
    assert place(api, body(cart, 1), "stale-2").status_code == 201
