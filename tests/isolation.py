"""The isolation walk: every registered screen and REST resource of a shop-owned model, tried
by a merchant of shop A against shop B's rows. Returns the leaks it finds (empty = isolated).

A leak is: shop B's row or name shown, a 2xx answer on shop B's id, a write that lands in shop B,
or any change at all to shop B's rows.
"""
import re

from flask_appbuilder import ModelRestApi, ModelView
from sqlalchemy import select

from app.extensions import db
from models.base import shop_column_of
from tests.factories import api_body, make_row, marker_of

OK_REFUSALS = {302, 400, 401, 403, 404, 405, 409, 422}


def shop_owned_views(appbuilder, only=None):
    """(kind, view) for every registered view/API whose model belongs to a shop."""
    found = []
    for view in appbuilder.baseviews:
        if only is not None and type(view) not in only:
            continue
        datamodel = getattr(view, "datamodel", None)
        if datamodel is None or shop_column_of(datamodel.obj) is None:
            continue
        if isinstance(view, ModelRestApi):
            found.append(("api", view))
        elif isinstance(view, ModelView):
            found.append(("screen", view))
    return found


def snapshot(shop_id: int) -> dict:
    """Every row of every shop-owned table that belongs to `shop_id`."""
    db.session.expire_all()
    rows = {}
    for mapper in db.Model.registry.mappers:
        model = mapper.class_
        column = shop_column_of(model)
        if column is None:
            continue
        table = model.__table__
        query = select(table).where(table.c[column] == shop_id).order_by(*table.primary_key)
        rows[table.name] = [tuple(r) for r in db.session.execute(query)]
    db.session.rollback()
    return rows


class Walk:
    def __init__(self, app, probe, shop_a, shop_b):
        self.app, self.probe, self.a, self.b = app, probe, shop_a, shop_b
        self.leaks: list[str] = []

    def leak(self, where, what):
        self.leaks.append(f"{where}: {what}")

    def run(self, views):
        before = snapshot(self.b.id)
        for kind, view in views:
            model = view.datamodel.obj
            own = make_row(model, self.a)
            other = make_row(model, self.b)
            before = snapshot(self.b.id)
            other_pk = view.datamodel.get_pk_value(other)
            own_pk = view.datamodel.get_pk_value(own)
            if kind == "api":
                self.walk_api(view, model, own_pk, other_pk)
            else:
                self.walk_screen(view, own_pk, other_pk)
            after = snapshot(self.b.id)
            if after != before:
                self.leak(type(view).__name__, "shop B's rows changed")
        return self.leaks

    # -- screens ---------------------------------------------------------------------------------
    def _refused(self, where, response):
        if response.status_code not in OK_REFUSALS:
            self.leak(where, f"answered {response.status_code}")

    def _shows_b(self, where, response, other_pk):
        page = response.get_data(as_text=True)
        if marker_of(self.b) in page or self.b.name in page:
            self.leak(where, "shows shop B's data")
        if re.search(rf'/show/{other_pk}["?]', page):
            self.leak(where, f"links to shop B's row {other_pk}")

    def walk_screen(self, view, own_pk, other_pk):
        name, base = type(view).__name__, f"/{view.route_base.strip('/')}"
        token_page = f"{base}/list/"
        probe = self.probe
        listing = probe.get(f"{base}/list/")
        self._shows_b(f"{name} list", listing, other_pk)
        column = shop_column_of(view.datamodel.obj)
        searched = probe.get(f"{base}/list/?_flt_0_{column}={self.b.id}")
        self._shows_b(f"{name} search", searched, other_pk)
        routes = view.include_route_methods or {"show", "edit", "add", "delete"}
        for action in ("show", "edit"):
            if action in routes:
                self._refused(f"{name} GET {action}", probe.get(f"{base}/{action}/{other_pk}"))
        for url in (f"{base}/add", f"{base}/edit/{own_pk}"):
            page = probe.get(url)
            if page.status_code == 200:
                self._shows_b(f"{name} form {url}", page, other_pk)
        for url, data in ((f"{base}/edit/{other_pk}", {}), (f"{base}/delete/{other_pk}", {})):
            self._refused(f"{name} POST {url}", probe.post_form(url, data, token_from=token_page))
        for action_name in view.actions:
            self._refused(f"{name} action {action_name}", probe.post_form(
                f"{base}/action/{action_name}/{other_pk}", {}, token_from=token_page))
            self._refused(f"{name} bulk {action_name}", probe.post_form(
                f"{base}/action_post", {"action": action_name, "rowid": [str(other_pk)]},
                token_from=token_page))
        if "add" in routes and column != "id":
            rel = column[:-3] if column.endswith("_id") else column
            probe.post_form(f"{base}/add", {rel: str(self.b.id)}, token_from=token_page)

    # -- REST ------------------------------------------------------------------------------------
    def walk_api(self, view, model, own_pk, other_pk):
        name, base = type(view).__name__, f"/api/v1/{view.resource_name}"
        probe = self.probe
        self._refused(f"{name} GET id", probe.get(f"{base}/{other_pk}"))
        listing = probe.get(f"{base}/?q=(page_size:100)")
        if other_pk in (listing.json or {}).get("ids", []):
            self.leak(f"{name} list", "lists shop B's row")
        column = shop_column_of(model)
        filtered = probe.get(f"{base}/?q=(filters:!((col:{column},opr:eq,value:{self.b.id})))")
        if (filtered.json or {}).get("count"):
            self.leak(f"{name} filter", "filter by shop B finds rows")
        info = probe.get(f"{base}/_info")
        if info.status_code == 200 and (marker_of(self.b) in info.get_data(as_text=True)
                                        or self.b.name in info.get_data(as_text=True)):
            self.leak(f"{name} _info", "offers shop B's rows")
        routes = self._routes(view)
        if "put" in routes:
            self._refused(f"{name} PUT other", probe.put(f"{base}/{other_pk}", json={}))
            if column != "id":
                moved = probe.put(f"{base}/{own_pk}", json={column: self.b.id})
                if moved.status_code != 422 or column not in moved.json.get("errors", {}):
                    self.leak(f"{name} PUT own→B", f"answered {moved.status_code}")
        if "delete" in routes:
            self._refused(f"{name} DELETE other", probe.delete(f"{base}/{other_pk}"))
        if "post" in routes and column != "id":
            body = api_body(model, self.b)
            body[column] = self.b.id
            created = probe.post(f"{base}/", json=body)
            refused = created.status_code == 403 or (   # not allowed to create at all
                created.status_code == 422 and column in created.json.get("errors", {}))
            if not refused:
                self.leak(f"{name} POST into B", f"answered {created.status_code}")
        for rule, methods in self._custom_routes(view):
            url = rule.rule
            for argument in rule.arguments:
                url = re.sub(rf"<(?:\w+:)?{argument}>", str(other_pk), url)
            for method in methods:
                answer = probe.request(method, url, json={}, headers=probe._headers())
                self._refused(f"{name} {method} {rule.rule}", answer)

    def _routes(self, view):
        methods = view.include_route_methods
        standard = {"get", "get_list", "info", "post", "put", "delete"}
        return methods if methods is not None else standard

    def _custom_routes(self, view):
        """Rules of this API beyond the standard CRUD ones that take an id."""
        standard = {"get", "get_list", "info", "post", "put", "delete"}
        found = []
        for rule in self.app.url_map.iter_rules():
            endpoint_view, _, method_name = rule.endpoint.partition(".")
            if endpoint_view != type(view).__name__ or method_name in standard:
                continue
            if rule.arguments:
                found.append((rule, sorted(rule.methods - {"HEAD", "OPTIONS"})))
        return found
