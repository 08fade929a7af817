"""Shops through the REST API and the console, by staff and by merchants."""
from models.shop import Shop


def test_staff_creates_a_shop_and_reads_it_back(api):
    ops = api("Operations")
    created = ops.post("/api/v1/shop/", json={"code": "C", "name": "Shop C", "status": "open",
                                              "commission_rate": "0.0800"})
    assert created.status_code == 201, created.json
    shop_id = created.json["id"]
    shown = ops.get(f"/api/v1/shop/{shop_id}")
    assert shown.status_code == 200
    assert shown.json["result"]["code"] == "C"
    assert shown.json["result"]["status"] == "open"


def test_merchant_lists_only_its_own_shop(api, shops):
    listed = api("merchant_a").get("/api/v1/shop/")
    assert listed.status_code == 200
    assert [row["code"] for row in listed.json["result"]] == ["A"]


def test_merchant_cannot_create_or_change_shops(api, shops):
    merchant = api("merchant_a")
    assert merchant.post("/api/v1/shop/", json={"code": "Z", "name": "Z"}).status_code == 403
    assert merchant.put(f"/api/v1/shop/{shops['A'].id}", json={"name": "mine"}).status_code == 403
    assert Shop.query.filter_by(code="Z").count() == 0


def test_duplicate_code_names_the_field(api, shops):
    answer = api("Operations").post("/api/v1/shop/", json={"code": "A", "name": "again"})
    assert answer.status_code == 422
    assert answer.json["errors"] == {"code": ["Already exists."]}


def test_admin_sees_the_dashboard_and_shop_list(browser, shops):
    admin = browser("Admin")
    home = admin.get("/")
    assert home.status_code == 200
    assert "chart-shops" in home.get_data(as_text=True)
    page = admin.get("/shopview/list/").get_data(as_text=True)
    assert "Shop A" in page and "Shop B" in page


def test_shop_with_users_cannot_be_deleted_on_either_database(api, users, shops):
    answer = api("Operations").delete(f"/api/v1/shop/{shops['A'].id}")
    assert answer.status_code == 409
    assert set(answer.json) == {"message", "errors"}
    assert Shop.query.filter_by(code="A").count() == 1


def test_info_describes_fields_without_catalogue_noise(api):
    info = api("Operations").get("/api/v1/shop/_info").json
    assert all(field["description"] == "" for field in info["add_columns"])


def test_unknown_user_login_is_401(app):
    with app.app_context():
        answer = app.test_client().post("/api/v1/security/login", json={
            "username": "nobody", "password": "x", "provider": "db"})
    assert answer.status_code == 401


def test_screens_show_times_in_the_business_zone(browser, shops):
    from datetime import datetime, timezone

    from app.extensions import db

    shops["A"].created_at = datetime(2026, 11, 25, 17, 30, 5, tzinfo=timezone.utc)
    db.session.commit()
    page = browser("Admin").get("/shopview/list/").get_data(as_text=True)
    assert "2026-11-26 01:30:05" in page
