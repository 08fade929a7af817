"""Logins, tokens, roles declared in code, CSRF, and secrets kept out of every answer."""
from datetime import timedelta

import pytest
from flask_jwt_extended import create_access_token

from app.extensions import db
from app.security import ROLES, desired_permissions, sync_roles
from models.security import UserAccount
from models.shop import Shop
from tests.conftest import PASSWORD


def login(app, username, password=PASSWORD, **extra):
    with app.app_context():
        return app.test_client().post("/api/v1/security/login", json={
            "username": username, "password": password, **extra})


def test_login_answers_tokens_and_refresh_gives_a_new_one(app, users):
    answer = login(app, "merchant_a", provider="db", refresh=True)
    assert answer.status_code == 200
    with app.app_context():
        refreshed = app.test_client().post("/api/v1/security/refresh", headers={
            "Authorization": f"Bearer {answer.json['refresh_token']}"})
    assert refreshed.status_code == 200
    assert refreshed.json["access_token"]


@pytest.mark.parametrize("body, status, field", [
    ({"username": "merchant_a", "password": PASSWORD}, 422, "provider"),
    ({"username": "merchant_a", "password": PASSWORD, "provider": "ldap"}, 422, "provider"),
    ({"username": "merchant_a", "provider": "db"}, 422, "password"),
    ({"username": 5, "password": PASSWORD, "provider": "db"}, 422, "username"),
])
def test_bad_login_bodies_name_the_field(app, users, body, status, field):
    with app.app_context():
        answer = app.test_client().post("/api/v1/security/login", json=body)
    assert answer.status_code == status
    assert field in answer.json["errors"]


def test_wrong_password_is_401_in_the_error_shape(app, users):
    answer = login(app, "merchant_a", password="wrong", provider="db")
    assert answer.status_code == 401
    assert set(answer.json) == {"message", "errors"}


@pytest.mark.parametrize("header", [None, "Bearer not-a-token", "expired"])
def test_missing_bad_or_expired_token_is_401_in_the_error_shape(app, users, header):
    headers = {}
    if header == "expired":
        with app.app_context():
            token = create_access_token(identity=str(users["Admin"].id),
                                        expires_delta=timedelta(seconds=-1))
        headers["Authorization"] = f"Bearer {token}"
    elif header:
        headers["Authorization"] = header
    with app.app_context():
        answer = app.test_client().get("/api/v1/shop/", headers=headers)
    assert answer.status_code == 401
    assert set(answer.json) == {"message", "errors"}


def test_roles_are_synced_exactly_and_idempotently(app):
    first = sync_roles(app.appbuilder)
    second = sync_roles(app.appbuilder)
    assert first == second
    sm = app.appbuilder.sm
    for name in ROLES:
        role = sm.find_role(name)
        held = {(pv.permission.name, pv.view_menu.name) for pv in role.permissions}
        if name != "Admin":
            assert held == desired_permissions(app.appbuilder, name), name


def test_a_permission_granted_by_hand_is_taken_back_by_the_sync(app):
    sm = app.appbuilder.sm
    role = sm.find_role("Marketing")
    extra = sm.add_permission_view_menu("can_delete", "ShopApi")
    sm.add_permission_role(role, extra)
    db.session.commit()
    sync_roles(app.appbuilder)
    held = {(pv.permission.name, pv.view_menu.name) for pv in sm.find_role("Marketing").permissions}
    assert ("can_delete", "ShopApi") not in held


MENU_LINKS = {"shops": "/shopview/list/", "audit": "/auditlogview/list/",
              "events": "/eventdeliveryview/list/", "users": "/users/list/"}


@pytest.mark.parametrize("role, visible", [
    ("Admin", {"shops", "audit", "events", "users"}),
    ("Operations", {"shops", "audit", "events"}),
    ("merchant_a", {"shops", "audit"}),
    ("ProductOps", {"shops"}),
    ("Warehouse", set()),
])
def test_each_role_sees_only_its_centers_menus(browser, role, visible):
    page = browser(role).get("/").get_data(as_text=True)
    shown = {name for name, link in MENU_LINKS.items() if link in page}
    assert shown == visible


@pytest.mark.parametrize("role, url, status", [
    ("ProductOps", "/api/v1/event_delivery/", 403),
    ("Operations", "/api/v1/event_delivery/", 200),
    ("merchant_a", "/api/v1/outbox_event/", 403),
    ("Storefront", "/api/v1/shop/", 200),
    ("Storefront", "/api/v1/audit_log/", 403),
    ("Finance", "/api/v1/shop/", 200),
])
def test_each_role_reaches_only_its_centers_apis(api, role, url, status):
    assert api(role).get(url).status_code == status


def test_storefront_has_no_screens(app, users):
    role = app.appbuilder.sm.find_role("Storefront")
    assert not any(pv.permission.name == "menu_access" for pv in role.permissions)
    assert not any(pv.permission.name.startswith("can_list") for pv in role.permissions)


def test_form_post_without_csrf_token_changes_nothing(browser, shops):
    admin = browser("Admin")
    answer = admin.request("POST", f"/shopview/edit/{shops['A'].id}", data={
        "code": "A", "name": "no token", "status": "open", "commission_rate": "0.05"})
    assert answer.status_code == 400
    db.session.expire_all()
    assert db.session.get(Shop, shops["A"].id).name == "Shop A"


def test_delete_on_a_get_changes_nothing(browser, shops):
    browser("Admin").get(f"/shopview/delete/{shops['B'].id}")
    db.session.expire_all()
    assert db.session.get(Shop, shops["B"].id) is not None


def test_password_hashes_never_appear_in_screens_or_apis(browser, api, users):
    pages = [browser("Admin").get(url).get_data(as_text=True) for url in (
        "/users/list/", f"/users/show/{users['merchant_a'].id}",
        f"/users/edit/{users['merchant_a'].id}", "/auditlogview/list/")]
    pages.append(api("Admin").get("/api/v1/audit_log/?q=(page_size:100)").get_data(as_text=True))
    hashes = [u.password for u in users.values()]
    for page in pages:
        assert not any(h in page for h in hashes)
        assert "pbkdf2:" not in page and "scrypt:" not in page


def test_merchant_user_sees_its_shop_on_the_dashboard(browser, shops):
    page = browser("merchant_a").get("/").get_data(as_text=True)
    assert "Shop A" in page and "Shop B" not in page


@pytest.mark.parametrize("role", ["merchant_a", "Finance"])
def test_every_console_user_reaches_its_own_profile(browser, shops, role):
    page = browser(role).get("/users/userinfo/")
    assert page.status_code == 200
    if role == "merchant_a":
        assert "Shop A" in page.get_data(as_text=True)


def test_user_screen_refuses_a_merchant_without_a_shop(browser, app, shops):
    from models.security import UserAccount

    merchant_role = app.appbuilder.sm.find_role("Merchant")
    admin = browser("Admin")
    answer = admin.post_form("/users/add", {
        "first_name": "No", "last_name": "Shop", "username": "noshop", "active": "y",
        "email": "noshop@example.com", "roles": str(merchant_role.id),
        "password": "Pass-word-123", "conf_password": "Pass-word-123"},
        token_from="/users/add")
    assert answer.status_code in (200, 302)
    assert UserAccount.query.filter_by(username="noshop").count() == 0
    answer = admin.post_form("/users/add", {
        "first_name": "With", "last_name": "Shop", "username": "withshop", "active": "y",
        "email": "withshop@example.com", "roles": str(merchant_role.id),
        "shop": str(shops["A"].id), "password": "Pass-word-123",
        "conf_password": "Pass-word-123"}, token_from="/users/add")
    assert UserAccount.query.filter_by(username="withshop").one().shop_id == shops["A"].id


def test_merchant_whose_shop_was_removed_sees_nothing(app, api, users, shops):
    """Fail closed: a Merchant without a shop is not staff."""
    merchant = api("merchant_a")
    users["merchant_a"].shop_id = None
    db.session.commit()
    assert merchant.get("/api/v1/shop/").json["count"] == 0
    assert merchant.get(f"/api/v1/shop/{shops['B'].id}").status_code == 404


def test_user_screen_refuses_to_clear_a_merchants_shop(app, browser, users, shops):
    from models.security import UserAccount

    merchant = users["merchant_a"]
    role = app.appbuilder.sm.find_role("Merchant")
    browser("Admin").post_form(f"/users/edit/{merchant.id}", {
        "first_name": "m", "last_name": "a", "username": "merchant_a", "active": "y",
        "email": merchant.email, "roles": str(role.id), "shop": ""},
        token_from=f"/users/edit/{merchant.id}")
    db.session.expire_all()
    assert db.session.get(UserAccount, merchant.id).shop_id == shops["A"].id


def test_role_changes_are_audited(app, browser, users):
    from models.audit import AuditLog

    user = users["Finance"]
    admin_role = app.appbuilder.sm.find_role("Admin")
    browser("Admin").post_form(f"/users/edit/{user.id}", {
        "first_name": "f", "last_name": "x", "username": user.username, "active": "y",
        "email": user.email, "roles": str(admin_role.id)}, token_from=f"/users/edit/{user.id}")
    entry = AuditLog.query.filter_by(model="UserAccount", record_pk=str(user.id)) \
        .order_by(AuditLog.id.desc()).first()
    assert entry.actor == "admin"
    assert entry.changes["roles"] == [["Finance"], ["Admin"]]


def test_screens_offer_no_file_download_past_the_row_filters(app):
    """FAB's /download/<name> serves any file of UPLOAD_FOLDER: none of our screens has it."""
    from views.base import HoutaiModelView

    ours = {type(v).__name__ for v in app.appbuilder.baseviews if isinstance(v, HoutaiModelView)}
    routes = {rule.endpoint.split(".")[0] for rule in app.url_map.iter_rules()
              if rule.endpoint.endswith(".download")}
    assert ours and not ours & routes


def test_permission_answers_are_kept_and_forgotten_when_roles_change(app, api, users):
    """A process keeps permission answers (PERMISSION_CACHE_SECONDS) instead of asking the
    database on every request; revoking a permission here takes effect on the next request."""
    from sqlalchemy import event as sa_event

    merchant = api("merchant_a")
    assert merchant.get("/api/v1/order/").status_code == 200
    asked = []

    def count_permission_queries(conn, cursor, statement, *args):
        if "ab_permission_view_role" in statement:
            asked.append(statement)

    sa_event.listen(db.engine, "before_cursor_execute", count_permission_queries)
    try:
        assert merchant.get("/api/v1/order/").status_code == 200
        assert asked == []  # answered from the process's cache
        sm = app.appbuilder.sm
        sm.del_permission_role(sm.find_role("Merchant"),
                               sm.find_permission_view_menu("can_get", "OrderApi"))
        db.session.commit()
        assert merchant.get("/api/v1/order/").status_code == 403
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", count_permission_queries)
        sync_roles(app.appbuilder)
    assert merchant.get("/api/v1/order/").status_code == 200


def test_rest_callers_are_kept_and_forgotten_when_they_change(app, api, users):
    """The JWT user is read once per PERMISSION_CACHE_SECONDS, not on every request; a user
    deactivated or given other roles here is seen so on the next request."""
    from sqlalchemy import event as sa_event

    merchant = api("merchant_a")
    assert merchant.get("/api/v1/order/").status_code == 200
    asked = []

    def count_user_queries(conn, cursor, statement, *args):
        if statement.startswith("SELECT") and "FROM ab_user" in statement:
            asked.append(statement)

    sa_event.listen(db.engine, "before_cursor_execute", count_user_queries)
    try:
        assert merchant.get("/api/v1/order/").status_code == 200
        assert asked == []  # the user as this process read it a moment ago
        user = db.session.get(UserAccount, users["merchant_a"].id)
        user.roles = [app.appbuilder.sm.find_role("CustomerService")]
        db.session.commit()
        answer = merchant.get("/api/v1/order/")
        assert answer.status_code == 200 and len(asked) == 1  # read again, with its new role
        assert merchant.post("/api/v1/order/1/remark", json={"remark": "x"}).status_code == 403
        user = db.session.get(UserAccount, users["merchant_a"].id)
        user.active = False
        db.session.commit()
        assert merchant.get("/api/v1/order/").status_code == 401
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", count_user_queries)
