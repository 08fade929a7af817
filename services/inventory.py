"""库存 rules: stock changes only here, each with its ledger row, each an atomic conditional
UPDATE (never read-then-write), so concurrent buyers can never oversell.

Reservations of several SKUs are taken in SKU-id order, so two carts racing in opposite
orders cannot deadlock; a shortfall raises before the caller commits, and the caller's
rollback undoes every reservation the transaction took.
"""
import re
from dataclasses import dataclass

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm.attributes import set_committed_value

from app.extensions import db
from models.inventory import Stock, StockLedger, Warehouse, serves
from models.product import Sku
from services import audit
from services.actor import current_actor, scope_query
from services.clock import now
from services.errors import ConflictError, NotFoundError, ValidationFailed
from services.events import publish


class StockBelowZeroError(ConflictError):
    """The change would take on-hand stock below zero (or below what is reserved)."""


class ShortStockError(ConflictError):
    """Not enough available stock for every line; `short` lists what is missing."""

    def __init__(self, short: list[dict]):
        super().__init__("Not enough stock", {"lines": [
            f"SKU {s['sku_id']}: requested {s['requested']}, available {s['available']}"
            for s in short]})
        self.short = short


@dataclass(frozen=True)
class Reservation:
    stock_id: int
    sku_id: int
    warehouse_id: int
    quantity: int


REGION_CODE = re.compile(r"^\d{6}$")


def check_warehouse(warehouse: Warehouse) -> Warehouse:
    """Region and served provinces are six-digit codes (GB/T 2260); priority ranks
    warehouses that serve a buyer equally well (lower first)."""
    warehouse.region = (warehouse.region or "").strip() or None
    if warehouse.region and not REGION_CODE.match(warehouse.region):
        raise ValidationFailed.field("region", "Six-digit region code, e.g. 310000.")
    regions = warehouse.service_regions if warehouse.service_regions is not None else []
    if not isinstance(regions, list) or \
            not all(isinstance(r, str) and REGION_CODE.match(r) for r in regions):
        raise ValidationFailed.field("service_regions",
                                     "A list of six-digit region codes, e.g. [\"310000\"].")
    warehouse.service_regions = sorted(set(regions))
    if warehouse.priority is None:
        warehouse.priority = 100
    if isinstance(warehouse.priority, bool) or not isinstance(warehouse.priority, int) or \
            not 0 <= warehouse.priority <= 10000:
        raise ValidationFailed.field("priority", "A whole number from 0 to 10000.")
    return warehouse


def visible_warehouse(warehouse_id) -> Warehouse:
    """A warehouse the actor may use (merchants: their own), else 404."""
    query = scope_query(db.session.query(Warehouse), Warehouse).filter(Warehouse.id == warehouse_id)
    warehouse = query.one_or_none() if isinstance(warehouse_id, int) else None
    if warehouse is None:
        raise NotFoundError("Not found", {"warehouse_id": ["Related record not found."]})
    return warehouse


def visible_sku(sku_id) -> Sku:
    sku = scope_query(db.session.query(Sku), Sku).filter(Sku.id == sku_id).one_or_none() \
        if isinstance(sku_id, int) else None
    if sku is None:
        raise ValidationFailed.field("sku_id", "Related record not found.")
    return sku


def stock_row(sku: Sku, warehouse: Warehouse) -> Stock:
    """The stock row of a SKU in a warehouse, created (empty) on first use; a concurrent
    creation is absorbed by ON CONFLICT DO NOTHING (no savepoint, same on both databases)."""
    query = select(Stock).where(Stock.sku_id == sku.id, Stock.warehouse_id == warehouse.id)
    stock = db.session.scalars(query).one_or_none()
    if stock is None:
        db.session.execute(_insert(Stock).values(
            sku_id=sku.id, warehouse_id=warehouse.id, shop_id=sku.shop_id, on_hand=0,
            reserved=0, updated_at=now()).on_conflict_do_nothing(
            index_elements=["sku_id", "warehouse_id"]))
        stock = db.session.scalars(query).one()
    return stock


def _insert(model):
    """INSERT with ON CONFLICT for the database in use."""
    if db.engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(model)


def _write_ledger(stock_id, sku_id, warehouse_id, shop_id, reason, reference, note,
                  on_hand_after, reserved_after, on_hand_delta, reserved_delta) -> None:
    db.session.add(StockLedger(
        stock_id=stock_id, sku_id=sku_id, warehouse_id=warehouse_id, shop_id=shop_id,
        reason=reason, reference=reference, note=note,
        on_hand_before=on_hand_after - on_hand_delta, on_hand_after=on_hand_after,
        reserved_before=reserved_after - reserved_delta, reserved_after=reserved_after,
        actor=current_actor().name, created_at=now()))


def _change(stock: Stock, *, on_hand: int, reserved: int, condition, reason: str,
            reference: str | None, note: str | None = None, alert: int | None = None):
    """One conditional UPDATE of a stock row and its ledger row; None if the condition fails.
    `alert` is the SKU's stock-alert quantity when the caller has it (saves a query)."""
    result = db.session.execute(
        update(Stock).where(Stock.id == stock.id, condition)
        .values(on_hand=Stock.on_hand + on_hand, reserved=Stock.reserved + reserved,
                updated_at=now())
        .returning(Stock.on_hand, Stock.reserved)
        .execution_options(synchronize_session=False)).one_or_none()
    if result is None:
        return None
    _write_ledger(stock.id, stock.sku_id, stock.warehouse_id, stock.shop_id, reason, reference,
                  note, result.on_hand, result.reserved, on_hand, reserved)
    available_after = result.on_hand - result.reserved
    _signal_if_low(stock, available_after + reserved - on_hand, available_after, alert)
    # the row as the database now holds it, without reading it again
    set_committed_value(stock, "on_hand", result.on_hand)
    set_committed_value(stock, "reserved", result.reserved)
    return result


def adjust(sku_id, warehouse_id, delta, reason: str) -> Stock:
    """Count stock in or out of a warehouse by hand (stocktaking, damage, first stock)."""
    if isinstance(delta, bool) or not isinstance(delta, int) or delta == 0:
        raise ValidationFailed.field("delta", "A whole number other than zero.")
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationFailed.field("reason", "Required.")
    warehouse = visible_warehouse(warehouse_id)
    sku = visible_sku(sku_id)
    if warehouse.shop_id is not None and warehouse.shop_id != sku.shop_id:
        raise ValidationFailed.field("warehouse_id", "Another shop's warehouse.")
    stock = stock_row(sku, warehouse)
    result = _change(stock, on_hand=delta, reserved=0,
                     condition=Stock.on_hand + delta >= Stock.reserved, reason="adjust",
                     reference=None, note=reason.strip()[:255])
    if result is None:
        raise StockBelowZeroError("Stock would fall below zero or below what is reserved",
                                  {"delta": [f"On hand {stock.on_hand}, reserved {stock.reserved}."]})
    return stock


STOCK, WAREHOUSE, LEDGER = Stock.__table__, Warehouse.__table__, StockLedger.__table__
# Checkout's statements, built once (SQLAlchemy caches their SQL): the candidate rows of every
# SKU of the cart in one read, then one conditional UPDATE per piece taken.
_CANDIDATES = (
    select(STOCK.c.id, STOCK.c.sku_id, STOCK.c.warehouse_id, STOCK.c.shop_id, STOCK.c.on_hand,
           STOCK.c.reserved, WAREHOUSE.c.region, WAREHOUSE.c.service_regions,
           WAREHOUSE.c.priority, Sku.__table__.c.stock_alert_qty)
    .join(WAREHOUSE, WAREHOUSE.c.id == STOCK.c.warehouse_id)
    .join(Sku.__table__, Sku.__table__.c.id == STOCK.c.sku_id)
    .where(STOCK.c.sku_id.in_(bindparam("sku_ids", expanding=True)),
           WAREHOUSE.c.enabled.is_(True), STOCK.c.on_hand > STOCK.c.reserved))
_RESERVE = (
    update(STOCK)
    .where(STOCK.c.id == bindparam("stock_id"),
           STOCK.c.on_hand - STOCK.c.reserved >= bindparam("wanted"))
    .values(reserved=STOCK.c.reserved + bindparam("wanted"), updated_at=bindparam("stamp"))
    .returning(STOCK.c.on_hand, STOCK.c.reserved))
_AVAILABLE = select(STOCK.c.on_hand - STOCK.c.reserved).where(
    STOCK.c.id == bindparam("stock_id"))
_INSERT_LEDGER = insert(LEDGER).returning(LEDGER.c.id, sort_by_parameter_order=True)


def reserve(lines: list[tuple[int, int]], reference: str,
            province_code: str | None = None) -> list[Reservation]:
    """Reserve (sku_id, quantity) lines, each from the warehouses the dispatch rules prefer
    for the buyer's province (see `_preferred`). All or nothing: a shortfall raises
    ShortStockError and the caller rolls back. One read for the whole cart, one conditional
    UPDATE per piece (SKUs in id order), one INSERT for all the ledger rows."""
    merged = sorted(_merge(lines))
    if not merged:
        return []
    connection = db.session.connection()
    candidates: dict[int, list] = {}
    for row in connection.execute(_CANDIDATES, {"sku_ids": [sku_id for sku_id, _ in merged]}):
        candidates.setdefault(row.sku_id, []).append(row)
    taking = _Taking(connection, reference)
    short = []
    for sku_id, quantity in merged:
        taken = taking.line(candidates.get(sku_id, []), quantity, province_code)
        if taken < quantity:
            short.append({"sku_id": sku_id, "requested": quantity, "available": taken})
    if short:
        raise ShortStockError(short)
    taking.write_ledger()
    return taking.reservations


class _Taking:
    """The pieces one reservation takes, and their ledger rows (written together)."""

    def __init__(self, connection, reference: str):
        self.connection, self.reference = connection, reference
        self.stamp, self.actor = now(), current_actor().name
        self.reservations: list[Reservation] = []
        self.ledger: list[dict] = []

    def line(self, rows: list, quantity: int, province_code: str | None) -> int:
        """Take `quantity` of one SKU from its preferred rows, piece by piece when no single
        one has enough; returns how much was taken."""
        missing = quantity
        for row in _preferred(rows, quantity, province_code):
            if missing == 0:
                break
            missing -= self.piece(row, min(missing, row.on_hand - row.reserved))
        return quantity - missing

    def piece(self, row, wanted: int) -> int:
        """Reserve up to `wanted` from one row; when a concurrent buyer got there first, retry
        with what is left (each failed try means someone else reserved, so this ends)."""
        while wanted > 0:
            after = self.connection.execute(_RESERVE, {"stock_id": row.id, "wanted": wanted,
                                                       "stamp": self.stamp}).first()
            if after is not None:
                self.took(row, wanted, after.on_hand, after.reserved)
                return wanted
            available = self.connection.execute(_AVAILABLE, {"stock_id": row.id}).scalar()
            wanted = min(wanted, available or 0)
        return 0

    def took(self, row, quantity: int, on_hand: int, reserved: int) -> None:
        self.reservations.append(Reservation(row.id, row.sku_id, row.warehouse_id, quantity))
        self.ledger.append({
            "stock_id": row.id, "sku_id": row.sku_id, "warehouse_id": row.warehouse_id,
            "shop_id": row.shop_id, "reason": "reserve", "reference": self.reference,
            "note": None, "on_hand_before": on_hand, "on_hand_after": on_hand,
            "reserved_before": reserved - quantity, "reserved_after": reserved,
            "actor": self.actor, "created_at": self.stamp})
        available = on_hand - reserved
        _signal_if_low(row, available + quantity, available, row.stock_alert_qty)

    def write_ledger(self) -> None:
        if not self.ledger:
            return
        ids = self.connection.execute(_INSERT_LEDGER, self.ledger).scalars().all()
        for row, ledger_id in zip(self.ledger, ids):
            row["id"] = ledger_id
        audit.record_inserts(db.session, StockLedger, self.ledger)


def _merge(lines):
    totals: dict[int, int] = {}
    for sku_id, quantity in lines:
        totals[sku_id] = totals.get(sku_id, 0) + quantity
    return list(totals.items())


def _preferred(rows: list, quantity: int, province_code: str | None) -> list:
    """The dispatch rules, in order: a warehouse that can send the whole line (one parcel)
    before one that cannot; among those, one serving the buyer's province before one that
    does not; then the warehouse's priority (lower first); then the most available; then the
    oldest row. `rows` are candidate rows (stock columns with the warehouse's region,
    service_regions and priority)."""
    def rank(row):
        available = row.on_hand - row.reserved
        return (available < quantity,
                not serves(row.region, row.service_regions, province_code), row.priority,
                -available, row.id)
    return sorted(rows, key=rank)


def take_back(sku_id: int, warehouse_id: int, quantity: int, reference: str) -> Stock:
    """Returned goods come back on hand in the warehouse that sent them (ledger `return`)."""
    sku = db.session.get(Sku, sku_id)
    warehouse = db.session.get(Warehouse, warehouse_id)
    stock = stock_row(sku, warehouse)
    _change(stock, on_hand=quantity, reserved=0, condition=Stock.id == stock.id,
            reason="return", reference=reference)
    return stock


def release(reservations: list[Reservation], reference: str) -> None:
    """Give reserved stock back (an order cancelled); in stock-id order."""
    for item in sorted(reservations, key=lambda r: r.stock_id):
        stock = db.session.get(Stock, item.stock_id)
        if _change(stock, on_hand=0, reserved=-item.quantity,
                   condition=Stock.reserved >= item.quantity, reason="release",
                   reference=reference) is None:
            raise ConflictError("Reservation already released", {"stock": [str(item.stock_id)]})


def deduct(reservations: list[Reservation], reference: str) -> None:
    """Goods left the warehouse: on hand and reserved both go down."""
    for item in sorted(reservations, key=lambda r: r.stock_id):
        stock = db.session.get(Stock, item.stock_id)
        if _change(stock, on_hand=-item.quantity, reserved=-item.quantity,
                   condition=Stock.reserved >= item.quantity, reason="deduct",
                   reference=reference) is None:
            raise ConflictError("Nothing reserved to ship", {"stock": [str(item.stock_id)]})


# -- warehouse movements (WMS): the caller has checked the documents and who may act ------------

def _row_of(sku_id: int, warehouse_id: int) -> Stock:
    return stock_row(db.session.get(Sku, sku_id), db.session.get(Warehouse, warehouse_id))


def receive(sku_id: int, warehouse_id: int, quantity: int, reference: str,
            location: str | None = None) -> Stock:
    """Goods received on an inbound receipt go on hand (ledger `receipt`), put away at
    `location` when one is given."""
    stock = _row_of(sku_id, warehouse_id)
    _change(stock, on_hand=quantity, reserved=0, condition=Stock.id == stock.id,
            reason="receipt", reference=reference)
    if location:
        stock.location = location
    return stock


def on_hand_locked(stock_ids) -> dict[int, int]:
    """What the books say is on hand on each stock row ({stock_id: on_hand}), the rows locked
    (`SELECT … FOR UPDATE`, in id order) until the transaction ends: a stocktake line takes
    its expected figure from here when it is counted."""
    ids = sorted(set(stock_ids))
    if not ids:
        return {}
    return dict(db.session.execute(select(STOCK.c.id, STOCK.c.on_hand)
                                   .where(STOCK.c.id.in_(ids)).order_by(STOCK.c.id)
                                   .with_for_update()).all())


def count_adjust(stock_id: int, delta: int, reference: str) -> Stock:
    """A stocktake variance (counted − what the books said when that line was counted)
    applied to what is on hand now (ledger `stocktake`): movements since the count are on
    the shelf and in the books alike, so they stand. 409 when it would take on hand below
    zero or below what is reserved."""
    stock = db.session.get(Stock, stock_id)
    if _change(stock, on_hand=delta, reserved=0, condition=Stock.on_hand + delta >= Stock.reserved,
               reason="stocktake", reference=reference) is None:
        raise StockBelowZeroError("The count would leave less on hand than is reserved", {
            "lines": [f"SKU {stock.sku_id}: on hand {stock.on_hand}, reserved {stock.reserved}, "
                      f"change {delta}."]})
    return stock


def transfer_out(sku_id: int, warehouse_id: int, quantity: int, reference: str) -> Stock:
    """Goods leave a warehouse on a transfer (ledger `transfer_out`): only what is available
    (on hand − reserved) may go; 409 otherwise."""
    stock = _row_of(sku_id, warehouse_id)
    if _change(stock, on_hand=-quantity, reserved=0,
               condition=Stock.on_hand - Stock.reserved >= quantity, reason="transfer_out",
               reference=reference) is None:
        raise ShortStockError([{"sku_id": sku_id, "requested": quantity,
                                "available": stock.on_hand - stock.reserved}])
    return stock


def transfer_in(sku_id: int, warehouse_id: int, quantity: int, reference: str) -> Stock:
    """Goods of a transfer arrive at their destination (ledger `transfer_in`)."""
    stock = _row_of(sku_id, warehouse_id)
    _change(stock, on_hand=quantity, reserved=0, condition=Stock.id == stock.id,
            reason="transfer_in", reference=reference)
    return stock


def available(sku_id: int, warehouse_id: int) -> int:
    """What of a SKU a warehouse can still promise (on hand − reserved; 0 without a row)."""
    return int(db.session.scalar(select(STOCK.c.on_hand - STOCK.c.reserved).where(
        STOCK.c.sku_id == sku_id, STOCK.c.warehouse_id == warehouse_id)) or 0)


def is_low(stock: Stock, sku: Sku) -> bool:
    """Low stock: available at or below the SKU's stock-alert quantity."""
    return sku.stock_alert_qty > 0 and stock.on_hand - stock.reserved <= sku.stock_alert_qty


def _signal_if_low(stock: Stock, available_before: int, available_after: int,
                   alert: int | None = None) -> None:
    """Publish `stock.low` when available stock crosses down to the SKU's alert quantity
    (once per crossing, not on every change while low)."""
    if alert is None:
        alert = db.session.scalar(select(Sku.stock_alert_qty).where(Sku.id == stock.sku_id))
    if alert and available_before > alert >= available_after:
        publish("stock.low", {"sku_id": stock.sku_id, "warehouse_id": stock.warehouse_id,
                              "available": available_after, "alert": alert},
                shop_id=stock.shop_id)


def low_stock():
    """Stock rows at or below their SKU's alert quantity (the actor's shop only)."""
    query = scope_query(db.session.query(Stock).join(Sku, Sku.id == Stock.sku_id), Stock) \
        .filter(Sku.stock_alert_qty > 0,
                Stock.on_hand - Stock.reserved <= Sku.stock_alert_qty)
    return query.order_by(Stock.id).all()
