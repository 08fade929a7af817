"""Money arithmetic shared by every center: exact allocation of a whole over parts."""
from decimal import ROUND_DOWN, Decimal

CENT = Decimal("0.01")


def allocate(total: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """Split `total` over parts in proportion to `weights`, to the cent, summing exactly to
    `total` (largest remainder: the leftover cents go to the parts whose share lost most to
    rounding down, ties to the earlier part). Zero weights get nothing unless all are zero,
    in which case the split is even."""
    if total != total.quantize(CENT):
        raise ValueError("total has more than two decimals")
    if not weights:
        raise ValueError("nothing to allocate over")
    if any(w < 0 for w in weights):
        raise ValueError("negative weight")
    if sum(weights) == 0:
        weights = [Decimal(1)] * len(weights)
    whole = sum(weights)
    cents = int(total / CENT)
    exact = [Decimal(cents) * w / whole for w in weights]
    floors = [int(e.to_integral_value(rounding=ROUND_DOWN)) for e in exact]
    leftover = cents - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:leftover]:
        floors[i] += 1
    return [Decimal(c) * CENT for c in floors]
