"""The error responses every operation documents in /api/v1/_openapi (one shape for all)."""
ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "message": {"type": "string"},
        "errors": {"type": "object", "additionalProperties": {"anyOf": [
            {"type": "array", "items": {"type": "string"}},
            {"type": "object", "description": "A list's or a nested object's reasons, "
                                              "by item index or field name"}]},
            "description": "Reasons per field name"},
    },
    "required": ["message", "errors"],
}
DESCRIPTIONS = {
    "400": "Malformed request (bad JSON, bad query argument)",
    "401": "No, invalid or expired token",
    "403": "The role lacks the permission",
    "404": "Unknown id, in the path or the body (or another shop's id)",
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
    if "{" in path or method in WRITE_METHODS:
        codes.append("404")
    if method in WRITE_METHODS:
        codes += ["405", "409", "413"]
    elif "{" in path:
        codes.append("405")  # a non-integer id matches no read route
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
        describe_model_answers(self, api_spec)

    def operation_helper(self, path=None, operations=None, methods=None, func=None, **kwargs):
        super().operation_helper(path=path, operations=operations, methods=methods, func=func,
                                 **kwargs)
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for code in statuses_for(method, path or ""):
                responses[code] = {"$ref": f"#/components/responses/Error{code}"}
            correct_model_answers(method, responses, getattr(self, "show_model_schema_name", None))


def describe_model_answers(view, api_spec) -> None:
    """What a resource's record answers hold, as marshmallow's input rules do not say: a
    to-many relation is a list, and a record shown (`GET /<pk>`, and POST/PUT's `result`)
    may carry the resource's detail sections (lines, timeline, messages) beside its columns."""
    from marshmallow import fields

    schemas = api_spec.components.schemas
    for attr in ("show", "list", "add", "edit"):
        marshmallow_schema = getattr(view, f"{attr}_model_schema", None)
        described = schemas.get(getattr(view, f"{attr}_model_schema_name", None) or "")
        if marshmallow_schema is None or described is None:
            continue
        for name, field in marshmallow_schema.fields.items():
            documented = described.get("properties", {}).get(name, {})
            if isinstance(field, fields.Nested) and field.many and "$ref" in documented:
                described["properties"][name] = {"type": "array", "items": documented}
        if attr == "show":
            described.pop("additionalProperties", None)


def correct_model_answers(method: str, responses: dict, show_schema: str | None) -> None:
    """FAB describes its standard answers loosely; say what they are: ids are integers, `_info`
    lists its add/edit columns, and POST and PUT answer the record as GET shows it."""
    for code, response in responses.items():
        schema = response.get("content", {}).get("application/json", {}).get("schema", {})
        properties = schema.get("properties") or {}
        if properties.get("ids", {}).get("items") == {"type": "string"}:
            properties["ids"]["items"] = {"type": "integer"}
        if properties.get("id", {}).get("type") == "string" and (
                properties["id"].get("description") == "The item id"
                or (str(code) == "201" and set(properties) == {"id", "result"})):
            properties["id"]["type"] = "integer"
        for key in ("add_columns", "edit_columns"):
            if properties.get(key) == {"type": "object"}:
                properties[key] = {"type": "array", "items": {"type": "object"}}
        result = properties.get("result", {})
        if show_schema and method in ("post", "put") and \
                result.get("$ref", "").endswith((".post", ".put")):
            result["$ref"] = f"#/components/schemas/{show_schema}"
