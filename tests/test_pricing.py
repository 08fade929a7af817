"""The pricing engine on its own (no database): layers in order, the best option of a layer,
the reasons every rule gives, exact allocation over lines, floors, caps and limits."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest

from services.pricing import REASONS, Buyer, Coupon, Level, Line, Promotion, Settings, price

NOW = datetime(2026, 11, 26, 12, tzinfo=timezone.utc)


def line(sku_id, price_text, quantity=1, shop_id=1, spu_id=None, category="/1/2/", brand=5):
    return Line(sku_id, spu_id or 100 + sku_id, shop_id, category, brand, D(price_text), quantity)


def threshold(pid, tiers, shop_id=1, **terms):
    return Promotion(pid, shop_id, "threshold",
                     {"tiers": [{"threshold": t, "amount": a} for t, a in tiers],
                      "repeat": terms.pop("repeat", False)}, **terms)


def entry(result, rule, layer=None):
    found = [e for e in result.explanation if e["rule"] == rule and
             (layer is None or e["layer"] == layer)]
    assert len(found) == 1, (rule, result.explanation)
    return found[0]


def assert_exact(result):
    """Every line's shares sum to its discount, and the lines to the whole."""
    for p in result.lines:
        assert sum((d["amount"] for d in p.discounts), D(0)) == p.discount
        assert p.payable >= p.floor
    applied = sum((D(e["amount"]) for e in result.explanation
                   if e["applied"] and e["layer"] != "freight"), D(0))
    assert applied == result.discount_amount
    assert all(e["reason"] in REASONS for e in result.explanation)


def test_a_plain_cart_is_the_sum_of_its_lines():
    result = price([line(1, "19.90", 3), line(2, "5.00")], Buyer(1), [], [], NOW)
    assert result.payable == D("64.70") and result.discount_amount == 0
    assert result.explanation == []


def test_spend_tiers_take_the_highest_tier_met_and_repeat_when_asked():
    cart = [line(1, "60.00", 2), line(2, "90.00")]      # 210.00
    tiers = [("100.00", "10.00"), ("200.00", "30.00")]
    once = price(cart, Buyer(1), [threshold(1, tiers)], [], NOW)
    assert entry(once, "promotion:1")["amount"] == "30.00" and once.payable == D("180.00")
    repeated = price(cart, Buyer(1), [threshold(1, [("100.00", "10.00")], repeat=True)], [], NOW)
    assert repeated.discount_amount == D("20.00")
    assert_exact(once)


def test_discounts_are_allocated_over_the_lines_to_the_cent():
    cart = [line(1, "33.33"), line(2, "33.33"), line(3, "33.34")]
    result = price(cart, Buyer(1), [threshold(1, [("100.00", "10.00")])], [], NOW)
    shares = [p.discounts[0]["amount"] for p in result.lines]
    assert sum(shares) == D("10.00") and set(shares) <= {D("3.33"), D("3.34")}
    assert_exact(result)


def test_the_item_layer_gives_each_line_its_lowest_price():
    flash = Promotion(1, 1, "flash_sale", {"prices": {"1": "50.00"}}, units_left=10)
    special = Promotion(2, 1, "special_price", {"prices": {"1": "70.00", "2": "8.00"}})
    buyer = Buyer(1, level=Level("gold", D("5.00")))
    result = price([line(1, "100.00"), line(2, "10.00")], buyer, [flash, special], [], NOW)
    first, second = result.lines
    assert first.payable == D("50.00") and first.item_rule == "promotion:1"
    assert second.payable == D("8.00") and second.item_rule == "promotion:2"
    assert entry(result, "level")["reason"] == "excluded_by_exclusive"
    assert entry(result, "promotion:2")["amount"] == "2.00"   # it won line 2 only
    assert_exact(result)


def test_flash_sales_stop_at_their_units_and_the_members_limit():
    flash = Promotion(1, 1, "flash_sale", {"prices": {"1": "1.00"}}, units_left=2,
                      per_member_limit=3)
    assert entry(price([line(1, "10.00", 3)], Buyer(1), [flash], [], NOW),
                 "promotion:1")["reason"] == "limit_reached"
    bought_before = Buyer(1, used={1: 2})
    assert entry(price([line(1, "10.00", 2)], bought_before, [flash], [], NOW),
                 "promotion:1")["reason"] == "limit_reached"
    fine = price([line(1, "10.00", 2)], Buyer(1), [flash], [], NOW)
    assert fine.payable == D("2.00")


def test_reasons_for_rules_that_do_not_apply():
    later = threshold(1, [("10.00", "1.00")], starts_at=NOW + timedelta(days=1))
    short = threshold(2, [("500.00", "50.00")])
    broke = threshold(3, [("10.00", "5.00")], budget_left=D("4.99"))
    used = threshold(4, [("10.00", "2.00")], per_member_limit=1)
    result = price([line(1, "100.00")], Buyer(1, used={4: 1}), [later, short, broke, used],
                   [], NOW)
    assert [entry(result, f"promotion:{n}")["reason"] for n in (1, 2, 3, 4)] == [
        "out_of_window", "threshold_not_met", "budget_exhausted", "limit_reached"]
    assert result.discount_amount == 0


def test_the_best_option_of_a_layer_wins_exclusive_or_stacked():
    cart = [line(1, "50.00", 2), line(2, "50.00", 2)]          # 200.00, 4 pieces
    stack_a = threshold(1, [("100.00", "10.00")])
    multi = Promotion(2, 1, "multi_buy", {"tiers": [{"count": 4, "percent_off": "5.00"}]})
    exclusive = threshold(3, [("200.00", "25.00")], exclusive=True)
    result = price(cart, Buyer(1), [stack_a, multi, exclusive], [], NOW)
    # stacked: 10 + 5 % of 190 = 19.50 < 25 alone
    assert entry(result, "promotion:3")["applied"] and result.discount_amount == D("25.00")
    assert entry(result, "promotion:1")["reason"] == "excluded_by_exclusive"
    bigger = threshold(1, [("100.00", "20.00")])
    result = price(cart, Buyer(1), [bigger, multi, exclusive], [], NOW)
    assert result.discount_amount == D("29.00")               # 20 + 5 % of 180
    assert entry(result, "promotion:3")["reason"] == "excluded_by_exclusive"
    assert_exact(result)


def test_a_line_joins_one_promotion_of_a_kind_by_priority():
    cart = [line(1, "100.00")]
    low = threshold(1, [("50.00", "20.00")], priority=0)
    high = threshold(2, [("50.00", "5.00")], priority=9)
    result = price(cart, Buyer(1), [low, high], [], NOW)
    assert entry(result, "promotion:2")["applied"]
    assert not entry(result, "promotion:1")["applied"]


def test_scope_shop_category_brand_spu_and_zone():
    cart = [line(1, "100.00", shop_id=1, category="/1/2/", brand=5, spu_id=11),
            line(2, "100.00", shop_id=2, category="/7/", brand=6, spu_id=12)]
    by_category = threshold(1, [("100.00", "10.00")], shop_id=None, scope="category",
                            scope_ids=(1,))
    by_brand = threshold(2, [("100.00", "10.00")], shop_id=None, scope="brand", scope_ids=(6,))
    zone = Promotion(3, None, "special_price", {"prices": {"1": "90.00", "2": "90.00"}},
                     zone_spu_ids=frozenset({12}))
    result = price(cart, Buyer(1), [by_category, by_brand, zone], [], NOW)
    first, second = result.lines
    assert [d["rule"] for d in first.discounts] == ["promotion:1"]
    assert [d["rule"] for d in second.discounts] == ["promotion:3"]   # zone SPU only
    assert entry(result, "promotion:3")["amount"] == "10.00"
    assert entry(result, "promotion:2")["reason"] == "threshold_not_met"   # 90 after it


def test_coupons_stack_or_stand_alone_and_explain_themselves():
    cart = [line(1, "80.00"), line(2, "40.00", shop_id=2)]
    platform = Coupon(1, "P", None, "fixed", amount=D("5.00"), stackable=True,
                      funded_by="platform")
    shop = Coupon(2, "S", 1, "threshold", amount=D("10.00"), threshold=D("50.00"),
                  stackable=True)
    percent = Coupon(3, "X", None, "percent", percent_off=D("20.00"), cap=D("12.00"),
                     funded_by="platform")
    result = price(cart, Buyer(1), [], [platform, shop, percent], NOW)
    assert result.discount_amount == D("15.00")                 # 5 + 10 > 12 (capped)
    assert entry(result, "coupon:3")["reason"] == "excluded_by_exclusive"
    far = Coupon(4, "F", 2, "threshold", amount=D("20.00"), threshold=D("99.00"),
                 stackable=True)
    out = Coupon(5, "O", 3, "fixed", amount=D("1.00"), stackable=True)
    old = Coupon(6, "E", None, "fixed", amount=D("1.00"), stackable=True,
                 ends_at=NOW - timedelta(days=1))
    spent = Coupon(7, "U", None, "fixed", amount=D("1.00"), stackable=True, usable=False)
    result = price(cart, Buyer(1), [], [far, out, old, spent], NOW)
    assert [entry(result, f"coupon:{n}")["reason"] for n in (4, 5, 6, 7)] == [
        "threshold_not_met", "out_of_scope", "out_of_window", "limit_reached"]
    platform_share = [d for p in price(cart, Buyer(1), [], [platform], NOW).lines
                      for d in p.discounts]
    assert {d["funded_by"] for d in platform_share} == {"platform"}


def test_points_pay_at_the_rate_up_to_the_cap_and_the_balance():
    cart = [line(1, "100.00")]
    rich = price(cart, Buyer(1, points=100_000), [], [], NOW, points=100_000)
    assert rich.points_used == 5000 and rich.payable == D("50.00")   # at most 50 %
    poor = price(cart, Buyer(1, points=250), [], [], NOW, points=1000)
    assert poor.points_used == 250 and poor.payable == D("97.50")
    none = price(cart, Buyer(1, points=0), [], [], NOW, points=10)
    assert entry(none, "points")["reason"] == "limit_reached" and none.points_used == 0
    other_rate = price(cart, Buyer(1, points=1000), [], [], NOW, points=1000,
                       settings=Settings(points_per_yuan=10))
    assert other_rate.payable == D("50.00") and other_rate.points_used == 500


def test_no_discount_takes_a_line_below_the_floor():
    cart = [line(1, "100.00"), line(2, "10.00")]
    huge = threshold(1, [("50.00", "49.00")])
    coupon = Coupon(1, "C", None, "fixed", amount=D("100.00"), stackable=True)
    result = price(cart, Buyer(1, points=10**6), [huge], [coupon], NOW, points=10**6,
                   settings=Settings(floor_share=D("0.30")))
    assert [p.payable for p in result.lines] == [D("30.00"), D("3.00")]
    assert_exact(result)


def test_free_shipping_from_a_coupon_or_the_level():
    cart = [line(1, "100.00")]
    coupon = Coupon(1, "F", None, "free_shipping", stackable=True)
    waived = price(cart, Buyer(1), [], [coupon], NOW, freight=D("8.00"))
    assert waived.payable == D("100.00") and entry(waived, "coupon:1")["applied"] is True
    assert entry(waived, "coupon:1")["amount"] == "0.00"      # it waives freight, not goods
    assert [e for e in price(cart, Buyer(1), [], [coupon], NOW).explanation
            if e["layer"] == "freight"] == []                  # no freight, nothing to waive
    gold = Buyer(1, level=Level("gold", D("0"), D("99.00")))
    assert price(cart, gold, [], [], NOW, freight=D("8.00")).payable == D("100.00")
    silver = Buyer(1, level=Level("silver", D("0"), D("199.00")))
    assert price(cart, silver, [], [], NOW, freight=D("8.00")).payable == D("108.00")


def test_the_members_promotion_cap_stops_further_promotions():
    cart = [line(1, "100.00"), line(2, "100.00", shop_id=2)]
    first = threshold(1, [("50.00", "5.00")], shop_id=1)
    second = threshold(2, [("50.00", "5.00")], shop_id=2)
    capped = price(cart, Buyer(1, promotions_left=1), [first, second], [], NOW)
    assert capped.discount_amount == D("5.00")
    assert "limit_reached" in {entry(capped, r)["reason"] for r in ("promotion:1", "promotion:2")}
    free = price(cart, Buyer(1, promotions_left=None), [first, second], [], NOW)
    assert free.discount_amount == D("10.00")


@pytest.mark.parametrize("seed", range(20))
def test_random_carts_always_allocate_exactly(seed):
    import random

    rnd = random.Random(seed)
    cart = [line(n, f"{rnd.randint(1, 50000) / 100:.2f}", rnd.randint(1, 5),
                 shop_id=rnd.randint(1, 3)) for n in range(1, rnd.randint(2, 20))]
    promotions = [threshold(1, [("50.00", "7.77")], shop_id=None, repeat=True),
                  Promotion(2, 1, "multi_buy", {"tiers": [{"count": 2, "percent_off": "9.99"}]}),
                  Promotion(3, 2, "special_price", {"prices": {"1": "0.99", "3": "1.01"}})]
    coupons = [Coupon(1, "A", None, "percent", percent_off=D("13.00"), cap=D("33.33"),
                      stackable=True),
               Coupon(2, "B", 2, "fixed", amount=D("3.21"), stackable=True)]
    result = price(cart, Buyer(1, level=Level("l", D("3.30")), points=rnd.randint(0, 9999)),
                   promotions, coupons, NOW, points=rnd.randint(0, 9999))
    assert_exact(result)
    assert result.payable == sum((p.payable for p in result.lines), D(0))
