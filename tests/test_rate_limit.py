"""Login rate limiting: configurable, in the error shape, shared across processes via Redis."""
import uuid

import pytest

from tests.conftest import PASSWORD, make_test_config, requires_redis


def limited_app(app, tmp_path, prefix, **overrides):
    from app import create_app

    config = make_test_config(tmp_path, LOGIN_RATE_LIMIT="3 per minute",
                              RATELIMIT_KEY_PREFIX=prefix,
                              SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"],
                              **overrides)
    return create_app(config, instance_path=str(tmp_path))


def attempt(application, password="wrong"):
    with application.app_context():
        return application.test_client().post("/api/v1/security/login", json={
            "username": "merchant_a", "password": password, "provider": "db"})


def test_login_is_limited_and_answers_429_in_the_error_shape(app, users, tmp_path):
    limited = limited_app(app, tmp_path, f"rl-{uuid.uuid4().hex}",
                          RATELIMIT_STORAGE_URI="memory://")
    assert [attempt(limited).status_code for _ in range(3)] == [401, 401, 401]
    blocked = attempt(limited, password=PASSWORD)
    assert blocked.status_code == 429
    assert set(blocked.json) == {"message", "errors"}


def test_console_login_form_is_limited_too(app, users, tmp_path):
    from tests.conftest import BrowserClient

    limited = limited_app(app, tmp_path, f"rl-{uuid.uuid4().hex}",
                          RATELIMIT_STORAGE_URI="memory://")
    browser = BrowserClient.__new__(BrowserClient)
    browser.app, browser.client = limited, limited.test_client()
    token = browser.csrf_token("/login/")
    codes = [browser.request("POST", "/login/", data={
        "username": "merchant_a", "password": "wrong", "csrf_token": token}).status_code
        for _ in range(3)]
    assert 429 not in codes
    assert browser.request("POST", "/login/", data={
        "username": "merchant_a", "password": PASSWORD, "csrf_token": token}).status_code == 429


def test_limit_holds_across_processes_through_redis(app, users, tmp_path):
    """Two application instances (two web processes) count against one limit."""
    requires_redis(app)
    prefix = f"rl-{uuid.uuid4().hex}"
    first = limited_app(app, tmp_path / "one", prefix)
    second = limited_app(app, tmp_path / "two", prefix)
    assert first.config["RATELIMIT_STORAGE_URI"] == app.config["REDIS_URL"]
    assert [attempt(first).status_code for _ in range(2)] == [401, 401]
    assert attempt(second).status_code == 401
    assert attempt(second).status_code == 429
    assert attempt(first).status_code == 429


@pytest.mark.parametrize("limit", ["3 per minute"])
def test_limit_is_configurable(app, users, tmp_path, limit):
    limited = limited_app(app, tmp_path, f"rl-{uuid.uuid4().hex}",
                          RATELIMIT_STORAGE_URI="memory://")
    assert limited.config["LOGIN_RATE_LIMIT"] == limit
