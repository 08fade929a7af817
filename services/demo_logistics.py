"""Demo data of logistics (once): carriers (SF, ZTO and the sandbox carrier) with rate cards,
selection rules, and a default freight template for each demo shop (shop A also a by-weight
one for bulky goods). Everything goes through the logistics checks, as in production."""
from decimal import Decimal

from app.extensions import db
from models.logistics import Carrier, CarrierRate, CarrierRule, FreightRule, FreightTemplate
from models.order import NoticeStatus, ShippingNotice
from models.product import Sku
from models.shop import Shop
from services import logistics
from services.actor import Actor, acting_as

FAR_WEST = ["650000", "540000"]          # Xinjiang, Tibet
REMOTE = ["650000", "540000", "630000", "150000", "640000", "620000", "460000"]
# code, name, tracking adapter and its code, cash on delivery, rate card lines
# (regions, first kg, first fee, step kg, step fee, remote surcharge)
CARRIERS = [
    ("SF", "顺丰速运", "kuaidi100", "shunfeng", True,
     [([], "1", "12.00", "1", "2.00", "5.00"), (FAR_WEST, "1", "22.00", "1", "8.00", "5.00")]),
    ("ZTO", "中通快递", "kuaidi100", "zhongtong", False,
     [([], "1", "8.00", "1", "1.50", "6.00"), (FAR_WEST, "1", "18.00", "1", "6.00", "6.00")]),
    ("sandbox", "沙箱快递 Sandbox carrier", "sandbox", None, False,
     [([], "1", "6.00", "1", "1.00", "3.00")]),
]


def load_logistics() -> bool:
    """Once: returns False when the demo already has its carriers."""
    if Carrier.query.filter_by(code="SF").one_or_none() is not None:
        return False
    with acting_as(Actor.system("demo")):
        carriers = {code: _carrier(code, name, adapter, adapter_code, cod, rates)
                    for code, name, adapter, adapter_code, cod, rates in CARRIERS}
        for name, priority, fields in (
                ("Heavy parcels (20 kg and more) by ZTO", 10,
                 {"min_weight_kg": Decimal("20"), "carrier_id": carriers["ZTO"].id}),
                ("Xinjiang and Tibet by SF", 20, {"regions": FAR_WEST,
                                                   "carrier_id": carriers["SF"].id}),
                ("Otherwise the cheapest carrier", 1000, {})):
            rule = CarrierRule(name=name, priority=priority, enabled=True,
                               regions=fields.pop("regions", []), **fields)
            logistics.check_rule(rule)
            db.session.add(rule)
        for code in ("A", "B"):
            shop = Shop.query.filter_by(code=code).one_or_none()
            if shop is not None:
                _templates(shop)
        for sku in Sku.query.filter(Sku.weight_kg.is_(None)):
            sku.weight_kg = Decimal("0.500")
        db.session.commit()
        _stamp_earlier_shipments()
    return True


def _stamp_earlier_shipments() -> None:
    """Shipments the demo made before there were carriers: weighed, stamped and costed as
    the logistics subscribers do for new ones."""
    for notice in ShippingNotice.query.filter(ShippingNotice.carrier_id.is_(None)) \
            .order_by(ShippingNotice.id).all():
        if not notice.weight_kg:
            notice.weight_kg = logistics.estimated_weight(notice.lines or [])
        if NoticeStatus(notice.status) == NoticeStatus.shipped:
            logistics.cost_shipped(notice.id)
        else:
            logistics.stamp_notice(notice.id)
        db.session.commit()


def _carrier(code, name, adapter, adapter_code, cod, rates) -> Carrier:
    carrier = Carrier.query.filter_by(code=code).one_or_none() or Carrier(code=code)
    carrier.name, carrier.adapter, carrier.adapter_code = name, adapter, adapter_code
    carrier.supports_cod, carrier.enabled = cod, True
    logistics.check_carrier(carrier)
    db.session.add(carrier)
    db.session.flush()
    if not carrier.rates:
        for regions, first_kg, first_fee, step_kg, step_fee, remote in rates:
            rate = CarrierRate(carrier_id=carrier.id, regions=list(regions),
                               first_kg=Decimal(first_kg), first_fee=Decimal(first_fee),
                               step_kg=Decimal(step_kg), step_fee=Decimal(step_fee),
                               remote_surcharge=Decimal(remote))
            logistics.check_rate(rate)
            db.session.add(rate)
            db.session.flush()
        db.session.refresh(carrier)
    return carrier


def _templates(shop: Shop) -> None:
    if FreightTemplate.query.filter_by(shop_id=shop.id).first() is not None:
        return
    plans = [("包邮满99 · 按件", "piece", Decimal("99.00"), True,
              [([], "1", "8.00", "1", "2.00"), (FAR_WEST, "1", "20.00", "1", "10.00")])]
    if shop.code == "A":
        plans.append(("大件 · 按重量", "weight", None, False,
                      [([], "1", "10.00", "1", "3.00"), (FAR_WEST, "1", "25.00", "1", "12.00")]))
    for name, basis, free_over, default, rules in plans:
        template = FreightTemplate(shop_id=shop.id, name=name, basis=basis,
                                   free_over_amount=free_over, remote_regions=REMOTE,
                                   remote_surcharge=Decimal("10.00"), is_default=default,
                                   enabled=True)
        logistics.check_template(template)
        db.session.add(template)
        db.session.flush()
        for regions, first, first_fee, step, step_fee in rules:
            rule = FreightRule(template_id=template.id, regions=list(regions),
                               first_units=Decimal(first), first_fee=Decimal(first_fee),
                               step_units=Decimal(step), step_fee=Decimal(step_fee))
            logistics.check_freight_rule(rule)
            db.session.add(rule)
            db.session.flush()
