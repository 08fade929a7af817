"""The home dashboard: every center's panels the viewer may see, drawn with the local Chart.js,
over a period of business days (`from`, `to`); and the same figures as JSON."""
import functools

from flask import g, request
from flask_appbuilder import IndexView, expose
from flask_appbuilder.api import BaseApi, safe
from flask_appbuilder.api import expose as api_expose
from flask_jwt_extended import verify_jwt_in_request
from flask_login import current_user

from services import dashboard
from services.errors import HoutaiError
from views.base import api_errors
from views.openapi import OpenApiErrorsMixin


def _can():
    """The viewer's permission check, from all its (permission, view) pairs read at once
    (one query per role instead of one per panel)."""
    from flask import current_app

    sm = current_app.appbuilder.sm
    user = sm.current_user
    granted = sm.get_user_permissions(user) if user is not None else set()
    return lambda permission, view: (permission, view) in granted


class DashboardIndexView(IndexView):
    index_template = "houtai/dashboard.html"

    @expose("/")
    def index(self):
        user = getattr(g, "user", None)
        if user is None or not user.is_authenticated:
            return self.render_template("houtai/welcome.html", appbuilder=self.appbuilder)
        asked = {"from": request.args.get("from", ""), "to": request.args.get("to", "")}
        errors = {}
        try:
            start, end = dashboard.requested_period(asked["from"], asked["to"])
        except HoutaiError as err:  # a bad period: say so, show the default windows
            errors, start, end = err.errors, None, None
        figures = dashboard.visible_figures(_can(), start, end)
        shop = getattr(user, "shop", None)
        return self.render_template(self.index_template, appbuilder=self.appbuilder,
                                    panels=figures, shop=shop, asked=asked, errors=errors,
                                    max_days=dashboard.MAX_DAYS)


def login_required(func):
    """Any logged-in user (console session or JWT): what each one sees is up to the panels'
    own permissions."""

    @functools.wraps(func)
    def wrapper(self, *args, **kwargs):
        if not current_user.is_authenticated:
            verify_jwt_in_request()
        return func(self, *args, **kwargs)

    return wrapper


class DashboardApi(OpenApiErrorsMixin, BaseApi):
    """The dashboard's figures for integrators: the panels the caller may see."""

    resource_name = "dashboard"
    openapi_spec_tag = "Dashboard"
    allow_browser_login = True

    @api_expose("/panels", methods=["GET"])
    @login_required
    @safe
    @api_errors
    def panels(self):
        """The panels the caller may see with their figures, over `from` to `to` (business
        days, inclusive; both empty: each panel's own window ending today)
        ---
        get:
          parameters:
          - {in: query, name: from, schema: {type: string, format: date}}
          - {in: query, name: to, schema: {type: string, format: date}}
          responses:
            200: {description: '{"from", "to", "result": [{"key", "title", "chart", "from",
              "to", "keys", "labels", "values", ...}]} (a snapshot panel has null from/to)'}
            422: {description: 'A bad period (errors.from, errors.to)'}
        """
        start, end = dashboard.requested_period(request.args.get("from"),
                                                request.args.get("to"))
        return self.response(200, result=dashboard.visible_figures(_can(), start, end),
                             **{"from": start.isoformat() if start else None,
                                "to": end.isoformat() if end else None})
