"""Structured logs: one JSON object per line, with the request's id on every line.

`LOG_FORMAT=json` (the default in production) writes each record as a JSON object on stderr
(what gunicorn and `rq worker` pass on to journald, Docker or a log shipper); `text` keeps the
usual one-line form for a developer's terminal. Every request gets an id: the caller's
`X-Request-ID` when it is a sensible token, a new one otherwise. It is answered in the same
header and stamped on every record logged while the request is handled, and one `request`
record per request gives method, path, status, duration and user.
"""
import json
import logging
import re
import sys
import time
import uuid
from datetime import datetime, timezone

from flask import Flask, g, has_request_context, request

REQUEST_ID_HEADER = "X-Request-ID"
_GOOD_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
# attributes every LogRecord has: anything else on a record is a structured field
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
access_log = logging.getLogger("houtai.access")


class RequestIdFilter(logging.Filter):
    """Stamps the current request's id on records logged while a request is handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = getattr(g, "request_id", None) if has_request_context() else None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": datetime.fromtimestamp(record.created, timezone.utc)
                 .isoformat(timespec="milliseconds"),
                 "level": record.levelname, "logger": record.name,
                 "message": record.getMessage()}
        for key, value in vars(record).items():
            if key not in _STANDARD and value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(log_format: str, level: str) -> None:
    """One handler on the root logger, replaced (not added to) when called again."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "houtai", False)]:
        root.removeHandler(old)
    handler.houtai = True
    root.addHandler(handler)
    root.setLevel(level)


def request_id_of(value: str | None) -> str:
    """The caller's id when it is a plain token of 8–64 characters, else a new one."""
    if value and _GOOD_REQUEST_ID.match(value):
        return value
    return uuid.uuid4().hex


def install(app: Flask) -> None:
    """Request ids and one access record per request; the handler when LOG_FORMAT asks."""
    if app.config.get("LOG_FORMAT") in ("json", "text") and not app.testing:
        configure(app.config["LOG_FORMAT"], app.config.get("LOG_LEVEL", "INFO"))

    @app.before_request
    def start_request():
        g.request_id = request_id_of(request.headers.get(REQUEST_ID_HEADER))
        g.request_started = time.perf_counter()

    @app.after_request
    def log_request(response):
        request_id = getattr(g, "request_id", None)
        if request_id:
            response.headers[REQUEST_ID_HEADER] = request_id
        started = getattr(g, "request_started", None)
        if started is not None and app.config.get("ACCESS_LOG", True):
            user = getattr(g, "user", None)
            access_log.info("request", extra={
                "request_id": request_id, "method": request.method, "path": request.path, "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                "user": getattr(user, "username", None) if getattr(
                    user, "is_authenticated", False) else None,
                "remote_addr": request.remote_addr})
        return response
