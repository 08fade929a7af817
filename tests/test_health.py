"""The health check answers without login and names what it checked."""


def test_health_needs_no_login_and_checks_the_database(app):
    with app.app_context():
        answer = app.test_client().get("/health")
    assert answer.status_code == 200
    assert answer.json["checks"]["database"] == "ok"
    if app.config.get("REDIS_URL"):
        assert answer.json["checks"]["redis"] == "ok"


def test_health_reports_an_unreachable_redis(app, monkeypatch):
    monkeypatch.setitem(app.config, "REDIS_URL", "redis://127.0.0.1:1/0")
    app.extensions.pop("houtai_redis", None)
    try:
        with app.app_context():
            answer = app.test_client().get("/health")
    finally:
        app.extensions.pop("houtai_redis", None)
    assert answer.status_code == 503
    assert answer.json["checks"]["redis"] != "ok"
