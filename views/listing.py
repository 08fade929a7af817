"""The common list request of a keyset resource, answered with one SELECT and one COUNT.

Integrators poll big lists (the order list of a shop, filtered by status, newest first, page
by page with `cursor`). FAB answers them through its generic path: a `Filters` object, an
ORM query with its options, a COUNT wrapped around it, and marshmallow's per-object dump.
`DirectList` answers the same request, with the same body, from one Core `SELECT` of the
list columns and one `COUNT` of the same conditions, the rows formatted by the list schema's
own fields. It takes only what it can answer exactly: `eq` filters on plain columns whose
filter is FAB's `FilterEqual`, page 1 or a cursor, `page_size`, `keys`. Anything else
(another operation, a custom filter, `order_column`, `columns`, `page=N`) returns None and
takes FAB's path. The shop scope is the same rule (`services.actor.shop_scope_of`) the
views' base filter applies; a caller who may see no shop takes FAB's path too.

`count` is the whole filtered list, on page 1 and on every cursor page. A list of
`LIST_COUNT_EXACT_BELOW` rows or more keeps its count per process for `LIST_COUNT_SECONDS`
(per resource, filters and shop scope): a client walking a big list page by page, or polling
it, costs one COUNT per few seconds instead of one per request, and may see the count of a
list that grew or shrank a few seconds late. Smaller lists are counted on every request.
"""
from flask import current_app, request
from flask_appbuilder.const import API_SELECT_COLUMNS_RIS_KEY
from flask_appbuilder.models.sqla.filters import FilterEqual, set_value_to_type
from sqlalchemy import bindparam, func, select

from app.extensions import db
from models.base import shop_column_of
from services.actor import ALL_SHOPS, NO_SHOP, shop_scope_of
from services.clock import now

DIRECT_ARGS = {"filters", "page", "page_size", "keys"}
SCALARS = (str, int, float, bool, type(None))
MAX_DIRECT_FILTERS = 6


class DirectList:
    """The direct answer of one view's list (see the module docstring)."""

    def __init__(self, view):
        self.view, self.usable = view, None   # known at the first request (FAB makes the
        #                                       view's schemas after its constructor)
        self.statements: dict = {}

    def _prepare(self) -> bool:
        view = self.view
        if not view.keyset_pagination or view.list_model_schema is None:
            return False
        model = view.datamodel.obj
        self.model, self.table = model, model.__table__
        self.shop_column = shop_column_of(model)
        self.pk = self.table.c[view.datamodel.get_pk_name()]
        self.fields = [(field.data_key or name, field.attribute or name, field)
                       for name, field in view.list_model_schema.dump_fields.items()]
        if not self._answers_like_fab(view):
            return False
        self.columns = [self.table.c[attribute] for _, attribute, _ in self.fields]
        if self.pk.key not in {column.key for column in self.columns}:
            self.columns.append(self.pk)
        return True

    def _answers_like_fab(self, view) -> bool:
        """Only where FAB's answer is plain: newest first, no base filter but the shop scope,
        every list field a column of the table, no dump hooks."""
        from views.base import ShopScopeFilter

        base_filters = view.base_filters or []
        return tuple(view.base_order or ()) == (self.pk.key, "desc") and \
            all(len(f) > 1 and f[1] is ShopScopeFilter for f in base_filters) and \
            all(attribute in self.table.c for _, attribute, _ in self.fields) and \
            not any(view.list_model_schema._hooks.get(tag) for tag in ("pre_dump", "post_dump"))

    def answer(self, args: dict):
        """The response, or None when FAB's path must answer this request."""
        if self.usable is None:
            self.usable = self._prepare()
        if not self.usable or not set(args) <= DIRECT_ARGS:
            return None
        values = self._filter_values(args.get("filters", []))
        if values is None:
            return None
        page, page_size = self.view._handle_page_args(args)  # page is 0 on a cursor page
        if page:
            return None
        scope = shop_scope_of(self.model)
        if scope is NO_SHOP:
            return None
        cursor = request.args.get("cursor")
        params = {f"f{n}": value for n, (_, value) in enumerate(values)}
        if scope is not ALL_SHOPS:
            params["shop"] = scope
        page_of, count_of = self._statements(tuple(column for column, _ in values),
                                             scope is not ALL_SHOPS, bool(cursor))
        if cursor:
            from views.base import decode_cursor

            params["cursor"] = decode_cursor(cursor)
        rows = db.session.execute(page_of, {**params, "limit": page_size}).all()
        response = {}
        self.view.set_response_key_mappings(response, self.view.get_list, args,
                                            **{API_SELECT_COLUMNS_RIS_KEY: []})
        response["result"] = [self._dumped(row) for row in rows]
        response["ids"] = [getattr(row, self.pk.key) for row in rows]
        count_key = (self.view.resource_name, tuple(values),
                     "all" if scope is ALL_SHOPS else scope)
        response["count"] = LIST_COUNTS.get(count_key, lambda: db.session.execute(
            count_of, {key: value for key, value in params.items() if key != "cursor"}
        ).scalar_one())
        self.view.pre_get_list(response)
        return self.view.response(200, **response)

    def _filter_values(self, filters) -> list | None:
        """(column, value) per filter, the value converted as FilterEqual converts it; None
        when a filter is anything else."""
        if not isinstance(filters, list) or len(filters) > MAX_DIRECT_FILTERS:
            return None
        offered = self.view._filters.get_search_filters()
        values = []
        for item in filters:
            if not isinstance(item, dict) or set(item) != {"col", "opr", "value"} or \
                    item["opr"] != "eq" or not isinstance(item["value"], SCALARS):
                return None
            column = item["col"]
            equal = [f for f in offered.get(column, []) if f.arg_name == "eq"]
            if column not in self.table.c or len(equal) != 1 or type(equal[0]) is not FilterEqual:
                return None
            values.append((column, set_value_to_type(self.view.datamodel, column, item["value"])))
        return values

    def _statements(self, columns: tuple, scoped: bool, cursor: bool) -> tuple:
        """The page SELECT and the COUNT for these filter columns, built once (SQLAlchemy
        then finds their SQL in its cache without rebuilding the statement)."""
        key = (columns, scoped, cursor)
        made = self.statements.get(key)
        if made is None:
            where = [self.table.c[column] == bindparam(f"f{n}") for n, column in enumerate(columns)]
            if scoped:
                where.append(self.table.c[self.shop_column] == bindparam("shop"))
            page_where = where + [self.pk < bindparam("cursor")] if cursor else where
            made = self.statements[key] = (
                select(*self.columns).where(*page_where).order_by(self.pk.desc())
                .limit(bindparam("limit")),
                select(func.count()).select_from(self.table).where(*where))
        return made

    def _dumped(self, row) -> dict:
        """The row as the list schema dumps it (the columns are in the fields' order)."""
        return {key: field._serialize(row[n], attribute, row)
                for n, (key, attribute, field) in enumerate(self.fields)}


class ListCounts:
    """The counts of big lists, kept per process (see the module docstring)."""

    MAX_KEPT = 4096

    def __init__(self):
        self.kept: dict = {}

    def get(self, key, count) -> int:
        seconds = current_app.config.get("LIST_COUNT_SECONDS", 0)
        moment = now()
        kept = self.kept.get(key)
        if kept is not None and 0 <= (moment - kept[1]).total_seconds() < seconds:
            return kept[0]
        answer = count()
        if seconds and answer >= current_app.config.get("LIST_COUNT_EXACT_BELOW", 0):
            if len(self.kept) >= self.MAX_KEPT:
                self.kept.clear()
            self.kept[key] = (answer, moment)
        else:
            self.kept.pop(key, None)
        return answer


LIST_COUNTS = ListCounts()
