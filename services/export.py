"""Exports: orders, settlements, stock and sales reports as CSV or Excel files, built by a
background job and kept in the storage adapter.

A merchant's export holds its own shop's rows only: the job is built as its shop (the job's
`shop_id`), never as whoever runs it (a worker has no user). Staff exports see every shop, or
the one shop named in the filters. Files are read back through `open_export`; `houtai tick`
deletes them after EXPORT_KEEP_DAYS.
"""
import codecs
import csv
import logging
import tempfile
from datetime import timedelta
from decimal import Decimal

from flask import current_app, has_request_context
from sqlalchemy import func, update

from app.extensions import db
from app.queue import enqueue_after_commit
from models.after_sale import AfterSale, AfterSaleStatus
from models.export import EXPORT_FORMATS, EXPORT_KINDS, ExportJob
from models.finance import Settlement
from models.inventory import Stock, Warehouse
from models.order import Order, OrderLine, OrderStatus
from models.product import Sku, Spu
from models.shop import Shop
from services import report
from services.actor import (ALL_SHOPS, Actor, acting_as, current_actor, is_row_id, scope_query,
                            shop_scope, visible_row)
from services.clock import business_day_bounds, business_time_text, now
from services.errors import (REFERENCE_NOT_FOUND, ConflictError, ForbiddenError, NotFoundError,
                             ValidationFailed)
from services.logistics import report_period
from services.numbering import number
from services.scheduler import scheduled
from services.storage import storage

log = logging.getLogger(__name__)

BATCH = 500
SETTLEMENT_STATUSES = ("draft", "approved", "paid")
# what a requester must be allowed to read to export each kind: (permission, view) pairs,
# any one of them (the screen or the REST resource of the kind's source)
SOURCES = {
    "orders": [("can_list", "OrderView"), ("can_get", "OrderApi")],
    "settlements": [("can_list", "SettlementView"), ("can_get", "SettlementApi")],
    "stock": [("can_list", "StockView"), ("can_get", "StockApi")],
    "sales": [("can_list", "SalesReportView"), ("can_get", "SalesReportApi")],
}
# the filters each kind accepts (besides shop_id, which every kind accepts from staff)
KIND_FILTERS = {"orders": {"from", "to", "status"}, "settlements": {"from", "to", "status"},
                "stock": {"warehouse_id"}, "sales": {"from", "to", "group_by"}}
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8",
                 "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
# a text cell starting with one of these is a formula to a spreadsheet: it gets a leading '
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class ExportNotFoundError(NotFoundError):
    """No export of that id the actor may see."""


class ExportNotReadyError(ConflictError):
    """The export's file is not built yet (or no longer kept)."""


# -- requesting ----------------------------------------------------------------------------------

def may_export(kind: str) -> bool:
    """Whether the current user may read the kind's source (jobs and CLI commands may)."""
    if not has_request_context():
        return True
    sm = current_app.appbuilder.sm
    return any(sm.has_access(permission, view) for permission, view in SOURCES[kind])


def _check_filters(kind: str, filters) -> dict:
    if not isinstance(filters, dict):
        raise ValidationFailed.field("filters", "An object.")
    allowed = KIND_FILTERS[kind] | {"shop_id"}
    unknown = sorted(str(k) for k in filters if k not in allowed)
    if unknown:
        raise ValidationFailed("Validation failed", {
            f"filters.{key}": [f"Not a filter of {kind} exports."] for key in unknown})
    checked: dict = {}
    if {"from", "to"} & KIND_FILTERS[kind]:
        try:
            start, end = report_period(filters.get("from"), filters.get("to"))
        except ValidationFailed as err:
            raise ValidationFailed("Validation failed", {
                f"filters.{k}": v for k, v in err.errors.items()}) from err
        checked.update({"from": start.isoformat(), "to": end.isoformat()})
    if kind == "orders" and filters.get("status") not in (None, ""):
        if filters["status"] not in {s.value for s in OrderStatus}:
            raise ValidationFailed.field("filters.status", "One of the order statuses.")
        checked["status"] = filters["status"]
    if kind == "settlements" and filters.get("status") not in (None, ""):
        if filters["status"] not in SETTLEMENT_STATUSES:
            raise ValidationFailed.field("filters.status", ", ".join(SETTLEMENT_STATUSES))
        checked["status"] = filters["status"]
    if kind == "sales":
        checked["group_by"] = filters.get("group_by") or "sku"
        if checked["group_by"] not in report.GROUPS:
            raise ValidationFailed.field("filters.group_by", f"One of {', '.join(report.GROUPS)}.")
    if kind == "stock" and filters.get("warehouse_id") not in (None, ""):
        checked["warehouse_id"] = _check_warehouse(filters["warehouse_id"])
    if filters.get("shop_id") not in (None, ""):
        checked["shop_id"] = _check_shop(filters["shop_id"])
    return checked


def _check_warehouse(warehouse_id) -> int:
    """A warehouse the requester may name: its own shop's or the platform's."""
    warehouse = db.session.get(Warehouse, warehouse_id) if is_row_id(warehouse_id) else None
    if warehouse is None or (warehouse.shop_id is not None and
                             visible_row(Warehouse, warehouse_id) is None):
        raise ValidationFailed.field("filters.warehouse_id", REFERENCE_NOT_FOUND)
    return warehouse_id


def _check_shop(shop_id) -> int:
    try:
        return report.check_shop(shop_id)
    except ValidationFailed as err:
        raise ValidationFailed.field("filters.shop_id", REFERENCE_NOT_FOUND) from err


def request_export(kind, fmt, filters=None) -> ExportJob:
    """Check an export request and queue its build (after the commit); 422 naming the field,
    403 when the requester may not read what the kind exports."""
    if kind not in EXPORT_KINDS:
        raise ValidationFailed.field("kind", f"One of {', '.join(EXPORT_KINDS)}.")
    if fmt not in EXPORT_FORMATS:
        raise ValidationFailed.field("format", f"One of {', '.join(EXPORT_FORMATS)}.")
    if not may_export(kind):
        raise ForbiddenError("You may not read what this export holds", {
            "kind": ["Not readable by you."]})
    checked = _check_filters(kind, {} if filters is None else filters)
    scope = shop_scope()
    job = ExportJob(export_no=number("EX"), kind=kind, format=fmt, filters=checked,
                    status="queued", shop_id=None if scope is ALL_SHOPS else scope,
                    requested_by=current_actor().name, created_at=now())
    db.session.add(job)
    db.session.flush()
    _enqueue_build(job)
    return job


def _enqueue_build(job: ExportJob) -> None:
    enqueue_after_commit(db.session, "workers.export.build_export", job.id,
                         job_id=f"export-build-{job.id}")


def visible_export(export_id) -> ExportJob:
    job = visible_row(ExportJob, export_id)
    if job is None:
        raise ExportNotFoundError("Export not found")
    return job


def open_export(export_id):
    """(job, binary file, content type, file name) of a built export the actor may see; 404 for
    another shop's, 409 while it is not built."""
    job = visible_export(export_id)
    if job.status != "done" or not job.file_key:
        raise ExportNotReadyError("The export is not ready", {"status": [job.status]})
    try:
        handle = storage().open(job.file_key)
    except FileNotFoundError as err:
        raise ExportNotReadyError("The file is no longer kept", {"status": ["expired"]}) \
            from err
    return job, handle, CONTENT_TYPES[job.format], f"{job.export_no}.{job.format}"


# -- building ------------------------------------------------------------------------------------

def claim(export_id: int) -> bool:
    """Take a queued job (one worker only: a conditional UPDATE)."""
    claimed = db.session.execute(
        update(ExportJob).where(ExportJob.id == export_id, ExportJob.status == "queued")
        .values(status="running").execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return claimed == 1


def build(export_id: int) -> bool:
    """Build a queued export's file (idempotent: a job built, building or failed is left
    alone). Returns whether this call built it."""
    if not claim(export_id):
        return False
    job = db.session.get(ExportJob, export_id)
    try:
        with acting_as(_as_requester(job)):
            columns, rows = _source(job)
            key = f"exports/{job.export_no}.{job.format}"
            count, size = _write(job.format, columns, rows, key)
        job.status, job.row_count, job.file_key, job.file_size = "done", count, key, size
    except Exception as exc:  # noqa: BLE001 - the job records why it failed
        log.exception("export %s failed", job.export_no)
        db.session.rollback()
        job = db.session.get(ExportJob, export_id)
        job.status, job.error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
    job.finished_at = now()
    db.session.commit()
    return job.status == "done"


def _as_requester(job: ExportJob) -> Actor:
    """Who the build acts as: the job's shop (a merchant's export) or staff."""
    if job.shop_id is None:
        return Actor(name=f"export:{job.export_no}", authenticated=True)
    return Actor(name=f"export:{job.export_no}", shop_id=job.shop_id, authenticated=True,
                 merchant=True)


def _source(job: ExportJob):
    return {"orders": _orders, "settlements": _settlements, "stock": _stock,
            "sales": _sales}[job.kind](job)


def _shop_filter(query, column, job: ExportJob):
    """The job's shop, whoever runs it; a staff export's shop filter."""
    if job.shop_id is not None:
        query = query.filter(column == job.shop_id)
    elif job.filters.get("shop_id"):
        query = query.filter(column == job.filters["shop_id"])
    return query


def _period(job: ExportJob):
    start, end = report_period(job.filters.get("from"), job.filters.get("to"))
    return business_day_bounds(start)[0], business_day_bounds(end)[1]


def _keyset(query, id_column):
    """Rows of `query` in id order, BATCH at a time (bounded memory, no OFFSET)."""
    last = 0
    while True:
        batch = query.filter(id_column > last).order_by(id_column).limit(BATCH).all()
        if not batch:
            return
        yield batch
        last = batch[-1][0]


ORDER_COLUMNS = ["order_no", "shop", "status", "placed_at", "paid_at", "member_id", "items",
                 "goods_amount", "discount", "freight", "payable", "refunded"]


def _orders(job: ExportJob):
    since, until = _period(job)
    query = scope_query(db.session.query(
        Order.id, Order.order_no, Shop.code, Order.status, Order.created_at, Order.paid_at,
        Order.member_id, Order.goods_amount, Order.discount_amount, Order.freight,
        Order.payable).join(Shop, Shop.id == Order.shop_id), Order) \
        .filter(Order.created_at >= since, Order.created_at < until)
    query = _shop_filter(query, Order.shop_id, job)
    if job.filters.get("status"):
        query = query.filter(Order.status == job.filters["status"])

    def rows():
        for batch in _keyset(query, Order.id):
            ids = [row[0] for row in batch]
            items = dict(db.session.query(OrderLine.order_id, func.sum(OrderLine.quantity))
                         .filter(OrderLine.order_id.in_(ids)).group_by(OrderLine.order_id))
            refunded = dict(db.session.query(AfterSale.order_id, func.sum(AfterSale.amount))
                            .filter(AfterSale.order_id.in_(ids),
                                    AfterSale.status == AfterSaleStatus.refunded)
                            .group_by(AfterSale.order_id))
            for (pk, order_no, shop, status, placed, paid, member, goods, discount, freight,
                 payable) in batch:
                yield [order_no, shop, getattr(status, "value", status),
                       business_time_text(placed), business_time_text(paid), member,
                       int(items.get(pk) or 0), goods, discount, freight, payable,
                       Decimal(refunded.get(pk) or 0)]

    return ORDER_COLUMNS, rows()


SETTLEMENT_COLUMNS = ["settlement_no", "shop", "period_end", "paid_by_buyers",
                      "platform_discounts", "commission", "refunds", "net", "status",
                      "approved_at", "paid_at", "payment_reference"]


def _settlements(job: ExportJob):
    start, end = report_period(job.filters.get("from"), job.filters.get("to"))
    query = scope_query(db.session.query(
        Settlement.id, Settlement.settlement_no, Shop.code, Settlement.period_end,
        Settlement.paid_by_buyers, Settlement.platform_discounts, Settlement.commission,
        Settlement.refunds, Settlement.net, Settlement.status, Settlement.approved_at,
        Settlement.paid_at, Settlement.payment_reference)
        .join(Shop, Shop.id == Settlement.shop_id), Settlement) \
        .filter(Settlement.period_end >= start, Settlement.period_end <= end)
    query = _shop_filter(query, Settlement.shop_id, job)
    if job.filters.get("status"):
        query = query.filter(Settlement.status == job.filters["status"])

    def rows():
        for batch in _keyset(query, Settlement.id):
            for (_, no, shop, period_end, paid, platform, commission, refunds, net, status,
                 approved_at, paid_at, reference) in batch:
                yield [no, shop, period_end.isoformat(), paid, platform, commission, refunds,
                       net, status, business_time_text(approved_at),
                       business_time_text(paid_at), reference or ""]

    return SETTLEMENT_COLUMNS, rows()


STOCK_COLUMNS = ["warehouse", "warehouse_name", "shop", "sku_code", "title", "on_hand",
                 "reserved", "available", "location"]


def _stock(job: ExportJob):
    query = scope_query(db.session.query(
        Stock.id, Warehouse.code, Warehouse.name, Shop.code, Sku.code, Spu.title, Stock.on_hand,
        Stock.reserved, Stock.location)
        .join(Warehouse, Warehouse.id == Stock.warehouse_id).join(Sku, Sku.id == Stock.sku_id)
        .join(Spu, Spu.id == Sku.spu_id).join(Shop, Shop.id == Stock.shop_id), Stock)
    query = _shop_filter(query, Stock.shop_id, job)
    if job.filters.get("warehouse_id"):
        query = query.filter(Stock.warehouse_id == job.filters["warehouse_id"])

    def rows():
        for batch in _keyset(query, Stock.id):
            for _, code, name, shop, sku, title, on_hand, reserved, location in batch:
                yield [code, name, shop, sku, title, on_hand, reserved, on_hand - reserved,
                       location or ""]

    return STOCK_COLUMNS, rows()


def _sales(job: ExportJob):
    group_by = job.filters.get("group_by", "sku")
    shop_id = job.shop_id or job.filters.get("shop_id")
    rows = report.report_rows(group_by, job.filters.get("from"), job.filters.get("to"), shop_id)

    def money(rows):   # the report shows money as text: back to Decimal for the writers
        for row in rows:
            yield [Decimal(v) if c in ("gmv", "refunded") else v
                   for c, v in zip(report.report_columns(group_by), row)]

    return list(report.report_columns(group_by)), money(rows)


# -- writing -------------------------------------------------------------------------------------

def cell(value):
    """One value as a file shows it: money with 2 decimals, text neutralised against
    formulas (a leading '), numbers as numbers."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _write(fmt: str, columns, rows, key: str) -> tuple[int, int]:
    """Write the file in a spooled temporary file (rows as they come) and store it; returns
    (rows written, bytes)."""
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:
        count = _write_csv(spool, columns, rows) if fmt == "csv" else \
            _write_xlsx(spool, columns, rows)
        size = spool.tell()
        spool.seek(0)
        adapter = storage()
        if hasattr(adapter, "save_file"):
            adapter.save_file(key, spool)
        else:
            adapter.save(key, spool.read())
    return count, size


def _write_csv(spool, columns, rows) -> int:
    spool.write(codecs.BOM_UTF8)   # utf-8-sig: Excel then reads Chinese text right
    text = codecs.getwriter("utf-8")(spool)
    writer = csv.writer(text)
    writer.writerow(columns)
    count = 0
    for row in rows:
        writer.writerow([cell(v) for v in row])
        count += 1
    return count


def _write_xlsx(spool, columns, rows) -> int:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("export")
    sheet.append(columns)
    count = 0
    for row in rows:
        sheet.append([cell(v) for v in row])
        count += 1
    book.save(spool)
    spool.seek(0, 2)
    return count


# -- keeping -------------------------------------------------------------------------------------

# a queued job not taken this long after it was asked for lost its queue entry (Redis flushed);
# a running one this long lost its worker (killed mid-build): both are built again
REQUEUE_QUEUED_AFTER = timedelta(minutes=10)
REQUEUE_RUNNING_AFTER = timedelta(hours=2)


@scheduled("export.requeue_stalled")
def requeue_stalled() -> int:
    """Queue again the exports whose build was lost; the claim keeps it to one build."""
    moment = now()
    stalled = db.session.query(ExportJob).filter(
        ((ExportJob.status == "queued") & (ExportJob.created_at < moment - REQUEUE_QUEUED_AFTER))
        | ((ExportJob.status == "running")
           & (ExportJob.created_at < moment - REQUEUE_RUNNING_AFTER))) \
        .order_by(ExportJob.id).limit(100).all()
    for job in stalled:
        job.status = "queued"
        _enqueue_build(job)
    db.session.commit()
    return len(stalled)


@scheduled("export.expire_files")
def expire_files() -> int:
    """Delete the files of exports finished more than EXPORT_KEEP_DAYS ago (the job rows stay,
    without their file). Returns how many files were deleted."""
    cutoff = now() - timedelta(days=current_app.config["EXPORT_KEEP_DAYS"])
    jobs = db.session.query(ExportJob).filter(ExportJob.file_key.is_not(None),
                                              ExportJob.finished_at < cutoff) \
        .order_by(ExportJob.id).limit(1000).all()
    for job in jobs:
        storage().delete(job.file_key)
        job.file_key, job.file_size = None, None
    db.session.commit()
    return len(jobs)
