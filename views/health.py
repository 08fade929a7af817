"""`GET /health`: reachable without login, for load balancers and monitors."""
from flask import Blueprint, jsonify
from sqlalchemy import text

from app.extensions import db

health = Blueprint("health", __name__)


@health.route("/health")
def health_check():
    """200 when the database (and Redis, when configured) answers; 503 otherwise."""
    from app.queue import redis_connection

    checks = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure is what this endpoint reports
        db.session.rollback()
        checks["database"] = type(exc).__name__
    connection = redis_connection()
    if connection is not None:
        try:
            connection.ping()
            checks["redis"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["redis"] = type(exc).__name__
    healthy = all(value == "ok" for value in checks.values())
    return jsonify(status="ok" if healthy else "unavailable", checks=checks), 200 if healthy else 503
