"""Demo data of price management (once): an applied 9-fold markdown of one of shop A's
products, a weekend price cut of one of shop B's products scheduled for `houtai tick`, and a
deep clearance of shop A waiting for the platform's approval. Made through the price batch
service, so every applied line is in the price history."""
from datetime import timedelta
from decimal import Decimal

from app.extensions import db
from models.prices import PriceBatch
from models.product import Spu
from models.shop import Shop
from services import prices
from services.actor import Actor, acting_as
from services.clock import now


def _spu_ids(shop_code: str) -> list[int]:
    shop = Shop.query.filter_by(code=shop_code).one_or_none()
    if shop is None:
        return []
    return [spu.id for spu in Spu.query.filter_by(shop_id=shop.id).order_by(Spu.id)
            if spu.skus]


def load_prices() -> bool:
    """Once: returns False when a price batch exists already (or there are no products)."""
    if PriceBatch.query.first() is not None:
        return False
    shop_a, shop_b = _spu_ids("A"), _spu_ids("B")
    if not shop_a or not shop_b:
        return False
    with acting_as(Actor.system("demo")):
        prices.submit({"spu_ids": shop_a[:1]}, "percent", Decimal("-10.00"),
                      "九折 10% off this week")
        prices.submit({"spu_ids": shop_b[:1]}, "amount", Decimal("-5.00"),
                      "周末特价 Weekend price", now() + timedelta(days=3))
        prices.submit({"spu_ids": shop_a[-1:]}, "percent", Decimal("-40.00"),
                      "清仓 Clearance", now() + timedelta(days=1))
        db.session.commit()
    return True
