"""Domain errors. One handler (app/errors.py) maps them to HTTP statuses and the JSON shape
`{"message": ..., "errors": {field: [reasons]}}`; services raise them and never build responses."""


class HoutaiError(Exception):
    """Base of every refusal a user can cause; `errors` names fields and their reasons."""

    status = 422

    def __init__(self, message: str, errors: dict | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors or {}


class BadRequestError(HoutaiError):
    status = 400


class ForbiddenError(HoutaiError):
    status = 403


class NotFoundError(HoutaiError):
    status = 404


class ConflictError(HoutaiError):
    """The request is valid but the record's state does not allow it (409)."""

    status = 409


class ValidationFailed(HoutaiError):
    status = 422

    @classmethod
    def field(cls, name: str, reason: str) -> "ValidationFailed":
        return cls("Validation failed", {name: [reason]})


# The same words for an id that does not exist and one that belongs to another shop,
# so a merchant learns nothing about other shops from an error.
REFERENCE_NOT_FOUND = "Related record not found."
