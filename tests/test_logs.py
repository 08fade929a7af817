"""Structured logs: every request has an id (the caller's or a new one), answered in a header and
stamped on its records; one access record per request; JSON lines in production."""
import json
import logging

from app.logs import JsonFormatter, RequestIdFilter, configure


def _access_records(caplog):
    return [r for r in caplog.records if r.name == "houtai.access"]


def test_a_request_gets_an_id_and_one_access_record(app, caplog):
    caplog.set_level(logging.INFO, logger="houtai.access")
    with app.app_context():
        answer = app.test_client().get("/health")
    request_id = answer.headers["X-Request-ID"]
    assert len(request_id) == 32
    [record] = _access_records(caplog)
    assert (record.method, record.path, record.status) == ("GET", "/health", 200)
    assert record.request_id == request_id
    assert record.duration_ms >= 0 and record.user is None


def test_the_callers_request_id_is_kept_and_a_strange_one_replaced(app, caplog):
    caplog.set_level(logging.INFO, logger="houtai.access")
    with app.app_context():
        client = app.test_client()
        kept = client.get("/health", headers={"X-Request-ID": "lb-7f3a9c21"})
        replaced = client.get("/health", headers={"X-Request-ID": "x\u00e9 <script>"})
    assert kept.headers["X-Request-ID"] == "lb-7f3a9c21"
    assert replaced.headers["X-Request-ID"] != "x\u00e9 <script>"
    assert [r.request_id for r in _access_records(caplog)] == [
        "lb-7f3a9c21", replaced.headers["X-Request-ID"]]


def test_the_access_record_names_the_logged_in_user(app, api, users, caplog):
    caplog.set_level(logging.INFO, logger="houtai.access")
    api("Admin").get("/api/v1/shop/")
    names = {r.user for r in _access_records(caplog) if r.path == "/api/v1/shop/"}
    assert names == {users["Admin"].username}


def test_json_lines_carry_the_fields_and_the_request_id(app):
    formatter, stamp = JsonFormatter(), RequestIdFilter()
    with app.test_request_context("/"):
        from flask import g

        g.request_id = "req-12345678"
        record = logging.LogRecord("houtai.test", logging.WARNING, __file__, 1,
                                   "stock of %s is low", ("SKU-1",), None)
        record.sku_id = 7
        stamp.filter(record)
        line = json.loads(formatter.format(record))
    assert line["message"] == "stock of SKU-1 is low"
    assert (line["level"], line["logger"]) == ("WARNING", "houtai.test")
    assert (line["request_id"], line["sku_id"]) == ("req-12345678", 7)
    assert line["time"].endswith("+00:00")


def test_an_exception_is_one_json_line(capsys):
    root = logging.getLogger()
    before = list(root.handlers), root.level
    try:
        configure("json", "INFO")
        try:
            raise ValueError("bad thing")
        except ValueError:
            logging.getLogger("houtai.test").exception("it failed")
    finally:
        for handler in [h for h in root.handlers if getattr(h, "houtai", False)]:
            root.removeHandler(handler)
        root.handlers[:] = before[0]
        root.setLevel(before[1])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    entry = json.loads(lines[-1])
    assert entry["message"] == "it failed"
    assert "ValueError: bad thing" in entry["exception"]
