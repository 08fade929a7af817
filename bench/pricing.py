"""The pricing engine on a 20-line cart against 10 active promotions and 3 coupons, in-process.

    .venv/bin/python -m bench.pricing [--runs 3] [--calls 2000]

The cart: 20 lines over 3 shops and 3 categories, 1 to 3 units each. The rules, all active and
all meeting the cart, so every one is evaluated: 3 item-level (2 special prices, 1 flash sale,
each covering several SKUs), 4 spend tiers (满减: 3 shops' and 1 platform-wide, one of them
exclusive), 3 multi-buys (满N件); 3 coupons (one exclusive percentage with a cap, two
stackable); a member level with a 5 % member price; points spent. `services.pricing.price()`
is called with the rules as the engine reads them (loading them from the database is the
checkout benchmark's business), output checked for exact allocation on every call.

Reported per run: the median time of one `price()` call, and the median time of the plain sum
of line prices (quantity × price, to the cent) measured in the same run, with their ratio.
Goal: the engine's median under 5 ms.
"""
import argparse
import random
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

from bench.common import median
from services import pricing

GOAL_MS = 5.0
NOW = datetime(2026, 11, 26, 12, tzinfo=timezone.utc)


def scenario(seed: int = 7):
    """The cart, the buyer and the rules (the same on every run)."""
    rnd = random.Random(seed)
    lines = [pricing.Line(sku_id=n, spu_id=100 + n // 2, shop_id=1 + n % 3,
                          category_path=f"/1/{2 + n % 3}/", brand_id=10 + n % 4,
                          unit_price=D(rnd.randint(990, 29900)) / 100, quantity=1 + n % 3)
             for n in range(1, 21)]
    window = {"starts_at": NOW - timedelta(days=1), "ends_at": NOW + timedelta(days=1)}
    price_of = {line.sku_id: line.unit_price for line in lines}

    def prices(skus, share):
        return {"prices": {str(n): f"{price_of[n] * D(share):.2f}" for n in skus}}
    promotions = [
        pricing.Promotion(1, 2, "special_price",
                          prices(range(1, 21, 3), "0.85"), **window),
        pricing.Promotion(2, 3, "special_price",
                          prices(range(2, 21, 3), "0.90"), **window),
        pricing.Promotion(3, None, "flash_sale",
                          prices(range(1, 21, 4), "0.60"),
                          units_left=1000, per_member_limit=50, budget_left=D("100000"),
                          funded_by="platform", **window),
        *[pricing.Promotion(3 + s, s, "threshold",
                            {"tiers": [{"threshold": "100.00", "amount": "10.00"},
                                       {"threshold": "300.00", "amount": "40.00"}],
                             "repeat": s == 2}, priority=s, **window) for s in (1, 2, 3)],
        pricing.Promotion(7, None, "threshold",
                          {"tiers": [{"threshold": "500.00", "amount": "60.00"}]},
                          exclusive=True, funded_by="platform", **window),
        *[pricing.Promotion(7 + s, s, "multi_buy",
                            {"tiers": [{"count": 3, "percent_off": "5.00"},
                                       {"count": 6, "percent_off": "8.00"}]},
                            scope="category", scope_ids=(1,), **window) for s in (1, 2)],
        pricing.Promotion(10, 3, "multi_buy", {"tiers": [{"count": 2, "percent_off": "3.00"}]},
                          cap=D("20.00"), **window),
    ]
    coupons = [
        pricing.Coupon(1, "PCT", None, "percent", percent_off=D("10.00"), cap=D("50.00"),
                       funded_by="platform", **window),
        pricing.Coupon(2, "FIX", None, "fixed", amount=D("15.00"), stackable=True,
                       funded_by="platform", **window),
        pricing.Coupon(3, "SHOP", 1, "threshold", amount=D("20.00"), threshold=D("150.00"),
                       stackable=True, **window),
    ]
    buyer = pricing.Buyer(member_id=1, level=pricing.Level("gold", D("5.00"), D("99.00")),
                          points=50_000, promotions_left=20)
    return lines, buyer, promotions, coupons


def plain_sum(lines) -> D:
    return sum(((line.unit_price * line.quantity).quantize(pricing.CENT) for line in lines),
               D("0.00"))


def check(result) -> None:
    for priced in result.lines:
        assert sum((d["amount"] for d in priced.discounts), D(0)) == priced.discount
        assert priced.payable >= priced.floor
    assert result.payable == sum((p.payable for p in result.lines), D(0)) + \
        result.freight - result.freight_waived


def timed(call, calls: int) -> list[float]:
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pricing", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calls", type=int, default=2000)
    args, _ = parser.parse_known_args(argv)
    lines, buyer, promotions, coupons = scenario()

    def engine():
        result = pricing.price(lines, buyer, promotions, coupons, NOW, points=3000,
                               freight=D("8.00"))
        check(result)
        return result

    first = engine()
    applied = [f'{e["rule"]} ({e["layer"]})' for e in first.explanation if e["applied"]]
    entries = [(e["rule"], e["layer"]) for e in first.explanation]
    assert len(entries) == len(set(entries)), "one explanation entry per rule and layer"
    print(f"cart {len(lines)} lines, {len(promotions)} promotions, {len(coupons)} coupons; "
          f"goods {first.goods_amount}, discount {first.discount_amount}, payable "
          f"{first.payable}; {len(first.explanation)} explanation entries, applied: "
          f"{', '.join(applied)}")
    engine_medians, ratios = [], []
    print(f"{'run':>4} {'engine median ms':>17} {'p95 ms':>8} {'plain sum µs':>13} {'ratio':>8}")
    for run in range(1, args.runs + 1):
        engine_samples = sorted(timed(engine, args.calls))
        plain_samples = timed(lambda: plain_sum(lines), args.calls)
        engine_ms = median(engine_samples) * 1000
        p95 = engine_samples[int(len(engine_samples) * 0.95)] * 1000
        plain_us = median(plain_samples) * 1e6
        ratio = engine_ms * 1000 / plain_us
        engine_medians.append(engine_ms)
        ratios.append(ratio)
        print(f"{run:>4} {engine_ms:>17.3f} {p95:>8.3f} {plain_us:>13.1f} {ratio:>7.0f}×")
    overall = median(engine_medians)
    print(f"median of runs: engine {overall:.3f} ms ({median(ratios):.0f}× the plain sum); "
          f"goal < {GOAL_MS} ms: {'met' if overall < GOAL_MS else 'NOT met'}")
    return 0 if overall < GOAL_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
