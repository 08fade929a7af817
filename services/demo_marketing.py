"""Demo data of marketing and members (once): member levels, a platform spend-tier promotion
(跨店满减), a flash sale and a special event of shop A, and coupons (one claimable, one public
code). Everything goes through the services' checks, as in production."""
from datetime import timedelta
from decimal import Decimal

from app.extensions import db
from models.marketing import Coupon, Promotion, PromotionZone
from models.member import MemberLevel
from models.product import Sku, Spu, SpuStatus
from models.shop import Shop
from services import marketing, member
from services.actor import Actor, acting_as
from services.clock import now

LEVELS = [("普通会员", 0, "0", None, "1"), ("银卡会员", 500, "2.00", "199.00", "1.2"),
          ("金卡会员", 2000, "5.00", "99.00", "1.5")]


def load_marketing() -> bool:
    """Once: returns False when the demo already has its member levels."""
    if MemberLevel.query.first() is not None:
        return False
    with acting_as(Actor.system("demo")):
        for name, growth, discount, free_from, multiplier in LEVELS:
            level = MemberLevel(name=name, growth_threshold=growth,
                                discount_percent=Decimal(discount),
                                free_shipping_threshold=Decimal(free_from) if free_from else None,
                                points_multiplier=Decimal(multiplier))
            member.check_level(level)
            db.session.add(level)
        db.session.flush()
        member.relevel()
        _promotions()
        _coupons()
        db.session.commit()
    return True


def _window(days: int) -> dict:
    start = now() - timedelta(hours=1)
    return {"starts_at": start, "ends_at": start + timedelta(days=days)}


def _promotions() -> None:
    shop = Shop.query.filter_by(code="A").one()
    on_sale = Sku.query.join(Spu, Spu.id == Sku.spu_id).filter(
        Spu.shop_id == shop.id, Spu.status == SpuStatus.on_sale).order_by(Sku.id).limit(2).all()
    rows = [Promotion(name="跨店满减 满200减20 满400减50", kind="threshold", funded_by="platform",
                      rules={"tiers": [{"threshold": "200", "amount": "20"},
                                       {"threshold": "400", "amount": "50"}]},
                      budget=Decimal("50000.00"), **_window(30))]
    if on_sale:
        zone = PromotionZone(shop_id=shop.id, name="冬季专场", kind="event",
                             banner_url="/static/houtai/winter-banner.svg",
                             spu_ids=sorted({sku.spu_id for sku in on_sale}), **_window(14))
        marketing.check_zone(zone)
        db.session.add(zone)
        db.session.flush()
        flash = on_sale[0]
        rows += [Promotion(shop_id=shop.id, name="限时秒杀", kind="flash_sale",
                           rules={"prices": {str(flash.id): f"{flash.price * Decimal('0.7'):.2f}"}},
                           quantity=20, per_member_limit=2, **_window(3)),
                 Promotion(shop_id=shop.id, zone_id=zone.id, name="专场 满2件9折",
                           kind="multi_buy", rules={"tiers": [{"count": 2, "percent_off": "10"}]},
                           **_window(14))]
    for row in rows:
        db.session.add(marketing.check_promotion(row))


def _coupons() -> None:
    for coupon in (
            Coupon(name="新人券 满99减10", kind="threshold", amount=Decimal("10.00"),
                   threshold=Decimal("99.00"), scope="all", scope_ids=[], total_quantity=1000,
                   per_member_limit=1, claimable=True, **_window(60)),
            Coupon(name="欢迎码 立减5元", kind="fixed", amount=Decimal("5.00"), code="WELCOME5",
                   scope="all", scope_ids=[], total_quantity=1000, per_member_limit=1,
                   claimable=False, stackable=True, **_window(60))):
        db.session.add(marketing.check_coupon(coupon))
