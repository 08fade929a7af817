"""WMS 仓库管理: inbound receipts, pick lists (outbound), stocktaking count sheets and
transfers between warehouses.

Every stock movement goes through services/inventory.py (one conditional UPDATE with its
ledger row); every step of a document first locks the document's row (`SELECT … FOR UPDATE`)
and reads its status afresh, so a step taken twice, or by two people at once, has one effect
and the second is refused with 409. Shipping notices move through services/order.py,
which writes the order's timeline and publishes `shipping_notice.<status>`.

Who sees what: receipts and transfers belong to the shop whose goods they move; pick lists
and count sheets to the warehouse's shop (empty for a platform warehouse: staff only). A
merchant works only in its own warehouses; a platform warehouse may hold any shop's goods.

Purchase receipts take no over-receipt: on each line received + rejected is at most what
was expected (what the purchase order still had outstanding), and on confirmation what all
confirmed receipts received of a purchase order line is at most what was ordered.
"""
import re
from decimal import Decimal, InvalidOperation

from sqlalchemy import func, select

from app.extensions import db
from models.inventory import Stock, Warehouse
from models.logistics import Carrier
from models.order import NoticeStatus, ShippingNotice
from models.product import Sku
from models.purchasing import PurchaseOrder
from models.wms import (PickList, Receipt, ReceiptLine, StockCount, StockCountLine,
                        StockTransfer, StockTransferLine)
from services import inventory
from services import order as orders
from services.actor import ALL_SHOPS, current_actor, is_row_id, scope_query, shop_scope
from services.audit import set_reason
from services.clock import now
from services.errors import REFERENCE_NOT_FOUND, ConflictError, NotFoundError, ValidationFailed
from services.events import publish
from services.numbering import number

MAX_LINES = 100
MAX_QUANTITY = 1_000_000
RECEIPT_SOURCES = ("purchase", "return", "other")
LOCATION = re.compile(r"^[A-Za-z0-9]+(-[A-Za-z0-9]+)*$")
ZONE = re.compile(r"^[A-Za-z0-9]+$")
MAX_WEIGHT = Decimal("99999.999")


# -- checks ------------------------------------------------------------------------------------

def _quantity(value, field: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or \
            not minimum <= value <= MAX_QUANTITY:
        raise ValidationFailed.field(field, f"A whole number from {minimum} to {MAX_QUANTITY}.")
    return value


def _text(value, field: str, limit: int = 255) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value.strip()) > limit:
        raise ValidationFailed.field(field, f"Text of at most {limit} characters.")
    return value.strip() or None


def _location(value, field: str) -> str | None:
    """A bin such as A-01-02 (its zone is what comes before the first "-")."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 32 or not LOCATION.match(value.strip()):
        raise ValidationFailed.field(field, "A bin such as A-01-02: letters and digits "
                                            "separated by \"-\", at most 32 characters.")
    return value.strip().upper()


def _line_list(lines, field: str = "lines") -> list:
    if not isinstance(lines, list) or not lines:
        raise ValidationFailed.field(field, "At least one line.")
    if len(lines) > MAX_LINES:
        raise ValidationFailed.field(field, f"At most {MAX_LINES} lines.")
    if not all(isinstance(line, dict) for line in lines):
        raise ValidationFailed.field(field, "Each line is an object.")
    return lines


def _own_shop(shop_id) -> int | None:
    """The shop a body names: a merchant's own (or omitted), any visible shop for staff."""
    from models.shop import Shop

    scope = shop_scope()
    if shop_id is None:
        return scope if isinstance(scope, int) else None
    if scope is not ALL_SHOPS and shop_id != scope:
        raise ValidationFailed.field("shop_id", "Must be your own shop.")
    if not is_row_id(shop_id) or db.session.get(Shop, shop_id) is None:
        raise ValidationFailed.field("shop_id", REFERENCE_NOT_FOUND)
    return shop_id


def usable_warehouse(warehouse_id, field: str = "warehouse_id") -> Warehouse:
    """A warehouse the actor may work in (merchants: their own), enabled; 422 otherwise."""
    warehouse = scope_query(db.session.query(Warehouse), Warehouse).filter(
        Warehouse.id == warehouse_id).one_or_none() if is_row_id(warehouse_id) else None
    if warehouse is None:
        raise ValidationFailed.field(field, REFERENCE_NOT_FOUND)
    if not warehouse.enabled:
        raise ValidationFailed.field(field, "The warehouse is disabled.")
    return warehouse


def _sku(sku_id, field: str) -> Sku:
    sku = scope_query(db.session.query(Sku), Sku).filter(Sku.id == sku_id).one_or_none() \
        if is_row_id(sku_id) else None
    if sku is None:
        raise ValidationFailed.field(field, REFERENCE_NOT_FOUND)
    return sku


def _goods_shop(shop_id, warehouses: dict[str, Warehouse], skus: list[Sku]) -> int:
    """Whose goods a document moves: the shop named, else the SKUs' (when of one shop), else
    the warehouses'; every warehouse must be that shop's or the platform's."""
    shop = _own_shop(shop_id)
    if shop is None and skus and len({s.shop_id for s in skus}) == 1:
        shop = skus[0].shop_id
    if shop is None:
        shop = next((w.shop_id for w in warehouses.values() if w.shop_id is not None), None)
    if shop is None:
        raise ValidationFailed.field("shop_id", "Name the shop whose goods these are.")
    for field, warehouse in warehouses.items():
        if warehouse.shop_id not in (None, shop):
            raise ValidationFailed.field(field, "Another shop's warehouse.")
    return shop


def _sku_lines(lines, shop_id: int, quantity_field: str, minimum: int = 1) -> list[tuple]:
    """[(sku, quantity)] of body lines, each SKU once and of the shop."""
    checked, seen = [], set()
    for n, line in enumerate(lines):
        sku = _sku(line.get("sku_id"), f"lines.{n}.sku_id")
        if sku.shop_id != shop_id:
            raise ValidationFailed.field(f"lines.{n}.sku_id", "A SKU of another shop.")
        if sku.id in seen:
            raise ValidationFailed.field(f"lines.{n}.sku_id", "Each SKU once.")
        seen.add(sku.id)
        checked.append((sku, _quantity(line.get(quantity_field),
                                       f"lines.{n}.{quantity_field}", minimum)))
    return checked


def _visible(model, pk):
    row = scope_query(db.session.query(model), model).filter(model.id == pk).one_or_none() \
        if is_row_id(pk) else None
    if row is None:
        raise NotFoundError("Not found")
    return row


def _locked(model, pk):
    """The document (visible to the actor, else 404) row-locked and read afresh: whoever
    comes second waits, then sees what the first did."""
    found = _visible(model, pk)
    return db.session.scalars(select(model).where(model.id == found.id).with_for_update()
                              .execution_options(populate_existing=True)).one()


def _step(row, sources: tuple, target: str, **values) -> None:
    """Move a locked document from one of `sources` to `target` (409 from anywhere else:
    done already, or by someone else first)."""
    _must_be(row, *sources)
    row.status = target
    for name, value in values.items():
        setattr(row, name, value)
    db.session.flush()


def _must_be(row, *statuses: str) -> None:
    if row.status not in statuses:
        raise ConflictError(f"The document is {row.status}", {"status": [row.status]})


# -- inbound receipts (入库) -------------------------------------------------------------------

def create_receipt(warehouse_id=None, source="other", lines=None, purchase_order_id=None,
                   shop_id=None, note=None) -> Receipt:
    """A draft receipt. From a purchase order (`source` purchase) its lines are what the order
    still has outstanding, at the order's warehouse; otherwise (`return`, `other`) the lines
    name SKUs of one shop and what is expected of each."""
    if source not in RECEIPT_SOURCES:
        raise ValidationFailed.field("source", f"One of: {', '.join(RECEIPT_SOURCES)}.")
    note = _text(note, "note")
    if source == "purchase":
        return _purchase_receipt(purchase_order_id, warehouse_id, lines, shop_id, note)
    if purchase_order_id is not None:
        raise ValidationFailed.field("purchase_order_id", "Only for source purchase.")
    warehouse = usable_warehouse(warehouse_id)
    lines = _line_list(lines)
    skus = [_sku(line.get("sku_id"), f"lines.{n}.sku_id") for n, line in enumerate(lines)]
    shop = _goods_shop(shop_id, {"warehouse_id": warehouse}, skus)
    checked = _sku_lines(lines, shop, "expected")
    receipt = Receipt(receipt_no=number("RC"), shop_id=shop, warehouse_id=warehouse.id,
                      source=source, status="draft", note=note, created_at=now())
    receipt.lines = [ReceiptLine(shop_id=shop, sku_id=sku.id, expected=quantity)
                     for sku, quantity in checked]
    db.session.add(receipt)
    db.session.flush()
    return receipt


def _purchase_receipt(purchase_order_id, warehouse_id, lines, shop_id, note) -> Receipt:
    from services import purchasing

    if lines:
        raise ValidationFailed.field("lines", "A purchase receipt takes its lines from the "
                                              "purchase order.")
    if not is_row_id(purchase_order_id):
        raise ValidationFailed.field("purchase_order_id", "Required for source purchase.")
    try:
        outstanding = purchasing.receivable_lines(purchase_order_id)
    except NotFoundError as err:
        raise ValidationFailed.field("purchase_order_id", REFERENCE_NOT_FOUND) from err
    po = db.session.get(PurchaseOrder, purchase_order_id)
    if warehouse_id is not None and warehouse_id != po.warehouse_id:
        raise ValidationFailed.field("warehouse_id", "The purchase order's warehouse.")
    warehouse = usable_warehouse(po.warehouse_id)
    shop = _own_shop(shop_id) if shop_id is not None else po.shop_id
    if shop != po.shop_id:
        raise ValidationFailed.field("shop_id", "The purchase order's shop.")
    wanted = [line for line in outstanding if line["outstanding"] > 0]
    if not wanted:
        raise ConflictError("Nothing is outstanding on the purchase order",
                            {"purchase_order_id": ["Everything ordered has been received."]})
    receipt = Receipt(receipt_no=number("RC"), shop_id=shop, warehouse_id=warehouse.id,
                      source="purchase", purchase_order_id=po.id, status="draft", note=note,
                      created_at=now())
    receipt.lines = [ReceiptLine(shop_id=shop, sku_id=line["sku_id"], expected=line["outstanding"],
                                 purchase_order_line_id=line["purchase_order_line_id"])
                     for line in wanted]
    db.session.add(receipt)
    db.session.flush()
    return receipt


def record_receipt_lines(receipt_id, lines) -> Receipt:
    """While draft: what arrived on each line — received (put away at `location`) and
    rejected (with `reject_reason`). Lines not named keep what they had."""
    receipt = _locked(Receipt, receipt_id)
    _must_be(receipt, "draft")
    by_id = {line.id: line for line in receipt.lines}
    for n, body in enumerate(_line_list(lines)):
        line = by_id.get(body.get("line_id")) if is_row_id(body.get("line_id")) else None
        if line is None:
            raise ValidationFailed.field(f"lines.{n}.line_id", "Not a line of this receipt.")
        received = _quantity(body.get("received", line.received), f"lines.{n}.received", 0)
        rejected = _quantity(body.get("rejected", line.rejected), f"lines.{n}.rejected", 0)
        reason = _text(body.get("reject_reason", line.reject_reason), f"lines.{n}.reject_reason")
        location = _location(body.get("location", line.location), f"lines.{n}.location")
        if receipt.source == "purchase" and received + rejected > line.expected:
            raise ValidationFailed.field(f"lines.{n}.received",
                                         f"Received and rejected at most {line.expected} "
                                         "(what was expected).")
        if rejected and not reason:
            raise ValidationFailed.field(f"lines.{n}.reject_reason", "Say why goods were rejected.")
        line.received, line.rejected = received, rejected
        line.reject_reason, line.location = (reason if rejected else None), location
    db.session.flush()
    return receipt


def confirm_receipt(receipt_id) -> Receipt:
    """Confirm a draft receipt, once: what was received goes on hand (ledger `receipt`,
    reference the receipt number) at each line's put-away location; `receipt.confirmed`."""
    receipt = _locked(Receipt, receipt_id)
    _must_be(receipt, "draft")
    if not any(line.received or line.rejected for line in receipt.lines):
        raise ValidationFailed.field("lines", "Record what was received (or rejected) first.")
    actor = current_actor().name
    set_reason(db.session, f"Receipt {receipt.receipt_no} confirmed")
    _step(receipt, ("draft",), "confirmed", confirmed_at=now(), confirmed_by=actor)
    if receipt.purchase_order_id is not None:
        _check_purchase_totals(receipt)
    for line in sorted(receipt.lines, key=lambda l: l.sku_id):
        if line.received:
            inventory.receive(line.sku_id, receipt.warehouse_id, line.received,
                              receipt.receipt_no, line.location)
    publish("receipt.confirmed", {"receipt_id": receipt.id,
                                  "purchase_order_id": receipt.purchase_order_id},
            shop_id=receipt.shop_id)
    return receipt


def _check_purchase_totals(receipt: Receipt) -> None:
    """Under the purchase order's row lock: what every confirmed receipt (this one included)
    received of each order line is at most what was ordered, and the order still takes goods."""
    from models.purchasing import PurchaseOrderLine
    from services import purchasing

    db.session.execute(select(PurchaseOrder.id).where(
        PurchaseOrder.id == receipt.purchase_order_id).with_for_update())
    po = db.session.get(PurchaseOrder, receipt.purchase_order_id)
    db.session.refresh(po)
    if po.status not in purchasing.RECEIVABLE_STATUSES:
        raise ConflictError(f"The purchase order is {po.status}", {"purchase_order_id": [po.status]})
    totals = received_for_purchase_order(po.id)
    ordered = dict(db.session.execute(select(PurchaseOrderLine.id, PurchaseOrderLine.quantity)
                                      .where(PurchaseOrderLine.purchase_order_id == po.id)).all())
    for line in receipt.lines:
        received = totals.get(line.purchase_order_line_id, (0, 0))[0]
        if line.purchase_order_line_id in ordered and received > ordered[line.purchase_order_line_id]:
            raise ConflictError("More than was ordered would be received", {
                "lines": [f"SKU {line.sku_id}: ordered {ordered[line.purchase_order_line_id]}, "
                          f"received on confirmed receipts {received}."]})


def cancel_receipt(receipt_id) -> Receipt:
    receipt = _locked(Receipt, receipt_id)
    set_reason(db.session, f"Receipt {receipt.receipt_no} cancelled")
    _step(receipt, ("draft",), "cancelled")
    return receipt


def received_for_purchase_order(purchase_order_id: int) -> dict[int, tuple[int, int]]:
    """{purchase_order_line_id: (received, rejected)} summed over confirmed receipts."""
    rows = db.session.execute(
        select(ReceiptLine.purchase_order_line_id, func.sum(ReceiptLine.received),
               func.sum(ReceiptLine.rejected))
        .join(Receipt, Receipt.id == ReceiptLine.receipt_id)
        .where(Receipt.purchase_order_id == purchase_order_id, Receipt.status == "confirmed",
               ReceiptLine.purchase_order_line_id.is_not(None))
        .group_by(ReceiptLine.purchase_order_line_id)).all()
    return {line_id: (int(received or 0), int(rejected or 0)) for line_id, received, rejected in rows}


# -- outbound: pick lists, packing, shipping -------------------------------------------------

def create_pick_list(notice_ids) -> PickList:
    """One walk through a warehouse for several `assigned` shipping notices (of several
    orders, all of that warehouse, not held, on no other open list): they move to `picking`
    and the list says what to take, SKU by SKU, in the order of their bins."""
    if not isinstance(notice_ids, list) or not notice_ids or len(notice_ids) > MAX_LINES or \
            not all(is_row_id(i) for i in notice_ids) or len(set(notice_ids)) != len(notice_ids):
        raise ValidationFailed.field("notice_ids",
                                     f"One to {MAX_LINES} different shipping notice ids.")
    notices = scope_query(db.session.query(ShippingNotice), ShippingNotice).filter(
        ShippingNotice.id.in_(notice_ids)).order_by(ShippingNotice.id).all()
    if len(notices) != len(notice_ids):
        raise ValidationFailed.field("notice_ids", REFERENCE_NOT_FOUND)
    warehouse_ids = {n.warehouse_id for n in notices}
    if len(warehouse_ids) != 1 or None in warehouse_ids:
        raise ValidationFailed.field("notice_ids", "Notices of one warehouse.")
    warehouse = usable_warehouse(warehouse_ids.pop(), "notice_ids")
    _check_pickable(notices)
    pick = PickList(pick_no=number("PK"), warehouse_id=warehouse.id, shop_id=warehouse.shop_id,
                    status="open", created_at=now(), lines=[])
    db.session.add(pick)
    db.session.flush()
    for notice in notices:
        moved = orders.move_notice(notice.id, "pick")
        moved.pick_list_id = pick.id
    pick.lines = _pick_lines(notices, warehouse.id)
    db.session.flush()
    publish("pick_list.created", {"pick_list_id": pick.id, "notice_ids": sorted(notice_ids)},
            shop_id=pick.shop_id)
    return pick


def _check_pickable(notices) -> None:
    on_open_lists = set(db.session.scalars(select(PickList.id).where(
        PickList.id.in_([n.pick_list_id for n in notices if n.pick_list_id]),
        PickList.status == "open")))
    for notice in notices:
        status = NoticeStatus(notice.status).value
        if status != "assigned":
            raise ConflictError(f"Notice {notice.notice_no} is {status}",
                                {"notice_ids": [f"{notice.id}: {status}"]})
        if notice.pick_list_id in on_open_lists:
            raise ConflictError(f"Notice {notice.notice_no} is on an open pick list",
                                {"notice_ids": [f"{notice.id}: on pick list {notice.pick_list_id}"]})


def _pick_lines(notices, warehouse_id: int) -> list[dict]:
    quantities: dict[int, int] = {}
    for notice in notices:
        for line in notice.lines or []:
            quantities[line["sku_id"]] = quantities.get(line["sku_id"], 0) + line["quantity"]
    codes = dict(db.session.execute(select(Sku.id, Sku.code).where(Sku.id.in_(quantities))).all())
    bins = dict(db.session.execute(select(Stock.sku_id, Stock.location).where(
        Stock.warehouse_id == warehouse_id, Stock.sku_id.in_(quantities))).all())
    lines = [{"sku_id": sku_id, "sku_code": codes.get(sku_id), "location": bins.get(sku_id),
              "quantity": quantity} for sku_id, quantity in quantities.items()]
    return sorted(lines, key=lambda l: (l["location"] is None, l["location"] or "",
                                        l["sku_code"] or "", l["sku_id"]))


def mark_picked(pick_list_id) -> PickList:
    """Everything on the list has been taken from its bins."""
    pick = _locked(PickList, pick_list_id)
    _step(pick, ("open",), "picked", picked_at=now())
    publish("pick_list.picked", {"pick_list_id": pick.id}, shop_id=pick.shop_id)
    return pick


def cancel_pick_list(pick_list_id) -> PickList:
    """An open list is dropped: its notices still picking go back to `assigned` (those held
    meanwhile will return to `assigned` when released), free for another list."""
    pick = _locked(PickList, pick_list_id)
    set_reason(db.session, f"Pick list {pick.pick_no} cancelled")
    _step(pick, ("open",), "cancelled")
    for notice_id in sorted(db.session.scalars(select(ShippingNotice.id).where(
            ShippingNotice.pick_list_id == pick.id))):
        notice = orders.notice_for_update(notice_id)
        status = NoticeStatus(notice.status)
        if status == NoticeStatus.picking:
            orders.move_notice(notice.id, "unpick")
        elif status == NoticeStatus.held and notice.held_from == NoticeStatus.picking.value:
            notice.held_from = NoticeStatus.assigned.value
        if NoticeStatus(notice.status) in (NoticeStatus.assigned, NoticeStatus.held):
            notice.pick_list_id = None
    db.session.flush()
    publish("pick_list.cancelled", {"pick_list_id": pick.id}, shop_id=pick.shop_id)
    return pick


def _warehouse_notice(notice_id) -> ShippingNotice:
    """A shipping notice of a warehouse the actor works in (404 otherwise)."""
    notice = _visible(ShippingNotice, notice_id)
    if notice.warehouse_id is None or scope_query(db.session.query(Warehouse.id), Warehouse) \
            .filter(Warehouse.id == notice.warehouse_id).one_or_none() is None:
        raise NotFoundError("Not found")
    return notice


def parse_weight(value) -> Decimal:
    reason = "Kilograms such as \"1.250\": more than 0, at most 99999.999, three decimals."
    if isinstance(value, bool) or not isinstance(value, (Decimal, str, int)):
        raise ValidationFailed.field("weight_kg", reason)
    try:
        weight = Decimal(value.strip() if isinstance(value, str) else value)
        exact = weight.is_finite() and weight == weight.quantize(Decimal("0.001"))
    except InvalidOperation:
        exact = False
    if not exact or not Decimal("0") < weight <= MAX_WEIGHT:
        raise ValidationFailed.field("weight_kg", reason)
    return weight.quantize(Decimal("0.001"))


def pack_notice(notice_id, weight_kg) -> ShippingNotice:
    """A notice of a picked list is packed: its parcel's weight is recorded and it moves to
    `packed` (`shipping_notice.packed`)."""
    weight = parse_weight(weight_kg)
    notice = _warehouse_notice(notice_id)
    pick = db.session.get(PickList, notice.pick_list_id) if notice.pick_list_id else None
    if pick is None or pick.status != "picked":
        raise ConflictError("Pack notices of a picked pick list",
                            {"pick_list_id": [pick.status if pick else "none"]})
    notice = orders.move_notice(notice.id, "pack")
    notice.weight_kg = weight
    db.session.flush()
    return notice


def carrier_of(code, notice: ShippingNotice) -> Carrier:
    """The carrier named by code, else the one logistics stamped on the notice; enabled."""
    if code is None:
        carrier = db.session.get(Carrier, notice.carrier_id) if notice.carrier_id else None
        if carrier is None:
            raise ValidationFailed.field("carrier", "Required: no carrier was stamped on the "
                                                    "notice.")
    else:
        carrier = db.session.scalars(select(Carrier).where(Carrier.code == code.strip())) \
            .one_or_none() if isinstance(code, str) and code.strip() else None
        if carrier is None:
            raise ValidationFailed.field("carrier", "No such carrier.")
    if not carrier.enabled:
        raise ValidationFailed.field("carrier", "The carrier is disabled.")
    return carrier


def ship_packed_notice(notice_id, tracking_no, carrier=None) -> ShippingNotice:
    """A packed notice leaves with a carrier (by code; by default the stamped one) and a
    tracking number: stock is deducted and the order moves on (services/order.ship_notice)."""
    notice = _warehouse_notice(notice_id)
    chosen = carrier_of(carrier, notice)
    if NoticeStatus(notice.status) != NoticeStatus.packed:
        raise ConflictError("Ship packed notices", {"status": [NoticeStatus(notice.status).value]})
    shipped = orders.ship_notice(notice.id, chosen.code, tracking_no)
    shipped.carrier_id = chosen.id
    db.session.flush()
    return shipped


# -- stocktaking (盘点) ----------------------------------------------------------------------

def zone_of(location: str | None) -> str | None:
    return location.split("-", 1)[0] if location else None


def create_count(warehouse_id, zone=None, blind=True, note=None) -> StockCount:
    """A count sheet of a warehouse (or of one zone: the bins whose location starts with it),
    each line what the books say now; a blind count hides that until it is submitted. The
    figure is only a guide until the line is counted: `record_counts` takes it again then."""
    warehouse = usable_warehouse(warehouse_id)
    if zone is not None and (not isinstance(zone, str) or not ZONE.match(zone.strip())
                             or len(zone.strip()) > 32):
        raise ValidationFailed.field("zone", "Letters and digits (the part of a bin before "
                                             "the first \"-\"), at most 32.")
    zone = zone.strip().upper() if zone else None
    if not isinstance(blind, bool):
        raise ValidationFailed.field("blind", "true or false.")
    stocks = [s for s in db.session.scalars(select(Stock).where(
        Stock.warehouse_id == warehouse.id).order_by(Stock.location, Stock.id))
        if zone is None or zone_of(s.location) == zone]
    if not stocks:
        raise ValidationFailed.field("zone" if zone else "warehouse_id", "Nothing to count here.")
    count = StockCount(count_no=number("SC"), warehouse_id=warehouse.id,
                       shop_id=warehouse.shop_id, zone=zone, blind=blind, status="counting",
                       note=_text(note, "note"), created_at=now())
    count.lines = [StockCountLine(shop_id=warehouse.shop_id, stock_id=s.id, sku_id=s.sku_id,
                                  location=s.location, expected=s.on_hand) for s in stocks]
    db.session.add(count)
    db.session.flush()
    return count


def record_counts(count_id, lines) -> StockCount:
    """What was counted on each named line, while counting. Each line recorded also takes
    what the books say at that moment as its `expected` (the stock row read under a row lock,
    so a movement being posted is either wholly before the count or wholly after it): goods
    received, shipped, adjusted or transferred between creating the sheet and counting a line
    are on the shelf and in the books alike, and so are those moved between counting and
    approval, so the variance approval posts (counted − expected) is only what the count found.
    A line counted again is measured against the books of its latest count. A blind count
    still shows none of this until it is submitted."""
    count = _locked(StockCount, count_id)
    _must_be(count, "counting")
    by_id = {line.id: line for line in count.lines}
    recorded = {}
    for n, body in enumerate(_line_list(lines)):
        line = by_id.get(body.get("line_id")) if is_row_id(body.get("line_id")) else None
        if line is None:
            raise ValidationFailed.field(f"lines.{n}.line_id", "Not a line of this count.")
        recorded[line.id] = (line, _quantity(body.get("counted"), f"lines.{n}.counted", 0))
    books = inventory.on_hand_locked([line.stock_id for line, _ in recorded.values()])
    for line, quantity in recorded.values():
        line.expected, line.counted = books[line.stock_id], quantity
    db.session.flush()
    return count


def submit_count(count_id) -> StockCount:
    count = _locked(StockCount, count_id)
    _must_be(count, "counting")
    missing = [line.id for line in count.lines if line.counted is None]
    if missing:
        raise ValidationFailed.field("lines", f"{len(missing)} line(s) not counted yet: "
                                              f"{', '.join(map(str, missing[:20]))}.")
    _step(count, ("counting",), "submitted", submitted_at=now())
    return count


def approve_count(count_id) -> StockCount:
    """A person approves a submitted count: each variance (counted − what the books said
    when the line was counted) is posted to the ledger (`stocktake`) on top of what is on
    hand now, which already holds every movement since the count; 409 (nothing posted) when
    one would leave less on hand than is reserved."""
    count = _locked(StockCount, count_id)
    set_reason(db.session, f"Stocktake {count.count_no} approved")
    _step(count, ("submitted",), "approved", decided_at=now(),
          decided_by=current_actor().name)
    for line in sorted(count.lines, key=lambda l: l.stock_id):
        if line.variance:
            inventory.count_adjust(line.stock_id, line.variance, count.count_no)
        line.adjusted = line.variance
    db.session.flush()
    publish("stock_count.approved", {"count_id": count.id, "warehouse_id": count.warehouse_id},
            shop_id=count.shop_id)
    return count


def reject_count(count_id) -> StockCount:
    count = _locked(StockCount, count_id)
    set_reason(db.session, f"Stocktake {count.count_no} rejected")
    _step(count, ("submitted",), "rejected", decided_at=now(),
          decided_by=current_actor().name)
    return count


def count_lines(count: StockCount) -> list[dict]:
    """The sheet's lines as shown: a blind count shows no expected figures (nor variances)
    until it is submitted."""
    hidden = count.blind and count.status == "counting"
    return [{"id": line.id, "stock_id": line.stock_id, "sku_id": line.sku_id,
             "location": line.location, "expected": None if hidden else line.expected,
             "counted": line.counted, "variance": None if hidden else line.variance,
             "adjusted": line.adjusted} for line in count.lines]


# -- transfers (调拨) -------------------------------------------------------------------------

def create_transfer(from_warehouse_id, to_warehouse_id, lines, shop_id=None, note=None,
                    carrier=None, tracking_no=None) -> StockTransfer:
    """A draft transfer of one shop's goods between two warehouses it may use."""
    source = usable_warehouse(from_warehouse_id, "from_warehouse_id")
    target = usable_warehouse(to_warehouse_id, "to_warehouse_id")
    if source.id == target.id:
        raise ValidationFailed.field("to_warehouse_id", "Another warehouse than the source.")
    lines = _line_list(lines)
    skus = [_sku(line.get("sku_id"), f"lines.{n}.sku_id") for n, line in enumerate(lines)]
    shop = _goods_shop(shop_id, {"from_warehouse_id": source, "to_warehouse_id": target},
                       skus)
    checked = _sku_lines(lines, shop, "quantity")
    transfer = StockTransfer(transfer_no=number("TR"), shop_id=shop, from_warehouse_id=source.id,
                             to_warehouse_id=target.id, status="draft", note=_text(note, "note"),
                             carrier=_text(carrier, "carrier", 64),
                             tracking_no=_text(tracking_no, "tracking_no", 64), created_at=now())
    transfer.lines = [StockTransferLine(shop_id=shop, sku_id=sku.id, quantity=quantity)
                      for sku, quantity in checked]
    db.session.add(transfer)
    db.session.flush()
    return transfer


def ship_transfer(transfer_id, carrier=None, tracking_no=None) -> StockTransfer:
    """The goods leave the source (ledger `transfer_out`, only what is available): in transit."""
    transfer = _locked(StockTransfer, transfer_id)
    carrier, tracking_no = _text(carrier, "carrier", 64), _text(tracking_no, "tracking_no", 64)
    set_reason(db.session, f"Transfer {transfer.transfer_no} shipped")
    _step(transfer, ("draft",), "in_transit", shipped_at=now(),
          carrier=carrier or transfer.carrier, tracking_no=tracking_no or transfer.tracking_no)
    for line in sorted(transfer.lines, key=lambda l: l.sku_id):
        inventory.transfer_out(line.sku_id, transfer.from_warehouse_id, line.quantity,
                               transfer.transfer_no)
    publish("stock_transfer.shipped", {"transfer_id": transfer.id}, shop_id=transfer.shop_id)
    return transfer


def receive_transfer(transfer_id, lines=None) -> StockTransfer:
    """The goods arrive (ledger `transfer_in`): each line's `received` (default: all that
    was sent; less when some were lost on the way)."""
    transfer = _locked(StockTransfer, transfer_id)
    _must_be(transfer, "in_transit")
    received = {line.id: line.quantity for line in transfer.lines}
    for n, body in enumerate(_line_list(lines) if lines is not None else []):
        line_id = body.get("line_id")
        if not is_row_id(line_id) or line_id not in received:
            raise ValidationFailed.field(f"lines.{n}.line_id", "Not a line of this transfer.")
        sent = next(l.quantity for l in transfer.lines if l.id == line_id)
        received[line_id] = _quantity(body.get("received"), f"lines.{n}.received", 0)
        if received[line_id] > sent:
            raise ValidationFailed.field(f"lines.{n}.received", f"At most {sent} (what was sent).")
    set_reason(db.session, f"Transfer {transfer.transfer_no} received")
    _step(transfer, ("in_transit",), "received", received_at=now())
    for line in sorted(transfer.lines, key=lambda l: l.sku_id):
        line.received = received[line.id]
        if line.received:
            inventory.transfer_in(line.sku_id, transfer.to_warehouse_id, line.received,
                                  transfer.transfer_no)
    db.session.flush()
    publish("stock_transfer.received", {"transfer_id": transfer.id}, shop_id=transfer.shop_id)
    return transfer


def cancel_transfer(transfer_id) -> StockTransfer:
    transfer = _locked(StockTransfer, transfer_id)
    set_reason(db.session, f"Transfer {transfer.transfer_no} cancelled")
    _step(transfer, ("draft",), "cancelled")
    return transfer


# -- reports -----------------------------------------------------------------------------------

def stock_value_by_warehouse() -> list[tuple[str, Decimal]]:
    """(warehouse code, Σ on hand × SKU cost price) of the stock the actor may see; a SKU
    without a cost price counts as 0."""
    query = scope_query(
        select(Warehouse.code, func.sum(Stock.on_hand * func.coalesce(Sku.cost_price, 0)))
        .join(Warehouse, Warehouse.id == Stock.warehouse_id)
        .join(Sku, Sku.id == Stock.sku_id)
        .group_by(Warehouse.id, Warehouse.code).order_by(Warehouse.code, Warehouse.id), Stock)
    return [(code, Decimal(total or 0).quantize(Decimal("0.01")))
            for code, total in db.session.execute(query)]
