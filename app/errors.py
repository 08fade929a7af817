"""One place that gives every API error the shape {"message": ..., "errors": {field: [..]}}.

Stock FAB and its extensions answer errors in several shapes (`{"message": {...}}` for
validation, `{"msg": ...}` from JWT, HTML for routing errors and 413); the after-request hook
below rewrites any /api/ error into ours, and domain errors raised anywhere map to their status.
"""
import json
import logging

from flask import jsonify, request
from werkzeug.exceptions import HTTPException

from services.errors import HoutaiError

log = logging.getLogger(__name__)


def _is_api() -> bool:
    return request.path.startswith("/api/")


def _shape(status: int, body) -> dict:
    if isinstance(body, dict):
        message = body.get("message", body.get("msg"))
        errors = body.get("errors")
        if isinstance(message, dict):
            errors, message = message, "Validation failed"
        if isinstance(message, list):
            errors, message = {"_schema": message}, "Validation failed"
        return {"message": message or _phrase(status), "errors": errors or {}}
    return {"message": _phrase(status), "errors": {}}


def _phrase(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def normalise_api_error(response):
    """after_request: any /api/ error response gets the one JSON error shape."""
    if response.status_code < 400 or not _is_api() or response.direct_passthrough:
        return response
    body = None
    if response.is_json:
        try:
            body = json.loads(response.get_data())
        except ValueError:
            body = None
    shaped = _shape(response.status_code, body)
    if body == shaped:
        return response
    response.set_data(json.dumps(shaped, ensure_ascii=False))
    response.mimetype = "application/json"
    return response


def register(app) -> None:
    @app.errorhandler(HoutaiError)
    def domain_error(err):
        from app.extensions import db

        db.session.rollback()
        response = jsonify(message=err.message, errors=err.errors)
        response.status_code = err.status
        return response

    @app.errorhandler(HTTPException)
    def http_error(err):
        if not _is_api():
            return err
        response = jsonify(_shape(err.code or 500, {"message": err.description}))
        response.status_code = err.code or 500
        return response

    @app.errorhandler(Exception)
    def unexpected(err):
        if isinstance(err, HTTPException):
            return http_error(err)
        log.exception("unhandled error on %s %s", request.method, request.path)
        from app.extensions import db

        db.session.rollback()
        if _is_api():
            response = jsonify(message="Internal error", errors={})
            response.status_code = 500
            return response
        return "Internal error", 500

    app.after_request(normalise_api_error)
