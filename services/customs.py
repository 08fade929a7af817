"""物流中心 customs declarations (跨境报关) of shipments from bonded (cross-border) warehouses.

A declaration names each SKU of its shipping notice with a 10-digit HS code and the country
of origin; the declared values are the notice lines' payable, allocated so they sum exactly
to the notice's payable. The buyer's identity is checked (an 18-digit PRC resident identity
number with its GB 11643-1999 check digit and a real birth date, and the buyer's name equal to
the order's recipient) and kept only as a hint (first 6 and last 4 digits) and an HMAC digest
under SECRET_KEY, never in full.

Status: draft → submitted (through the customs adapter, services/customs_adapters) → cleared
or held (its decision: a signed callback, or the `customs.poll` tick). A held declaration is
revised (back to draft) and submitted again; a draft or held one may be cancelled, and a
cancelled one is declared afresh by creating it again (the same row, a draft again). A
notice from a cross-border warehouse ships only once its declaration is cleared
(`ensure_cleared`, called by the order service when shipping: 409 naming `customs`).
Lock order: declaring locks the notice (its trade) first, then its declaration; the other
steps lock a declaration row alone.
"""
import hashlib
import hmac
import logging
import re
from datetime import date
from decimal import Decimal

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from models.inventory import Warehouse
from models.logistics import CustomsDeclaration
from models.order import NoticeStatus, Order, ShippingNotice
from models.product import Sku
from services import customs_adapters
from services.actor import ALL_SHOPS, Actor, acting_as, is_row_id, shop_scope, visible_row
from services.clock import business_date, now
from services.errors import ConflictError, HoutaiError, NotFoundError, ValidationFailed
from services.events import publish
from services.money import allocate
from services.numbering import number
from services.scheduler import scheduled

log = logging.getLogger(__name__)

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"
HS_CODE = re.compile(r"[0-9]{10}")
ORIGIN = re.compile(r"[A-Z]{2,3}")
REVISABLE = ("draft", "held")
CANCELLABLE = ("draft", "held")
SHOP_MISMATCH = "Must be your own shop."


# -- the buyer's identity ----------------------------------------------------------------------

def valid_resident_id(value: str) -> bool:
    """An 18-digit PRC resident identity number (GB 11643-1999): 17 digits, a check character
    (0-9 or X) matching the weighted sum mod 11, and a birth date (digits 7-14) that exists
    and is not in the future."""
    if not re.fullmatch(r"[0-9]{17}[0-9X]", value):
        return False
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    if born.year < 1900 or born > business_date():
        return False
    total = sum(int(digit) * weight for digit, weight in zip(value[:17], ID_WEIGHTS))
    return ID_CHECK[total % 11] == value[17]


def id_hint(value: str) -> str:
    return f"{value[:6]}{'*' * (len(value) - 10)}{value[-4:]}"


def id_digest(value: str) -> str:
    return hmac.new(current_app.config["SECRET_KEY"].encode(), value.encode(),
                    hashlib.sha256).hexdigest()


# -- lookups -----------------------------------------------------------------------------------

def visible(declaration_id) -> CustomsDeclaration:
    found = visible_row(CustomsDeclaration, declaration_id)
    if found is None:
        raise NotFoundError("Not found")
    return found


def _for_update(declaration_id) -> CustomsDeclaration:
    visible(declaration_id)
    return db.session.execute(select(CustomsDeclaration).where(
        CustomsDeclaration.id == declaration_id).with_for_update()).scalar_one()


def needs_declaration(notice: ShippingNotice) -> bool:
    if notice.warehouse_id is None:
        return False
    warehouse = db.session.get(Warehouse, notice.warehouse_id)
    return bool(warehouse and warehouse.cross_border)


def ensure_cleared(notice: ShippingNotice) -> None:
    """A notice from a cross-border warehouse ships only with a cleared declaration: 409
    naming `customs` (the declaration's status, or `missing`)."""
    if not needs_declaration(notice):
        return
    status = db.session.scalar(select(CustomsDeclaration.status).where(
        CustomsDeclaration.notice_id == notice.id))
    if status != "cleared":
        raise ConflictError("A cross-border shipment needs a cleared customs declaration",
                            {"customs": [status or "missing"]})


# -- declaring ---------------------------------------------------------------------------------

def _text(value, field: str, limit: int, errors: dict) -> str | None:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > limit:
        errors[field] = [f"Required text, at most {limit} characters."]
        return None
    return value.strip()


def _notice(notice_id, shop_id, errors: dict) -> ShippingNotice | None:
    scope = shop_scope()
    if shop_id is not None and scope is not ALL_SHOPS and shop_id != scope:
        errors["shop_id"] = [SHOP_MISMATCH]
    notice = visible_row(ShippingNotice, notice_id)
    if notice is None:
        errors["notice_id"] = ["Related record not found."]
        return None
    if shop_id is not None and shop_id != notice.shop_id:
        errors["shop_id"] = ["Must be the shipment's shop."]
    if not needs_declaration(notice):
        errors["notice_id"] = ["Not a shipment from a cross-border warehouse."]
        return None
    return notice


def _buyer(notice: ShippingNotice | None, name, id_number, errors: dict) -> tuple:
    name = _text(name, "buyer_name", 64, errors)
    if not isinstance(id_number, str) or not valid_resident_id(id_number.strip().upper()):
        errors["buyer_id_number"] = ["An 18-digit resident identity number with a valid "
                                     "check digit."]
        id_number = None
    else:
        id_number = id_number.strip().upper()
    if name and notice is not None:
        recipient = (db.session.get(Order, notice.order_id).address or {}).get("recipient")
        if (recipient or "").strip() != name:
            errors["buyer_name"] = ["Must be the order's recipient."]
    return name, id_number


def _items(notice: ShippingNotice | None, items, errors: dict) -> list[dict]:
    """The declared items, one per SKU of the notice, with their values."""
    if not isinstance(items, list) or not items or len(items) > 100:
        errors["items"] = ["One item per SKU of the shipment."]
        return []
    given: dict[int, dict] = {}
    for n, item in enumerate(items):
        where = f"items.{n}"
        if not isinstance(item, dict):
            errors[where] = ["An object with sku_id, hs_code, origin."]
            continue
        sku_id = item.get("sku_id")
        if not isinstance(sku_id, int) or isinstance(sku_id, bool) or sku_id in given:
            errors[f"{where}.sku_id"] = ["A SKU of the shipment, once."]
            continue
        hs_code, origin = item.get("hs_code"), item.get("origin")
        if not isinstance(hs_code, str) or not HS_CODE.fullmatch(hs_code):
            errors[f"{where}.hs_code"] = ["A 10-digit HS code."]
        if not isinstance(origin, str) or not ORIGIN.fullmatch(origin):
            errors[f"{where}.origin"] = ["A country code (ISO 3166, e.g. JP or JPN)."]
        given[sku_id] = item
    if notice is None or errors:
        return []
    lines = notice.lines or []
    if set(given) != {line["sku_id"] for line in lines}:
        errors["items"] = ["One item per SKU of the shipment: "
                           f"{', '.join(str(line['sku_id']) for line in lines)}."]
        return []
    values = allocate(notice.payable, [Decimal(str(line["payable"])) for line in lines])
    declared = []
    for line, value in zip(lines, values):
        sku = db.session.get(Sku, line["sku_id"])
        quantity = int(line["quantity"])
        declared.append({
            "sku_id": line["sku_id"], "name": (sku.spu.title if sku else str(line["sku_id"]))[:64],
            "hs_code": given[line["sku_id"]]["hs_code"], "quantity": quantity,
            "unit_value": f"{(value / quantity):.2f}", "value": f"{value:.2f}",
            "origin": given[line["sku_id"]]["origin"]})
    return declared


def _checked(notice_id, shop_id, body: dict) -> tuple:
    errors: dict = {}
    notice = _notice(notice_id, shop_id, errors)
    name, id_number = _buyer(notice, body.get("buyer_name"), body.get("buyer_id_number"),
                             errors)
    items = _items(notice, body.get("items"), errors)
    if errors:
        raise ValidationFailed("Validation failed", errors)
    if NoticeStatus(notice.status) in (NoticeStatus.shipped, NoticeStatus.cancelled):
        raise ConflictError("The shipment is not awaiting shipping",
                            {"status": [NoticeStatus(notice.status).value]})
    return notice, name, id_number, items


def _fill(declaration: CustomsDeclaration, name: str, id_number: str, items: list) -> None:
    declaration.items = items
    declaration.total_value = sum((Decimal(i["value"]) for i in items), Decimal("0.00"))
    declaration.buyer_name = name
    declaration.buyer_id_hint = id_hint(id_number)
    declaration.buyer_id_digest = id_digest(id_number)
    declaration.status, declaration.message = "draft", None
    declaration.customs_no, declaration.submitted_at, declaration.decided_at = None, None, None


def declare(body: dict) -> CustomsDeclaration:
    """A draft declaration of a shipping notice from a cross-border warehouse (a cancelled one
    of the same notice becomes a draft again)."""
    from services.order import notice_for_update

    notice_id = body.get("notice_id")
    if is_row_id(notice_id):
        try:
            notice_for_update(notice_id)      # two declarations of one notice: one at a time
        except NotFoundError:
            pass                              # answered 422 by the checks below
    notice, name, id_number, items = _checked(notice_id, body.get("shop_id"), body)
    declaration = db.session.execute(select(CustomsDeclaration).where(
        CustomsDeclaration.notice_id == notice.id).with_for_update()).scalar_one_or_none()
    if declaration is not None and declaration.status != "cancelled":
        raise _declared_already(declaration.declaration_no, declaration.status)
    if declaration is None:
        declaration = CustomsDeclaration(declaration_no=number("CD"), notice_id=notice.id,
                                         order_id=notice.order_id, shop_id=notice.shop_id,
                                         currency="CNY", created_at=now())
        _fill(declaration, name, id_number, items)
        try:
            with db.session.begin_nested():
                db.session.add(declaration)
                db.session.flush()
        except IntegrityError:
            raise _declared_already("another declaration", "made meanwhile") from None
    else:
        _fill(declaration, name, id_number, items)
        db.session.flush()
    publish("customs_declaration.drafted", {"declaration_id": declaration.id,
                                            "notice_id": notice.id}, shop_id=notice.shop_id)
    return declaration


def _declared_already(declaration_no: str, status: str) -> ConflictError:
    return ConflictError("The shipment is declared already",
                         {"notice_id": [f"{declaration_no} ({status})"]})


def revise(declaration_id, body: dict) -> CustomsDeclaration:
    """Correct a draft or held declaration (buyer and items, the whole of them): a draft."""
    declaration = _for_update(declaration_id)
    if declaration.status not in REVISABLE:
        raise ConflictError(f"A {declaration.status} declaration cannot be revised",
                            {"status": [declaration.status]})
    _notice_, name, id_number, items = _checked(declaration.notice_id, body.get("shop_id"),
                                                body)
    _fill(declaration, name, id_number, items)
    return declaration


def submit(declaration_id) -> CustomsDeclaration:
    """Hand a draft to customs: submitted, with the customs' number; the decision follows."""
    declaration = _for_update(declaration_id)
    if declaration.status != "draft":
        raise ConflictError("Only a draft can be submitted (revise a held one first)",
                            {"status": [declaration.status]})
    declaration.customs_no = customs_adapters.in_use().submit(declaration)
    declaration.status, declaration.message = "submitted", None
    declaration.submitted_at, declaration.decided_at = now(), None
    publish("customs_declaration.submitted", {"declaration_id": declaration.id},
            shop_id=declaration.shop_id)
    return declaration


def cancel(declaration_id) -> CustomsDeclaration:
    declaration = _for_update(declaration_id)
    if declaration.status not in CANCELLABLE:
        raise ConflictError(f"A {declaration.status} declaration cannot be cancelled",
                            {"status": [declaration.status]})
    declaration.status = "cancelled"
    publish("customs_declaration.cancelled", {"declaration_id": declaration.id},
            shop_id=declaration.shop_id)
    return declaration


# -- decisions ---------------------------------------------------------------------------------

def apply_decision(decision: customs_adapters.Decision) -> CustomsDeclaration | None:
    """Record customs' decision on a submission once: a repeat, a decision on an earlier
    submission, or one not made yet changes nothing."""
    if decision.status not in (customs_adapters.CLEARED, customs_adapters.HELD):
        return None
    declaration = db.session.execute(select(CustomsDeclaration).where(
        CustomsDeclaration.customs_no == decision.customs_no).with_for_update()
    ).scalar_one_or_none()
    if declaration is None:
        raise NotFoundError("Unknown customs number", {"customs_no": ["No such submission."]})
    if declaration.status != "submitted":
        return declaration
    declaration.status, declaration.message = decision.status, decision.message
    declaration.decided_at = now()
    publish(f"customs_declaration.{decision.status}",
            {"declaration_id": declaration.id, "notice_id": declaration.notice_id,
             "message": decision.message}, shop_id=declaration.shop_id)
    return declaration


def handle_callback(adapter_name: str, body: bytes, headers) -> CustomsDeclaration | None:
    """A customs decision callback, verified (401 when its signature is wrong)."""
    decision = customs_adapters.calling_back(adapter_name).decision_notice(body, headers)
    with acting_as(Actor.system(f"customs:{adapter_name}")):
        return apply_decision(decision)


@scheduled("customs.poll")
def poll_submitted() -> int:
    """Ask customs about submitted declarations (a lost callback is caught up); each in its
    own transaction. Returns how many were decided."""
    ids = db.session.scalars(select(CustomsDeclaration.customs_no).where(
        CustomsDeclaration.status == "submitted").order_by(CustomsDeclaration.submitted_at)
        .limit(current_app.config["TRACKING_POLL_BATCH"])).all()
    db.session.rollback()
    decided = 0
    with acting_as(Actor.job("customs.poll")):
        for customs_no in ids:
            try:
                if apply_decision(customs_adapters.in_use().query(customs_no)) is not None:
                    decided += 1
                db.session.commit()
            except HoutaiError as refusal:
                db.session.rollback()
                log.warning("polling customs %s: %s", customs_no, refusal.message)
    return decided
