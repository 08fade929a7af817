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
