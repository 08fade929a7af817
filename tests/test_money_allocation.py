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
