"""会员中心 rules (basic): who sees buyers' phone numbers and addresses, and revealing them."""
import re

from app.extensions import db
from models.audit import AuditLog
from models.member import Member, MemberAddress
from services.actor import current_actor
from services.clock import now
from services.errors import NotFoundError, ValidationFailed

# Roles that see personal data masked in lists and screens (merchants always do).
MASKED_ROLES = {"CustomerService"}
REGION_CODE = re.compile(r"^\d{6}$")
PHONE = re.compile(r"^\+?[0-9][0-9 -]{5,30}$")


def masks_personal_data() -> bool:
    """True for merchants and customer service: they see 138****5678, not the number."""
    actor = current_actor()
    return actor.merchant or bool(set(actor.roles) & MASKED_ROLES) and "Admin" not in actor.roles


def mask_phone(phone: str | None) -> str | None:
    if not phone:
        return phone
    digits = phone.strip()
    if len(digits) <= 4:
        return "*" * len(digits)
    return digits[:3] + "*" * max(len(digits) - 7, 1) + digits[-4:]


def mask_text(text: str | None) -> str | None:
    """Keep the first two characters of an address detail."""
    if not text:
        return text
    return text[:2] + "*" * max(len(text) - 2, 1)


def mask_name(text: str | None) -> str | None:
    """Keep a name's first character (李**)."""
    if not text:
        return text
    return text[:1] + "*" * max(len(text) - 1, 1)


MEMBER_STATUSES = ("active", "frozen")


def check_member(member: Member) -> None:
    errors = {}
    member.status = member.status or "active"
    if member.status not in MEMBER_STATUSES:
        errors["status"] = [f"One of: {', '.join(MEMBER_STATUSES)}."]
    if member.phone and not PHONE.match(member.phone):
        errors["phone"] = ["Not a phone number."]
    if errors:
        raise ValidationFailed("Validation failed", errors)


def check_address(address: MemberAddress) -> None:
    """Region codes of six digits (province/city/district), a plausible phone, a detail."""
    errors = {}
    for field in ("province_code", "city_code", "district_code"):
        if not REGION_CODE.match(getattr(address, field) or ""):
            errors[field] = ["Six-digit region code."]
    if not PHONE.match(address.phone or ""):
        errors["phone"] = ["Not a phone number."]
    if not (address.detail or "").strip():
        errors["detail"] = ["Required."]
    if errors:
        raise ValidationFailed("Validation failed", errors)


def make_default(address: MemberAddress) -> None:
    """One default address per member: this one, if asked, or the first one."""
    siblings = MemberAddress.query.filter(MemberAddress.member_id == address.member_id,
                                          MemberAddress.id != address.id).all()
    if address.is_default:
        for other in siblings:
            other.is_default = False
    elif not any(other.is_default for other in siblings):
        address.is_default = True


def reveal(member_id: int, reason: str) -> Member:
    """Show a member's phone and addresses unmasked; recorded in the audit log with a reason."""
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationFailed.field("reason", "Required.")
    member = db.session.get(Member, member_id)
    if member is None:
        raise NotFoundError("Not found")
    actor = current_actor()
    db.session.add(AuditLog(created_at=now(), actor=actor.name, user_id=actor.user_id,
                            model="Member", record_pk=str(member.id), action="reveal",
                            changes={}, reason=reason.strip()[:255]))
    return member


# -- levels and growth ----------------------------------------------------------------------------

MAX_GROWTH_THRESHOLD = 100_000_000


def check_level(level) -> None:
    """What a member level must say to be saved: 422 naming the field otherwise."""
    from decimal import Decimal

    errors = {}
    if not isinstance(level.name, str) or not level.name.strip():
        errors["name"] = ["Required."]
    if not isinstance(level.growth_threshold, int) or \
            not 0 <= level.growth_threshold <= MAX_GROWTH_THRESHOLD:
        errors["growth_threshold"] = [f"A whole number from 0 to {MAX_GROWTH_THRESHOLD}."]
    level.discount_percent = level.discount_percent or Decimal(0)
    if not Decimal(0) <= level.discount_percent < Decimal(100):
        errors["discount_percent"] = ["From 0 to under 100 (5.00 = 5 % off)."]
    if level.free_shipping_threshold is not None and level.free_shipping_threshold < 0:
        errors["free_shipping_threshold"] = ["Must not be negative."]
    level.points_multiplier = level.points_multiplier or Decimal(1)
    if not Decimal(0) < level.points_multiplier <= Decimal(10):
        errors["points_multiplier"] = ["More than 0, at most 10."]
    if errors:
        raise ValidationFailed("Validation failed", errors)


def _level_for(growth):
    """The id of the highest level reached at `growth` (a number or a column)."""
    from sqlalchemy import select

    from models.member import MemberLevel

    return (select(MemberLevel.id).where(MemberLevel.growth_threshold <= growth)
            .order_by(MemberLevel.growth_threshold.desc()).limit(1).scalar_subquery())


def add_growth(member: Member, growth: int) -> None:
    """Growth from a completed order; the member's level follows it (never on its own down:
    growth only grows)."""
    member.growth = (member.growth or 0) + max(growth, 0)
    db.session.flush()
    relevel(member.id)
    db.session.expire(member, ["level_id", "level"])


def detach_level(level_id: int) -> None:
    """A level is being deleted: its members lose it first (relevel puts them back)."""
    from sqlalchemy import update

    db.session.execute(update(Member).where(Member.level_id == level_id).values(level_id=None)
                       .execution_options(synchronize_session=False))


def relevel(member_id: int | None = None) -> int:
    """Put members (one, or all after the levels changed) at the level their growth reached."""
    from sqlalchemy import update

    statement = update(Member).values(level_id=_level_for(Member.growth))
    if member_id is not None:
        statement = statement.where(Member.id == member_id)
    return db.session.execute(statement.execution_options(synchronize_session=False)).rowcount
