"""Demo data of the storefront pages (once): home-page banners (one scheduled to start in a
week), icon navigation and tabs, linking to an on-sale product, a zone and a web page. Saved
through the same checks as the screens."""
from datetime import timedelta

from app.extensions import db
from models.product import Spu, SpuStatus
from models.storefront import StorefrontSlot
from services import storefront
from services.actor import Actor, acting_as
from services.clock import now

CDN = "https://img.example.com/houtai-demo"


def _slots(spu_id: int | None) -> list[dict]:
    start = now().replace(microsecond=0)
    product = {"link_type": "spu", "link_value": str(spu_id)} if spu_id else \
        {"link_type": "zone", "link_value": "new-arrivals"}
    return [
        {"kind": "banner", "position": "home_top", "title": "夏日大促 Summer sale",
         "image_url": f"{CDN}/summer.jpg", "link_type": "zone", "link_value": "summer-sale",
         "sort_order": 1, "starts_at": start - timedelta(days=1),
         "ends_at": start + timedelta(days=30)},
        {"kind": "banner", "position": "home_top", "title": "本周新品 New this week",
         "image_url": f"{CDN}/new.jpg", "sort_order": 2, **product},
        {"kind": "banner", "position": "home_top", "title": "618 预热 618 warm-up",
         "image_url": f"{CDN}/618.jpg", "link_type": "url",
         "link_value": "https://m.example.com/618", "sort_order": 0,
         "starts_at": start + timedelta(days=7), "ends_at": start + timedelta(days=14)},
        {"kind": "banner", "position": "home_top", "title": "小程序专享 Mini program only",
         "image_url": f"{CDN}/mini.jpg", "link_type": "zone", "link_value": "mini-exclusive",
         "sort_order": 3, "platforms": ["mini_program"]},
        {"kind": "icon", "position": "home_icons", "title": "女装 Women",
         "image_url": f"{CDN}/icon-women.png", "link_type": "zone", "link_value": "women",
         "sort_order": 1},
        {"kind": "icon", "position": "home_icons", "title": "数码 Digital",
         "image_url": f"{CDN}/icon-digital.png", "link_type": "zone", "link_value": "digital",
         "sort_order": 2},
        {"kind": "icon", "position": "home_icons", "title": "领券 Coupons",
         "image_url": f"{CDN}/icon-coupons.png", "link_type": "url",
         "link_value": "https://m.example.com/coupons", "sort_order": 3,
         "platforms": ["app", "h5", "mini_program"]},
        {"kind": "tab", "position": "home_tabs", "title": "推荐 For you", "sort_order": 1},
        {"kind": "tab", "position": "home_tabs", "title": "特价 Deals", "link_type": "zone",
         "link_value": "deals", "sort_order": 2},
    ]


def load_storefront() -> bool:
    """Once: returns False when the storefront already has slots."""
    if StorefrontSlot.query.first() is not None:
        return False
    spu = Spu.query.filter_by(status=SpuStatus.on_sale).order_by(Spu.id).first()
    with acting_as(Actor.system("demo")):
        for values in _slots(spu.id if spu else None):
            db.session.add(storefront.check_slot(StorefrontSlot(**values)))
        db.session.commit()
    return True
