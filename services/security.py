"""Users and their shops: creating and updating console/API accounts."""
from flask import current_app

from app.extensions import db
from models.security import UserAccount
from models.shop import Shop
from services.errors import ValidationFailed


def _security_manager():
    return current_app.appbuilder.sm


def shop_rule_errors(role_names: list[str], shop_id: int | None) -> dict:
    """Merchants belong to exactly one shop; every other role belongs to none."""
    merchant = "Merchant" in role_names
    if merchant and shop_id is None:
        return {"shop": ["A Merchant user needs a shop."]}
    if shop_id is not None and not merchant:
        return {"shop": ["Only Merchant users belong to a shop."]}
    return {}


def upsert_user(username: str, password: str, role: str, shop_code: str | None = None,
                *, email: str | None = None, first_name: str | None = None) -> tuple[UserAccount, bool]:
    """Create the user, or bring an existing one to this password, role and shop.
    Returns (user, created). Merchants need a shop; other roles must not have one."""
    from app.security import ROLES

    errors = {}
    if role not in ROLES:
        errors["role"] = [f"Unknown role; one of: {', '.join(ROLES)}"]
    if not password:
        errors["password"] = ["Must not be empty."]
    shop = None
    if role == "Merchant" and not shop_code:
        errors["shop"] = ["A Merchant user needs --shop."]
    if shop_code:
        if role != "Merchant":
            errors["shop"] = ["Only Merchant users belong to a shop."]
        shop = db.session.query(Shop).filter_by(code=shop_code).one_or_none()
        if shop is None:
            errors["shop"] = [f"No shop with code {shop_code!r}."]
    if errors:
        raise ValidationFailed("Validation failed", errors)
    sm = _security_manager()
    role_row = sm.find_role(role)
    if role_row is None:
        raise ValidationFailed.field("role", "Role not synced yet: run `houtai init`.")
    user = db.session.query(UserAccount).filter_by(username=username).one_or_none()
    created = user is None
    if created:
        user = UserAccount(username=username, active=True)
        db.session.add(user)
    user.first_name = first_name or user.first_name or username
    user.last_name = user.last_name or "-"
    user.email = email or user.email or f"{username}@houtai.local"
    user.active = True
    user.roles = [role_row]
    user.shop_id = shop.id if shop else None
    user.password = _hash(password)
    db.session.commit()
    return user, created


def _hash(password: str) -> str:
    from werkzeug.security import generate_password_hash

    method = current_app.config.get("FAB_PASSWORD_HASH_METHOD", "scrypt")
    return generate_password_hash(password, method=method)
