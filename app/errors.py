"""One place that gives every API error the shape {"message": ..., "errors": {field: [..]}}.

Stock FAB and its extensions answer errors in several shapes (`{"message": {...}}` for
validation, `{"msg": ...}` from JWT, HTML for routing errors and 413); the after-request hook
below rewrites any /api/ error into ours, and domain errors raised anywhere map to their status.
"""
import functools
import json
import logging

from flask import current_app, jsonify, request
from sqlalchemy.exc import DataError, StatementError
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
        # extra keys (e.g. checkout's "short") are part of the contract: keep them
        extra = {k: v for k, v in body.items() if k not in ("message", "msg", "errors")}
        return {**extra, "message": message or _phrase(status), "errors": errors or {}}
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


PAGING_PREFIXES = ("page_", "psize_")
MAX_PAGING_VALUE = 1_000_000


def _out_of_range_id(value) -> bool:
    text = str(value)
    return text.isascii() and text.lstrip("-").isdigit() and abs(int(text)) > MAX_DB_INTEGER


def _refusal(status: int, message: str, errors: dict | None = None):
    if _is_api():
        return _error(status, message, errors)
    return message, status


def guard_request():
    """before_request: refuse what would otherwise fail deep inside a view (an oversized body,
    NUL characters, an unparsable `q`, paging arguments or ids no database can take)."""
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit and request.content_length and request.content_length > limit:
        return _refusal(413, f"Request body larger than {limit} bytes")
    if any(_out_of_range_id(value) for value in (request.view_args or {}).values()):
        return _refusal(404, "Not found")
    for key, value in request.args.items(multi=True):
        if key.startswith("_flt_") and _out_of_range_id(value):
            return _refusal(400, "Invalid filter value", {key: ["Out of range."]})
        if "\x00" in value or "\x00" in key:
            return _refusal(400, "NUL characters are not accepted", {key: ["NUL character."]})
        if key.startswith(PAGING_PREFIXES) and not (value.isascii() and value.isdigit()
                                                     and int(value) < MAX_PAGING_VALUE):
            return _refusal(400, "Invalid paging argument", {key: ["A small whole number."]})
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data") and \
            any("\x00" in value for value in request.form.values()):
        return _refusal(400, "NUL characters are not accepted")
    bad_order = _bad_order_argument()
    if bad_order:
        return _refusal(400, "Invalid order argument", {bad_order: ["Not a sortable column."]})
    query = request.args.get("q")
    if _is_api() and query is not None and not _parses_as_rison_or_json(query):
        return _error(400, "Not a valid rison/json argument", {"q": ["Malformed."]})
    return None


def _bad_order_argument() -> str | None:
    """A screen's `_oc_<View>` must name one of its sortable columns, `_od_` asc or desc."""
    for key, value in request.args.items():
        if key.startswith("_od_") and value not in ("asc", "desc"):
            return key
        if key.startswith("_oc_"):
            view_name = key[len("_oc_"):]
            views = [v for v in current_app.appbuilder.baseviews
                     if type(v).__name__ == view_name]
            if not views or value not in (getattr(views[0], "order_columns", None) or []):
                return key
    return None


@functools.lru_cache(maxsize=1024)
def _parses_as_rison_or_json(value: str) -> bool:
    """Whether `q` parses (FAB parses it again for the view); the answers for recent `q`
    strings are kept, since clients poll and page with the same few."""
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
    app.before_request(guard_request)

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
        if isinstance(err, (DataError, StatementError, OverflowError)):
            # a value the database cannot take (a filter on a screen): the caller's error
            from app.extensions import db

            db.session.rollback()
            return _refusal(400, "Invalid value", {"_schema": [type(err).__name__]})
        log.exception("unhandled error on %s %s", request.method, request.path)
        from app.extensions import db

        db.session.rollback()
        if _is_api():
            response = jsonify(message="Internal error", errors={})
            response.status_code = 500
            return response
        return "Internal error", 500

    app.after_request(normalise_api_error)
