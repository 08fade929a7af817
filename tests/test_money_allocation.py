"""Allocation sums exactly to the whole, for any amounts (property-based)."""
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.money import allocate

amounts = st.integers(min_value=0, max_value=10**9).map(lambda c: Decimal(c) / 100)
weights = st.lists(st.integers(min_value=0, max_value=10**7).map(lambda c: Decimal(c) / 100),
                   min_size=1, max_size=30)


@given(amounts, weights)
def test_parts_sum_exactly_to_the_whole(total, parts):
    shares = allocate(total, parts)
    assert sum(shares) == total
    assert len(shares) == len(parts)
    assert all(s >= 0 and s == s.quantize(Decimal("0.01")) for s in shares)


@given(amounts, weights)
def test_each_share_is_within_a_cent_of_its_exact_proportion(total, parts):
    shares = allocate(total, parts)
    whole = sum(parts) or len(parts)
    for share, weight in zip(shares, parts if sum(parts) else [1] * len(parts)):
        assert abs(share - total * weight / whole) < Decimal("0.01")


def test_remainder_goes_to_the_largest_fractions_then_the_earlier_part():
    assert allocate(Decimal("10.00"), [Decimal(1)] * 3) == [Decimal("3.34"), Decimal("3.33"),
                                                            Decimal("3.33")]
    assert allocate(Decimal("0.05"), [Decimal("1"), Decimal("3")]) == [Decimal("0.01"),
                                                                       Decimal("0.04")]


def test_refuses_what_cannot_be_split():
    with pytest.raises(ValueError):
        allocate(Decimal("1.005"), [Decimal(1)])
    with pytest.raises(ValueError):
        allocate(Decimal("1.00"), [])


line_sets = st.lists(
    st.tuples(st.decimals(min_value=0, max_value=99999, places=2),
              st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=4)),
    min_size=1, max_size=6)


@given(line_sets)
def test_shipping_notices_sum_exactly_to_each_line_and_to_the_order(lines):
    """Payment splits an order over warehouses by the quantities each holds: every line's
    parts sum to its payable, and the notices to the order's payable."""
    from services.order import notice_parts

    routes = list(range(max(len(q) for _, q in lines)))
    by_route = {route: {} for route in routes}
    order_lines = []
    for sku_id, (payable, quantities) in enumerate(lines, start=1):
        for route, quantity in enumerate(quantities):
            by_route[route][sku_id] = quantity
        order_lines.append((sku_id, payable))
    parts = notice_parts(order_lines, by_route, routes)
    for sku_id, payable in order_lines:
        assert sum(Decimal(p["payable"]) for route in routes for p in parts[route]
                   if p["sku_id"] == sku_id) == payable
    assert sum(Decimal(p["payable"]) for route in routes for p in parts[route]) == \
        sum(payable for _, payable in order_lines)
