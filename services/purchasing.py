"""采购中心 rules: suppliers (lifecycle, qualification documents, price lists, scorecard),
replenishment, purchase orders, supplier statements, and the supplier's side of consignment
(代销) and drop-shipping (代发).

Supplier lifecycle (each step a SupplierTransition, who/when/why):

    prospect → qualified     needs a verified business licence that has not expired
    qualified → active       (the licence still valid); only active suppliers get orders
    active → suspended       a reason is required
    suspended → active       the licence still valid

Purchase orders:

    draft → approved → sent → partially_received → received → closed
    draft | approved | sent (nothing arrived) → cancelled
    sent | partially_received → closed (the rest short-closed)

Received and rejected quantities are never typed in: on every `receipt.confirmed` of an
order, each line is recomputed from what WMS confirmed (`services.wms.
received_for_purchase_order`), so a repeated event has one effect. An order is `received`
when every line received what it ordered (rejected goods are not expected again: the supplier
re-ships them on a new order).

Replenishment: a rule's position is what is available in its warehouse plus what is still
to arrive on open orders (draft to partially received) of its SKU there. At or below the
reorder point the job orders `reorder_quantity` plus whatever restores the safety stock
(`reorder_quantity + max(safety_stock − position, 0)`) from the preferred supplier at its
list price, one purchase order per (shop, supplier, warehouse). Each rule is claimed with a
conditional UPDATE (`open_po_id IS NULL`) before its line is written, so two runs, even
concurrent ones, draft one line per rule; the claim is released when that order is received,
closed or cancelled. A rule without an active supplier or a price alerts only
(`replenishment.alert` with its `reason`), at most once per PURCHASING_ALERT_HOURS.

Scorecard (0–100, PURCHASING_RATING_WEIGHTS, default on_time 30, quality 30, returns 20,
fill_rate 20): each factor is a share from 0 to 1 —

    on_time    receipts of its orders confirmed on or before the order's expected day
               ÷ its confirmed receipts (orders with an expected day)
    quality    1 − rejected ÷ (received + rejected) over its order lines
    returns    1 − units of after-sales with a quality reason (PURCHASING_QUALITY_REASONS,
               matched in the reason's text; 7-day no-reason returns never count) ÷ units
               sold, over the SKUs it supplies (on its orders, or its consigned and
               drop-shipped goods)
    fill_rate  received ÷ ordered over its received and closed orders

rating = 100 × Σ weight × factor ÷ Σ weight over the factors that have data (a factor
without data neither helps nor hurts); no data at all leaves the rating empty. The factors,
their counts and the weights used are kept in `rating_factors`.

Money (services/finance.py posts nothing itself for these; this module calls its `post`):

    receipt.confirmed (a PO)   Dr 1405 inventory                Cr 2204 supplier payables
                               (received × the PO line price, one entry per receipt)
    order.completed            Dr 5401 cost of consigned goods  Cr 2204
      (consigned lines)        (quantity × the consignor's list price that day)
    supplier_statement.paid    Dr 2204                          Cr 1003 bank

A statement collects, for one supplier and period, the received receipt lines and consigned
sales not yet on a statement (an item is unique per source, so a source is paid once).
"""
import hmac
import json
import logging
import re
from datetime import date, datetime, timedelta
from decimal import Decimal

from flask import current_app
from sqlalchemy import String, and_, cast, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from models.after_sale import AfterSale
from models.inventory import Warehouse
from models.order import NoticeStatus, Order, OrderLine, ShippingNotice
from models.product import Fulfilment, Sku, Spu
from models.purchasing import (DOCUMENT_KINDS, PurchaseOrder, PurchaseOrderLine,
                               ReplenishmentRule, Supplier, SupplierDocument, SupplierPrice,
                               SupplierStatement, SupplierStatementItem, SupplierTransition)
from models.storage import UploadedFile
from services import keys
from services.actor import Actor, acting_as, current_actor, is_row_id, scope_query, visible_row
from services.clock import business_date, business_day_bounds, now
from services.errors import (REFERENCE_NOT_FOUND, ConflictError, ForbiddenError, HoutaiError,
                             NotFoundError, ValidationFailed)
from services.events import publish, subscribe
from services.numbering import number
from services.scheduler import scheduled

log = logging.getLogger(__name__)

ZERO = Decimal("0.00")
CENT = Decimal("0.01")
MAX_QUANTITY = 1_000_000
MAX_PO_LINES = 200
PROSPECT, QUALIFIED, ACTIVE, SUSPENDED = "prospect", "qualified", "active", "suspended"
OPEN_PO = ("draft", "approved", "sent", "partially_received")
RECEIVABLE_STATUSES = ("sent", "partially_received")
LICENCE = "business_licence"
SUPPLIER_FLOW = {
    "qualify": ({PROSPECT}, QUALIFIED),
    "activate": ({QUALIFIED, SUSPENDED}, ACTIVE),
    "suspend": ({ACTIVE}, SUSPENDED),
}
PO_FLOW = {
    "approve": ({"draft"}, "approved"),
    "send": ({"approved"}, "sent"),
    "close": ({"sent", "partially_received", "received"}, "closed"),
    "cancel": ({"draft", "approved", "sent"}, "cancelled"),
}
# statement item kinds
RECEIPT_LINE, CONSIGNMENT = "receipt_line", "consignment"
# accounts (services/finance.py ACCOUNTS)
INVENTORY, SUPPLIER_PAYABLES, CONSIGNED_COST, BANK = "1405", "2204", "5401", "1003"
CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
FACTORS = ("on_time", "quality", "returns", "fill_rate")


# -- small checks ----------------------------------------------------------------------------

def _text(value, field: str, limit: int, required: bool = False) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValidationFailed.field(field, "Required.")
        return None
    if not isinstance(value, str) or len(value.strip()) > limit:
        raise ValidationFailed.field(field, f"Text of at most {limit} characters.")
    return value.strip()


def _whole(value, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationFailed.field(field, f"A whole number from {low} to {high}.")
    return value


def _reason(value) -> str:
    return _text(value, "reason", 255, required=True)


def _money(value, field: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, str)):
        raise ValidationFailed.field(field, "An amount such as \"12.50\", not negative.")
    try:
        amount = Decimal(str(value).strip())
    except ArithmeticError:
        amount = None
    if amount is None or not amount.is_finite() or amount < 0 or \
            amount != amount.quantize(CENT) or amount > Decimal("99999999.99"):
        raise ValidationFailed.field(field, "An amount such as \"12.50\", not negative, "
                                            "two decimals at most.")
    return amount.quantize(CENT)


def _locked(model, row_id):
    """The row of `model` the actor may see, row-locked and read afresh (404 otherwise)."""
    if visible_row(model, row_id) is None:
        raise NotFoundError("Not found")
    return db.session.scalars(select(model).where(model.id == row_id).with_for_update()
                              .execution_options(populate_existing=True)).one()


def _must_be(row, step: str, sources) -> None:
    if row.status not in sources:
        raise ConflictError(f"Cannot {step} when {row.status}", {"status": [row.status]})


def _same_shop(row, shop_id: int, field: str) -> None:
    if row is None or getattr(row, "shop_id", None) != shop_id:
        raise ValidationFailed.field(field, REFERENCE_NOT_FOUND)


def _id_of(row, relation: str):
    """A foreign key as the form or body set it: the column, else the related row's id."""
    value = getattr(row, f"{relation}_id")
    if value is None and getattr(row, relation, None) is not None:
        value = getattr(row, relation).id
    return value


def _visible(model, row_id, field: str):
    row = visible_row(model, row_id)
    if row is None:
        raise ValidationFailed.field(field, REFERENCE_NOT_FOUND)
    return row


def _shop_warehouse(warehouse_id, shop_id: int, field: str = "warehouse_id") -> Warehouse:
    """A warehouse the actor may use that holds the shop's goods: its own or the platform's."""
    warehouse = visible_row(Warehouse, warehouse_id)
    if warehouse is None or warehouse.shop_id not in (None, shop_id):
        raise ValidationFailed.field(field, REFERENCE_NOT_FOUND)
    return warehouse


# -- suppliers -------------------------------------------------------------------------------

def check_supplier(supplier: Supplier, creating: bool = False) -> Supplier:
    """The fields of a supplier (screens and REST): code, name, contact, terms, notify URL.
    A new supplier starts as a prospect, with that first step on its history."""
    errors = {}
    for field, check in (
            ("code", lambda v: v if isinstance(v, str) and CODE.match(v.strip()) else None),
            ("name", lambda v: _text(v, "name", 128, required=True)),
            ("contact_name", lambda v: _text(v, "contact_name", 64) or True),
            ("phone", lambda v: _text(v, "phone", 32) or True),
            ("address", lambda v: _text(v, "address", 255) or True),
    ):
        try:
            if check(getattr(supplier, field)) is None:
                errors[field] = ["Letters, digits, _ . - (at most 32), starting with a letter "
                                 "or digit."]
        except ValidationFailed as err:
            errors.update(err.errors)
    email = supplier.email.strip() if isinstance(supplier.email, str) else supplier.email
    if email and (not isinstance(email, str) or len(email) > 128 or not EMAIL.match(email)):
        errors["email"] = ["An e-mail address."]
    url = supplier.notify_url.strip() if isinstance(supplier.notify_url, str) else None
    if supplier.notify_url and (not url or len(url) > 255 or
                                not url.startswith(("http://", "https://"))):
        errors["notify_url"] = ["An http(s) URL of at most 255 characters."]
    for field in ("payment_terms_days", "lead_time_days"):
        value = getattr(supplier, field)
        if value is None:
            setattr(supplier, field, 30 if field == "payment_terms_days" else 7)
        elif isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 365:
            errors[field] = ["A whole number of days from 0 to 365."]
    if errors:
        raise ValidationFailed("Validation failed", errors)
    supplier.code, supplier.name = supplier.code.strip(), supplier.name.strip()
    supplier.email, supplier.notify_url = email or None, url or None
    supplier.shop_id = _id_of(supplier, "shop")
    if supplier.shop_id is None:
        raise ValidationFailed.field("shop_id", "Required.")
    if creating:
        supplier.status = PROSPECT
        supplier.transitions.append(SupplierTransition(
            shop_id=supplier.shop_id, from_status=None, to_status=PROSPECT,
            actor=current_actor().name, created_at=now()))
    return supplier


def check_supplier_deletable(supplier: Supplier) -> None:
    """Only a prospect nothing refers to is deleted (with its history, documents and
    prices); any other supplier is kept for its orders and statements: suspend it."""
    used = supplier.status != PROSPECT or any(db.session.scalar(
        select(model.id).where(column == supplier.id).limit(1)) is not None for model, column in (
        (PurchaseOrder, PurchaseOrder.supplier_id), (SupplierStatement,
                                                      SupplierStatement.supplier_id),
        (ReplenishmentRule, ReplenishmentRule.supplier_id), (Spu, Spu.supplier_id),
        (ShippingNotice, ShippingNotice.supplier_id)))
    if used:
        raise ConflictError("Only an unused prospect is deleted: suspend the supplier",
                            {"status": [supplier.status]})
    for model in (SupplierTransition, SupplierDocument, SupplierPrice):
        for row in db.session.scalars(select(model).where(model.supplier_id == supplier.id)):
            db.session.delete(row)
    db.session.flush()


def _valid_licence(supplier: Supplier) -> SupplierDocument | None:
    today = business_date()
    return db.session.scalars(select(SupplierDocument).where(
        SupplierDocument.supplier_id == supplier.id, SupplierDocument.kind == LICENCE,
        SupplierDocument.verified.is_(True),
        or_(SupplierDocument.valid_until.is_(None), SupplierDocument.valid_until >= today))
        .limit(1)).first()


def move_supplier(supplier_id, step: str, reason=None) -> Supplier:
    """qualify, activate or suspend (with a reason) a supplier; kept on its history."""
    if step == "suspend":
        reason = _reason(reason)
    elif reason is not None:
        reason = _text(reason, "reason", 255)
    supplier = _locked(Supplier, supplier_id)
    sources, target = SUPPLIER_FLOW[step]
    _must_be(supplier, step, sources)
    if step in ("qualify", "activate") and _valid_licence(supplier) is None:
        raise ConflictError("A verified, unexpired business licence is required",
                            {"documents": ["No verified business licence valid today."]})
    db.session.add(SupplierTransition(
        shop_id=supplier.shop_id, supplier_id=supplier.id, from_status=supplier.status,
        to_status=target, actor=current_actor().name, reason=reason, created_at=now()))
    supplier.status = target
    supplier.status_reason = reason if step == "suspend" else None
    publish(f"supplier.{target}", {"supplier_id": supplier.id}, shop_id=supplier.shop_id)
    return supplier


def qualify(supplier_id, reason=None) -> Supplier:
    return move_supplier(supplier_id, "qualify", reason)


def activate(supplier_id, reason=None) -> Supplier:
    return move_supplier(supplier_id, "activate", reason)


def suspend(supplier_id, reason) -> Supplier:
    return move_supplier(supplier_id, "suspend", reason)


def _changed(row, *fields) -> bool:
    from sqlalchemy import inspect

    state = inspect(row)
    return any(state.attrs[f].history.has_changes() for f in fields)


def check_document(document: SupplierDocument, creating: bool = False) -> SupplierDocument:
    """A qualification document: of a supplier the actor may see, a known kind, a file
    uploaded for that supplier's shop. Changing what it says takes its verification back."""
    supplier = _visible(Supplier, _id_of(document, "supplier"), "supplier_id")
    document.supplier_id, document.shop_id = supplier.id, supplier.shop_id
    if document.kind not in DOCUMENT_KINDS:
        raise ValidationFailed.field("kind", f"One of: {', '.join(DOCUMENT_KINDS)}.")
    document.number = _text(document.number, "number", 64)
    if document.file_id is not None:
        upload = visible_row(UploadedFile, document.file_id)
        if upload is None or upload.shop_id not in (None, supplier.shop_id):
            raise ValidationFailed.field("file_id", REFERENCE_NOT_FOUND)
    if document.valid_until is not None and not isinstance(document.valid_until, date):
        raise ValidationFailed.field("valid_until", "A date (YYYY-MM-DD).")
    if creating:
        document.verified, document.verified_by, document.verified_at = False, None, None
        document.created_at = document.created_at or now()
    elif _changed(document, "kind", "number", "file_id", "valid_until", "supplier_id"):
        document.verified, document.verified_by, document.verified_at = False, None, None
    return document


def verify_document(document_id) -> SupplierDocument:
    """A person checked the document against its file: verified (once, while valid)."""
    document = _locked(SupplierDocument, document_id)
    if document.verified:
        raise ConflictError("Already verified", {"verified": [document.verified_by or ""]})
    if document.valid_until is not None and document.valid_until < business_date():
        raise ConflictError("The document has expired",
                            {"valid_until": [document.valid_until.isoformat()]})
    if document.file_id is None:
        raise ConflictError("Nothing to verify against", {"file_id": ["Upload its file first."]})
    document.verified, document.verified_by = True, current_actor().name
    document.verified_at = now()
    return document


def check_price(price: SupplierPrice) -> SupplierPrice:
    """A price-list tier: a SKU of the supplier's shop, from `min_quantity` units, valid from
    one day (to another, or open)."""
    supplier = _visible(Supplier, _id_of(price, "supplier"), "supplier_id")
    price.supplier_id, price.shop_id = supplier.id, supplier.shop_id
    price.sku_id = _id_of(price, "sku")
    _same_shop(visible_row(Sku, price.sku_id), supplier.shop_id, "sku_id")
    price.price = _money(price.price, "price")
    if price.min_quantity is None:
        price.min_quantity = 1
    _whole(price.min_quantity, "min_quantity", 1, MAX_QUANTITY)
    if not isinstance(price.valid_from, date):
        raise ValidationFailed.field("valid_from", "A date (YYYY-MM-DD).")
    if price.valid_until is not None and (not isinstance(price.valid_until, date) or
                                          price.valid_until < price.valid_from):
        raise ValidationFailed.field("valid_until", "On or after valid_from.")
    return price


def price_for(supplier_id: int, sku_id: int, quantity: int, day: date | None = None
              ) -> Decimal | None:
    """The supplier's unit price of a SKU for `quantity` units on `day` (today): the tier
    with the highest `min_quantity` not above the quantity, among those valid that day (the
    latest `valid_from` first); None when there is none."""
    day = day or business_date()
    row = db.session.scalars(select(SupplierPrice.price).where(
        SupplierPrice.supplier_id == supplier_id, SupplierPrice.sku_id == sku_id,
        SupplierPrice.min_quantity <= quantity, SupplierPrice.valid_from <= day,
        or_(SupplierPrice.valid_until.is_(None), SupplierPrice.valid_until >= day))
        .order_by(SupplierPrice.min_quantity.desc(), SupplierPrice.valid_from.desc())
        .limit(1)).first()
    return None if row is None else Decimal(row)


# -- supplier keys and signatures (drop-shipping reports) -------------------------------------

KEY_PREFIX, KEY_PURPOSE = "sk_", "supplier-key"


def issue_key(supplier_id) -> tuple[Supplier, str]:
    """A new signing key for the supplier (any earlier one stops working). The key is
    answered once; the database keeps only a salt and a hash of it (services/keys.py)."""
    supplier = _locked(Supplier, supplier_id)
    key, supplier.api_key_hash = keys.new_key(KEY_PREFIX, KEY_PURPOSE)
    publish("supplier.key_issued", {"supplier_id": supplier.id}, shop_id=supplier.shop_id)
    return supplier, key


def supplier_key(supplier: Supplier) -> str | None:
    """The supplier's current key (to sign what we send it and check what it sends us)."""
    return keys.stored_key(supplier.api_key_hash, KEY_PREFIX, KEY_PURPOSE)


sign = keys.sign


class BadSignature(HoutaiError):
    status = 401


TIMESTAMP = re.compile(r"[0-9]{1,12}")
SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")


def signed_supplier(code, timestamp, signature, body: bytes) -> Supplier:
    """The supplier whose key signed the request, within the time window; 401 otherwise
    (headers checked for shape first: ASCII digits, 64 hex digits). A supplier that is not
    active (suspended) is refused with 403 even when its signature is good."""
    refused = BadSignature("Bad or missing signature", {"signature": [
        "Sign <X-Timestamp>.<body> with the supplier key (hex HMAC-SHA256)."]})
    if not all(isinstance(v, str) for v in (code, timestamp, signature)) or \
            not CODE.fullmatch(code) or not TIMESTAMP.fullmatch(timestamp) or \
            not SIGNATURE.fullmatch(signature):
        raise refused
    window = current_app.config.get("SUPPLIER_SIGNATURE_WINDOW_SECONDS", 300)
    if abs(now().timestamp() - int(timestamp)) > window:
        raise BadSignature("The request is too old or from the future",
                           {"timestamp": [f"Within {window} seconds of now."]})
    for supplier in db.session.scalars(select(Supplier).where(
            Supplier.code == code, Supplier.api_key_hash.is_not(None)).order_by(Supplier.id)):
        key = supplier_key(supplier)
        if key and hmac.compare_digest(sign(key, timestamp, body).encode("ascii"),
                                       signature.lower().encode("ascii")):
            if supplier.status != ACTIVE:
                raise ForbiddenError("The supplier is not active",
                                     {"supplier": [f"The supplier is {supplier.status}."]})
            return supplier
    raise refused


# -- purchase orders ---------------------------------------------------------------------------

def _active_supplier(supplier_id, field: str = "supplier_id") -> Supplier:
    supplier = _visible(Supplier, supplier_id, field)
    if supplier.status != ACTIVE:
        raise ConflictError("Only an active supplier gets purchase orders",
                            {field: [f"The supplier is {supplier.status}."]})
    return supplier


def _checked_lines(lines, supplier: Supplier, day: date) -> list[dict]:
    if not isinstance(lines, list) or not lines or len(lines) > MAX_PO_LINES:
        raise ValidationFailed.field("lines", f"From 1 to {MAX_PO_LINES} lines.")
    errors, checked, seen = {}, [], set()
    for n, line in enumerate(lines):
        try:
            if not isinstance(line, dict):
                raise ValidationFailed.field("line", "An object {sku_id, quantity, unit_price}.")
            sku = visible_row(Sku, line.get("sku_id"))
            _same_shop(sku, supplier.shop_id, "sku_id")
            if sku.id in seen:
                raise ValidationFailed.field("sku_id", "Named twice: one line per SKU.")
            seen.add(sku.id)
            quantity = _whole(line.get("quantity"), "quantity", 1, MAX_QUANTITY)
            if line.get("unit_price") is not None:
                unit_price = _money(line["unit_price"], "unit_price")
            else:
                unit_price = price_for(supplier.id, sku.id, quantity, day)
                if unit_price is None:
                    raise ValidationFailed.field("unit_price",
                                                 "No list price of this supplier: give one.")
            checked.append({"sku_id": sku.id, "quantity": quantity, "unit_price": unit_price})
        except ValidationFailed as err:
            for field, reasons in err.errors.items():
                errors[f"lines.{n}.{field}"] = reasons
    if errors:
        raise ValidationFailed("Validation failed", errors)
    return checked


def _new_po(supplier: Supplier, warehouse: Warehouse, source: str, expected_on=None,
            note=None) -> PurchaseOrder:
    po = PurchaseOrder(po_no=number("PO"), shop_id=supplier.shop_id, supplier_id=supplier.id,
                       warehouse_id=warehouse.id, status="draft", source=source, total=ZERO,
                       expected_on=expected_on or business_date() +
                       timedelta(days=supplier.lead_time_days or 0),
                       note=note, created_at=now())
    db.session.add(po)
    db.session.flush()
    return po


def _add_line(po: PurchaseOrder, sku_id: int, quantity: int, unit_price: Decimal,
              rule_id: int | None = None) -> PurchaseOrderLine:
    line = PurchaseOrderLine(shop_id=po.shop_id, sku_id=sku_id, quantity=quantity,
                             unit_price=unit_price, amount=(unit_price * quantity).quantize(CENT),
                             rule_id=rule_id)
    po.lines.append(line)
    po.total = sum((l.amount for l in po.lines), ZERO)
    return line


def create_purchase_order(supplier_id, warehouse_id, lines, expected_on=None,
                          note=None) -> PurchaseOrder:
    """A draft purchase order to an active supplier, into a warehouse of its shop; each
    line's price is the one given, else the supplier's list price for that quantity today."""
    supplier = _active_supplier(supplier_id)
    warehouse = _shop_warehouse(warehouse_id, supplier.shop_id)
    if expected_on is not None and (not isinstance(expected_on, date) or
                                    expected_on < business_date()):
        raise ValidationFailed.field("expected_on", "Today or a later day (YYYY-MM-DD).")
    note = _text(note, "note", 255)
    checked = _checked_lines(lines, supplier, business_date())
    po = _new_po(supplier, warehouse, "manual", expected_on, note)
    for line in checked:
        _add_line(po, line["sku_id"], line["quantity"], line["unit_price"])
    db.session.flush()
    publish("purchase_order.drafted", {"purchase_order_id": po.id, "source": "manual"},
            shop_id=po.shop_id)
    return po


def _release_rules(po: PurchaseOrder) -> None:
    """The rules this order was drafted for may order again."""
    db.session.execute(update(ReplenishmentRule).where(ReplenishmentRule.open_po_id == po.id)
                       .values(open_po_id=None).execution_options(synchronize_session=False))


def _arrived_under_lock(po: PurchaseOrder, step: str) -> None:
    """Under the order's row lock (which confirming a receipt of it takes too): what WMS
    confirmed so far, not the line figures the `receipt.confirmed` handler keeps, which may
    not have caught up yet. An order with a confirmed receipt is not cancelled; a closed
    order's lines carry what arrived."""
    from models.wms import Receipt
    from services import wms

    counts = wms.received_for_purchase_order(po.id)
    if step == "cancel" and (any(received or rejected for received, rejected in counts.values())
                             or db.session.scalar(select(Receipt.id).where(
                                 Receipt.purchase_order_id == po.id,
                                 Receipt.status == "confirmed").limit(1)) is not None):
        raise ConflictError("Goods have arrived: close the order instead",
                            {"status": [po.status]})
    for line in po.lines:
        line.received, line.rejected = counts.get(line.id, (0, 0))


def move_purchase_order(po_id, step: str, reason=None) -> PurchaseOrder:
    """approve, send, close (the rest short-closed) or cancel (nothing arrived) an order."""
    if step in ("close", "cancel"):
        reason = _text(reason, "reason", 255, required=step == "cancel")
    po = _locked(PurchaseOrder, po_id)
    sources, target = PO_FLOW[step]
    _must_be(po, step, sources)
    if step == "approve":
        if db.session.get(Supplier, po.supplier_id).status != ACTIVE:
            raise ConflictError("The supplier is no longer active",
                                {"supplier_id": ["Only an active supplier gets orders."]})
        po.approved_by, po.approved_at = current_actor().name, now()
    elif step == "send":
        po.sent_at = now()
    if step in ("close", "cancel"):
        _arrived_under_lock(po, step)
        po.closed_at = now()
        if reason:
            po.note = reason
        _release_rules(po)
    po.status = target
    publish(f"purchase_order.{target}", {"purchase_order_id": po.id, "po_no": po.po_no,
                                         "supplier_id": po.supplier_id},
            shop_id=po.shop_id)
    return po


def approve_purchase_order(po_id) -> PurchaseOrder:
    return move_purchase_order(po_id, "approve")


def send_purchase_order(po_id) -> PurchaseOrder:
    return move_purchase_order(po_id, "send")


def close_purchase_order(po_id, reason=None) -> PurchaseOrder:
    return move_purchase_order(po_id, "close", reason)


def cancel_purchase_order(po_id, reason) -> PurchaseOrder:
    return move_purchase_order(po_id, "cancel", reason)


def receivable_lines(purchase_order_id) -> list[dict]:
    """What can still arrive on a purchase order the actor may see: one dict per line,
    `outstanding` = ordered − received (rejected goods are not expected again: the supplier
    re-ships them on a new order). 404 for an order the actor cannot see, 409 unless the
    order is `sent` or `partially_received`."""
    po = visible_row(PurchaseOrder, purchase_order_id)
    if po is None:
        raise NotFoundError("Not found")
    if po.status not in RECEIVABLE_STATUSES:
        raise ConflictError(f"The purchase order is {po.status}", {"status": [po.status]})
    lines = db.session.scalars(select(PurchaseOrderLine)
                               .where(PurchaseOrderLine.purchase_order_id == po.id)
                               .order_by(PurchaseOrderLine.id)).all()
    return [{"purchase_order_line_id": line.id, "sku_id": line.sku_id,
             "outstanding": max(line.quantity - line.received, 0),
             "unit_price": Decimal(line.unit_price)} for line in lines]


def apply_receipts(po_id: int) -> PurchaseOrder | None:
    """Recompute each line's received and rejected quantities from what WMS confirmed, and
    the order's status from them (idempotent: the same receipts give the same numbers)."""
    from services import wms

    po = db.session.scalars(select(PurchaseOrder).where(PurchaseOrder.id == po_id)
                            .with_for_update().execution_options(populate_existing=True)
                            ).one_or_none()
    if po is None:
        return None
    counts = wms.received_for_purchase_order(po.id)
    for line in po.lines:
        line.received, line.rejected = counts.get(line.id, (0, 0))
    if po.status in RECEIVABLE_STATUSES:
        if all(line.received >= line.quantity for line in po.lines):
            po.status, po.received_at = "received", now()
            _release_rules(po)
            publish("purchase_order.received", {"purchase_order_id": po.id,
                                                "po_no": po.po_no,
                                                "supplier_id": po.supplier_id},
                    shop_id=po.shop_id)
        elif any(line.received or line.rejected for line in po.lines):
            po.status = "partially_received"
    return po


@subscribe("receipt.confirmed", "purchasing.apply_receipt")
def _receipt_confirmed(payload: dict) -> None:
    if payload.get("purchase_order_id"):
        apply_receipts(payload["purchase_order_id"])


@subscribe("receipt.confirmed", "purchasing.post_receipt")
def _post_receipt(payload: dict) -> None:
    """Goods received on a purchase order: Dr 1405 inventory / Cr 2204 what the shop owes
    the supplier, at the order's prices (one entry per receipt)."""
    from models.wms import Receipt, ReceiptLine
    from services import finance

    receipt = db.session.get(Receipt, payload["receipt_id"])
    if receipt is None or receipt.purchase_order_id is None:
        return
    amount = db.session.scalar(
        select(func.coalesce(func.sum(ReceiptLine.received * PurchaseOrderLine.unit_price), 0))
        .join(PurchaseOrderLine, PurchaseOrderLine.id == ReceiptLine.purchase_order_line_id)
        .where(ReceiptLine.receipt_id == receipt.id))
    amount = Decimal(amount).quantize(CENT)
    po = db.session.get(PurchaseOrder, receipt.purchase_order_id)
    finance.post("purchase", [(INVENTORY, receipt.shop_id, amount, ZERO),
                              (SUPPLIER_PAYABLES, receipt.shop_id, ZERO, amount)],
                 reference=po.po_no, source=f"purchase.receipt:{receipt.id}",
                 occurred_at=receipt.confirmed_at or now(),
                 memo=f"Goods received {receipt.receipt_no}")


# -- replenishment -----------------------------------------------------------------------------

def check_rule(rule: ReplenishmentRule) -> ReplenishmentRule:
    """A rule of a SKU the actor may see, in a warehouse holding its shop's goods, with a
    supplier of that shop (or none: it then only alerts)."""
    sku = _visible(Sku, _id_of(rule, "sku"), "sku_id")
    rule.sku_id, rule.shop_id = sku.id, sku.shop_id
    rule.warehouse_id = _shop_warehouse(_id_of(rule, "warehouse"), sku.shop_id).id
    rule.supplier_id = _id_of(rule, "supplier")
    if rule.supplier_id is not None:
        _same_shop(visible_row(Supplier, rule.supplier_id), sku.shop_id, "supplier_id")
    for field, low, default in (("safety_stock", 0, 0), ("reorder_point", 0, 0),
                                ("reorder_quantity", 1, None)):
        if getattr(rule, field) is None and default is not None:
            setattr(rule, field, default)
        _whole(getattr(rule, field), field, low, MAX_QUANTITY)
    if rule.enabled is None:
        rule.enabled = True
    return rule


def on_order(sku_id: int, warehouse_id: int) -> int:
    """Units of a SKU still to arrive at a warehouse on open purchase orders."""
    return int(db.session.scalar(
        select(func.coalesce(func.sum(PurchaseOrderLine.quantity - PurchaseOrderLine.received), 0))
        .join(PurchaseOrder, PurchaseOrder.id == PurchaseOrderLine.purchase_order_id)
        .where(PurchaseOrderLine.sku_id == sku_id, PurchaseOrder.warehouse_id == warehouse_id,
               PurchaseOrder.status.in_(OPEN_PO),
               PurchaseOrderLine.quantity > PurchaseOrderLine.received)))


def _alert(rule: ReplenishmentRule, facts: dict, **extra) -> None:
    publish("replenishment.alert", {"rule_id": rule.id, "sku_id": rule.sku_id,
                                    "warehouse_id": rule.warehouse_id, **facts, **extra},
            shop_id=rule.shop_id)


def _claim_alert(rule: ReplenishmentRule) -> bool:
    """At most one alert-only warning per rule per PURCHASING_ALERT_HOURS (two runs: one)."""
    hours = current_app.config.get("PURCHASING_ALERT_HOURS", 24)
    stamp = now()
    claimed = db.session.execute(
        update(ReplenishmentRule).where(
            ReplenishmentRule.id == rule.id,
            or_(ReplenishmentRule.last_alert_at.is_(None),
                ReplenishmentRule.last_alert_at <= stamp - timedelta(hours=hours)))
        .values(last_alert_at=stamp).execution_options(synchronize_session=False)).rowcount
    return claimed == 1


def _claim_rule(rule: ReplenishmentRule, po: PurchaseOrder) -> bool:
    """The rule's one open order is this one, unless another run claimed it first."""
    return db.session.execute(
        update(ReplenishmentRule).where(ReplenishmentRule.id == rule.id,
                                        ReplenishmentRule.open_po_id.is_(None),
                                        ReplenishmentRule.enabled.is_(True))
        .values(open_po_id=po.id, last_alert_at=now())
        .execution_options(synchronize_session=False)).rowcount == 1


def _plan(rule: ReplenishmentRule, today: date) -> tuple[dict, tuple | None]:
    """(facts, (supplier, quantity, price) or None with facts["reason"]) of a rule that is
    at or below its reorder point."""
    from services import inventory

    available = inventory.available(rule.sku_id, rule.warehouse_id)
    ordered = on_order(rule.sku_id, rule.warehouse_id)
    position = available + ordered
    facts = {"available": available, "on_order": ordered, "position": position,
             "reorder_point": rule.reorder_point, "safety_stock": rule.safety_stock}
    if position > rule.reorder_point:
        return facts, None
    quantity = rule.reorder_quantity + max(rule.safety_stock - position, 0)
    facts["quantity"] = quantity
    supplier = db.session.get(Supplier, rule.supplier_id) if rule.supplier_id else None
    if supplier is None:
        facts["reason"] = "no_supplier"
    elif supplier.status != ACTIVE:
        facts["reason"] = "supplier_not_active"
    else:
        price = price_for(supplier.id, rule.sku_id, quantity, today)
        if price is None:
            facts["reason"] = "no_price"
        else:
            return facts, (supplier, quantity, price)
    return facts, None


def replenish(sku_id: int | None = None, warehouse_id: int | None = None) -> dict:
    """Run the enabled rules the actor may see (of one SKU / warehouse when given): alert on
    each at or below its reorder point and draft purchase orders, one per (shop, supplier,
    warehouse). Answers {"drafted": [po ids], "lines": n, "alerts": n}."""
    query = scope_query(select(ReplenishmentRule), ReplenishmentRule).where(
        ReplenishmentRule.enabled.is_(True), ReplenishmentRule.open_po_id.is_(None))
    if sku_id is not None:
        query = query.where(ReplenishmentRule.sku_id == sku_id)
    if warehouse_id is not None:
        query = query.where(ReplenishmentRule.warehouse_id == warehouse_id)
    today = business_date()
    groups: dict[tuple, list] = {}
    alerts = 0
    for rule in db.session.scalars(query.order_by(ReplenishmentRule.id)).all():
        facts, plan = _plan(rule, today)
        if plan is None:
            if "reason" in facts and _claim_alert(rule):
                _alert(rule, facts)
                alerts += 1
            continue
        supplier = plan[0]
        groups.setdefault((rule.shop_id, supplier.id, rule.warehouse_id), []).append(
            (rule, facts, plan))
    drafted, lines = [], 0
    for (_, supplier_id, wh_id), items in groups.items():
        supplier = db.session.get(Supplier, supplier_id)
        po = _new_po(supplier, db.session.get(Warehouse, wh_id), "replenishment",
                     note="Drafted by replenishment rules")
        for rule, facts, (_, quantity, price) in items:
            if _claim_rule(rule, po):
                _add_line(po, rule.sku_id, quantity, price, rule_id=rule.id)
                _alert(rule, facts, purchase_order_id=po.id, po_no=po.po_no)
                alerts += 1
        if po.lines:
            db.session.flush()
            drafted.append(po.id)
            lines += len(po.lines)
            publish("purchase_order.drafted", {"purchase_order_id": po.id,
                                               "source": "replenishment"}, shop_id=po.shop_id)
        else:
            db.session.delete(po)
            db.session.flush()
    return {"drafted": drafted, "lines": lines, "alerts": alerts}


@scheduled("purchasing.replenish")
def replenish_tick() -> int:
    """The tick's run over every shop's rules; commits its work."""
    with acting_as(Actor.job("purchasing.replenish")):
        result = replenish()
        db.session.commit()
    return result["lines"] + result["alerts"]


@subscribe("stock.low", "purchasing.replenish_low_stock")
def _stock_low(payload: dict) -> None:
    """A SKU's stock crossed its alert quantity somewhere: run its rules now."""
    replenish(sku_id=payload.get("sku_id"), warehouse_id=payload.get("warehouse_id"))


# -- scorecard ---------------------------------------------------------------------------------

DEFAULT_WEIGHTS = {"on_time": 30, "quality": 30, "returns": 20, "fill_rate": 20}
DEFAULT_QUALITY_REASONS = ("quality", "damaged", "defective", "broken", "not as described",
                           "质量", "破损", "损坏", "瑕疵", "与描述不符", "描述不符")


def rating_weights() -> dict:
    """PURCHASING_RATING_WEIGHTS ("on_time:30,quality:30,returns:20,fill_rate:20")."""
    text = current_app.config.get("PURCHASING_RATING_WEIGHTS") or ""
    weights = dict(DEFAULT_WEIGHTS)
    for part in text.split(","):
        name, _, value = part.partition(":")
        if name.strip() in FACTORS and value.strip().isdigit():
            weights[name.strip()] = int(value.strip())
    return weights


def quality_reasons() -> tuple[str, ...]:
    text = current_app.config.get("PURCHASING_QUALITY_REASONS")
    if not text:
        return DEFAULT_QUALITY_REASONS
    return tuple(r.strip().lower() for r in text.split(",") if r.strip())


def is_quality_reason(reason: str | None) -> bool:
    text = (reason or "").lower()
    return any(word in text for word in quality_reasons())


RATIO = Decimal("0.0001")


def _share(part, whole) -> Decimal | None:
    """part ÷ whole to four places; None without a whole (no data)."""
    return None if not whole else (Decimal(part) / Decimal(whole)).quantize(RATIO)


def _factor(value: Decimal | None, basis: dict) -> dict:
    """A factor as kept in `rating_factors`: a ratio from 0 to 1 (a JSON number) and what it
    was computed from."""
    return {"value": None if value is None else float(value), "basis": basis}


def supplied_skus(supplier_id: int) -> set[int]:
    """SKUs the supplier supplies: on its purchase orders, or its consigned / drop-shipped
    goods."""
    ordered = set(db.session.scalars(
        select(PurchaseOrderLine.sku_id).join(PurchaseOrder, PurchaseOrder.id ==
                                              PurchaseOrderLine.purchase_order_id)
        .where(PurchaseOrder.supplier_id == supplier_id).distinct()))
    own = set(db.session.scalars(select(Sku.id).join(Spu, Spu.id == Sku.spu_id)
                                 .where(Spu.supplier_id == supplier_id)))
    return ordered | own


def scorecard(supplier: Supplier) -> dict:
    """The four factors of a supplier (see the module's docstring), each {"value", "basis"}."""
    from models.wms import Receipt

    pos = select(PurchaseOrder.id).where(PurchaseOrder.supplier_id == supplier.id)
    receipts = db.session.execute(
        select(Receipt.confirmed_at, PurchaseOrder.expected_on)
        .join(PurchaseOrder, PurchaseOrder.id == Receipt.purchase_order_id)
        .where(PurchaseOrder.supplier_id == supplier.id, Receipt.confirmed_at.is_not(None),
               PurchaseOrder.expected_on.is_not(None))).all()
    on_time = sum(1 for confirmed, expected in receipts if business_date(confirmed) <= expected)
    received, rejected = db.session.execute(
        select(func.coalesce(func.sum(PurchaseOrderLine.received), 0),
               func.coalesce(func.sum(PurchaseOrderLine.rejected), 0))
        .where(PurchaseOrderLine.purchase_order_id.in_(pos))).one()
    filled, ordered = db.session.execute(
        select(func.coalesce(func.sum(PurchaseOrderLine.received), 0),
               func.coalesce(func.sum(PurchaseOrderLine.quantity), 0))
        .join(PurchaseOrder, PurchaseOrder.id == PurchaseOrderLine.purchase_order_id)
        .where(PurchaseOrder.supplier_id == supplier.id,
               PurchaseOrder.status.in_(("received", "closed")))).one()
    skus = supplied_skus(supplier.id)
    sold = returned = 0
    if skus:
        sold = int(db.session.scalar(
            select(func.coalesce(func.sum(OrderLine.quantity), 0))
            .join(Order, Order.id == OrderLine.order_id)
            .where(OrderLine.sku_id.in_(skus), Order.status.in_(
                ("paid", "fulfilling", "shipped", "delivered", "completed", "closed")))))
        for reason, quantity in db.session.execute(
                select(AfterSale.reason, AfterSale.quantity)
                .join(OrderLine, OrderLine.id == AfterSale.order_line_id)
                .where(OrderLine.sku_id.in_(skus), AfterSale.no_reason.is_(False),
                       AfterSale.status != "rejected")):
            if is_quality_reason(reason):
                returned += quantity
    rejected_share = _share(rejected, received + rejected)
    returned_share = _share(returned, sold)
    fill = _share(filled, ordered)
    return {
        "on_time": _factor(_share(on_time, len(receipts)),
                           {"on_time": on_time, "receipts": len(receipts)}),
        "quality": _factor(None if rejected_share is None else 1 - rejected_share,
                           {"received": int(received), "rejected": int(rejected)}),
        "returns": _factor(None if returned_share is None else max(Decimal(0),
                                                                   1 - returned_share),
                           {"quality_returns": int(returned), "sold": sold}),
        "fill_rate": _factor(None if fill is None else min(Decimal(1), fill),
                             {"received": int(filled), "ordered": int(ordered)}),
    }


def rating_of(factors: dict, weights: dict) -> Decimal | None:
    """100 × the weighted mean of the factors that have data; None when none has."""
    scored = [(weights[name], factors[name]["value"]) for name in FACTORS
              if factors[name]["value"] is not None and weights.get(name, 0) > 0]
    total = sum(w for w, _ in scored)
    if not total:
        return None
    value = sum(Decimal(w) * Decimal(str(v)) for w, v in scored) * 100 / total
    return value.quantize(CENT)


def rate(supplier_id) -> Supplier:
    """Recompute a supplier's rating now."""
    supplier = _locked(Supplier, supplier_id)
    _store_rating(supplier)
    return supplier


def _store_rating(supplier: Supplier) -> None:
    weights = rating_weights()
    factors = scorecard(supplier)
    supplier.rating = rating_of(factors, weights)
    supplier.rating_factors = {**factors, "weights": weights}
    supplier.rated_at = now()


@scheduled("purchasing.rate")
def rate_tick() -> int:
    """Re-rate every supplier not rated for PURCHASING_RATING_HOURS; commits."""
    hours = current_app.config.get("PURCHASING_RATING_HOURS", 24)
    with acting_as(Actor.job("purchasing.rate")):
        due = db.session.scalars(select(Supplier).where(or_(
            Supplier.rated_at.is_(None), Supplier.rated_at <= now() - timedelta(hours=hours)))
            .order_by(Supplier.id).with_for_update(skip_locked=True)).all()
        for supplier in due:
            _store_rating(supplier)
        db.session.commit()
    return len(due)


# -- consignment (代销): the consignor is owed after the sale ----------------------------------

def consignment_source(order_line_id: int) -> str:
    return f"consignment:{order_line_id}"


@subscribe("order.completed", "purchasing.post_consignment")
def _order_completed(payload: dict) -> None:
    """Consigned goods sold: Dr 5401 / Cr 2204 at the consignor's list price that day, one
    entry per order line (which the consignor's next statement collects)."""
    from services import finance

    order = db.session.get(Order, payload["order_id"])
    if order is None:
        return
    today = business_date()
    for line in order.lines:
        if line.fulfilment != Fulfilment.consignment.value:
            continue
        supplier_id = db.session.scalar(select(Spu.supplier_id).join(Sku, Sku.spu_id == Spu.id)
                                        .where(Sku.id == line.sku_id))
        price = price_for(supplier_id, line.sku_id, line.quantity, today) \
            if supplier_id else None
        if price is None:
            log.warning("consigned line %s of %s has no consignor price: not posted",
                        line.id, order.order_no)
            publish("consignment.unpriced", {"order_line_id": line.id, "order_id": order.id,
                                             "supplier_id": supplier_id}, shop_id=order.shop_id)
            continue
        amount = (price * line.quantity).quantize(CENT)
        finance.post("consignment", [(CONSIGNED_COST, order.shop_id, amount, ZERO),
                                     (SUPPLIER_PAYABLES, order.shop_id, ZERO, amount)],
                     reference=order.order_no, source=consignment_source(line.id),
                     occurred_at=now(), memo=f"Consigned {line.sku_code} ×{line.quantity}")


# -- supplier statements -----------------------------------------------------------------------

FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(9998, 12, 31)


def _period(period_start, period_end) -> tuple[datetime, datetime]:
    if not isinstance(period_start, date) or not FIRST_DAY <= period_start <= LAST_DAY:
        raise ValidationFailed.field("period_start", "A date (YYYY-MM-DD) from "
                                                     f"{FIRST_DAY.isoformat()}.")
    if not isinstance(period_end, date) or not FIRST_DAY <= period_end <= LAST_DAY or \
            period_end < period_start or period_end > business_date():
        raise ValidationFailed.field("period_end", "From period_start up to today.")
    return business_day_bounds(period_start)[0], business_day_bounds(period_end)[1]


def _settled(kind: str):
    return select(SupplierStatementItem.source_id).where(
        SupplierStatementItem.source_kind == kind)


def statement_material(supplier: Supplier, start: datetime, end: datetime) -> list[dict]:
    """What the shop owes the supplier for the period and no statement holds yet: received
    receipt lines of its orders (at the order's price) and consigned goods sold (at what the
    journal posted)."""
    from models.finance import JournalEntry, JournalLine
    from models.wms import Receipt, ReceiptLine

    items = []
    for line, unit_price in db.session.execute(
            select(ReceiptLine, PurchaseOrderLine.unit_price)
            .join(Receipt, Receipt.id == ReceiptLine.receipt_id)
            .join(PurchaseOrderLine, PurchaseOrderLine.id == ReceiptLine.purchase_order_line_id)
            .join(PurchaseOrder, PurchaseOrder.id == PurchaseOrderLine.purchase_order_id)
            .where(PurchaseOrder.supplier_id == supplier.id, ReceiptLine.received > 0,
                   Receipt.confirmed_at >= start, Receipt.confirmed_at < end,
                   ReceiptLine.id.not_in(_settled(RECEIPT_LINE)))
            .order_by(ReceiptLine.id)):
        items.append({"source_kind": RECEIPT_LINE, "source_id": line.id, "sku_id": line.sku_id,
                      "quantity": line.received, "unit_price": Decimal(unit_price),
                      "amount": (Decimal(unit_price) * line.received).quantize(CENT)})
    source = literal("consignment:", String) + cast(OrderLine.id, String)
    for line, credit in db.session.execute(
            select(OrderLine, JournalLine.credit)
            .join(JournalEntry, JournalEntry.source == source)
            .join(JournalLine, and_(JournalLine.entry_id == JournalEntry.id,
                                    JournalLine.account == SUPPLIER_PAYABLES))
            .join(Sku, Sku.id == OrderLine.sku_id).join(Spu, Spu.id == Sku.spu_id)
            .where(Spu.supplier_id == supplier.id, OrderLine.shop_id == supplier.shop_id,
                   OrderLine.fulfilment == Fulfilment.consignment.value,
                   JournalEntry.occurred_at >= start, JournalEntry.occurred_at < end,
                   OrderLine.id.not_in(_settled(CONSIGNMENT)))
            .order_by(OrderLine.id)):
        amount = Decimal(credit)
        items.append({"source_kind": CONSIGNMENT, "source_id": line.id, "sku_id": line.sku_id,
                      "quantity": line.quantity,
                      "unit_price": (amount / line.quantity).quantize(CENT), "amount": amount})
    return items


def draft_statement(supplier_id, period_start, period_end) -> SupplierStatement:
    """A draft statement of a supplier for a period; each source on one statement only (a
    concurrent statement of the same sources is refused)."""
    supplier = _visible(Supplier, supplier_id, "supplier_id")
    start, end = _period(period_start, period_end)
    items = statement_material(supplier, start, end)
    if not items:
        raise ConflictError("Nothing to put on a statement",
                            {"period_end": ["No unsettled receipts or consigned sales."]})
    statement = SupplierStatement(
        statement_no=number("SS"), shop_id=supplier.shop_id, supplier_id=supplier.id,
        period_start=period_start, period_end=period_end, status="draft",
        amount=sum((i["amount"] for i in items), ZERO), created_at=now())
    db.session.add(statement)
    db.session.flush()
    db.session.add_all([SupplierStatementItem(shop_id=supplier.shop_id,
                                              statement_id=statement.id, **item)
                        for item in items])
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise ConflictError("These receipts or sales are on another statement already",
                            {"period_end": ["Try again."]}) from None
    publish("supplier_statement.drafted", {"statement_id": statement.id,
                                           "amount": f"{statement.amount:.2f}"},
            shop_id=statement.shop_id)
    return statement


def confirm_statement(statement_id) -> SupplierStatement:
    """The supplier agreed the statement."""
    statement = _locked(SupplierStatement, statement_id)
    _must_be(statement, "confirm", {"draft"})
    statement.status, statement.confirmed_at = "confirmed", now()
    return statement


def cancel_statement(statement_id) -> SupplierStatement:
    """An unpaid statement withdrawn: its sources may go on another one."""
    statement = _locked(SupplierStatement, statement_id)
    _must_be(statement, "cancel", {"draft", "confirmed"})
    for item in list(statement.items):
        db.session.delete(item)
    statement.status = "cancelled"
    return statement


def pay_statement(statement_id, reference) -> SupplierStatement:
    """The transfer to the supplier was made (once): posted Dr 2204 / Cr 1003."""
    reference = _text(reference, "reference", 64, required=True)
    statement = _locked(SupplierStatement, statement_id)
    _must_be(statement, "pay", {"confirmed"})
    statement.status, statement.paid_at, statement.reference = "paid", now(), reference
    publish("supplier_statement.paid", {"statement_id": statement.id,
                                        "amount": f"{statement.amount:.2f}"},
            shop_id=statement.shop_id)
    return statement


@subscribe("supplier_statement.paid", "purchasing.post_statement_paid")
def _statement_paid(payload: dict) -> None:
    from services import finance

    statement = db.session.get(SupplierStatement, payload["statement_id"])
    finance.post("supplier_payment", [(SUPPLIER_PAYABLES, statement.shop_id, statement.amount,
                                       ZERO), (BANK, None, ZERO, statement.amount)],
                 reference=statement.statement_no,
                 source=f"supplier_statement.paid:{statement.id}",
                 occurred_at=statement.paid_at, memo=f"Transfer {statement.reference}")


# -- drop-shipping (代发) ------------------------------------------------------------------------

SANDBOX_NOTICES: list[dict] = []   # what the sandbox transport "sent" (this process)


@subscribe("shipping_notice.created", "purchasing.dropship_notice")
def _notice_created(payload: dict) -> None:
    """A drop-shipped notice goes to the supplier of its goods (the one supplier of its
    lines' products); notified at its URL when it has one."""
    if payload.get("route") != "dropship":
        return
    notice = db.session.get(ShippingNotice, payload["notice_id"])
    if notice is None or notice.supplier_id is not None:
        return
    sku_ids = [line["sku_id"] for line in notice.lines or []]
    suppliers = set(db.session.scalars(select(Spu.supplier_id).join(Sku, Sku.spu_id == Spu.id)
                                       .where(Sku.id.in_(sku_ids))))
    if len(suppliers) != 1 or None in suppliers:
        publish("dropship.unassigned", {"notice_id": notice.id, "reason":
                                        "no_supplier" if suppliers <= {None} else
                                        "several_suppliers"}, shop_id=notice.shop_id)
        return
    supplier = db.session.get(Supplier, suppliers.pop())
    notice.supplier_id = supplier.id
    publish("dropship.requested", {"notice_id": notice.id, "notice_no": notice.notice_no,
                                   "supplier_id": supplier.id}, shop_id=notice.shop_id)
    if supplier.notify_url:
        from app.queue import enqueue_after_commit

        enqueue_after_commit(db.session, "workers.purchasing.notify_supplier", notice.id,
                             job_id=f"dropship-notify-{notice.id}")


def notice_document(notice: ShippingNotice) -> dict:
    """What the supplier is told: the notice, its lines (SKU codes) and where to ship."""
    order = db.session.get(Order, notice.order_id)
    codes = dict(db.session.execute(select(Sku.id, Sku.code).where(
        Sku.id.in_([line["sku_id"] for line in notice.lines or []]))).all())
    return {"notice_no": notice.notice_no, "order_no": order.order_no,
            "lines": [{"sku_id": line["sku_id"], "sku_code": codes.get(line["sku_id"]),
                       "quantity": line["quantity"]} for line in notice.lines or []],
            "address": order.address, "created_at": notice.created_at.isoformat()}


def notify_supplier(notice_id: int) -> bool:
    """POST the notice to the supplier's notify URL, signed with its key (the sandbox
    transport, DROPSHIP_NOTIFY_TRANSPORT=sandbox, keeps it in this process instead). A
    supplier without a URL or a key is not notified. Raises when the supplier's server
    does not accept it, so the job is retried."""
    notice = db.session.get(ShippingNotice, notice_id)
    supplier = db.session.get(Supplier, notice.supplier_id) if notice else None
    key = supplier_key(supplier) if supplier else None
    if supplier is None or not supplier.notify_url or key is None:
        return False
    body = json.dumps(notice_document(notice), ensure_ascii=False, sort_keys=True).encode()
    timestamp = str(int(now().timestamp()))
    headers = {"Content-Type": "application/json", "X-Supplier-Code": supplier.code,
               "X-Timestamp": timestamp, "X-Signature": sign(key, timestamp, body)}
    if current_app.config.get("DROPSHIP_NOTIFY_TRANSPORT", "sandbox") == "sandbox":
        SANDBOX_NOTICES.append({"url": supplier.notify_url, "headers": headers, "body": body})
        return True
    import urllib.request

    request = urllib.request.Request(supplier.notify_url, data=body, headers=headers,
                                     method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - http(s) only
        if not 200 <= answer.status < 300:
            raise RuntimeError(f"supplier answered {answer.status}")
    return True


def _shipment_fields(body) -> tuple[str, str, str]:
    if not isinstance(body, dict):
        raise ValidationFailed.field("body", "A JSON object {notice_no, carrier, tracking_no}.")
    errors = {}
    values = []
    for field in ("notice_no", "carrier", "tracking_no"):
        value = body.get(field)
        if not isinstance(value, str) or not value.strip() or len(value.strip()) > 64:
            errors[field] = ["Required, at most 64 characters."]
        values.append(value.strip() if isinstance(value, str) else value)
    if errors:
        raise ValidationFailed("Validation failed", errors)
    return tuple(values)


def report_shipment(supplier: Supplier, body) -> ShippingNotice:
    """The supplier shipped one of its own drop-shipped notices: the order ships (services/
    order.ship_notice). The same report again answers the same notice; another tracking
    number for a shipped notice is refused."""
    from services import order

    notice_no, carrier, tracking_no = _shipment_fields(body)
    notice = db.session.scalars(select(ShippingNotice).where(
        ShippingNotice.notice_no == notice_no, ShippingNotice.supplier_id == supplier.id,
        ShippingNotice.route == "dropship")).one_or_none()
    if notice is None:
        raise NotFoundError("No such notice of this supplier",
                            {"notice_no": [REFERENCE_NOT_FOUND]})
    if NoticeStatus(notice.status) == NoticeStatus.shipped:
        if (notice.carrier, notice.tracking_no) == (carrier, tracking_no):
            return notice
        raise ConflictError("Already shipped with another tracking number",
                            {"tracking_no": [notice.tracking_no or ""]})
    with acting_as(Actor.system(f"supplier:{supplier.code}")):
        return order.ship_notice(notice.id, carrier, tracking_no)


def shipment_result(notice: ShippingNotice) -> dict:
    return {"notice_no": notice.notice_no, "status": NoticeStatus(notice.status).value,
            "carrier": notice.carrier, "tracking_no": notice.tracking_no,
            "shipped_at": notice.shipped_at.isoformat() if notice.shipped_at else None}


# -- dashboard panels --------------------------------------------------------------------------

def open_orders_by_supplier() -> list[tuple[str, int, Decimal]]:
    """(supplier code, open purchase orders, their total) of the viewer's shop(s)."""
    query = scope_query(select(Supplier.code, func.count(PurchaseOrder.id),
                               func.coalesce(func.sum(PurchaseOrder.total), 0))
                        .join(Supplier, Supplier.id == PurchaseOrder.supplier_id), PurchaseOrder) \
        .where(PurchaseOrder.status.in_(OPEN_PO)).group_by(Supplier.id, Supplier.code) \
        .order_by(Supplier.code, Supplier.id)
    return [(code, int(n), Decimal(total)) for code, n, total in db.session.execute(query)]


def open_po_count_panel() -> dict:
    rows = open_orders_by_supplier()
    return {"keys": [c for c, _, _ in rows], "labels": [c for c, _, _ in rows],
            "values": [n for _, n, _ in rows]}


def open_po_value_panel() -> dict:
    rows = open_orders_by_supplier()
    return {"keys": [c for c, _, _ in rows], "labels": [c for c, _, _ in rows],
            "values": [f"{total:.2f}" for _, _, total in rows]}


def ratings_panel() -> dict:
    """Rated suppliers of the viewer's shop(s), best first."""
    query = scope_query(select(Supplier.code, Supplier.rating), Supplier) \
        .where(Supplier.rating.is_not(None)).order_by(Supplier.rating.desc(), Supplier.code)
    rows = db.session.execute(query).all()
    return {"keys": [c for c, _ in rows], "labels": [c for c, _ in rows],
            "values": [f"{Decimal(r):.2f}" for _, r in rows]}


def _register_panels() -> None:
    from flask_babel import lazy_gettext as _l

    from services.dashboard import Panel, register_panel

    register_panel(Panel("open_po_count", _l("Open purchase orders by supplier"), "bar",
                         ("can_list", "PurchaseOrderView"), open_po_count_panel))
    register_panel(Panel("open_po_value", _l("Open purchase order value by supplier"), "bar",
                         ("can_list", "PurchaseOrderView"), open_po_value_panel))
    register_panel(Panel("supplier_ratings", _l("Supplier ratings"), "bar",
                         ("can_list", "SupplierView"), ratings_panel))


_register_panels()
