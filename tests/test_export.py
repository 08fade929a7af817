"""Exports: requested through REST or the screen, built by a job as the requester's shop (never
as whoever runs it), read back from the file, downloaded only when built, kept for a while."""
import csv
import io
import os
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook

from app.extensions import db
from models.after_sale import AfterSale
from models.export import ExportJob
from models.inventory import Stock
from models.order import Order
from models.product import Spu
from services import clock, export
from services.actor import Actor, acting_as
from services.clock import business_time_text
from tests.conftest import requires_postgres, requires_redis
from tests.factories import make_export, make_order, make_warehouse, paid_order, stock_up


def built(job_id: int) -> ExportJob:
    """The export once built (with REDIS_URL the request only queued it)."""
    export.build(job_id)
    db.session.expire_all()
    return db.session.get(ExportJob, job_id)


def rows_of(content: bytes, fmt: str) -> list[list]:
    if fmt == "csv":
        assert content.startswith(b"\xef\xbb\xbf")   # utf-8-sig: Excel reads Chinese right
        return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    sheet = load_workbook(io.BytesIO(content), read_only=True).active
    return [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]


def orders_in_db(shop) -> list[list]:
    """The order rows an export should hold, straight from the orders of `shop`."""
    rows = []
    for order in Order.query.filter_by(shop_id=shop.id).order_by(Order.id):
        refunded = sum((a.amount for a in AfterSale.query.filter_by(
            order_id=order.id, status="refunded")), Decimal("0"))
        rows.append([order.order_no, shop.code, order.status.value,
                     business_time_text(order.created_at), business_time_text(order.paid_at),
                     str(order.member_id), str(sum(line.quantity for line in order.lines)),
                     f"{order.goods_amount:.2f}", f"{order.discount_amount:.2f}",
                     f"{order.freight:.2f}", f"{order.payable:.2f}", f"{refunded:.2f}"])
    return rows


@pytest.fixture
def orders(shops):
    """Shop A: a paid order of 2 units and an unpaid one; shop B: a paid order."""
    return {"a_paid": paid_order(shops["A"], 2), "a_unpaid": make_order(shops["A"]),
            "b_paid": paid_order(shops["B"])}


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_merchant_export_holds_exactly_its_shops_orders(api, shops, orders, fmt):
    client = api("merchant_a")
    answer = client.post("/api/v1/export_job/", json={"kind": "orders", "format": fmt,
                                                      "filters": {}})
    assert answer.status_code == 202, answer.json
    assert answer.json["result"]["shop_id"] == shops["A"].id
    job = built(answer.json["id"])
    assert (job.status, job.row_count) == ("done", 2)
    download = client.get(f"/api/v1/export_job/{job.id}/download")
    assert download.status_code == 200
    assert download.headers["Content-Type"].startswith(export.CONTENT_TYPES[fmt].split(";")[0])
    assert f'filename={job.export_no}.{fmt}' in download.headers["Content-Disposition"]
    assert len(download.data) == job.file_size
    rows = rows_of(download.data, fmt)
    assert rows[0] == export.ORDER_COLUMNS
    assert rows[1:] == orders_in_db(shops["A"])
    assert orders["b_paid"].order_no not in download.get_data(as_text=fmt == "csv") \
        if fmt == "csv" else all(r[0] != orders["b_paid"].order_no for r in rows)


def test_the_worker_builds_as_the_jobs_shop_not_as_whoever_runs_it(app, shops, orders):
    with acting_as(Actor(name="merchant_a", shop_id=shops["A"].id, authenticated=True,
                         merchant=True)):
        job = export.request_export("orders", "csv", {})
        db.session.commit()
    db.session.info.pop("houtai_jobs_inprocess", None)
    from workers.export import build_export

    build_export(job.id)   # outside any request: the job actor sees every shop
    job = db.session.get(ExportJob, job.id)
    with export.storage().open(job.file_key) as handle:
        numbers = [row[0] for row in rows_of(handle.read(), "csv")[1:]]
    assert sorted(numbers) == sorted([orders["a_paid"].order_no, orders["a_unpaid"].order_no])
    # control: a staff export built the same way holds both shops' orders
    staff = make_export(None)
    with export.storage().open(staff.file_key) as handle:
        assert len(rows_of(handle.read(), "csv")) - 1 == 3


def test_filters_by_status_and_placed_day(api, shops, orders):
    client = api("merchant_a")
    answer = client.post("/api/v1/export_job/", json={"kind": "orders", "format": "csv",
                                                      "filters": {"status": "pending_payment"}})
    job = built(answer.json["id"])
    rows = rows_of(client.get(f"/api/v1/export_job/{job.id}/download").data, "csv")
    assert [r[0] for r in rows[1:]] == [orders["a_unpaid"].order_no]
    yesterday = (clock.business_date() - timedelta(days=1)).isoformat()
    answer = client.post("/api/v1/export_job/", json={
        "kind": "orders", "format": "csv", "filters": {"from": yesterday, "to": yesterday}})
    assert built(answer.json["id"]).row_count == 0


def test_stock_export_neutralises_formulas(api, shops):
    warehouse = make_warehouse(shops["A"])
    from tests.factories import make_spu

    spu = make_spu(shops["A"], with_skus=True)
    stock = stock_up(spu.skus[0], warehouse, 7)
    spu.title = "=HYPERLINK(\"http://evil\",\"click\")"
    db.session.get(Stock, stock.id).location = "+A-01"
    db.session.commit()
    for fmt in ("csv", "xlsx"):
        job = make_export(shops["A"], "stock", fmt, {"warehouse_id": warehouse.id})
        with export.storage().open(job.file_key) as handle:
            rows = rows_of(handle.read(), fmt)
        assert rows[0] == export.STOCK_COLUMNS
        assert rows[1] == [warehouse.code, warehouse.name, "A", spu.skus[0].code,
                           "'=HYPERLINK(\"http://evil\",\"click\")", "7", "0", "7", "'+A-01"]
    with export.storage().open(job.file_key) as handle:   # Excel: text, not a formula
        sheet = load_workbook(io.BytesIO(handle.read())).active
    assert sheet.cell(row=2, column=5).data_type == "s"
    assert export.cell("-5") == "'-5" and export.cell("@x") == "'@x"
    assert export.cell(Decimal("-5.5")) == "-5.50"   # our own money stays a number's text


def test_settlements_and_sales_exports(api, shops, orders):
    from tests.factories import _settlement_row

    statement = _settlement_row(shops["A"])
    _settlement_row(shops["B"])
    client = api("merchant_a")
    answer = client.post("/api/v1/export_job/", json={"kind": "settlements", "format": "csv",
                                                      "filters": {}})
    rows = rows_of(client.get(f"/api/v1/export_job/{built(answer.json['id']).id}/download")
                   .data, "csv")
    assert rows[0] == export.SETTLEMENT_COLUMNS
    assert [r[:3] + [r[7], r[8]] for r in rows[1:]] == [[
        statement.settlement_no, "A", statement.period_end.isoformat(),
        f"{statement.net:.2f}", statement.status]]
    answer = client.post("/api/v1/export_job/", json={"kind": "sales", "format": "xlsx",
                                                      "filters": {"group_by": "shop"}})
    rows = rows_of(client.get(f"/api/v1/export_job/{built(answer.json['id']).id}/download")
                   .data, "xlsx")
    line = orders["a_paid"].lines[0]
    assert rows == [["shop_id", "shop_code", "shop_name", "orders", "quantity", "gmv",
                     "refunded"],
                    [str(shops["A"].id), "A", "Shop A", "1", "2", f"{line.payable:.2f}",
                     "0.00"]]


def test_download_before_the_file_is_built_is_409(api, shops):
    with acting_as(Actor(name="merchant_a", shop_id=shops["A"].id, authenticated=True,
                         merchant=True)):
        job = export.request_export("orders", "csv", {})
        db.session.commit()
    db.session.info.pop("houtai_jobs_inprocess", None)
    answer = api("merchant_a").get(f"/api/v1/export_job/{job.id}/download")
    assert answer.status_code == 409
    assert answer.json["errors"] == {"status": ["queued"]}
    assert api("merchant_a").get(f"/api/v1/export_job/{job.id}").json["result"]["status"] == \
        "queued"


def test_another_shops_export_is_not_found(api, shops):
    other = make_export(shops["B"])
    assert other.status == "done"
    client = api("merchant_a")
    assert client.get(f"/api/v1/export_job/{other.id}").status_code == 404
    assert client.get(f"/api/v1/export_job/{other.id}/download").status_code == 404
    assert client.get("/api/v1/export_job/").json["count"] == 0
    assert api("merchant_b").get(f"/api/v1/export_job/{other.id}/download").status_code == 200


@pytest.mark.parametrize("body, field", [
    ({"kind": "customers", "format": "csv"}, "kind"),
    ({"kind": "orders", "format": "pdf"}, "format"),
    ({"kind": "orders", "format": "csv", "shop_id": "B"}, "shop_id"),
    ({"kind": "orders", "filters": []}, "filters"),
    ({"kind": "orders", "filters": {"status": "lost"}}, "filters.status"),
    ({"kind": "orders", "filters": {"from": "2026-13-01"}}, "filters.from"),
    ({"kind": "orders", "filters": {"from": "2026-11-20", "to": "2026-11-01"}}, "filters.from"),
    ({"kind": "orders", "filters": {"from": "2024-01-01", "to": "2026-11-01"}}, "filters.from"),
    ({"kind": "orders", "filters": {"warehouse_id": 1}}, "filters.warehouse_id"),
    ({"kind": "stock", "filters": {"warehouse_id": "other"}}, "filters.warehouse_id"),
    ({"kind": "stock", "filters": {"shop_id": "other"}}, "filters.shop_id"),
    ({"kind": "settlements", "filters": {"status": "lost"}}, "filters.status"),
    ({"kind": "sales", "filters": {"group_by": "brand"}}, "filters.group_by"),
])
def test_bad_requests_are_422_and_create_nothing(api, shops, body, field):
    warehouse_b = make_warehouse(shops["B"])
    filters = body.get("filters")
    if isinstance(filters, dict):
        filters = {k: {"other": warehouse_b.id if k == "warehouse_id" else shops["B"].id}
                   .get(v, v) for k, v in filters.items()}
        body = {**body, "filters": filters}
    answer = api("merchant_a").post("/api/v1/export_job/", json=body)
    assert answer.status_code == 422, answer.json
    assert field in answer.json["errors"]
    assert ExportJob.query.count() == 0


def test_each_role_exports_only_what_it_reads(api, shops):
    refused = api("Warehouse").post("/api/v1/export_job/", json={"kind": "orders"})
    assert refused.status_code == 403 and ExportJob.query.count() == 0
    assert api("Warehouse").post("/api/v1/export_job/", json={"kind": "stock"}).status_code == 202
    assert api("Finance").post("/api/v1/export_job/",
                               json={"kind": "settlements"}).status_code == 202
    assert api("Finance").post("/api/v1/export_job/", json={"kind": "stock"}).status_code == 403
    assert api("CustomerService").post("/api/v1/export_job/",
                                       json={"kind": "orders"}).status_code == 403


def test_building_twice_makes_one_file(app, shops, orders):
    job = make_export(shops["A"])
    folder = Path(app.config["UPLOAD_FOLDER"]) / "exports"
    before = sorted(p.name for p in folder.iterdir())
    assert export.build(job.id) is False   # a duplicate delivery of the job
    db.session.expire_all()
    again = db.session.get(ExportJob, job.id)
    assert (again.status, again.file_key, again.finished_at) == \
        (job.status, job.file_key, job.finished_at)
    assert sorted(p.name for p in folder.iterdir()) == before
    assert before.count(f"{job.export_no}.csv") == 1


def test_a_failed_build_records_why(app, shops, monkeypatch):
    with acting_as(Actor(name="merchant_a", shop_id=shops["A"].id, authenticated=True,
                         merchant=True)):
        job = export.request_export("orders", "csv", {})
        db.session.commit()
    db.session.info.pop("houtai_jobs_inprocess", None)

    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr(export, "_write", broken)
    assert export.build(job.id) is False
    job = db.session.get(ExportJob, job.id)
    assert (job.status, job.error, job.file_key) == ("failed", "OSError: disk full", None)


def test_old_files_are_deleted_by_tick(app, shops, orders):
    job = make_export(shops["A"])
    path = Path(app.config["UPLOAD_FOLDER"]) / job.file_key
    assert path.exists()
    clock.set_now(clock.now() + timedelta(days=app.config["EXPORT_KEEP_DAYS"] - 1))
    assert export.expire_files() == 0 and path.exists()
    clock.set_now(clock.now() + timedelta(days=2))
    assert export.expire_files() == 1
    assert not path.exists()
    job = db.session.get(ExportJob, job.id)
    assert (job.status, job.file_key) == ("done", None)


def test_a_lost_build_is_queued_again_and_built_once(app, shops, orders):
    job = make_export(shops["A"])
    lost_queue = make_export(shops["A"])
    lost_worker = make_export(shops["A"])
    db.session.execute(db.update(ExportJob).where(ExportJob.id == lost_queue.id)
                       .values(status="queued", file_key=None))
    db.session.execute(db.update(ExportJob).where(ExportJob.id == lost_worker.id)
                       .values(status="running", file_key=None))
    db.session.commit()
    clock.set_now(clock.now() + timedelta(minutes=11))
    assert export.requeue_stalled() == 1          # the running one is given two hours
    built_once(lost_queue, job.row_count)
    clock.set_now(clock.now() + timedelta(hours=2))
    assert export.requeue_stalled() == 1
    built_once(lost_worker, job.row_count)
    assert export.requeue_stalled() == 0


def built_once(job, rows):
    export.build(job.id)           # (in-process mode may have built it at the commit)
    assert not export.build(job.id)
    db.session.refresh(job)
    assert (job.status, job.row_count) == ("done", rows)


def test_screens_request_list_and_download(app, browser, shops, orders):
    merchant = browser("merchant_a")
    form = merchant.get("/exportjobview/new")
    assert form.status_code == 200 and 'name="shop_id"' not in form.get_data(as_text=True)
    answer = merchant.post_form("/exportjobview/new", {"kind": "orders", "format": "csv",
                                                       "group_by": "sku"},
                                token_from="/exportjobview/new")
    assert answer.status_code == 302
    job = built(ExportJob.query.one().id)
    listing = merchant.get("/exportjobview/list/").get_data(as_text=True)
    assert job.export_no in listing and f"/exportjobview/file/{job.id}" in listing
    download = merchant.get(f"/exportjobview/file/{job.id}")
    assert download.status_code == 200
    assert rows_of(download.data, "csv")[1:] == orders_in_db(shops["A"])
    refused = merchant.post_form("/exportjobview/new", {"kind": "orders", "format": "pdf"},
                                 token_from="/exportjobview/new")
    assert refused.status_code == 200 and "format" in refused.get_data(as_text=True)
    assert ExportJob.query.count() == 1
    other = make_export(shops["B"])
    assert merchant.get(f"/exportjobview/file/{other.id}").status_code == 404


def test_real_rq_worker_builds_an_export(app, shops, orders, monkeypatch):
    """PostgreSQL and Redis: the request queues the build; a real `rq worker --burst` builds
    it as the merchant's shop."""
    requires_postgres(app)
    requires_redis(app)
    from app.queue import rq_queue
    from tests.test_events import run_burst_worker

    client_job = None
    with acting_as(Actor(name="merchant_a", shop_id=shops["A"].id, authenticated=True,
                         merchant=True)):
        client_job = export.request_export("orders", "xlsx", {})
        db.session.commit()
    assert rq_queue().fetch_job(f"export-build-{client_job.id}") is not None
    assert client_job.status == "queued"
    monkeypatch.setenv("UPLOAD_FOLDER", app.config["UPLOAD_FOLDER"])
    run_burst_worker(app)
    db.session.expire_all()
    job = db.session.get(ExportJob, client_job.id)
    assert (job.status, job.row_count) == ("done", 2), job.error
    with export.storage().open(job.file_key) as handle:
        rows = rows_of(handle.read(), "xlsx")
    assert rows[1:] == orders_in_db(shops["A"])
    assert os.path.getsize(Path(app.config["UPLOAD_FOLDER"]) / job.file_key) == job.file_size


def test_demo_exports_load_once(app, shops, orders):
    from app.queue import run_inprocess_jobs
    from services import demo_export

    assert demo_export.load_exports() is True
    run_inprocess_jobs(db.session)
    for job in ExportJob.query.all():
        built(job.id)
    jobs = {(j.kind, j.format, j.shop_id, j.status, j.row_count)
            for j in ExportJob.query.all()}
    assert jobs == {("orders", "csv", shops["A"].id, "done", 2),
                    ("sales", "xlsx", None, "done", 2)}
    assert demo_export.load_exports() is False
