"""Who is acting: a console/API user, a job, or a CLI command. Audit rows and isolation read it."""
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from flask import g, has_request_context

MERCHANT_ROLE = "Merchant"


@dataclass(frozen=True)
class Actor:
    name: str
    user_id: int | None = None
    shop_id: int | None = None
    authenticated: bool = False
    merchant: bool = False
    roles: tuple[str, ...] = ()

    @classmethod
    def job(cls, name: str) -> "Actor":
        return cls(name=f"job:{name}", authenticated=True)

    @classmethod
    def system(cls, name: str) -> "Actor":
        return cls(name=f"system:{name}", authenticated=True)

    @classmethod
    def for_user(cls, user) -> "Actor":
        roles = tuple(role.name for role in getattr(user, "roles", []))
        merchant = user.shop_id is not None or MERCHANT_ROLE in roles
        return cls(name=user.username, user_id=user.id, shop_id=user.shop_id, authenticated=True,
                   merchant=merchant, roles=roles)


ANONYMOUS = Actor(name="anonymous")
_acting: ContextVar[Actor | None] = ContextVar("houtai_actor", default=None)


def current_actor() -> Actor:
    """The actor set by `acting_as`, else the request's logged-in user, else anonymous."""
    actor = _acting.get()
    if actor is not None:
        return actor
    if has_request_context():
        user = getattr(g, "user", None)
        if user is None:
            from flask_login import current_user

            user = current_user
        if user is not None and getattr(user, "is_authenticated", False):
            return Actor.for_user(user)
    return ANONYMOUS


@contextmanager
def acting_as(actor: Actor):
    """Run a block (a job, a CLI command, a test step) as `actor`."""
    token = _acting.set(actor)
    try:
        yield actor
    finally:
        _acting.reset(token)


class AllShops:
    """Scope of staff: no shop restriction."""


ALL_SHOPS = AllShops()
NO_SHOP = object()


def shop_scope():
    """ALL_SHOPS for staff and jobs, the shop id for a merchant, NO_SHOP for anonymous and
    for a merchant without a shop (fail closed)."""
    actor = current_actor()
    if not actor.authenticated:
        return NO_SHOP
    if actor.shop_id is not None:
        return actor.shop_id
    return NO_SHOP if actor.merchant else ALL_SHOPS


def scope_query(query, model):
    """Restrict a query over `model` (an ORM query or a `select()`) to the rows the current
    actor may see (one rule for screens, APIs, dashboards and exports)."""
    condition = scope_condition(model)
    return query if condition is None else query.filter(condition)


def is_row_id(value) -> bool:
    """A value that can be a row id (an INTEGER primary key); anything else finds nothing."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31


def visible_row(model, pk):
    """The row of `model` with id `pk` if the current actor may see it, else None."""
    from app.extensions import db

    if not is_row_id(pk):
        return None
    return scope_query(db.session.query(model), model).filter(model.id == pk).one_or_none()


def scope_condition(model):
    """The WHERE condition of `scope_query`: None (staff, jobs, or a model without a shop),
    FALSE (no shop to see), or `shop column = the merchant's shop`."""
    from sqlalchemy import false

    from models.base import shop_column_of

    scope = shop_scope_of(model)
    if scope is ALL_SHOPS:
        return None
    if scope is NO_SHOP:
        return false()
    return getattr(model, shop_column_of(model)) == scope


def shop_scope_of(model):
    """`shop_scope()` for rows of `model`: ALL_SHOPS when the model belongs to no shop."""
    from models.base import shop_column_of

    return ALL_SHOPS if shop_column_of(model) is None else shop_scope()
