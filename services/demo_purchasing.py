"""Demo data of the purchasing center (once): shop A's suppliers in each lifecycle state with
their licences, a price list, a replenishment rule that drafts a purchase order, a purchase
order received through WMS, a supplier statement and the ratings — all through the services."""
import io
from datetime import date
from decimal import Decimal

from app.extensions import db
from models.inventory import Warehouse
from models.product import Sku
from models.purchasing import ReplenishmentRule, Supplier, SupplierDocument, SupplierPrice
from models.shop import Shop
from services import inventory, purchasing, wms
from services.actor import Actor, acting_as
from services.clock import business_date
from services.demo_product import DEMO_WAREHOUSES

SUPPLIERS = [  # code, name, contact, the state it is taken to
    ("SH-TEX", "上海纺织品有限公司", "王经理", "active"),
    ("HZ-PACK", "杭州包装材料厂", "李女士", "qualified"),
    ("GZ-NEW", "广州新源服饰", "陈先生", "prospect"),
    ("NB-OLD", "宁波旧港贸易", "赵先生", "suspended"),
]


def _licence_image() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (230, 230, 210)).save(buffer, format="PNG")
    return buffer.getvalue()


def load_purchasing() -> bool:
    """Once: returns False when the demo already has suppliers (or nothing to work with)."""
    if Supplier.query.first() is not None:
        return False
    shop = Shop.query.filter_by(code="A").one_or_none()
    warehouse = Warehouse.query.filter_by(code=DEMO_WAREHOUSES[0][0], shop_id=None).one_or_none()
    skus = Sku.query.filter_by(shop_id=shop.id).order_by(Sku.id).limit(3).all() if shop else []
    if warehouse is None or len(skus) < 3:
        return False
    with acting_as(Actor.system("demo")):
        suppliers = {code: _supplier(shop, code, name, contact, state)
                     for code, name, contact, state in SUPPLIERS}
        active = suppliers["SH-TEX"]
        for sku, price in zip(skus, ("18.00", "22.50", "9.80")):
            _price(active, sku, price, 1)
            _price(active, sku, str(Decimal(price) - Decimal("1.00")), 100)
        _received_order(active, warehouse, skus[1])
        _rule(shop, warehouse, skus[0], active)
        purchasing.replenish()
        db.session.commit()
        today = business_date()
        purchasing.draft_statement(active.id, today, today)
        for supplier in suppliers.values():
            purchasing.rate(supplier.id)
        db.session.commit()
    return True


def _supplier(shop: Shop, code: str, name: str, contact: str, state: str) -> Supplier:
    from services.storage import store_image

    supplier = Supplier(shop_id=shop.id, code=code, name=name, contact_name=contact,
                        phone="021-55550000", email=f"{code.lower()}@example.cn",
                        payment_terms_days=30, lead_time_days=5)
    purchasing.check_supplier(supplier, creating=True)
    db.session.add(supplier)
    db.session.flush()
    if state == "prospect":
        return supplier
    upload = store_image(_licence_image(), f"{code}-licence.png")
    document = SupplierDocument(supplier_id=supplier.id, kind="business_licence",
                                number=f"9131000{supplier.id:011d}", file_id=upload.id,
                                valid_until=date(business_date().year + 3, 12, 31))
    purchasing.check_document(document, creating=True)
    db.session.add(document)
    db.session.flush()
    purchasing.verify_document(document.id)
    purchasing.qualify(supplier.id)
    if state in ("active", "suspended"):
        purchasing.activate(supplier.id)
    if state == "suspended":
        purchasing.suspend(supplier.id, "Two late deliveries in a row")
    db.session.flush()
    return supplier


def _price(supplier: Supplier, sku: Sku, price: str, min_quantity: int) -> None:
    row = SupplierPrice(supplier_id=supplier.id, sku_id=sku.id, price=Decimal(price),
                        min_quantity=min_quantity, valid_from=date(business_date().year, 1, 1))
    purchasing.check_price(row)
    db.session.add(row)


def _received_order(supplier: Supplier, warehouse: Warehouse, sku: Sku) -> None:
    """Ordered, approved, sent, and received in full through a WMS receipt."""
    po = purchasing.create_purchase_order(supplier.id, warehouse.id,
                                          [{"sku_id": sku.id, "quantity": 40}],
                                          note="Spring restock")
    purchasing.approve_purchase_order(po.id)
    purchasing.send_purchase_order(po.id)
    receipt = wms.create_receipt(source="purchase", purchase_order_id=po.id)
    [line] = receipt.lines
    wms.record_receipt_lines(receipt.id, [{"line_id": line.id, "received": 40,
                                           "location": "B-02-01"}])
    wms.confirm_receipt(receipt.id)
    purchasing.apply_receipts(po.id)      # what the `receipt.confirmed` subscriber does


def _rule(shop: Shop, warehouse: Warehouse, sku: Sku, supplier: Supplier) -> None:
    """A rule whose reorder point is above what is available now: the job drafts an order."""
    available = inventory.available(sku.id, warehouse.id)
    rule = ReplenishmentRule(sku_id=sku.id, warehouse_id=warehouse.id, safety_stock=10,
                             reorder_point=available + 10, reorder_quantity=50,
                             supplier_id=supplier.id, enabled=True)
    purchasing.check_rule(rule)
    db.session.add(rule)
    db.session.flush()
