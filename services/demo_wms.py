"""Demo data of the WMS (once): a confirmed receipt into the Shanghai warehouse, a pick list
of its waiting shipping notices, a blind count sheet of zone A, and a transfer on its way to
Guangzhou — all made through services/wms.py like any other."""
from sqlalchemy import select

from app.extensions import db
from models.inventory import Warehouse
from models.order import NoticeStatus, ShippingNotice
from models.product import Sku
from models.shop import Shop
from models.wms import Receipt
from services import wms
from services.actor import Actor, acting_as
from services.demo_product import DEMO_WAREHOUSES


def load_wms() -> bool:
    """Once: returns False when the demo already has a receipt (or nothing to work with)."""
    if Receipt.query.first() is not None:
        return False
    codes = [code for code, _, _ in DEMO_WAREHOUSES]
    warehouses = {w.code: w for w in Warehouse.query.filter(Warehouse.shop_id.is_(None),
                                                           Warehouse.code.in_(codes))}
    shop = Shop.query.filter_by(code="A").one_or_none()
    skus = Sku.query.filter_by(shop_id=shop.id).order_by(Sku.id).limit(2).all() if shop else []
    if len(warehouses) < 2 or len(skus) < 2:
        return False
    shanghai, guangzhou = warehouses[codes[0]], warehouses[codes[1]]
    with acting_as(Actor.system("demo")):
        _receipt(shop, shanghai, skus)
        _pick_list(shanghai)
        wms.create_count(shanghai.id, zone="A", blind=True, note="Monthly count of zone A")
        transfer = wms.create_transfer(shanghai.id, guangzhou.id,
                                       [{"sku_id": skus[0].id, "quantity": 5}], shop_id=shop.id,
                                       note="Rebalance for the south")
        wms.ship_transfer(transfer.id, "SF", "SF7000000001")
        db.session.commit()
    return True


def _receipt(shop: Shop, warehouse: Warehouse, skus: list[Sku]) -> None:
    receipt = wms.create_receipt(warehouse.id, "other", [
        {"sku_id": skus[0].id, "expected": 30}, {"sku_id": skus[1].id, "expected": 20}],
        shop_id=shop.id, note="Restock from the supplier's van")
    first, second = receipt.lines
    wms.record_receipt_lines(receipt.id, [
        {"line_id": first.id, "received": 30, "location": "A-01-01"},
        {"line_id": second.id, "received": 18, "rejected": 2,
         "reject_reason": "Packaging damaged", "location": "A-01-02"}])
    wms.confirm_receipt(receipt.id)


def _pick_list(warehouse: Warehouse) -> None:
    waiting = db.session.scalars(select(ShippingNotice.id).where(
        ShippingNotice.warehouse_id == warehouse.id,
        ShippingNotice.status == NoticeStatus.assigned,
        ShippingNotice.pick_list_id.is_(None)).order_by(ShippingNotice.id).limit(5)).all()
    if waiting:
        wms.create_pick_list(list(waiting))
