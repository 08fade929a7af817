"""One place that gives every API error the shape {"message": ..., "errors": {field: [..]}}.

Stock FAB and its extensions answer errors in several shapes (`{"message": {...}}` for
validation, `{"msg": ...}` from JWT, HTML for routing errors and 413); the after-request hook
below rewrites any /api/ error into ours, and domain errors raised anywhere map to their status.
"""
import json
import logging

from flask import current_app, jsonify, request
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


MAX_DB_INTEGER = 2**63 - 1


def _error(status: int, message: str, errors: dict | None = None):
    response = jsonify(message=message, errors=errors or {})
    response.status_code = status
    return response


def guard_api_request():
    """before_request on /api/: refuse what would otherwise fail deep inside a view
    (an oversized body, an unparsable `q`, an id no database column can hold)."""
    if not _is_api():
        return None
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit and request.content_length and request.content_length > limit:
        return _error(413, f"Request body larger than {limit} bytes")
    for value in (request.view_args or {}).values():
        text = str(value)
        if text.lstrip("-").isdigit() and abs(int(text)) > MAX_DB_INTEGER:
            return _error(404, "Not found")
    query = request.args.get("q")
    if query is not None and not _parses_as_rison_or_json(query):
        return _error(400, "Not a valid rison/json argument", {"q": ["Malformed."]})
    return None


def _parses_as_rison_or_json(value: str) -> bool:
    import prison

    try:
        prison.loads(value)
        return True
    except Exception:  # noqa: BLE001 - prison raises several types for bad input
        pass
    try:
        json.loads(value)
        return True
    except ValueError:
        return False


def register(app) -> None:
    app.before_request(guard_api_request)

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
