"""Exports (导出) and the sales report: REST and screens.

Exports are requested here and built by a background job; their files are downloaded once
built. The sales report answers at once. Merchants see their own shop's exports and sales;
staff see every shop's, or one shop's when they name it.
"""
from flask import abort, flash, redirect, request, send_file, url_for
from flask_appbuilder import BaseView
from flask_appbuilder.api import BaseApi
from flask_appbuilder.baseviews import expose
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_appbuilder.security.decorators import has_access
from flask_babel import lazy_gettext as _l
from markupsafe import Markup
from marshmallow import Schema, fields, validate

from app.extensions import db
from models.export import EXPORT_FORMATS, EXPORT_KINDS, ExportJob
from models.order import ORDER_STATUS_LABELS
from services import export, report
from services.actor import ALL_SHOPS, shop_scope
from services.errors import HoutaiError
from views.base import HoutaiModelApi, ReadOnlyModelView, api_action, api_errors
from views.openapi import OpenApiErrorsMixin
from views.schema import json_body, load_or_422

EXPORT_COLUMNS = ["id", "export_no", "shop_id", "kind", "format", "filters", "status",
                  "row_count", "file_size", "error", "requested_by", "created_at",
                  "finished_at"]
KIND_LABELS = {"orders": _l("Orders"), "settlements": _l("Settlements"), "stock": _l("Stock"),
               "sales": _l("Sales report")}
STATUS_LABELS = {"queued": _l("Queued"), "running": _l("Building"), "done": _l("Ready"),
                 "failed": _l("Failed")}
GROUP_LABELS = {"sku": _l("SKU"), "category": _l("Category"), "shop": _l("Shop"),
                "day": _l("Day")}


class ExportRequestSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(EXPORT_KINDS))
    format = fields.String(load_default="csv", validate=validate.OneOf(EXPORT_FORMATS))
    filters = fields.Dict(load_default=dict)


def _sent(handle, content_type: str, name: str):
    return send_file(handle, mimetype=content_type, as_attachment=True, download_name=name)


class ExportJobApi(HoutaiModelApi):
    """Exports of orders, settlements, stock and sales: requested, built in the background,
    downloaded."""

    resource_name = "export_job"
    datamodel = SQLAInterface(ExportJob)
    center = "exports"
    openapi_spec_tag = "Exports"
    include_route_methods = {"get", "get_list", "info", "post", "download"}
    list_columns = EXPORT_COLUMNS
    show_columns = EXPORT_COLUMNS
    add_columns = ["kind", "format", "filters"]
    search_columns = ["export_no", "kind", "format", "status", "created_at"]
    order_columns = ["id", "created_at"]
    base_order = ("id", "desc")

    @api_errors
    def post_headless(self):
        """Request an export; it is built in the background (`status` queued → running →
        done or failed)"""
        body = load_or_422(ExportRequestSchema(), json_body())
        job = export.request_export(body["kind"], body["format"], body["filters"])
        db.session.commit()
        return self.response(202, id=job.id, result=self.show_model_schema.dump(job))

    @api_action("/<int:pk>/download", "download", methods=("GET",))
    def download(self, pk):
        """The export's file (CSV in UTF-8 with a BOM, or Excel)
        ---
        get:
          parameters:
          - {in: path, name: pk, required: true, schema: {type: integer}}
          responses:
            200:
              description: The file, as an attachment named after the export number
              content:
                text/csv: {schema: {type: string, format: binary}}
                application/vnd.openxmlformats-officedocument.spreadsheetml.sheet:
                  schema: {type: string, format: binary}
            404: {description: No such export (or another shop's)}
            409: {description: 'Not built yet (errors.status: queued, running, failed,
              expired)'}
        """
        _, handle, content_type, name = export.open_export(pk)
        return _sent(handle, content_type, name)


class SalesReportApi(OpenApiErrorsMixin, BaseApi):
    """Sales per SKU, category, shop or business day (the viewer's shop only)."""

    resource_name = "sales_report"
    center = "sales_report"
    openapi_spec_tag = "Exports"
    allow_browser_login = True

    @api_action("/", "get", methods=("GET",))
    def get(self):
        """Sold orders paid from `from` to `to` (business days, inclusive; default the last
        30 days, at most 366), grouped by `group_by`: orders, quantity, GMV (lines' payable)
        and refunded after-sales, money as text with 2 decimals
        ---
        get:
          parameters:
          - {in: query, name: group_by, required: true,
             schema: {type: string, enum: [sku, category, shop, day]}}
          - {in: query, name: from, schema: {type: string, format: date}}
          - {in: query, name: to, schema: {type: string, format: date}}
          - {in: query, name: shop_id, schema: {type: integer},
             description: 'Staff: one shop only (merchants: their own, or nothing)'}
          responses:
            200:
              description: The report
              content:
                application/json:
                  schema:
                    type: object
                    properties:
                      group_by: {type: string}
                      from: {type: string, format: date}
                      to: {type: string, format: date}
                      shop_id: {type: integer, nullable: true}
                      rows:
                        type: array
                        items:
                          type: object
                          description: 'The group (sku_id, sku_code, title | category_id,
                            category | shop_id, shop_code, shop_name | day) and its figures'
                          properties:
                            orders: {type: integer}
                            quantity: {type: integer}
                            gmv: {type: string, example: '12.30'}
                            refunded: {type: string, example: '0.00'}
                      totals:
                        type: object
                        properties:
                          orders: {type: integer}
                          quantity: {type: integer}
                          gmv: {type: string}
                          refunded: {type: string}
            422: {description: 'A bad group_by, date, range or shop (errors.group_by,
              errors.from, errors.to, errors.shop_id)'}
        """
        args = request.args
        return self.response(200, **report.sales_report(
            args.get("group_by"), args.get("from"), args.get("to"), args.get("shop_id")))


class SalesReportView(BaseView):
    """The sales report screen: the same table as the REST report, with its filters."""

    route_base = "/salesreport"
    default_view = "list"
    center = "sales_report"

    @expose("/", methods=["GET"])
    @has_access
    def list(self):
        args = request.args
        result, errors = None, None
        try:
            result = report.sales_report(args.get("group_by") or "sku", args.get("from"),
                                         args.get("to"), args.get("shop_id"))
        except HoutaiError as err:
            errors = err.errors or {"": [err.message]}
        finally:
            db.session.rollback()
        group_by = args.get("group_by") or "sku"
        return self.render_template(
            "houtai/sales_report.html", result=result, errors=errors, args=args,
            groups=GROUP_LABELS, group_by=group_by,
            key_columns=report.KEY_COLUMNS.get(group_by, ()),
            staff=shop_scope() is ALL_SHOPS, title=_l("Sales report"),
            appbuilder=self.appbuilder)


def _download_link(pk):
    return Markup('<a href="{}"><i class="fa fa-download"></i> {}</a>').format(
        url_for("ExportJobView.export_file", pk=pk), _l("Download"))


class ExportJobView(ReadOnlyModelView):
    datamodel = SQLAInterface(ExportJob)
    center = "exports"
    list_title = _l("Exports")
    show_title = _l("Export")
    label_columns = {"id": _l("File"), "export_no": _l("Export no."), "shop": _l("Shop"),
                     "kind": _l("Kind"), "format": _l("Format"), "filters": _l("Filters"),
                     "status": _l("Status"), "row_count": _l("Rows"),
                     "file_size": _l("Size (bytes)"), "error": _l("Error"),
                     "requested_by": _l("Requested by"), "created_at": _l("Requested at"),
                     "finished_at": _l("Finished at")}
    list_columns = ["export_no", "shop", "kind", "format", "status", "row_count", "created_at",
                    "finished_at", "id"]
    show_columns = ["export_no", "shop", "kind", "format", "filters", "status", "row_count",
                    "file_size", "error", "requested_by", "created_at", "finished_at", "id"]
    search_columns = ["export_no", "kind", "format", "status", "created_at"]
    formatters_columns = {"kind": lambda kind: KIND_LABELS.get(kind, kind),
                          "status": lambda status: STATUS_LABELS.get(status, status),
                          "id": _download_link}
    base_order = ("id", "desc")

    houtai_menu_name = "New export"
    include_route_methods = ReadOnlyModelView.include_route_methods | {"new", "export_file"}
    base_permissions = ReadOnlyModelView.base_permissions + ["can_new", "can_export_file"]

    @expose("/new", methods=["GET", "POST"])
    @has_access
    def new(self):
        """Request an export from a form; the list shows it being built."""
        errors = None
        if request.method == "POST":
            form = request.form
            filters = {key: form[key].strip() for key in
                       ("from", "to", "status", "group_by", "warehouse_id", "shop_id")
                       if (form.get(key) or "").strip() and
                       key in export.KIND_FILTERS.get(form.get("kind"), set()) | {"shop_id"}}
            for key in ("warehouse_id", "shop_id"):
                if key in filters and filters[key].isdigit():
                    filters[key] = int(filters[key])
            try:
                job = export.request_export(form.get("kind"), form.get("format"), filters)
                db.session.commit()
                flash(str(_l("Export %(no)s requested", no=job.export_no)), "success")
                return redirect(url_for(f"{self.endpoint}.list"))
            except HoutaiError as err:
                db.session.rollback()
                errors = err.errors or {"": [err.message]}
        return self.render_template(
            "houtai/export_new.html", form=request.form, errors=errors, kinds=KIND_LABELS,
            formats=EXPORT_FORMATS, groups=GROUP_LABELS, statuses=ORDER_STATUS_LABELS,
            staff=shop_scope() is ALL_SHOPS, title=_l("New export"),
            appbuilder=self.appbuilder)

    @expose("/file/<int:pk>")
    @has_access
    def export_file(self, pk):
        """The export's file, once built."""
        try:
            _, handle, content_type, name = export.open_export(pk)
        except HoutaiError as err:
            db.session.rollback()
            if err.status == 404:
                abort(404)
            flash(err.message, "warning")
            return redirect(url_for(f"{self.endpoint}.list"))
        return _sent(handle, content_type, name)


def register(appbuilder) -> None:
    reports = dict(category="Reports", category_label=_l("Reports"),
                   category_icon="fa-bar-chart")
    appbuilder.add_view(SalesReportView, "Sales report", label=_l("Sales report"),
                        icon="fa-line-chart", **reports)
    appbuilder.add_view(ExportJobView, "Exports", label=_l("Exports"), icon="fa-download",
                        **reports)
    appbuilder.add_link("New export", label=_l("New export"), href="/exportjobview/new",
                        icon="fa-plus", **reports)
    appbuilder.add_api(ExportJobApi)
    appbuilder.add_api(SalesReportApi)
