"""Fixtures: one application per test session on DATABASE_URL (PostgreSQL in CI) or a SQLite
file, migrated and with roles synced exactly as `houtai init` does; every test starts from
empty business tables with shops A and B and their users, built through the services."""
import os
import re
import uuid

import pytest
from sqlalchemy import text

REQUIRE_SERVICES = os.environ.get("HOUTAI_REQUIRE_SERVICES") == "1"
PASSWORD = "Secret-pass-123"
# Tables kept between tests: roles and permissions synced once per session.
KEPT_TABLES = {"alembic_version", "ab_role", "ab_permission", "ab_view_menu",
               "ab_permission_view", "ab_permission_view_role"}


def requires_postgres(app):
    """Skip (or fail, with HOUTAI_REQUIRE_SERVICES=1) unless the database is PostgreSQL."""
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        return
    if REQUIRE_SERVICES:
        pytest.fail("this test needs PostgreSQL (DATABASE_URL)")
    pytest.skip("needs PostgreSQL: set DATABASE_URL")


def requires_redis(app):
    """Skip (or fail, with HOUTAI_REQUIRE_SERVICES=1) unless REDIS_URL reaches a Redis."""
    url = app.config.get("REDIS_URL")
    if url:
        from redis import Redis

        try:
            Redis.from_url(url).ping()
            return
        except Exception as exc:  # noqa: BLE001
            if REQUIRE_SERVICES:
                pytest.fail(f"Redis at REDIS_URL does not answer: {exc}")
    if REQUIRE_SERVICES:
        pytest.fail("this test needs Redis (REDIS_URL)")
    pytest.skip("needs Redis: set REDIS_URL")


def make_test_config(tmp_path, **overrides) -> dict:
    """Settings for a test application (fast password hashing, a private RQ queue)."""
    config = {
        "TESTING": True,
        "PROPAGATE_EXCEPTIONS": True,
        "FAB_PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
        "HOUTAI_QUEUE": f"houtai-test-{uuid.uuid4().hex[:8]}",
        "LOGIN_RATE_LIMIT": "1000 per minute",
        "RATELIMIT_KEY_PREFIX": f"houtai-test-{uuid.uuid4().hex[:8]}",
        "SECRET_KEY": "test-secret-key-that-is-long-enough-for-jwt-0123456789",
        # the sandbox gateway notifies through the app's own WSGI stack (no server runs)
        "SANDBOX_NOTIFY_TRANSPORT": "wsgi",
    }
    if not os.environ.get("DATABASE_URL"):
        config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'houtai-test.db'}"
    else:
        # room for the concurrency tests' 32 clients at once
        config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_pre_ping": True, "pool_size": 10,
                                               "max_overflow": 40}
    config.update(overrides)
    return config


@pytest.fixture(scope="session")
def app(tmp_path_factory):
    from flask_migrate import upgrade

    from app import create_app
    from app.extensions import db
    from app.security import sync_roles

    instance = tmp_path_factory.mktemp("instance")
    application = create_app(make_test_config(instance), instance_path=str(instance))
    with application.app_context():
        _drop_everything(db)
        upgrade()
        sync_roles(application.appbuilder)
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def _drop_everything(db):
    """Start the session's database empty (a previous run may have left tables)."""
    if db.engine.dialect.name == "postgresql":
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    else:
        db.drop_all()
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))


def _empty_business_tables(db):
    tables = [t for t in db.metadata.sorted_tables if t.name not in KEPT_TABLES]
    if db.engine.dialect.name == "postgresql":
        names = ", ".join(f'"{t.name}"' for t in tables)
        with db.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    else:
        with db.engine.begin() as conn:
            for table in reversed(tables):
                conn.execute(table.delete())


@pytest.fixture(autouse=True)
def _clean_state(app):
    """Each test: an application context, empty business tables and job queue, the real
    clock (ids restart with the tables, so a job left by one test would act on the next),
    and no risk rules or promotions kept from the tables just emptied."""
    from app.extensions import db
    from services import clock, events, logistics, marketing, risk, storefront

    with app.app_context():
        yield
        db.session.remove()
        clock.set_now(None)
        _empty_business_tables(db)
        risk.forget_rules()
        marketing.forget_promotions()
        logistics.forget_templates()
        storefront.forget_slots()
        events.Listeners.forget_all()
        _empty_job_queue()


def _empty_job_queue():
    from redis.exceptions import RedisError

    from app.queue import rq_queue

    try:
        queue = rq_queue()
        if queue is not None:
            queue.empty()
            for registry in (queue.scheduled_job_registry, queue.failed_job_registry):
                for job_id in registry.get_job_ids():
                    registry.remove(job_id, delete_job=True)
    except RedisError:  # no Redis reachable: nothing was queued either
        pass


@pytest.fixture
def shops(app):
    """Shops A and B (open), created through the same code as the demo."""
    from decimal import Decimal

    from models.shop import ShopStatus
    from services.demo import ensure_shop

    return {
        "A": ensure_shop("A", "Shop A", ShopStatus.open, Decimal("0.0500")),
        "B": ensure_shop("B", "Shop B", ShopStatus.open, Decimal("0.0300")),
    }


@pytest.fixture
def users(app, shops):
    """One user per role, plus merchant_a/merchant_b; all with PASSWORD."""
    from app.security import ROLES
    from services.security import upsert_user

    made = {}
    for role in ROLES:
        if role != "Merchant":
            made[role] = upsert_user(role.lower(), PASSWORD, role)[0]
    made["merchant_a"] = upsert_user("merchant_a", PASSWORD, "Merchant", "A")[0]
    made["merchant_b"] = upsert_user("merchant_b", PASSWORD, "Merchant", "B")[0]
    return made


class _FreshContextClient:
    """Each request in its own application context, as in a real server: the test's own
    context would otherwise share `g` (and the JWT user cached in it) across requests."""

    def __init__(self, app):
        self.app = app
        self.client = app.test_client()

    def request(self, method, url, **kw):
        with self.app.app_context():
            return self.client.open(url, method=method, **kw)


class ApiClient(_FreshContextClient):
    """A test client that logs in through the JWT API and speaks JSON."""

    def __init__(self, app, username, password=PASSWORD):
        super().__init__(app)
        response = self.request("POST", "/api/v1/security/login", json={
            "username": username, "password": password, "provider": "db", "refresh": True})
        assert response.status_code == 200, response.get_data(as_text=True)
        self.token = response.json["access_token"]
        self.refresh_token = response.json["refresh_token"]

    def _headers(self, extra=None):
        headers = {"Authorization": f"Bearer {self.token}"}
        headers.update(extra or {})
        return headers

    def get(self, url, **kw):
        return self.request("GET", url, headers=self._headers(kw.pop("headers", None)), **kw)

    def post(self, url, **kw):
        return self.request("POST", url, headers=self._headers(kw.pop("headers", None)), **kw)

    def put(self, url, **kw):
        return self.request("PUT", url, headers=self._headers(kw.pop("headers", None)), **kw)

    def delete(self, url, **kw):
        return self.request("DELETE", url, headers=self._headers(kw.pop("headers", None)), **kw)


class BrowserClient(_FreshContextClient):
    """A test client logged in through the console's login form, with its CSRF token."""

    def __init__(self, app, username, password=PASSWORD):
        super().__init__(app)
        token = self.csrf_token("/login/")
        response = self.request("POST", "/login/", data={
            "username": username, "password": password, "csrf_token": token})
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        # The token is bound to the session, which outlives the login.
        self.token_after_login = token

    def csrf_token(self, url="/login/"):
        page = self.request("GET", url).get_data(as_text=True)
        match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or \
            re.search(r'value="([^"]+)"[^>]*name="csrf_token"', page) or \
            re.search(r'csrf_token["\']?\s*[:=]\s*["\']([^"\']+)', page)
        assert match, f"no CSRF token on {url}"
        return match.group(1)

    def get(self, url, **kw):
        return self.request("GET", url, **kw)

    def post_form(self, url, data, token_from=None, **kw):
        data = dict(data)
        data.setdefault("csrf_token", self.csrf_token(token_from) if token_from
                        else self.token_after_login)
        return self.request("POST", url, data=data, **kw)


@pytest.fixture
def api(app, users):
    """api("merchant_a") → an ApiClient logged in as that user."""
    cache = {}

    def login(username):
        key = username if username in users else username
        name = users[key].username if key in users else username
        if name not in cache:
            cache[name] = ApiClient(app, name)
        return cache[name]

    return login


@pytest.fixture
def browser(app, users):
    """browser("Admin") → a BrowserClient logged in to the console as that user."""

    def login(username):
        name = users[username].username if username in users else username
        return BrowserClient(app, name)

    return login
