"""物流中心 rules: carriers and their rate cards, the selection rules that stamp each shipping
notice, the shops' freight templates (运费模板) that price checkout, and the report of the
freight buyers paid against what the carriers charge.

Carrier rate cards (platform data). A card is a list of CarrierRate lines; the line naming the
parcel's province applies, else the line with no regions ("everywhere else"); a province no
line covers is not served by that carrier. The first `first_kg` cost `first_fee`, each further
`step_kg` or part of it `step_fee`. Provinces in REMOTE_REGIONS (default Xinjiang 650000,
Tibet 540000, Qinghai 630000, Inner Mongolia 150000, Ningxia 640000, Gansu 620000, Hainan
460000) add the line's `remote_surcharge`.

Selection rules are tried by priority (then id); the first that matches the parcel (region,
warehouse, weight within [min, max] inclusive, cash on delivery) decides: its carrier when that
carrier is enabled and serves the province, else — a rule naming no carrier — the cheapest
enabled carrier that serves it. When no rule decides, the cheapest enabled carrier serving the
province; else none. Orders carry no cash on delivery yet, so notices are stamped as prepaid.

Freight templates (shop data). Each cart line is charged by its SPU's template, or the shop's
default template (exactly one per shop once it has any), or nothing when the shop has none.
Each template is charged once for its group of lines: by pieces or by total weight (SKU
weight_kg × quantity), through the region line naming the buyer's province, else its default
line (no regions); a province neither covers is not delivered to (checkout answers 422),
while a template without any line yet (being set up) charges nothing. Free
shipping holds when the group's goods amount after discounts — the payable of those lines,
after every discount the pricing engine gave, points included — reaches `free_over_amount`, or
its pieces reach `free_over_pieces`. The template's remote surcharge is added for its
`remote_regions` unless the group ships free. Service goods ship nothing and are never
charged.

Templates are kept per process for FREIGHT_CACHE_SECONDS (checkout prices every quote and
place with them); saving a template or a rule forgets them in that process at once.

Freight on orders: each order's Order.freight is what the buyer paid for its shipping after
any waiver (a free-shipping coupon, the member level's threshold) and is part of its payable;
a shipping notice's `freight` is its share of the order's (by payable, to the cent) and `cost`
what its carrier charges for it (an estimate when stamped, the real cost when shipped).
Freight is not refundable through after-sales: refunds are of goods lines (at most what each
line was paid), so they never exceed what the buyer paid, and an order whose goods are fully
refunded closes with the shop keeping the freight for the parcel it sent (or was to send).
"""
import logging
import re
import time
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_CEILING, Decimal

from flask import current_app
from sqlalchemy import bindparam, case, func, select
from sqlalchemy import event as sa_event

from app.extensions import db
from models.inventory import Warehouse
from models.logistics import Carrier, CarrierRate, CarrierRule, FreightRule, FreightTemplate
from models.order import NoticeStatus, Order, ShippingNotice
from models.product import Sku, Spu
from services.actor import is_row_id, scope_query, visible_row
from services.clock import business_date, business_day_bounds
from services.errors import ConflictError, NotFoundError, ValidationFailed
from services.events import subscribe
from services.money import CENT, allocate

log = logging.getLogger(__name__)

ZERO = Decimal("0.00")
PROVINCE = re.compile(r"^[1-8]\d0000$")
CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
ADAPTERS = ("sandbox", "kuaidi100")
BASES = ("piece", "weight")
MAX_KG = Decimal("100000")
MAX_FEE = Decimal("100000")
MAX_REGIONS = 40
MAX_QUOTE_LINES = 100
MAX_REPORT_DAYS = 366
UNIT = Decimal("0.001")
FIRST_REPORT_DAY = date(2000, 1, 1)
LAST_REPORT_DAY = date(9998, 12, 31)


# -- checks shared by every input ------------------------------------------------------------

def checked_province(code, field: str = "province_code") -> str:
    """A six-digit province code (e.g. 310000), else 422 naming `field`."""
    if not isinstance(code, str) or not PROVINCE.match(code.strip()):
        raise ValidationFailed.field(field, "A six-digit province code such as 310000.")
    return code.strip()


def checked_regions(regions, field: str = "regions") -> list[str]:
    """A list of distinct province codes (empty: everywhere else)."""
    if regions is None:
        return []
    if not isinstance(regions, list) or len(regions) > MAX_REGIONS:
        raise ValidationFailed.field(field, f"A list of at most {MAX_REGIONS} province codes.")
    codes = [checked_province(code, field) for code in regions]
    if len(set(codes)) != len(codes):
        raise ValidationFailed.field(field, "A province is named twice.")
    return codes


def checked_weight(weight, field: str = "weight_kg") -> Decimal:
    """A weight in kg: a finite Decimal from 0 to MAX_KG with at most three decimals."""
    if isinstance(weight, bool) or not isinstance(weight, (Decimal, int)):
        raise ValidationFailed.field(field, "A weight in kg such as \"1.250\".")
    weight = Decimal(weight)
    if not weight.is_finite() or weight < 0 or weight > MAX_KG or \
            weight != weight.quantize(Decimal("0.001")):
        raise ValidationFailed.field(field, f"From 0 to {MAX_KG} kg, at most three decimals.")
    return weight


def _positive(value, field: str, errors: dict, whole: bool = False) -> None:
    """From 0.001 to MAX_KG with at most three decimals (what a Numeric(10, 3) column keeps:
    a finer value would be stored rounded, possibly to 0)."""
    if value is None or not isinstance(value, (Decimal, int)) or isinstance(value, bool) or \
            not Decimal(value).is_finite() or Decimal(value) < UNIT or \
            Decimal(value) > MAX_KG or Decimal(value) != Decimal(value).quantize(UNIT):
        errors[field] = [f"From 0.001 to {MAX_KG}, at most three decimals."]
    elif whole and Decimal(value) != Decimal(value).to_integral_value():
        errors[field] = ["A whole number of pieces."]


def _fee(value, field: str, errors: dict, required: bool = True) -> None:
    if value is None:
        if required:
            errors[field] = ["Required."]
        return
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0 or \
            value > MAX_FEE or value != value.quantize(CENT):
        errors[field] = [f"An amount from 0.00 to {MAX_FEE}."]


def _steps(units: Decimal, first: Decimal, step: Decimal, field: str = "step") -> int:
    """Further steps beyond the first units, each started step counted whole; a line whose
    step is not a positive amount (stored before it was checked) cannot price: 422 naming
    `field`."""
    if units <= first:
        return 0
    if step is None or not step.is_finite() or step <= 0:
        raise ValidationFailed.field(field, "A line with a step of 0 cannot price this.")
    return int(((units - first) / step).to_integral_value(rounding=ROUND_CEILING))


def remote_regions() -> frozenset:
    return frozenset(current_app.config.get("REMOTE_REGIONS") or ())


# -- carriers and their rate cards -----------------------------------------------------------

def check_carrier(carrier: Carrier) -> Carrier:
    errors = {}
    carrier.code = (carrier.code or "").strip()
    carrier.name = (carrier.name or "").strip()
    if not CODE.match(carrier.code):
        errors["code"] = ["Letters, digits, - or _, at most 32."]
    if not carrier.name or len(carrier.name) > 64:
        errors["name"] = ["Required, at most 64 characters."]
    if (carrier.adapter or "sandbox") not in ADAPTERS:
        errors["adapter"] = [f"One of: {', '.join(ADAPTERS)}."]
    if errors:
        raise ValidationFailed("Validation failed", errors)
    duplicate = db.session.scalar(select(Carrier.id).where(
        func.lower(Carrier.code) == carrier.code.lower(),
        Carrier.id != (carrier.id or 0)).limit(1)) if carrier.code else None
    if duplicate is not None:
        raise ValidationFailed.field("code", "Already exists.")
    return carrier


def check_rate(rate: CarrierRate) -> CarrierRate:
    """A rate line: regions, positive kg units, fees; a province in one line of the card and
    one "everywhere else" line at most."""
    errors = {}
    try:
        rate.regions = checked_regions(rate.regions)
    except ValidationFailed as err:
        errors.update(err.errors)
    _positive(rate.first_kg, "first_kg", errors)
    _positive(rate.step_kg, "step_kg", errors)
    _fee(rate.first_fee, "first_fee", errors)
    _fee(rate.step_fee, "step_fee", errors)
    if rate.remote_surcharge is None:
        rate.remote_surcharge = ZERO
    _fee(rate.remote_surcharge, "remote_surcharge", errors)
    carrier = db.session.get(Carrier, rate.carrier_id) if is_row_id(rate.carrier_id) else None
    if carrier is None:
        errors["carrier_id"] = ["Related record not found."]
    if errors:
        raise ValidationFailed("Validation failed", errors)
    with db.session.no_autoflush:
        others = db.session.scalars(select(CarrierRate).where(
            CarrierRate.carrier_id == rate.carrier_id,
            CarrierRate.id != (rate.id or 0))).all()
    _no_overlap(rate.regions, [o.regions or [] for o in others])
    return rate


def _no_overlap(regions: list, others: list[list]) -> None:
    if not regions and any(not other for other in others):
        raise ValidationFailed.field("regions", "There is already an \"everywhere else\" line.")
    taken = {code for other in others for code in other}
    clash = sorted(set(regions) & taken)
    if clash:
        raise ValidationFailed.field("regions", f"Already in another line: {', '.join(clash)}.")


def rate_for(carrier: Carrier, province: str) -> CarrierRate | None:
    """The line of the carrier's card for `province`: the one naming it, else the line for
    everywhere else; None when the carrier does not serve the province."""
    fallback = None
    for rate in carrier.rates:
        regions = rate.regions or []
        if province in regions:
            return rate
        if not regions and fallback is None:
            fallback = rate
    return fallback


def carrier_cost(carrier: Carrier, province, weight_kg) -> Decimal:
    """What `carrier` charges for a parcel of `weight_kg` to `province`: the first kg, each
    further step or part of it, and the remote surcharge in REMOTE_REGIONS. 422 for a bad
    province or weight, or a province the carrier's card does not cover."""
    province = checked_province(province)
    weight = checked_weight(weight_kg)
    if carrier is None:
        raise ValidationFailed.field("carrier_id", "Related record not found.")
    rate = rate_for(carrier, province)
    if rate is None:
        raise ValidationFailed.field("province_code", f"{carrier.code} does not serve it.")
    fee = rate.first_fee + _steps(weight, Decimal(rate.first_kg),
                                  Decimal(rate.step_kg), "step_kg") * rate.step_fee
    if province in remote_regions():
        fee += rate.remote_surcharge or ZERO
    return fee.quantize(CENT)


def _serves(carrier: Carrier, province: str, cod: bool) -> bool:
    return carrier.enabled and (carrier.supports_cod or not cod) and \
        rate_for(carrier, province) is not None


def cheapest_carrier(province: str, weight: Decimal, cod: bool = False) -> Carrier | None:
    """The enabled carrier charging least for the parcel (ties: the lowest id)."""
    offers = []
    for c in db.session.scalars(select(Carrier).where(Carrier.enabled.is_(True))
                                .order_by(Carrier.id)):
        if _serves(c, province, cod):
            cost = _estimate(c, province, weight)      # a card that cannot price: skipped
            if cost is not None:
                offers.append((cost, c.id, c))
    return min(offers, key=lambda o: o[:2])[2] if offers else None


def _rule_matches(rule: CarrierRule, warehouse_id, province: str, weight: Decimal,
                  cod: bool) -> bool:
    return (not rule.regions or province in rule.regions) and \
        (rule.warehouse_id is None or rule.warehouse_id == warehouse_id) and \
        (rule.min_weight_kg is None or weight >= rule.min_weight_kg) and \
        (rule.max_weight_kg is None or weight <= rule.max_weight_kg) and \
        (rule.cod is None or rule.cod == cod)


def choose_carrier(warehouse_id, province, weight_kg, cod: bool = False) -> tuple:
    """(carrier, rule) for a parcel: the first matching enabled rule by priority that yields
    a carrier serving the province; else (the cheapest serving carrier, None); else
    (None, None)."""
    province = checked_province(province)
    weight = checked_weight(weight_kg)
    if not isinstance(cod, bool):
        raise ValidationFailed.field("cod", "true or false.")
    rules = db.session.scalars(select(CarrierRule).where(CarrierRule.enabled.is_(True))
                               .order_by(CarrierRule.priority, CarrierRule.id)).all()
    for rule in rules:
        if not _rule_matches(rule, warehouse_id, province, weight, cod):
            continue
        if rule.carrier_id is None:
            carrier = cheapest_carrier(province, weight, cod)
        else:
            carrier = rule.carrier if _serves(rule.carrier, province, cod) else None
        if carrier is not None:
            return carrier, rule
    return cheapest_carrier(province, weight, cod), None


def check_rule(rule: CarrierRule) -> CarrierRule:
    errors = {}
    rule.name = (rule.name or "").strip()
    if not rule.name or len(rule.name) > 64:
        errors["name"] = ["Required, at most 64 characters."]
    if rule.priority is None:
        rule.priority = 100
    if isinstance(rule.priority, bool) or not isinstance(rule.priority, int) or \
            not 0 <= rule.priority <= 1_000_000:
        errors["priority"] = ["A whole number from 0 to 1000000."]
    try:
        rule.regions = checked_regions(rule.regions)
    except ValidationFailed as err:
        errors.update(err.errors)
    for field in ("min_weight_kg", "max_weight_kg"):
        value = getattr(rule, field)
        if value is not None:
            try:
                checked_weight(value, field)
            except ValidationFailed as err:
                errors.update(err.errors)
    if not errors and rule.min_weight_kg is not None and rule.max_weight_kg is not None and \
            rule.min_weight_kg > rule.max_weight_kg:
        errors["max_weight_kg"] = ["At least the minimum weight."]
    if rule.warehouse_id is not None and db.session.get(Warehouse, rule.warehouse_id) is None:
        errors["warehouse_id"] = ["Related record not found."]
    if rule.carrier_id is not None and db.session.get(Carrier, rule.carrier_id) is None:
        errors["carrier_id"] = ["Related record not found."]
    if errors:
        raise ValidationFailed("Validation failed", errors)
    return rule


# -- stamping shipping notices ---------------------------------------------------------------

def estimated_weight(lines: list[dict]) -> Decimal:
    """Σ SKU weight_kg × quantity of a notice's lines (SKUs without a weight count 0)."""
    ids = [line["sku_id"] for line in lines]
    weights = dict(db.session.execute(select(Sku.id, Sku.weight_kg).where(Sku.id.in_(ids)))
                   .all()) if ids else {}
    return sum((Decimal(weights.get(line["sku_id"]) or 0) * int(line["quantity"])
                for line in lines), Decimal("0.000")).quantize(Decimal("0.001"))


def freight_share(order: Order, notice: ShippingNotice) -> Decimal:
    """The notice's part of the freight the buyer paid for the order (by payable, exact)."""
    notices = [n for n in order.notices if NoticeStatus(n.status) != NoticeStatus.cancelled]
    if notice not in notices or not order.freight:
        return ZERO
    shares = allocate(order.freight, [n.payable for n in notices])
    return shares[notices.index(notice)]


def _estimate(carrier: Carrier | None, province, weight) -> Decimal | None:
    """What the carrier charges, or None when the parcel cannot be priced (no carrier,
    province or weight, a province it does not serve, a weight out of range, a card that
    cannot price it: logged)."""
    if carrier is None or province is None or weight is None:
        return None
    try:
        return carrier_cost(carrier, province, weight)
    except (ValidationFailed, ArithmeticError) as refusal:
        log.info("carrier %s cannot price %s kg to %s: %s", carrier.code, weight, province,
                 getattr(refusal, "errors", refusal))
        return None


def _weight_estimate(notice: ShippingNotice) -> Decimal | None:
    """The notice's estimated weight, or None (logged) when it is beyond what a parcel may
    weigh (MAX_KG): such a notice is left unweighed and uncosted rather than failing."""
    weight = estimated_weight(notice.lines or [])
    if weight > MAX_KG:
        log.warning("notice %s: estimated weight %s kg is over %s kg; left unweighed",
                    notice.notice_no, weight, MAX_KG)
        return None
    return weight


def _choose(notice: ShippingNotice) -> Carrier | None:
    try:
        carrier, _ = choose_carrier(notice.warehouse_id, notice.province_code,
                                    notice.weight_kg, cod=False)
    except (ValidationFailed, ArithmeticError) as refusal:
        log.warning("notice %s: no carrier chosen: %s", notice.notice_no,
                    getattr(refusal, "errors", refusal))
        return None
    return carrier


def stamp_notice(notice_id: int) -> ShippingNotice | None:
    """Stamp a new notice (idempotent): the buyer's province, a weight estimate when the
    warehouse has not weighed it, its share of the freight paid, a carrier by the rules when
    none is set, and what that carrier would charge."""
    from services.order import notice_for_update

    try:
        notice = notice_for_update(notice_id)
    except NotFoundError:
        return None
    order = db.session.get(Order, notice.order_id)
    province = (order.address or {}).get("province_code")
    if notice.province_code is None and isinstance(province, str) and PROVINCE.match(province):
        notice.province_code = province
    if notice.weight_kg is None:
        notice.weight_kg = _weight_estimate(notice)
    notice.freight = freight_share(order, notice)
    if NoticeStatus(notice.status) == NoticeStatus.shipped:
        return notice        # the real cost is the shipped step's
    if notice.carrier_id is None and notice.province_code is not None and \
            notice.weight_kg is not None:
        carrier = _choose(notice)
        notice.carrier_id = carrier.id if carrier is not None else None
    carrier = db.session.get(Carrier, notice.carrier_id) if notice.carrier_id else None
    notice.cost = _estimate(carrier, notice.province_code, notice.weight_kg)
    return notice


def shipping_carrier(notice: ShippingNotice) -> Carrier | None:
    """The carrier a notice shipped with: the one its `carrier` text names (its code in any
    case, its name, or its code as the first word, as in "SF Express"), else its stamped
    carrier_id."""
    text = (notice.carrier or "").strip()
    if text:
        first_word = text.split()[0].lower()
        named = db.session.scalars(select(Carrier).where(
            func.lower(Carrier.code) == text.lower()).limit(1)).first() or \
            db.session.scalars(select(Carrier).where(Carrier.name == text).limit(1)).first() or \
            db.session.scalars(select(Carrier).where(
                func.lower(Carrier.code) == first_word).limit(1)).first()
        if named is not None:
            return named
    return db.session.get(Carrier, notice.carrier_id) if notice.carrier_id else None


def cost_shipped(notice_id: int) -> ShippingNotice | None:
    """A shipped notice's real cost from its carrier's card at the packed weight (or the
    estimate when it was never weighed); idempotent."""
    from services.order import notice_for_update

    try:
        notice = notice_for_update(notice_id)
    except NotFoundError:
        return None
    if NoticeStatus(notice.status) != NoticeStatus.shipped:
        return notice
    order = db.session.get(Order, notice.order_id)
    if notice.province_code is None:
        province = (order.address or {}).get("province_code")
        if isinstance(province, str) and PROVINCE.match(province):
            notice.province_code = province
    if notice.weight_kg is None:
        notice.weight_kg = _weight_estimate(notice)
    notice.freight = freight_share(order, notice)
    carrier = shipping_carrier(notice)
    if carrier is not None:
        notice.carrier_id = carrier.id
    notice.cost = _estimate(carrier, notice.province_code, notice.weight_kg)
    return notice


@subscribe("shipping_notice.created", "logistics.stamp_notice")
def _notice_created(payload: dict) -> None:
    stamp_notice(payload["notice_id"])


@subscribe("shipping_notice.shipped", "logistics.cost_shipped")
def _notice_shipped(payload: dict) -> None:
    cost_shipped(payload["notice_id"])


# -- freight templates -----------------------------------------------------------------------

@dataclass(frozen=True)
class TemplateRule:
    regions: frozenset
    first_units: Decimal
    first_fee: Decimal
    step_units: Decimal
    step_fee: Decimal


@dataclass(frozen=True)
class Template:
    id: int
    shop_id: int
    name: str
    basis: str
    free_over_amount: Decimal | None
    free_over_pieces: int | None
    remote_regions: frozenset
    remote_surcharge: Decimal
    is_default: bool
    rules: tuple

    def rule_for(self, province: str | None) -> TemplateRule | None:
        fallback = None
        for rule in self.rules:
            if province is not None and province in rule.regions:
                return rule
            if not rule.regions and fallback is None:
                fallback = rule
        return fallback


@dataclass(frozen=True)
class ShopTemplates:
    templates: dict          # id → Template (enabled ones)
    default_id: int | None


@dataclass
class FreightLine:
    """What freight needs of a cart line: its shop, its SPU's template (None: the shop's
    default), the SKU's weight, quantity, and the line's payable after discounts."""

    shop_id: int
    template_id: int | None
    weight_kg: Decimal | None
    quantity: int
    payable: Decimal


@dataclass
class Charge:
    """One template's charge for its group of lines."""

    template: Template
    pieces: int
    weight_kg: Decimal
    amount: Decimal          # the group's payable
    freight: Decimal
    free: bool


_T, _R = FreightTemplate.__table__, FreightRule.__table__
# Checkout reads the templates of the cart's shops in one Core statement, built once; a
# process keeps each shop's for FREIGHT_CACHE_SECONDS.
_TEMPLATES = (
    select(_T.c.id, _T.c.shop_id, _T.c.name, _T.c.basis, _T.c.free_over_amount,
           _T.c.free_over_pieces, _T.c.remote_regions, _T.c.remote_surcharge, _T.c.is_default,
           _R.c.id.label("rule_id"), _R.c.regions, _R.c.first_units, _R.c.first_fee,
           _R.c.step_units, _R.c.step_fee)
    .select_from(_T.outerjoin(_R, _R.c.template_id == _T.c.id))
    .where(_T.c.enabled.is_(True), _T.c.shop_id.in_(bindparam("shop_ids", expanding=True)))
    .order_by(_T.c.id, _R.c.id))
_KEPT: dict = {}     # shop id → (until (monotonic), ShopTemplates)


def shop_templates(shop_ids) -> dict:
    """{shop_id: ShopTemplates} of these shops (their enabled templates), kept per process."""
    moment = time.monotonic()
    found = {}
    missing = []
    for shop_id in sorted(set(shop_ids)):
        kept = _KEPT.get(shop_id)
        if kept is not None and kept[0] > moment:
            found[shop_id] = kept[1]
        else:
            missing.append(shop_id)
    if missing:
        rows = db.session.connection().execute(_TEMPLATES, {"shop_ids": missing}).all()
        loaded = _shop_templates(missing, rows)
        seconds = current_app.config.get("FREIGHT_CACHE_SECONDS", 5)
        for shop_id, templates in loaded.items():
            if seconds:
                _KEPT[shop_id] = (moment + seconds, templates)
            found[shop_id] = templates
    return found


def _shop_templates(shop_ids: list, rows) -> dict:
    made: dict = {}
    rules: dict = {}
    for row in rows:
        if row.id not in made:
            made[row.id] = row
            rules[row.id] = []
        if row.rule_id is not None:
            rules[row.id].append(TemplateRule(
                frozenset(row.regions or ()), Decimal(row.first_units), Decimal(row.first_fee),
                Decimal(row.step_units), Decimal(row.step_fee)))
    result = {shop_id: ShopTemplates({}, None) for shop_id in shop_ids}
    for template_id, row in made.items():
        shop = result[row.shop_id]
        shop.templates[template_id] = Template(
            template_id, row.shop_id, row.name, row.basis, row.free_over_amount,
            row.free_over_pieces, frozenset(row.remote_regions or ()),
            Decimal(row.remote_surcharge or 0), bool(row.is_default), tuple(rules[template_id]))
        if row.is_default:
            result[row.shop_id] = ShopTemplates(shop.templates, template_id)
    return result


@sa_event.listens_for(FreightTemplate, "after_insert")
@sa_event.listens_for(FreightTemplate, "after_update")
@sa_event.listens_for(FreightTemplate, "after_delete")
@sa_event.listens_for(FreightRule, "after_insert")
@sa_event.listens_for(FreightRule, "after_update")
@sa_event.listens_for(FreightRule, "after_delete")
def forget_templates(*_) -> None:
    """A template or rule changed in this process: the next price reads them again."""
    _KEPT.clear()


def charge(template: Template, lines: list[FreightLine], province: str | None,
           field: str = "address_id") -> Charge:
    """One template's freight for its group of lines (see the module's description)."""
    pieces = sum(line.quantity for line in lines)
    weight = sum((Decimal(line.weight_kg or 0) * line.quantity for line in lines),
                 Decimal("0.000"))
    amount = sum((line.payable for line in lines), ZERO)
    rule = template.rule_for(province)
    if rule is None:
        if province is None or not template.rules:   # no address yet, or no lines yet
            return Charge(template, pieces, weight, amount, ZERO, False)
        raise ValidationFailed.field(field, f"{template.name}: no delivery to {province}.")
    free = (template.free_over_amount is not None and amount >= template.free_over_amount) or \
        (template.free_over_pieces is not None and pieces >= template.free_over_pieces)
    if free:
        return Charge(template, pieces, weight, amount, ZERO, True)
    units = Decimal(pieces) if template.basis == "piece" else weight
    try:
        steps = _steps(units, rule.first_units, rule.step_units)
    except ValidationFailed:
        log.warning("freight template %s has a line with a step of 0", template.id)
        raise ValidationFailed.field(field, f"{template.name}: cannot be priced.") from None
    fee = rule.first_fee + steps * rule.step_fee
    if province is not None and province in template.remote_regions:
        fee += template.remote_surcharge
    return Charge(template, pieces, weight, amount, fee.quantize(CENT), False)


def charges(shop_lines: list[FreightLine], province: str | None, field: str = "address_id",
            templates: dict | None = None) -> list[Charge]:
    """Each template's charge for the lines it prices (lines of shops without templates are
    not charged); `templates` as `shop_templates` answers (read when omitted)."""
    if not shop_lines:
        return []
    templates = templates if templates is not None else \
        shop_templates({line.shop_id for line in shop_lines})
    groups: dict = {}
    for line in shop_lines:
        shop = templates.get(line.shop_id)
        if shop is None:
            continue
        template = shop.templates.get(line.template_id) if line.template_id else None
        if template is None or template.shop_id != line.shop_id:
            template = shop.templates.get(shop.default_id) if shop.default_id else None
        if template is not None:
            groups.setdefault(template.id, (template, []))[1].append(line)
    return [charge(template, lines, province, field) for template, lines in
            (groups[key] for key in sorted(groups))]


def freight_for(shop_lines: list[FreightLine], province, field: str = "address_id",
                templates: dict | None = None) -> Decimal:
    """The freight of one shop's lines to `province` (0 when no template prices them)."""
    return sum((c.freight for c in charges(shop_lines, province, field, templates)), ZERO)


def freight_by_shop(lines: list[FreightLine], province, field: str = "address_id") -> dict:
    """{shop_id: freight} of a cart's lines (one read of the templates for every shop)."""
    templates = shop_templates({line.shop_id for line in lines}) if lines else {}
    by_shop: dict = {}
    for line in lines:
        by_shop.setdefault(line.shop_id, []).append(line)
    return {shop_id: freight_for(group, province, field, templates)
            for shop_id, group in sorted(by_shop.items())}


def check_template(template: FreightTemplate) -> FreightTemplate:
    """A template's fields; the shop's first template becomes its default, and a new default
    takes the flag from the shop's previous one (exactly one default per shop)."""
    errors = {}
    template.name = (template.name or "").strip()
    if not template.name or len(template.name) > 64:
        errors["name"] = ["Required, at most 64 characters."]
    if template.basis not in BASES:
        errors["basis"] = [f"One of: {', '.join(BASES)}."]
    _fee(template.free_over_amount, "free_over_amount", errors, required=False)
    pieces = template.free_over_pieces
    if pieces is not None and (isinstance(pieces, bool) or not isinstance(pieces, int)
                               or not 1 <= pieces <= 100_000):
        errors["free_over_pieces"] = ["A whole number from 1 to 100000."]
    try:
        template.remote_regions = checked_regions(template.remote_regions, "remote_regions")
    except ValidationFailed as err:
        errors.update(err.errors)
    if template.remote_surcharge is None:
        template.remote_surcharge = ZERO
    _fee(template.remote_surcharge, "remote_surcharge", errors)
    if template.shop_id is None:
        errors["shop_id"] = ["Required."]
    if template.enabled is None:
        template.enabled = True
    if template.is_default and not template.enabled:
        errors["enabled"] = ["The shop's default template stays enabled."]
    if errors:
        raise ValidationFailed("Validation failed", errors)
    with db.session.no_autoflush:
        others = db.session.scalars(select(FreightTemplate).where(
            FreightTemplate.shop_id == template.shop_id,
            FreightTemplate.id != (template.id or 0)).with_for_update()).all()
        current_default = next((t for t in others if t.is_default), None)
        if template.is_default:
            for other in others:
                other.is_default = False
        elif current_default is None:
            if not template.enabled:
                raise ValidationFailed.field(
                    "enabled", "The shop's default template stays enabled.")
            template.is_default = True      # a shop with templates always has its default
    return template


def check_template_delete(template: FreightTemplate) -> None:
    """The default goes only with the shop's last template; an SPU's template stays."""
    used = db.session.scalar(select(func.count(Spu.id)).where(
        Spu.freight_template_id == template.id))
    if used:
        raise ConflictError("Products use this template",
                            {"id": [f"{used} product(s) name it."]})
    if template.is_default:
        others = db.session.scalar(select(func.count(FreightTemplate.id)).where(
            FreightTemplate.shop_id == template.shop_id, FreightTemplate.id != template.id))
        if others:
            raise ConflictError("Make another template the default first",
                                {"is_default": ["The shop's default template."]})


def check_freight_rule(rule: FreightRule) -> FreightRule:
    """A template line: regions, positive units (whole pieces by piece), fees; a province in
    one line of its template, one default line at most. It belongs to its template's shop."""
    errors = {}
    template = visible_row(FreightTemplate, rule.template_id)
    if template is None:
        raise ValidationFailed.field("template_id", "Related record not found.")
    if rule.shop_id is not None and rule.shop_id != template.shop_id:
        raise ValidationFailed.field("shop_id", "Must be the template's shop.")
    rule.shop_id = template.shop_id
    try:
        rule.regions = checked_regions(rule.regions)
    except ValidationFailed as err:
        errors.update(err.errors)
    whole = template.basis == "piece"
    _positive(rule.first_units, "first_units", errors, whole)
    _positive(rule.step_units, "step_units", errors, whole)
    _fee(rule.first_fee, "first_fee", errors)
    _fee(rule.step_fee, "step_fee", errors)
    if errors:
        raise ValidationFailed("Validation failed", errors)
    with db.session.no_autoflush:
        others = db.session.scalars(select(FreightRule).where(
            FreightRule.template_id == template.id, FreightRule.id != (rule.id or 0))).all()
    _no_overlap(rule.regions, [o.regions or [] for o in others])
    return rule


def quote_templates(lines, province_code, shop_id=None) -> dict:
    """The freight quote helper: each template's charge for these SKUs of one shop (at list
    price, no discounts) to a province, and the total."""
    province = checked_province(province_code)
    if not isinstance(lines, list) or not lines or len(lines) > MAX_QUOTE_LINES:
        raise ValidationFailed.field("lines", f"From 1 to {MAX_QUOTE_LINES} lines.")
    errors, wanted = {}, []
    for n, line in enumerate(lines):
        quantity = line.get("quantity") if isinstance(line, dict) else None
        sku_id = line.get("sku_id") if isinstance(line, dict) else None
        if isinstance(quantity, bool) or not isinstance(quantity, int) or \
                not 0 < quantity <= 9999:
            errors[f"lines.{n}.quantity"] = ["A whole number from 1 to 9999."]
        if not is_row_id(sku_id):
            errors[f"lines.{n}.sku_id"] = ["Related record not found."]
        wanted.append((sku_id, quantity))
    if errors:
        raise ValidationFailed("Validation failed", errors)
    rows = {row.id: row for row in scope_query(
        db.session.query(Sku.id, Sku.shop_id, Sku.price, Sku.weight_kg,
                         Spu.freight_template_id, Spu.goods_kind)
        .join(Spu, Spu.id == Sku.spu_id), Sku)
        .filter(Sku.id.in_([sku_id for sku_id, _ in wanted])).all()}
    for n, (sku_id, _) in enumerate(wanted):
        if sku_id not in rows:
            errors[f"lines.{n}.sku_id"] = ["Related record not found."]
    if errors:
        raise ValidationFailed("Validation failed", errors)
    shops = {rows[sku_id].shop_id for sku_id, _ in wanted}
    if shop_id is not None and (not is_row_id(shop_id) or shops != {shop_id}):
        raise ValidationFailed.field("shop_id", "The lines' SKUs must be of this shop.")
    if len(shops) != 1:
        raise ValidationFailed.field("lines", "SKUs of one shop.")
    freight_lines = [FreightLine(rows[sku_id].shop_id, rows[sku_id].freight_template_id,
                                 rows[sku_id].weight_kg, quantity,
                                 (rows[sku_id].price * quantity).quantize(CENT))
                     for sku_id, quantity in wanted if rows[sku_id].goods_kind != "service"]
    found = charges(freight_lines, province, "province_code")
    return {"shop_id": shops.pop(), "province_code": province,
            "freight": f"{sum((c.freight for c in found), ZERO):.2f}",
            "templates": [{"template_id": c.template.id, "name": c.template.name,
                           "basis": c.template.basis, "pieces": c.pieces,
                           "weight_kg": f"{c.weight_kg:.3f}", "amount": f"{c.amount:.2f}",
                           "free": c.free, "freight": f"{c.freight:.2f}"} for c in found]}


# -- the report: freight paid vs real cost ---------------------------------------------------

def _iso_day(value) -> date | None:
    """An ISO date given as text, else None."""
    try:
        return date.fromisoformat(value.strip()) if isinstance(value, str) else None
    except ValueError:
        return None


def _day(value, field: str, default: date) -> date:
    if value is None or value == "":
        return default
    day = _iso_day(value)
    if day is None:
        raise ValidationFailed.field(field, "A date such as 2026-11-26.")
    if not FIRST_REPORT_DAY <= day <= LAST_REPORT_DAY:
        raise ValidationFailed.field(
            field, f"From {FIRST_REPORT_DAY.isoformat()} to {LAST_REPORT_DAY.isoformat()}.")
    return day


def report_period(start=None, end=None) -> tuple[date, date]:
    """The report's business days (inclusive): ISO dates, by default the last 30 days."""
    end_day = _day(end, "to", business_date())
    start_day = _day(start, "from", end_day - timedelta(days=29))
    if start_day > end_day:
        raise ValidationFailed.field("from", "On or before `to`.")
    if (end_day - start_day).days >= MAX_REPORT_DAYS:
        raise ValidationFailed.field("from", f"At most {MAX_REPORT_DAYS} days.")
    return start_day, end_day


def freight_report(start=None, end=None) -> dict:
    """Shipments shipped in the period (the viewer's shop only): per carrier and per
    province, the freight buyers paid, the carriers' real cost, and the difference (paid −
    cost). Shipments without a known cost count 0 cost and are counted as `uncosted`."""
    start_day, end_day = report_period(start, end)
    since = business_day_bounds(start_day)[0]
    until = business_day_bounds(end_day)[1]
    base = scope_query(db.session.query(
        ShippingNotice.carrier_id, ShippingNotice.province_code,
        func.count(ShippingNotice.id), func.coalesce(func.sum(ShippingNotice.freight), 0),
        func.coalesce(func.sum(ShippingNotice.cost), 0),
        func.sum(case((ShippingNotice.cost.is_(None), 1), else_=0)))
        .filter(ShippingNotice.status == NoticeStatus.shipped.value,
                ShippingNotice.shipped_at >= since, ShippingNotice.shipped_at < until),
        ShippingNotice).group_by(ShippingNotice.carrier_id, ShippingNotice.province_code).all()
    carriers = {c.id: c for c in db.session.scalars(select(Carrier))}
    per_carrier: dict = {}
    per_province: dict = {}
    total = _bucket()
    for carrier_id, province, count, paid, cost, uncosted in base:
        for bucket in (per_carrier.setdefault(carrier_id, _bucket()),
                       per_province.setdefault(province, _bucket()), total):
            bucket["shipments"] += count
            bucket["uncosted"] += int(uncosted or 0)
            bucket["freight"] += Decimal(paid)
            bucket["cost"] += Decimal(cost)

    def shown(bucket: dict, **key) -> dict:
        return {**key, "shipments": bucket["shipments"], "uncosted": bucket["uncosted"],
                "freight": f"{bucket['freight']:.2f}", "cost": f"{bucket['cost']:.2f}",
                "difference": f"{bucket['freight'] - bucket['cost']:.2f}"}

    return {
        "from": start_day.isoformat(), "to": end_day.isoformat(),
        "carriers": [shown(per_carrier[k], carrier_id=k,
                           code=carriers[k].code if k in carriers else None,
                           name=carriers[k].name if k in carriers else None)
                     for k in sorted(per_carrier, key=lambda k: (k is None, k or 0))],
        "provinces": [shown(per_province[k], province_code=k)
                      for k in sorted(per_province, key=lambda k: (k is None, k or ""))],
        "total": shown(total)}


def _bucket() -> dict:
    return {"shipments": 0, "uncosted": 0, "freight": ZERO, "cost": ZERO}
