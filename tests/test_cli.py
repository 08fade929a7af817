"""The operators' commands: `flask --app run houtai init|create-user|demo|tick`."""
import os
import subprocess
import sys
from pathlib import Path

from app.extensions import db
from models.security import UserAccount
from models.shop import Shop
from tests.conftest import PASSWORD

ROOT = Path(__file__).resolve().parent.parent


def houtai(app, *args):
    from app.cli import houtai as group

    return app.test_cli_runner().invoke(group, list(args))


def test_create_user_is_idempotent_and_updates_role_and_password(app, shops):
    first = houtai(app, "create-user", "amy", "--password", PASSWORD, "--role", "Finance")
    again = houtai(app, "create-user", "amy", "--password", "Other-pass-1", "--role", "Risk")
    assert first.exit_code == 0 and "created user amy" in first.output
    assert again.exit_code == 0 and "updated user amy" in again.output
    db.session.expire_all()
    amy = UserAccount.query.filter_by(username="amy").one()
    assert [r.name for r in amy.roles] == ["Risk"]
    assert app.appbuilder.sm.auth_user_db("amy", "Other-pass-1") is not None


def test_create_merchant_user_links_the_shop(app, shops):
    result = houtai(app, "create-user", "mo", "--password", PASSWORD, "--role", "Merchant",
                    "--shop", "B")
    assert result.exit_code == 0
    assert UserAccount.query.filter_by(username="mo").one().shop_id == shops["B"].id


def test_create_user_refuses_real_errors_with_a_nonzero_exit(app, shops):
    cases = [("--role", "Nobody"), ("--role", "Merchant"), ("--role", "Merchant", "--shop", "ZZ"),
             ("--role", "Finance", "--shop", "A")]
    for extra in cases:
        result = houtai(app, "create-user", "bad", "--password", PASSWORD, *extra)
        assert result.exit_code == 2, extra
        assert "error:" in result.output
    assert UserAccount.query.filter_by(username="bad").count() == 0


def test_demo_is_idempotent_and_resets_passwords(app, monkeypatch):
    monkeypatch.setitem(app.config, "DEMO_PASSWORD", "Demo-pass-1")
    assert houtai(app, "demo").exit_code == 0
    UserAccount.query.filter_by(username="merchant_a").one().active = False
    db.session.commit()
    second = houtai(app, "demo")
    assert second.exit_code == 0 and "Demo-pass-1" in second.output
    assert Shop.query.count() == 3
    assert UserAccount.query.count() == 8
    assert app.appbuilder.sm.auth_user_db("merchant_a", "Demo-pass-1") is not None


def test_tick_runs_the_scheduled_work_at_a_given_time(app):
    result = houtai(app, "tick", "--now", "2026-11-25T10:00:00+08:00")
    assert result.exit_code == 0
    assert "events.redeliver: 0" in result.output
    assert houtai(app, "tick", "--now", "2026-11-25T10:00:00").exit_code != 0


def test_fresh_instance_init_demo_and_serve_through_the_real_commands(tmp_path):
    """What `make run` does, on an empty SQLite file: init twice, demo twice, then log in."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.db'}", DEMO_PASSWORD="Fresh-pass-1",
               PYTHONPATH=str(ROOT), SECRET_KEY="x" * 40)
    flask = [sys.executable, "-m", "flask", "--app", "run", "houtai"]

    def run(*args):
        done = subprocess.run(flask + list(args), cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    assert "role Merchant" in run("init")
    run("init")
    run("demo")
    output = run("demo")
    assert "Fresh-pass-1" in output and "merchant_a" in output
    check = subprocess.run([sys.executable, "-c", (
        "from app import create_app; a = create_app(); c = a.test_client();"
        "r = c.post('/api/v1/security/login', json={'username': 'merchant_a',"
        " 'password': 'Fresh-pass-1', 'provider': 'db'}); print(r.status_code)")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert check.stdout.strip().endswith("200"), check.stderr[-2000:]


def test_demo_products_cover_every_status_with_sku_grids(app, monkeypatch):
    from models.product import Brand, Category, Sku, Spu
    from services import product

    monkeypatch.setitem(app.config, "DEMO_PASSWORD", "Demo-pass-1")
    assert houtai(app, "demo").exit_code == 0
    assert houtai(app, "demo").exit_code == 0  # idempotent: nothing doubles
    assert Brand.query.count() == 10
    assert max(c.path.count("/") - 1 for c in Category.query) == 3
    for code in ("A", "B"):
        shop = Shop.query.filter_by(code=code).one()
        spus = Spu.query.filter_by(shop_id=shop.id).all()
        assert len(spus) == 20
        assert {s.status.value for s in spus} == {"draft", "pending_review", "on_sale",
                                                  "off_sale", "rejected"}
        assert all(len(s.skus) == 4 for s in spus)
    assert Sku.query.count() == 160
    from models.inventory import Stock, Warehouse

    # the two shops' warehouses and the bonded (cross-border) one of the tracking demo
    assert Warehouse.query.count() == 3
    assert {s.sku_id for s in Stock.query} == {s.id for s in Sku.query}
    from models.member import Member
    from models.order import Trade

    assert Member.query.count() == 3
    assert {t.status.value for t in Trade.query} == {
        "pending_payment", "paid", "shipped", "delivered", "completed", "cancelled"}
    from models.order import Order, ServiceCode, ShippingNotice

    assert {o.order_type for o in Order.query} == {"normal", "pre_sale", "virtual"}
    assert {(n.route, n.status.value) for n in ShippingNotice.query} >= {
        ("warehouse", "assigned"), ("warehouse", "picking"), ("warehouse", "shipped"),
        ("dropship", "pending")}
    assert ServiceCode.query.count() == 1
    leaf = next(c for c in Category.query if product.is_leaf(c))
    assert {a.kind.value for a in product.attributes_of(leaf)} == {"key", "non_key", "sales"}
