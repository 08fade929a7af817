"""Demo data for a first look (`houtai demo`): idempotent, built through the same services."""
from decimal import Decimal

from flask import current_app

from app.extensions import db
from models.shop import Shop, ShopStatus
from services.security import upsert_user

DEMO_SHOPS = [
    ("A", "Shop A 优选百货", ShopStatus.open, Decimal("0.0500")),
    ("B", "Shop B 数码旗舰店", ShopStatus.open, Decimal("0.0300")),
    ("C", "Shop C 新入驻", ShopStatus.applying, Decimal("0.0500")),
]
DEMO_USERS = [
    ("admin", "Admin", None),
    ("ops", "Operations", None),
    ("product_ops", "ProductOps", None),
    ("merchant_a", "Merchant", "A"),
    ("merchant_b", "Merchant", "B"),
    ("storefront", "Storefront", None),
    ("cs", "CustomerService", None),
    ("finance", "Finance", None),
]


def demo_password() -> str:
    """DEMO_PASSWORD, or one generated once and kept in the instance folder."""
    from config import read_or_create_secret

    return current_app.config.get("DEMO_PASSWORD") or \
        read_or_create_secret(current_app.instance_path, "demo_password", nbytes=9)


def ensure_shop(code: str, name: str, status: ShopStatus, commission: Decimal) -> Shop:
    shop = db.session.query(Shop).filter_by(code=code).one_or_none()
    if shop is None:
        shop = Shop(code=code, name=name, status=status, commission_rate=commission)
        db.session.add(shop)
        db.session.commit()
    return shop


def load_demo() -> dict:
    """Create the demo shops and users (resetting the users' passwords); returns the logins."""
    for code, name, status, commission in DEMO_SHOPS:
        ensure_shop(code, name, status, commission)
    password = demo_password()
    for username, role, shop_code in DEMO_USERS:
        upsert_user(username, password, role, shop_code)
    load_products()
    return {"password": password, "users": [(u, r, s) for u, r, s in DEMO_USERS]}


def load_products() -> None:
    from services import demo_product

    demo_product.load_catalog()
    for code in ("A", "B"):
        demo_product.load_shop_products(Shop.query.filter_by(code=code).one())
    demo_product.load_stock()
    demo_product.load_members_and_trades()
    from services import demo_money

    demo_money.load_money()
    from services import demo_marketing

    demo_marketing.load_marketing()
    from services import demo_review

    demo_review.load_reviews()
    from services import demo_risk

    demo_risk.load_risk()
    from services import demo_logistics

    demo_logistics.load_logistics()
    from services import demo_wms

    demo_wms.load_wms()
    from services import demo_tracking

    demo_tracking.load_tracking()
    from services import demo_purchasing

    demo_purchasing.load_purchasing()
    from services import demo_storefront

    demo_storefront.load_storefront()
    from services import demo_integrations

    demo_integrations.load_integrations()
    from services import demo_prices

    demo_prices.load_prices()
    from services import demo_export

    demo_export.load_exports()
