"""Merchant isolation: one walk over every registered screen and API of a shop-owned model."""
import pytest
from flask_appbuilder import ModelRestApi, ModelView
from flask_appbuilder.models.sqla.interface import SQLAInterface

from decimal import Decimal

from models.shop import Shop, ShopStatus
from services.demo import ensure_shop
from tests.conftest import PASSWORD, BrowserClient, make_test_config
from tests.isolation import Walk, shop_owned_views

PROBE_ROLE = "IsolationProbe"


def grant_everything(appbuilder, role_name):
    """A role holding every permission there is: the walk then tests isolation, not grants."""
    sm = appbuilder.sm
    role = sm.find_role(role_name) or sm.add_role(role_name)
    appbuilder.add_permissions(update_perms=True)
    held = set(role.permissions)
    for pv in appbuilder.session.query(sm.permissionview_model).all():
        if pv not in held:
            sm.add_permission_role(role, pv)
    appbuilder.session.commit()
    return role


class ProbeClient(BrowserClient):
    """A console session that also carries a JWT, so one client walks screens and APIs."""

    def __init__(self, app, username):
        super().__init__(app, username)
        answer = self.request("POST", "/api/v1/security/login", json={
            "username": username, "password": PASSWORD, "provider": "db"})
        self.token = answer.json["access_token"]

    def _headers(self, extra=None):
        return {"Authorization": f"Bearer {self.token}", **(extra or {})}

    def put(self, url, **kw):
        return self.request("PUT", url, headers=self._headers(), **kw)

    def post(self, url, **kw):
        return self.request("POST", url, headers=self._headers(), **kw)

    def delete(self, url, **kw):
        return self.request("DELETE", url, headers=self._headers(), **kw)

    def get(self, url, **kw):
        return self.request("GET", url, headers=self._headers(), **kw)


def probe_user(app, shops, role_name=PROBE_ROLE):
    from app.extensions import db
    from services.security import upsert_user

    role = grant_everything(app.appbuilder, role_name)
    user, _ = upsert_user("probe_a", PASSWORD, "Merchant", "A")
    user.roles = [role]
    db.session.commit()
    return ProbeClient(app, "probe_a")


def test_every_shop_owned_view_is_isolated(app, shops):
    views = shop_owned_views(app.appbuilder)
    assert {type(v).__name__ for _, v in views} >= {"ShopView", "ShopApi", "AuditLogView",
                                                     "AuditLogApi"}
    probe = probe_user(app, shops)
    leaks = Walk(app, probe, shops["A"], shops["B"]).run(views)
    assert leaks == []


def test_real_merchant_role_is_isolated_too(app, shops, users):
    merchant = ProbeClient(app, "merchant_a")
    assert Walk(app, merchant, shops["A"], shops["B"]).run(shop_owned_views(app.appbuilder)) == []


class LeakyShopView(ModelView):
    """Control: a screen registered without the isolation base class."""

    route_base = "/leakyshopview"
    datamodel = SQLAInterface(Shop)
    list_columns = ["code", "name"]


class LeakyShopApi(ModelRestApi):
    """Control: a REST resource registered without the isolation base class."""

    resource_name = "leaky_shop"
    datamodel = SQLAInterface(Shop)
    list_columns = ["id", "code", "name"]
    show_columns = ["id", "code", "name"]


def test_control_walk_catches_a_view_without_the_mechanism(app, shops, tmp_path):
    """The walk fails for a view that forgets isolation, so its passing above means something."""
    from app import create_app

    control = create_app(make_test_config(tmp_path, SQLALCHEMY_DATABASE_URI=app.config[
        "SQLALCHEMY_DATABASE_URI"]), instance_path=str(tmp_path))
    with control.app_context():
        control.appbuilder.add_view_no_menu(LeakyShopView)
        control.appbuilder.add_api(LeakyShopApi)
        probe = probe_user(control, shops, role_name="IsolationProbeControl")
        views = shop_owned_views(control.appbuilder, only={LeakyShopView, LeakyShopApi})
        assert len(views) == 2
        leaks = []
        for view in views:  # one walk each: a leaky delete removes shop B for good
            shop_b = ensure_shop("B2", "Shop B2", ShopStatus.open, Decimal("0.0300"))
            leaks += Walk(control, probe, shops["A"], shop_b).run([view])
    assert any(leak.startswith("LeakyShopView") for leak in leaks), leaks
    assert any(leak.startswith("LeakyShopApi") for leak in leaks), leaks


@pytest.mark.parametrize("path", ["/api/v1/shop/{b}", "/shopview/show/{b}"])
def test_other_shops_id_in_the_path_is_not_found(api, browser, shops, path):
    url = path.format(b=shops["B"].id)
    if url.startswith("/api/"):
        assert api("merchant_a").get(url).status_code == 404
    else:
        assert browser("merchant_a").get(url).status_code == 404
