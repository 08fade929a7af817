"""The error responses every operation documents in /api/v1/_openapi (one shape for all)."""
ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "message": {"type": "string"},
        "errors": {"type": "object", "additionalProperties": {
            "type": "array", "items": {"type": "string"}},
            "description": "Reasons per field name"},
    },
    "required": ["message", "errors"],
}
DESCRIPTIONS = {
    "400": "Malformed request (bad JSON, bad query argument)",
    "401": "No, invalid or expired token",
    "403": "The role lacks the permission",
    "404": "Unknown id (or another shop's id)",
    "405": "The resource does not allow this method (read-only)",
    "409": "The record's state does not allow the change",
    "413": "Request body too large",
    "422": "Validation failed; `errors` names each field and reason",
    "429": "Too many requests",
    "500": "Internal error (a bug)",
}
WRITE_METHODS = {"post", "put", "patch", "delete"}


def error_responses() -> dict:
    return {code: {"description": text,
                   "content": {"application/json": {"schema": ERROR_SCHEMA}}}
            for code, text in DESCRIPTIONS.items()}


def statuses_for(method: str, path: str) -> list[str]:
    codes = ["400", "401", "403", "422", "429", "500"]
    if "{" in path:
        codes.append("404")
    if method in WRITE_METHODS:
        codes += ["405", "409", "413"]
    return codes


class OpenApiErrorsMixin:
    """Adds our error responses to every documented operation of a REST class."""

    def add_apispec_components(self, api_spec):
        super().add_apispec_components(api_spec)
        from apispec.exceptions import DuplicateComponentNameError

        for code, response in error_responses().items():
            try:
                api_spec.components.response(f"Error{code}", response)
            except DuplicateComponentNameError:
                pass

    def operation_helper(self, path=None, operations=None, methods=None, func=None, **kwargs):
        super().operation_helper(path=path, operations=operations, methods=methods, func=func,
                                 **kwargs)
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for code in statuses_for(method, path or ""):
                responses[code] = {"$ref": f"#/components/responses/Error{code}"}
