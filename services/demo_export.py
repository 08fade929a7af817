"""Demo data of exports (once): shop A's orders as CSV, requested by its merchant, and the
platform's sales by shop as Excel; both built by the export job, as in production."""
from app.extensions import db
from models.export import ExportJob
from models.shop import Shop
from services import export
from services.actor import Actor, acting_as


def load_exports() -> bool:
    """Once: returns False when an export already exists."""
    if db.session.query(ExportJob.id).first() is not None:
        return False
    shop = Shop.query.filter_by(code="A").one_or_none()
    if shop is not None:
        with acting_as(Actor(name="merchant_a", shop_id=shop.id, authenticated=True,
                             merchant=True)):
            export.request_export("orders", "csv", {})
    with acting_as(Actor.system("demo")):
        export.request_export("sales", "xlsx", {"group_by": "shop"})
    db.session.commit()
    return True
