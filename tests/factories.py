"""How to make a row of each shop-owned model for a given shop, and a valid REST body for it.

The isolation walk, the audit walk and the bad-input sweep use these for every registered
model; a shop-owned model without an entry here makes those walks fail, so a new model is
covered the day it is registered.
"""
from itertools import count

import io

from PIL import Image

from app.extensions import db
from models.audit import AuditLog
from models.shop import Shop
from models.storage import UploadedFile
from services.actor import Actor, acting_as

_serial = count(1)
MARKER = "LEAKMARK"


def marker_of(shop: Shop) -> str:
    return f"{MARKER}-{shop.code}"


def _shop_row(shop: Shop) -> Shop:
    return shop


def _audit_row(shop: Shop) -> AuditLog:
    """An audit entry of one of `shop`'s records, written the way the product writes them."""
    shop.settlement_account = f"{marker_of(shop)}-{next(_serial)}"
    db.session.commit()
    return AuditLog.query.filter_by(model="Shop", record_pk=str(shop.id)).order_by(
        AuditLog.id.desc()).first()


def png_bytes(size=(4, 3), color=(200, 30, 30), image_format="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=image_format)
    return buffer.getvalue()


def _uploaded_file_row(shop: Shop) -> UploadedFile:
    """An image uploaded by a merchant of `shop`, through the upload service."""
    from services.storage import store_image

    with acting_as(Actor(name=f"merchant-{shop.code}", shop_id=shop.id, authenticated=True)):
        record = store_image(png_bytes(), f"{marker_of(shop)}-{next(_serial)}.png")
        db.session.commit()
    return record


ROW_FACTORIES = {
    Shop: _shop_row,
    AuditLog: _audit_row,
    UploadedFile: _uploaded_file_row,
}


def make_row(model, shop: Shop):
    """A committed row of `model` belonging to `shop`."""
    try:
        factory = ROW_FACTORIES[model]
    except KeyError:
        raise AssertionError(
            f"{model.__name__} is shop-owned but tests/factories.py has no ROW_FACTORIES entry")
    return factory(shop)


def _shop_body(shop: Shop | None) -> dict:
    n = next(_serial)
    return {"code": f"S{n}", "name": f"Shop {n}", "status": "open", "commission_rate": "0.0500"}


# Valid POST bodies for each writable REST resource, in `shop` (None: the merchant's own).
API_BODIES = {
    Shop: _shop_body,
}


def api_body(model, shop: Shop | None) -> dict:
    try:
        factory = API_BODIES[model]
    except KeyError:
        raise AssertionError(
            f"{model.__name__} has a POST endpoint but tests/factories.py has no API_BODIES entry")
    return factory(shop)
