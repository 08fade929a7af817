"""The pricing engine: the one place a cart's price is computed (quote, place, the marketing
preview screen), with an explanation of every rule it considered.

Rules apply in fixed layers, as Chinese platforms do:

    item    flash sales, special prices, the member's level price: one price per line, the
            lowest wins;
    shop    spend tiers (满减) and multi-buys (满N件打折) of the shop or the platform;
    coupon  the coupons the buyer names (shop or platform);
    points  points spent as money;
    freight free shipping per shop (a free-shipping coupon waives its shop's freight, a
            platform one every shop's; the level's threshold the rest).

Inside a layer the best option for the buyer wins: either the best exclusive rule alone or
every stackable rule together (each line in one rule of a kind, by priority), never a search
over all subsets. No discount takes a line below PRICE_FLOOR_SHARE of its list price. Each
discount is allocated over the lines it covers to the cent, so every line knows its share of
every rule (refunds and splits read it) and the shares sum exactly to the discount.

`price()` is pure: it takes the cart, the member and the rules as plain objects (`load()`
reads them from the database), so it is fast and testable without a database.
"""
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from services.money import CENT, allocate

ZERO = Decimal("0.00")
HUNDRED = Decimal(100)
LAYERS = ("item", "shop", "coupon", "points", "freight")
REASONS = ("applied", "out_of_window", "threshold_not_met", "out_of_scope",
           "excluded_by_exclusive", "limit_reached", "budget_exhausted")


# -- what the engine reads ------------------------------------------------------------------------

@dataclass
class Line:
    """One cart line: the SKU, where it sits in the catalogue, its list price and quantity."""

    sku_id: int
    spu_id: int
    shop_id: int
    category_path: str       # "/1/4/9/": the category and its ancestors
    brand_id: int | None
    unit_price: Decimal
    quantity: int


@dataclass
class Level:
    name: str
    discount_percent: Decimal = ZERO
    free_shipping_threshold: Decimal | None = None


@dataclass
class Buyer:
    """The member as pricing sees them: level, points, and what they already joined."""

    member_id: int
    level: Level | None = None
    points: int = 0
    promotions_left: int | None = None          # under the per-period cap; None: no cap
    used: dict = field(default_factory=dict)     # promotion id → orders (flash sale: units)


@dataclass
class Promotion:
    id: int
    shop_id: int | None
    kind: str                       # special_price | flash_sale | threshold | multi_buy
    rules: dict
    scope: str = "all"
    scope_ids: tuple = ()
    zone_spu_ids: frozenset | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    priority: int = 0
    exclusive: bool = False
    cap: Decimal | None = None
    per_member_limit: int | None = None
    units_left: int | None = None   # flash sale: quantity - sold
    budget_left: Decimal | None = None
    funded_by: str = "merchant"

    @property
    def rule(self) -> str:
        return f"promotion:{self.id}"


@dataclass
class Coupon:
    """A coupon the buyer named: a wallet coupon, or a public code coupon (claimed at place)."""

    id: int                          # the coupon's id
    code: str
    shop_id: int | None
    kind: str                        # fixed | percent | threshold | free_shipping
    amount: Decimal | None = None
    percent_off: Decimal | None = None
    cap: Decimal | None = None
    threshold: Decimal | None = None
    scope: str = "all"
    scope_ids: tuple = ()
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    stackable: bool = False
    usable: bool = True              # a wallet coupon that is granted (not locked or used)
    wallet_id: int | None = None     # the MemberCoupon, None for a public code
    funded_by: str = "merchant"

    @property
    def rule(self) -> str:
        return f"coupon:{self.id}"


@dataclass
class Settings:
    floor_share: Decimal = Decimal("0.10")
    points_per_yuan: int = 100
    points_max_share: Decimal = Decimal("0.50")


# -- what the engine answers ----------------------------------------------------------------------

@dataclass
class Priced:
    """A line with its price and every discount's share of it."""

    line: Line
    amount: Decimal
    floor: Decimal
    payable: Decimal
    discounts: list = field(default_factory=list)    # [{"rule", "amount", "funded_by"}]
    item_rule: str | None = None                     # the item-level price it got

    @property
    def discount(self) -> Decimal:
        return self.amount - self.payable


@dataclass
class Pricing:
    lines: list
    explanation: list
    freight: Decimal
    freight_waived: Decimal
    points_used: int
    coupons: list            # the Coupon objects applied
    promotions: list         # the Promotion objects applied
    freights: dict = field(default_factory=dict)    # shop id → freight charged
    waived: dict = field(default_factory=dict)      # shop id → freight waived

    @property
    def goods_amount(self) -> Decimal:
        return sum((p.amount for p in self.lines), ZERO)

    @property
    def discount_amount(self) -> Decimal:
        return sum((p.discount for p in self.lines), ZERO)

    @property
    def payable(self) -> Decimal:
        return self.goods_amount - self.discount_amount + self.freight - self.freight_waived


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def _entry(rule: str, layer: str, amount: Decimal, reason: str) -> dict:
    return {"rule": rule, "layer": layer, "applied": reason == "applied",
            "amount": _money(amount if reason == "applied" else ZERO), "reason": reason}


# -- scope -----------------------------------------------------------------------------------------

def _in_scope(rule, line: Line) -> bool:
    """Whether a promotion's or coupon's shop, scope and zone cover the line."""
    if rule.shop_id is not None and rule.shop_id != line.shop_id:
        return False
    zone = getattr(rule, "zone_spu_ids", None)
    if zone is not None and line.spu_id not in zone:
        return False
    if rule.scope in ("all", "shop"):
        return True
    if rule.scope == "spu":
        return line.spu_id in rule.scope_ids
    if rule.scope == "brand":
        return line.brand_id in rule.scope_ids
    if rule.scope == "category":
        return any(f"/{category_id}/" in line.category_path for category_id in rule.scope_ids)
    return False


def _in_window(rule, moment: datetime) -> bool:
    return (rule.starts_at is None or rule.starts_at <= moment) and \
        (rule.ends_at is None or moment < rule.ends_at)


def _room(lines: list[Priced]) -> list[Decimal]:
    return [max(p.payable - p.floor, ZERO) for p in lines]


def _take(lines: list[Priced], amount: Decimal, rule: str, funded_by: str) -> Decimal:
    """Take `amount` off `lines`, allocated by what each may still give before its floor;
    returns what was taken (less than asked when the floors stop it)."""
    room = _room(lines)
    amount = min(amount, sum(room, ZERO))
    if amount <= 0:
        return ZERO
    for priced, share in zip(lines, allocate(amount, room)):
        if share:
            priced.payable -= share
            priced.discounts.append({"rule": rule, "amount": share, "funded_by": funded_by})
    return amount


class _Cap:
    """The member's per-period promotion cap, spent as promotions apply."""

    def __init__(self, left: int | None):
        self.left, self.joined = left, set()

    def allows(self, rule: str) -> bool:
        return self.left is None or rule in self.joined or len(self.joined) < self.left

    def join(self, rule: str) -> None:
        self.joined.add(rule)


# -- the layers ------------------------------------------------------------------------------------

def _item_layer(lines: list[Priced], buyer: Buyer, promotions: list[Promotion], moment,
                cap: _Cap, explanation: list) -> list[Promotion]:
    """One price per line: the lowest of its flash sales, special prices and level price.
    A flash sale's units, budget and per-member units are counted across the cart's lines."""
    item_rules = [p for p in promotions if p.kind in ("special_price", "flash_sale")]
    taken: dict[str, Decimal] = {}         # rule → what it took
    reasons: dict[str, str] = {}           # rule → why it did not (first seen)
    units: dict[int, int] = {}             # promotion id → units this cart took
    spent: dict[int, Decimal] = {}         # promotion id → budget this cart took
    for priced in lines:
        candidates = []
        for promo in item_rules:
            price = promo.rules.get("prices", {}).get(str(priced.line.sku_id))
            if price is None or not _in_scope(promo, priced.line):
                continue
            off = max((priced.line.unit_price - Decimal(price)) * priced.line.quantity, ZERO)
            reason = _item_refusal(promo, priced.line.quantity, off, buyer, moment, cap,
                                   units.get(promo.id, 0), spent.get(promo.id, ZERO))
            if reason:
                reasons.setdefault(promo.rule, reason)
            else:
                candidates.append((off, promo.priority, -promo.id, promo))
        level = buyer.level
        if level is not None and level.discount_percent > 0:
            off = (priced.amount * level.discount_percent / HUNDRED).quantize(CENT, ROUND_HALF_UP)
            candidates.append((off, -1, 0, None))
        if not candidates:
            continue
        best = max(candidates, key=lambda c: c[:3])
        for _, _, _, promo in candidates:
            if promo is not best[3]:
                reasons.setdefault(promo.rule if promo else "level", "excluded_by_exclusive")
        promo = best[3]
        rule = promo.rule if promo else "level"
        took = _take([priced], best[0], rule, promo.funded_by if promo else "platform")
        taken[rule] = taken.get(rule, ZERO) + took
        priced.item_rule = rule
        if promo is not None:
            cap.join(rule)
            units[promo.id] = units.get(promo.id, 0) + priced.line.quantity
            spent[promo.id] = spent.get(promo.id, ZERO) + took
    for rule in dict.fromkeys([*taken, *reasons]):
        if taken.get(rule):
            explanation.append(_entry(rule, "item", taken[rule], "applied"))
        else:
            explanation.append(_entry(rule, "item", ZERO, reasons.get(rule, "applied")))
    return [promo for promo in item_rules if taken.get(promo.rule)]


def _item_refusal(promo: Promotion, quantity: int, off: Decimal, buyer: Buyer, moment,
                  cap: _Cap, units: int, spent: Decimal) -> str | None:
    """Why an item-level promotion cannot price this line, or None."""
    if not _in_window(promo, moment):
        return "out_of_window"
    if promo.units_left is not None and promo.units_left < units + quantity:
        return "limit_reached"
    if promo.per_member_limit is not None:
        wanted = units + quantity if promo.kind == "flash_sale" else 1
        if buyer.used.get(promo.id, 0) + wanted > promo.per_member_limit:
            return "limit_reached"
    if promo.budget_left is not None and promo.budget_left < spent + off:
        return "budget_exhausted"
    if not cap.allows(promo.rule):
        return "limit_reached"
    return None


def _offer(promo: Promotion, lines: list[Priced], buyer: Buyer, moment) -> tuple:
    """What a shop-level promotion would take off now: (amount, reason, covered lines)."""
    covered = [p for p in lines if _in_scope(promo, p.line)]
    if not _in_window(promo, moment):
        return ZERO, "out_of_window", covered
    if promo.per_member_limit is not None and \
            buyer.used.get(promo.id, 0) >= promo.per_member_limit:
        return ZERO, "limit_reached", covered
    base = sum((p.payable for p in covered), ZERO)
    tiers = promo.rules.get("tiers", [])
    if promo.kind == "threshold":
        met = [t for t in tiers if base >= Decimal(t["threshold"])]
        if not met:
            return ZERO, "threshold_not_met", covered
        top = max(met, key=lambda t: Decimal(t["threshold"]))
        times = int(base // Decimal(top["threshold"])) if promo.rules.get("repeat") else 1
        amount = Decimal(top["amount"]) * times
    else:
        count = sum(p.line.quantity for p in covered)
        met = [t for t in tiers if count >= int(t["count"])]
        if not met:
            return ZERO, "threshold_not_met", covered
        top = max(met, key=lambda t: int(t["count"]))
        amount = (base * Decimal(top["percent_off"]) / HUNDRED).quantize(CENT, ROUND_HALF_UP)
    if promo.cap is not None:
        amount = min(amount, promo.cap)
    amount = min(amount, sum(_room(covered), ZERO))
    if promo.budget_left is not None and promo.budget_left < amount:
        return ZERO, "budget_exhausted", covered
    return amount, "applied", covered


def _shop_layer(lines: list[Priced], buyer: Buyer, promotions: list[Promotion], moment,
                cap: _Cap, explanation: list) -> list[Promotion]:
    offers = [p for p in promotions if p.kind in ("threshold", "multi_buy")
              and any(_in_scope(p, priced.line) for priced in lines)]
    return _best_of_layer(
        "shop", offers, lines, explanation, cap,
        evaluate=lambda promo, trial: _offer(promo, trial, buyer, moment),
        exclusive=lambda promo: promo.exclusive,
        order=lambda promo: (-promo.priority, promo.id),
        kind=lambda promo: promo.kind)


def _coupon_offer(coupon: Coupon, lines: list[Priced], moment) -> tuple:
    covered = [p for p in lines if _in_scope(coupon, p.line)]
    if not coupon.usable:
        return ZERO, "limit_reached", covered
    if not _in_window(coupon, moment):
        return ZERO, "out_of_window", covered
    if not covered:
        return ZERO, "out_of_scope", covered
    base = sum((p.payable for p in covered), ZERO)
    if coupon.threshold is not None and base < coupon.threshold:
        return ZERO, "threshold_not_met", covered
    if coupon.kind == "free_shipping":
        return ZERO, "applied", []            # the freight layer waives it
    if coupon.kind == "percent":
        amount = (base * coupon.percent_off / HUNDRED).quantize(CENT, ROUND_HALF_UP)
        if coupon.cap is not None:
            amount = min(amount, coupon.cap)
    else:
        amount = coupon.amount or ZERO
    return min(amount, sum(_room(covered), ZERO)), "applied", covered


def _coupon_layer(lines: list[Priced], coupons: list[Coupon], moment, cap: _Cap,
                  explanation: list) -> list[Coupon]:
    seen, named = set(), []
    for coupon in coupons:               # one of each coupon per order
        if coupon.id in seen:
            explanation.append(_entry(coupon.rule, "coupon", ZERO, "limit_reached"))
            continue
        seen.add(coupon.id)
        named.append(coupon)
    return _best_of_layer(
        "coupon", named, lines, explanation, cap,
        evaluate=lambda coupon, trial: _coupon_offer(coupon, trial, moment),
        exclusive=lambda coupon: not coupon.stackable,
        order=lambda coupon: (coupon.id,),
        kind=lambda coupon: "coupon:" + (str(coupon.shop_id) if coupon.shop_id else "platform"),
        keeps_zero=lambda coupon: coupon.kind == "free_shipping")


def _best_of_layer(layer: str, rules: list, lines: list[Priced], explanation: list, cap: _Cap,
                   evaluate, exclusive, order, kind, keeps_zero=lambda rule: False) -> list:
    """The best option of a layer for the buyer: the best exclusive rule alone, or all the
    stackable ones together (in `order`; a line joins one rule per `kind`). The winner is
    applied to `lines`; every rule gets its explanation entry."""
    options = []
    for rule in sorted(rules, key=order):
        if exclusive(rule):
            options.append(_trial(lines, [rule], evaluate, cap, kind, keeps_zero))
    stackable = [r for r in sorted(rules, key=order) if not exclusive(r)]
    if stackable:
        options.append(_trial(lines, stackable, evaluate, cap, kind, keeps_zero))
    best = max(options, key=lambda o: o["total"], default=None)
    winners = best["applied"] if best else {}
    for rule in rules:
        if rule.rule in winners:
            amount = winners[rule.rule][0]
            explanation.append(_entry(rule.rule, layer, amount, "applied"))
            continue
        reason = next((o["reasons"][rule.rule] for o in options
                       if o["reasons"].get(rule.rule) not in (None, "applied")), None)
        explanation.append(_entry(rule.rule, layer, ZERO, reason or "excluded_by_exclusive"))
    by_name = {rule.rule: rule for rule in rules}
    for name, (amount, covered) in winners.items():     # in the order the trial took them
        _take([lines[i] for i in covered], amount, name, by_name[name].funded_by)
        cap.join(name)
    return [by_name[name] for name in winners]


def _trial(lines: list[Priced], rules: list, evaluate, cap: _Cap, kind, keeps_zero) -> dict:
    """Apply `rules` one after another to a copy of the lines: what each takes and why."""
    trial = [Priced(p.line, p.amount, p.floor, p.payable) for p in lines]
    index = {id(t): i for i, t in enumerate(trial)}
    taken_by_kind: dict[str, set] = {}
    result = {"total": ZERO, "applied": {}, "reasons": {}}
    joined = set(cap.joined)
    for rule in rules:
        used = taken_by_kind.setdefault(kind(rule), set())
        free = [t for t in trial if index[id(t)] not in used]
        amount, reason, covered = evaluate(rule, free)
        if reason == "applied" and (amount > 0 or keeps_zero(rule)):
            if cap.left is not None and rule.rule not in joined and len(joined) >= cap.left:
                result["reasons"][rule.rule] = "limit_reached"
                continue
            taken = _take(covered, amount, rule.rule, "") if amount > 0 else ZERO
            joined.add(rule.rule)
            result["applied"][rule.rule] = (taken, [index[id(t)] for t in covered])
            result["total"] += taken
            used.update(index[id(t)] for t in covered)
        # applicable but with nothing to take: the lines' floors are reached
        result["reasons"][rule.rule] = reason if reason != "applied" or amount > 0 or \
            keeps_zero(rule) else "limit_reached"
    return result


def _points_layer(lines: list[Priced], buyer: Buyer, points: int, settings: Settings,
                  explanation: list) -> int:
    if not points:
        return 0
    left = sum((p.payable for p in lines), ZERO)
    most = (left * settings.points_max_share).quantize(CENT, ROUND_DOWN)
    most = min(most, sum(_room(lines), ZERO))
    usable = min(points, buyer.points, int(most * settings.points_per_yuan))
    amount = (Decimal(usable) / settings.points_per_yuan).quantize(CENT, ROUND_DOWN)
    if amount <= 0:
        explanation.append(_entry("points", "points", ZERO, "limit_reached"))
        return 0
    _take(lines, amount, "points", "platform")
    explanation.append(_entry("points", "points", amount, "applied"))
    return int(amount * settings.points_per_yuan)


def _freight_layer(lines: list[Priced], buyer: Buyer, coupons: list[Coupon], freights: dict,
                   explanation: list) -> dict:
    """Free shipping, per shop: a free-shipping coupon that applied waives the freight of its
    shop (a platform coupon: every shop's), the level's threshold on the whole cart waives the
    rest. Answers {shop: waived}."""
    charged = {shop: amount for shop, amount in freights.items() if amount > 0}
    if not charged:
        return {}
    waived = {}
    for coupon in coupons:
        if coupon.kind == "free_shipping":
            for shop, amount in charged.items():
                if coupon.shop_id is None or shop is None or coupon.shop_id == shop:
                    waived[shop] = amount
    left = {shop: amount for shop, amount in charged.items() if shop not in waived}
    if not left:
        return waived
    level = buyer.level
    if level is not None and level.free_shipping_threshold is not None:
        spent = sum((p.payable for p in lines), ZERO)
        met = spent >= level.free_shipping_threshold
        explanation.append(_entry("level", "freight", sum(left.values(), ZERO) if met else ZERO,
                                  "applied" if met else "threshold_not_met"))
        if met:
            waived.update(left)
    return waived


def price(lines: list[Line], buyer: Buyer, promotions: list[Promotion], coupons: list[Coupon],
          moment: datetime, points: int = 0, freight=ZERO,
          settings: Settings | None = None) -> Pricing:
    """Price a cart: every layer in turn, each discount allocated over the lines it covers.
    `freight` is the cart's freight (a Decimal), or {shop_id: freight}, or a function of the
    priced lines answering that dict (freight templates read the lines' payable after every
    discount); free shipping then waives it per shop."""
    settings = settings or Settings()
    priced = []
    for line in lines:
        amount = (line.unit_price * line.quantity).quantize(CENT)
        floor = (amount * settings.floor_share).quantize(CENT, ROUND_HALF_UP)
        priced.append(Priced(line, amount, min(floor, amount), amount))
    explanation: list = []
    cap = _Cap(buyer.promotions_left)
    applied = _item_layer(priced, buyer, promotions, moment, cap, explanation)
    applied += _shop_layer(priced, buyer, promotions, moment, cap, explanation)
    used_coupons = _coupon_layer(priced, coupons, moment, cap, explanation)
    points_used = _points_layer(priced, buyer, points, settings, explanation)
    freights = freight(priced) if callable(freight) else \
        dict(freight) if isinstance(freight, dict) else {None: freight}
    waived = _freight_layer(priced, buyer, used_coupons, freights, explanation)
    for p in priced:
        p.discounts = _merged(p.discounts)
    return Pricing(priced, explanation, sum(freights.values(), ZERO),
                   sum(waived.values(), ZERO), points_used, used_coupons, applied,
                   freights, waived)


def _merged(discounts: list[dict]) -> list[dict]:
    """One entry per rule on a line."""
    merged: dict[str, dict] = {}
    for d in discounts:
        entry = merged.setdefault(d["rule"], {"rule": d["rule"], "amount": ZERO,
                                              "funded_by": d["funded_by"]})
        entry["amount"] += d["amount"]
    return list(merged.values())
