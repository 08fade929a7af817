"""The base classes every screen and REST resource derives from.

They carry merchant isolation as one mechanism: a model that belongs to a shop (it has a
`shop_column`, see models.base.ShopOwnedMixin) is restricted to the merchant's shop in list,
show, add, edit, delete, single and bulk actions, related-field dropdowns, search, REST
get/list/post/put/delete and `_info`, without a line of code in the concrete view. Staff roles
see every shop; anonymous requests see nothing.
"""
import logging

from flask import abort, flash, redirect, request, url_for
from flask_appbuilder import ModelRestApi, ModelView
from flask_appbuilder import api as fab_api
from flask_appbuilder.api import expose as api_expose
from flask_appbuilder.baseviews import expose
from flask_appbuilder.const import API_SELECT_COLUMNS_RIS_KEY, FLAMSG_ERR_SEC_ACCESS_DENIED
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext
import jsonschema
from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from werkzeug.exceptions import HTTPException

from app.extensions import db
from models.base import UTCDateTime, shop_column_of
from services.actor import ALL_SHOPS, scope_query, shop_scope
from services.clock import business_time_text
from services.errors import (REFERENCE_NOT_FOUND, BadRequestError, ConflictError, HoutaiError,
                             NotFoundError, ValidationFailed)
from views.listing import DirectList
from views.openapi import OpenApiErrorsMixin
from views.schema import HoutaiSchemaConverter, json_body, load_or_422

log = logging.getLogger(__name__)

SHOP_MISMATCH = "Must be your own shop."


class _PrecheckedJsonSchema:
    """FAB validates every list/show query (`?q=`) with `jsonschema.validate`, which first
    checks the schema itself against the JSON Schema meta-schema: about half the time of a
    list request. FAB's schemas are constants, so each is checked once and its validator
    kept; a query is validated exactly as before (same errors, same best match)."""

    ValidationError = jsonschema.ValidationError

    def __init__(self):
        self._validators: dict[int, tuple] = {}

    def validate(self, instance, schema):
        kept = self._validators.get(id(schema))
        if kept is None or kept[0] is not schema:
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            kept = self._validators[id(schema)] = (schema, cls(schema))
        error = jsonschema.exceptions.best_match(kept[1].iter_errors(instance))
        if error is not None:
            raise error


fab_api.jsonschema = _PrecheckedJsonSchema()


def _converted_filters_once():
    """FAB converts every column of a model into its filter objects for every request (a
    `Filters` per list request, for all columns); the objects hold no request state, so each
    model's are made once and each request gets its own dict and lists of them."""
    from flask_appbuilder.models.filters import Filters

    made: dict = {}
    convert = Filters._get_filters

    def _get_filters(self, cols):
        key = (self.filter_converter, id(self.datamodel), tuple(cols))
        kept = made.get(key)
        if kept is None or kept[0] is not self.datamodel:
            kept = made[key] = (self.datamodel, convert(self, cols))
        return {col: list(filters) for col, filters in kept[1].items()}

    Filters._get_filters = _get_filters


_converted_filters_once()


class KeysetInterface(SQLAInterface):
    """The data interface of a keyset-paged resource: on a cursor page, FAB's one COUNT
    counts the whole filtered list (the filters without the cursor), not what follows."""

    def query_count(self, query, filters=None, select_columns=None):
        from flask import g, has_app_context

        whole = getattr(g, "houtai_count_filters", None) if has_app_context() else None
        return super().query_count(query, whole if whole is not None else filters,
                                   select_columns)


class ShopScopeFilter(BaseFilter):
    """No-op for staff, `shop column == the merchant's shop` for merchants, nothing for anonymous."""

    name = "shop scope"
    arg_name = "shopscope"

    def apply(self, query, value):
        return scope_query(query, self.datamodel.obj)


def visible(model, pk) -> object | None:
    """The row of `model` with primary key `pk` if the current actor may see it."""
    query = scope_query(db.session.query(model), model)
    pk_column = SQLAInterface(model).get_pk()
    return query.filter(pk_column == pk).one_or_none()


def _scope_filter_for(model) -> list:
    return [[shop_column_of(model), ShopScopeFilter, None]]


def scoped_related_fields(model) -> dict:
    """{relationship: [[col, ShopScopeFilter, None]]} for every shop-owned related model, so
    dropdowns, search widgets and `_info` list only the merchant's own rows."""
    datamodel = SQLAInterface(model)
    scoped = {}
    for name in datamodel.get_columns_list():
        if datamodel.is_relation(name):
            related = datamodel.get_related_model(name)
            if shop_column_of(related) is not None:
                scoped[name] = _scope_filter_for(related)
    return scoped


def _merge(explicit: dict | None, scoped: dict) -> dict:
    merged = {key: list(value) for key, value in (explicit or {}).items()}
    for key, filters in scoped.items():
        merged.setdefault(key, []).extend(filters)
    return merged


def isolate(view, related_field_attributes: tuple[str, ...]) -> None:
    """Give a view (screen or API) the shop base filter and shop-scoped related fields."""
    model = view.datamodel.obj
    if shop_column_of(model) is not None:
        view.base_filters = list(view.base_filters or []) + _scope_filter_for(model)
    scoped = scoped_related_fields(model)
    for attribute in related_field_attributes:
        setattr(view, attribute, _merge(getattr(view, attribute), scoped))


def _time_formatters(model) -> dict:
    """Screens show stored UTC times in the business zone (HOUTAI_TIMEZONE)."""
    return {column.key: business_time_text for column in model.__table__.columns
            if isinstance(column.type, UTCDateTime)}


def _own_shop_violation(item) -> bool:
    column = shop_column_of(type(item))
    scope = shop_scope()
    if column is None or scope is ALL_SHOPS:
        return False
    return getattr(item, column) != scope


class HoutaiModelView(ModelView):
    """A console screen: isolation, POST-only actions loaded through the base filters."""

    center: str | None = None
    # FAB's file download reads UPLOAD_FOLDER by name, past every row filter: uploads are
    # served by /api/v1/uploaded_file/<id>/content instead.
    exclude_route_methods = {"download"}

    def __init__(self, **kwargs):
        # FAB appends action permissions to this list: give each view its own copy.
        if self.base_permissions:
            self.base_permissions = list(self.base_permissions)
        isolate(self, ("add_form_query_rel_fields", "edit_form_query_rel_fields",
                       "search_form_query_rel_fields"))
        self.formatters_columns = {**_time_formatters(self.datamodel.obj),
                                   **(self.formatters_columns or {})}
        super().__init__(**kwargs)

    # {column: [filter classes]}: a screen's own filters for a column, as REST resources have
    # (FAB's screens otherwise ignore them). They come first in the column's list because
    # FAB's screens read the filter index from the URL as a single digit (`_flt_<d>_<col>`).
    search_filters: dict | None = None

    def _init_properties(self):
        super()._init_properties()
        if self.search_filters:
            self._filters = self.datamodel.get_filters(self.search_columns)
            # the search widget lists _search_filters; the URL's index picks from _all_filters
            for offered in (self._filters.get_search_filters(), self._filters._all_filters):
                for column, own in self.search_filters.items():
                    offered[column] = [f(column, self.datamodel) for f in own] + \
                        offered.get(column, [])

    def _guard_shop(self, item) -> None:
        """A merchant's form may only write rows of the merchant's own shop."""
        column = shop_column_of(type(item))
        scope = shop_scope()
        if column is None or scope is ALL_SHOPS:
            return
        if column != "id" and getattr(item, column) is None:
            setattr(item, column, scope)
            relationship = column[:-3] if column.endswith("_id") else None
            if relationship and hasattr(type(item), relationship):
                from models.shop import Shop

                # the form set the relationship to None: it would win over the column at flush
                setattr(item, relationship, db.session.get(Shop, scope))
        if _own_shop_violation(item):
            db.session.rollback()
            raise ValueError(lazy_gettext(SHOP_MISMATCH))

    def pre_add(self, item):
        self._guard_shop(item)

    def pre_update(self, item):
        self._guard_shop(item)

    def _visible_or_404(self, pk):
        item = self.datamodel.get(self._deserialize_pk_if_composite(pk), self._base_filters)
        if item is None:
            abort(404)
        return item

    def _allowed_action(self, name):
        if name not in self.actions:
            abort(404)
        permission = self.get_action_permission_name(name)
        return self.appbuilder.sm.has_access(permission, self.class_permission_name)

    @expose("/action/<string:name>/<pk>", methods=["POST"])
    def action(self, name, pk):
        """A single-row action; the row is loaded through the base filters (404 otherwise)."""
        if not self._allowed_action(name):
            flash(str(FLAMSG_ERR_SEC_ACCESS_DENIED), "danger")
            return redirect(self.get_redirect())
        return self.actions[name].func(self._visible_or_404(pk))

    @expose("/action_post", methods=["POST"])
    def action_post(self):
        """A bulk action; every selected row must be visible, or nothing runs (404)."""
        name = request.form.get("action", "")
        if not self._allowed_action(name):
            flash(str(FLAMSG_ERR_SEC_ACCESS_DENIED), "danger")
            return redirect(self.get_redirect())
        items = [self._visible_or_404(pk) for pk in request.form.getlist("rowid")]
        return self.actions[name].func(items)


    def run_step(self, items, step, *args):
        """A screen action calling a service step on each selected row: all or nothing, the
        refusal flashed in the user's words."""
        items = items if isinstance(items, list) else [items]
        try:
            for item in items:
                step(item.id, *args)
            db.session.commit()
            flash(str(lazy_gettext("Done")), "success")
        except HoutaiError as err:
            db.session.rollback()
            flash(err.message, "danger")
        return redirect(self.get_redirect())


    def reason_step(self, row, step, permission: str, template: str, **context):
        """A screen step that needs a reason (reject, ...): GET shows `template` asking for it,
        POST runs `step(row.id, reason)` and goes back to the row; a refusal is flashed with
        the fields it names, and the form is shown again."""
        if not self.appbuilder.sm.has_access(permission, self.class_permission_name):
            return redirect(url_for(f"{self.endpoint}.show", pk=row.id))
        if request.method == "POST":
            try:
                step(row.id, request.form.get("reason", ""))
                db.session.commit()
                flash(str(lazy_gettext("Rejected")), "success")
                return redirect(url_for(f"{self.endpoint}.show", pk=row.id))
            except HoutaiError as err:
                db.session.rollback()
                flash(error_text(err), "danger")
        return self.render_template(template, title=lazy_gettext("Reject"),
                                    appbuilder=self.appbuilder, **context)


def error_text(err: HoutaiError) -> str:
    """A domain error for a flash: its message, or each field with its reasons."""
    return err.message if not err.errors else "; ".join(
        f"{f}: {', '.join(map(str, r))}" for f, r in err.errors.items())


class ReadOnlyModelView(HoutaiModelView):
    """A screen that is only read: add/edit/delete are not routed."""

    base_permissions = ["can_list", "can_show"]
    include_route_methods = {"list", "show", "action", "action_post"}


def api_errors(func):
    """Turn domain errors (and HTTP errors such as 413 raised while reading the body) of a
    REST endpoint into our JSON error responses; FAB's @safe would make them 500."""
    import functools

    @functools.wraps(func)
    def wrapper(self, *args, **kwargs):
        try:
            return func(self, *args, **kwargs)
        except HoutaiError as err:
            db.session.rollback()
            return self.response(err.status, message=err.message, errors=err.errors)
        except HTTPException as err:
            db.session.rollback()
            return self.response(err.code or 400, message=err.description or err.name, errors={})

    return wrapper


class HoutaiModelApi(OpenApiErrorsMixin, ModelRestApi):
    """A REST resource under /api/v1/<resource>/: explicit columns, typed write schemas,
    isolation, exact error shapes, and no 500 for a database constraint."""

    center: str | None = None
    model2schemaconverter = HoutaiSchemaConverter
    allow_browser_login = True
    page_size = 20

    def __init__(self):
        isolate(self, ("add_query_rel_fields", "edit_query_rel_fields"))
        super().__init__()
        self.direct_list = DirectList(self)
        self._response_keys: dict = {}

    # -- responses in the one error shape --------------------------------------------------
    def _error(self, status, message, errors=None):
        return self.response(status, message=message, errors=errors or {})

    def response_400(self, message=None):
        return self._error(400, message if isinstance(message, str) else "Bad request",
                           message if isinstance(message, dict) else None)

    def response_401(self):
        return self._error(401, "Not authorized")

    def response_403(self):
        return self._error(403, "Forbidden")

    def response_404(self):
        return self._error(404, "Not found")

    def response_422(self, message=None):
        if isinstance(message, dict):
            return self._error(422, "Validation failed", message)
        return self._error(422, message or "Could not process entity")

    # -- isolation and references on writes -------------------------------------------------
    def _apply_shop(self, item, body: dict, creating: bool) -> None:
        """Merchants: omitted shop → their own; any other shop → 422 errors.shop_id."""
        column = shop_column_of(type(item))
        scope = shop_scope()
        if column is None or column == "id" or scope is ALL_SHOPS:
            return
        if column in body and body[column] is not None and body[column] != scope:
            raise ValidationFailed.field(column, SHOP_MISMATCH)
        if creating and getattr(item, column) is None:
            setattr(item, column, scope)

    def _check_references(self, item, body: dict) -> None:
        """Each foreign key in the body must name a row the actor can see, of the same shop."""
        errors = {}
        own_column = shop_column_of(type(item))
        own_shop = getattr(item, own_column, None) if own_column else None
        for column in self.datamodel.obj.__table__.columns:
            if column.name not in body or body[column.name] is None or column.name == own_column:
                continue
            for foreign_key in column.foreign_keys:
                target = _model_of_table(foreign_key.column.table)
                if target is None:
                    continue
                row = visible(target, body[column.name])
                target_shop_column = shop_column_of(target)
                if row is None or (own_shop is not None and target_shop_column is not None
                                   and getattr(row, target_shop_column) != own_shop):
                    errors[column.name] = [REFERENCE_NOT_FOUND]
        if own_column and own_column in body and body[own_column] is not None \
                and own_column != "id":
            from models.shop import Shop

            if visible(Shop, body[own_column]) is None:
                errors.setdefault(own_column, [REFERENCE_NOT_FOUND])
        if errors:
            raise ValidationFailed("Validation failed", errors)

    def _check_unique(self, item) -> None:
        """422 naming the field when a unique value is taken, also for composite keys such as
        (shop_id, code): the field named is the last one (a race still gets 409)."""
        errors = {}
        model = type(item)
        pk = SQLAInterface(model).get_pk()
        for columns in _unique_column_sets(model.__table__):
            values = [getattr(item, column.key, None) for column in columns]
            if any(value is None for value in values):
                continue
            query = select(pk).where(*[getattr(model, c.key) == v for c, v in zip(columns, values)])
            if getattr(item, pk.key, None) is not None:
                query = query.where(pk != getattr(item, pk.key))
            with db.session.no_autoflush:
                if db.session.execute(query.limit(1)).first() is not None:
                    errors[columns[-1].key] = ["Already exists."]
        if errors:
            raise ValidationFailed("Validation failed", errors)

    def _guarded(self, hook, item) -> None:
        """Run a pre_* hook; a constraint it trips (it may flush) is a 409, not a 500."""
        try:
            hook(item)
        except IntegrityError as exc:
            db.session.rollback()
            log.info("integrity error in %s on %s: %s", hook.__name__, self.resource_name, exc.orig)
            raise ConflictError("The change conflicts with existing data",
                                {"_schema": ["Conflicts with existing or related data."]}) from exc

    def _commit(self) -> None:
        try:
            db.session.commit()
        except IntegrityError as exc:
            db.session.rollback()
            log.info("integrity error on %s: %s", self.resource_name, exc.orig)
            raise ConflictError("The change conflicts with existing data",
                                {"_schema": ["Conflicts with existing or related data."]}) from exc
        except DataError as exc:
            db.session.rollback()
            raise ValidationFailed("Validation failed",
                                   {"_schema": ["A value the database cannot store."]}) from exc
        except SQLAlchemyError as exc:
            db.session.rollback()
            raise ConflictError("The change could not be stored",
                                {"_schema": [type(exc).__name__]}) from exc

    def _get_visible_or_404(self, pk):
        try:
            pk = int(pk)
        except (TypeError, ValueError):
            raise NotFoundError("Not found")
        if not 0 < pk < 2**31:  # no row has it, and PostgreSQL refuses to compare it
            raise NotFoundError("Not found")
        item = self.datamodel.get(pk, self._base_filters)
        if item is None:
            raise NotFoundError("Not found")
        return item

    def _get_field_info(self, field, filter_rel_field, page=None, page_size=None):
        info = super()._get_field_info(field, filter_rel_field, page=page, page_size=page_size)
        # gettext("") answers the catalogue's header: keep empty descriptions empty.
        if not self.description_columns.get(field.name):
            info["description"] = ""
        return info

    # -- reads: arguments the database would choke on are the caller's error ----------------
    def _sanitize_page_args(self, page, page_size):
        if (page is not None and (not isinstance(page, int) or page < 0)) or \
                (page_size is not None and not isinstance(page_size, int)):
            raise ValidationFailed.field("page", "Must be a non-negative integer.")
        return super()._sanitize_page_args(page, page_size)

    def _read(self, method, *args, **kwargs):
        try:
            return method(*args, **kwargs)
        except HoutaiError as err:
            db.session.rollback()
            return self.response(err.status, message=err.message, errors=err.errors)
        except (SQLAlchemyError, ValueError, TypeError) as exc:
            db.session.rollback()
            log.info("refused query arguments on %s: %s", self.resource_name, exc)
            return self.response(400, message="Invalid query arguments",
                                 errors={"q": [type(exc).__name__]})

    def _handle_filters_args(self, rison_args):
        """Every filter must name a searchable column and an operation it offers (stock FAB
        silently ignores an unknown operation and answers every row)."""
        filters = rison_args.get("filters", [])
        if not isinstance(filters, list):
            raise BadRequestError("Invalid filters", {"q": ["filters must be a list."]})
        offered = self._filters.get_search_filters()
        for item in filters:
            if not isinstance(item, dict) or not {"col", "opr", "value"} <= set(item):
                raise BadRequestError("Invalid filters", {"q": ["Each filter needs col, opr, value."]})
            operations = {f.arg_name for f in offered.get(item["col"], [])}
            if item["opr"] not in operations:
                raise BadRequestError("Invalid filters", {
                    "q": [f"Filter operation {item['opr']!r} not allowed on column {item['col']!r}."]})
        joined = super()._handle_filters_args(rison_args)
        if self._keyset():
            from flask import g
            from flask_appbuilder.models.sqla.filters import FilterSmaller

            # `count` is of the whole list, not of the rest after the cursor (KeysetInterface)
            g.houtai_count_filters = joined.copy()
            joined.add_filter(self.datamodel.get_pk_name(), FilterSmaller,
                              decode_cursor(request.args["cursor"]))
        return joined

    def _handle_columns_args(self, args, default_select_columns, default_response_columns):
        """Whole rows unless the request names its columns: FAB otherwise adds one
        `load_only` option per list column to every query, which costs more to build than
        the few columns it saves to read."""
        select_columns, response_columns = super()._handle_columns_args(
            args, default_select_columns, default_response_columns)
        if not args.get("select_columns") and not args.get("columns") and \
                all("." not in column for column in select_columns):
            select_columns = []
        return select_columns, response_columns

    # -- keyset pagination: ?cursor=<next_cursor of the previous page>, newest first ---------
    keyset_pagination = False

    def _keyset(self) -> bool:
        return self.keyset_pagination and bool(request.args.get("cursor"))

    def _handle_order_args(self, rison_args):
        if self._keyset():
            return self.datamodel.get_pk_name(), "desc"
        return super()._handle_order_args(rison_args)

    def _handle_page_args(self, rison_args):
        page, page_size = super()._handle_page_args(rison_args)
        from flask import g

        g.houtai_page_size = page_size
        return (0 if self._keyset() else page), page_size

    def pre_get_list(self, data):
        """Every list answer of a keyset resource carries `next_cursor` (None at the end)."""
        if self.keyset_pagination:
            from flask import g

            ids = data.get("ids") or []
            full = len(ids) >= (getattr(g, "houtai_page_size", None) or self.page_size)
            data["next_cursor"] = encode_cursor(ids[-1]) if ids and full else None

    def get_list_headless(self, **kwargs):
        return self._read(self._list_answer, **kwargs)

    def _list_answer(self, **kwargs):
        """The common keyset list request directly (views/listing.py), any other by FAB."""
        direct = self.direct_list.answer(kwargs.get("rison", {}))
        return direct if direct is not None else super().get_list_headless(**kwargs)

    def set_response_key_mappings(self, response, func, rison_args, **kwargs):
        """The list's and the record's metadata (labels, columns, descriptions, title, order
        columns) depend only on the view, the locale and which keys are asked for: made
        once per combination. The rest (`_info`'s permissions, chosen columns) every time."""
        if func.__name__ not in ("get_list", "get") or kwargs.get(API_SELECT_COLUMNS_RIS_KEY):
            return super().set_response_key_mappings(response, func, rison_args, **kwargs)
        from flask_babel import get_locale

        key = (func.__name__, str(get_locale()), frozenset(rison_args.get("keys") or ()))
        part = self._response_keys.get(key)
        if part is None:
            part = {}
            super().set_response_key_mappings(part, func, rison_args, **kwargs)
            self._response_keys[key] = part
        response.update(part)

    def get_headless(self, pk, **kwargs):
        return self._read(super().get_headless, pk, **kwargs)

    def info_headless(self, **kwargs):
        return self._read(super().info_headless, **kwargs)

    def answer_saved(self, item, status: int = 200):
        """Commit the action's work and answer the record as `show` does."""
        db.session.commit()
        return self.response(status, result=self.show_model_schema.dump(item))

    # -- the write endpoints -------------------------------------------------------------------
    def _default_shop(self, body: dict) -> dict:
        """A merchant who omits the shop writes into its own shop."""
        column = shop_column_of(self.datamodel.obj)
        scope = shop_scope()
        if column and column != "id" and isinstance(scope, int) and body.get(column) is None \
                and column in (self.add_columns or []):
            return {**body, column: scope}
        return body

    @api_errors
    def post_headless(self):
        body = self._default_shop(json_body())
        item = load_or_422(self.add_model_schema, body)
        self._apply_shop(item, body, creating=True)
        self._check_references(item, body)
        self._check_unique(item)
        self._guarded(self.pre_add, item)
        db.session.add(item)
        self._commit()
        self.post_add(item)
        return self.response(201, result=self.show_model_schema.dump(item),
                             id=self.datamodel.get_pk_value(item))

    @api_errors
    def put_headless(self, pk):
        item = self._get_visible_or_404(pk)
        body = json_body()
        with db.session.no_autoflush:
            item = load_or_422(self.edit_model_schema, body, instance=item, partial=True)
            self._apply_shop(item, body, creating=False)
            self._check_references(item, body)
            self._check_unique(item)
            self._guarded(self.pre_update, item)
        self._commit()
        self.post_update(item)
        return self.response(200, result=self.show_model_schema.dump(item))

    @api_errors
    def delete_headless(self, pk):
        item = self._get_visible_or_404(pk)
        self._guarded(self.pre_delete, item)
        db.session.delete(item)
        self._commit()
        self.post_delete(item)
        return self.response(200, message="OK")


def encode_cursor(last_id: int) -> str:
    import base64

    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The id a cursor points after; 400 for anything that is not one of ours."""
    import base64
    import binascii

    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(":")
        if kind != "id" or not value.isdigit() or int(value) > 2**31:
            raise ValueError(text)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadRequestError("Invalid cursor", {"cursor": ["Not a cursor of this list."]}) \
            from exc


def _unique_column_sets(table) -> list[list]:
    """Every set of columns that must be unique together (single-column ones included)."""
    from sqlalchemy import UniqueConstraint

    sets = [[c] for c in table.columns if c.unique and not c.primary_key]
    sets += [list(constraint.columns) for constraint in table.constraints
             if isinstance(constraint, UniqueConstraint)]
    sets += [list(index.columns) for index in table.indexes if index.unique]
    return sets


class ReadOnlyModelApi(HoutaiModelApi):
    """A resource that is only read: POST/PUT/DELETE are not routed (405), and `_info`
    offers no add/edit fields (whose dropdowns would list related rows)."""

    include_route_methods = {"get", "get_list", "info"}

    def merge_add_field_info(self, response, **kwargs):
        response["add_columns"] = []

    def merge_edit_field_info(self, response, **kwargs):
        response["edit_columns"] = []


def _model_of_table(table):
    for mapper in db.Model.registry.mappers:
        if mapper.local_table is table:
            return mapper.class_
    return None


def api_action(url: str, permission: str, methods=("POST",)):
    """A custom REST endpoint of a resource: routed, logged-in, permission-checked (as
    `can_<permission>`), and with domain errors answered in the one JSON error shape."""
    from flask_appbuilder.api import permission_name, protect, safe

    def decorate(func):
        return api_expose(url, methods=methods)(
            protect()(safe(permission_name(permission)(api_errors(func)))))

    return decorate


__all__ = ["HoutaiModelView", "HoutaiModelApi", "ReadOnlyModelApi", "ShopScopeFilter",
           "api_action", "scope_query", "visible"]


def form_rule(rule, item):
    """Run a service rule from a screen: a refusal becomes the form's error message."""
    try:
        rule(item)
    except HoutaiError as err:
        db.session.rollback()
        reasons = "; ".join(f"{field}: {', '.join(map(str, why))}"
                            for field, why in err.errors.items())
        raise ValueError(reasons or err.message) from err
