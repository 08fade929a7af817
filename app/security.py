"""Security: roles declared in code, the security manager, the login API with its rate limit.

Each screen and REST resource names its `center`; `ROLES` says which centers a role reaches and
how (`read` or `write`). `sync_roles()` (run by `houtai init`) makes the database match exactly,
so a role is never clicked together by hand and a new view is granted the day it is added.
"""
import time

from flask import current_app, g
from flask_appbuilder.api import BaseApi, expose, safe
from flask_appbuilder.security.api import SecurityApi
from flask_appbuilder.security.sqla.manager import SecurityManager
from flask_appbuilder.security.sqla.models import Group
from flask_appbuilder.security.views import UserDBModelView
from flask_appbuilder.utils.limit import Limit
from flask_babel import lazy_gettext as _l
from flask_jwt_extended import create_access_token, create_refresh_token
from flask_limiter.util import get_remote_address
from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import event
from sqlalchemy.orm import Session, joinedload

from models.security import UserAccount
from views.openapi import OpenApiErrorsMixin

READ, WRITE, MANAGE = "read", "write", "manage"
READ_REVEAL = "read+reveal"
READ_PERMISSIONS = {"can_list", "can_show", "can_get", "can_info"}
# Decisions reserved to platform staff (MANAGE): WRITE grants everything else.
REVIEW_PERMISSIONS = {"can_review", "approve", "reject", "can_mark_paid", "can_deliver",
                      # the buyer's word (through the storefront), never the seller's
                      "can_confirm_receipt"}

# Staff roles: one per staff function. Later centers add their own rows here.
# A grant is a level, or (level, {extra permission names}).
ROLES: dict[str, dict[str, object]] = {
    "Admin": {},  # every permission, granted by FAB's admin sync
    "ProductOps": {"product": MANAGE, "catalog": WRITE, "shop": READ, "storage": WRITE,
                   "inventory": READ,
                   # price batches: drafted by anyone with WRITE, deep cuts approved here
                   "prices": MANAGE},
    "OrderOps": {"order": MANAGE, "trade": MANAGE, "dispatch": MANAGE, "shop": READ, "product": READ, "catalog": READ,
                 "logistics": READ, "tracking": READ,
                 "inventory": READ, "member": READ, "payment": READ, "after_sale": READ,
                 "risk_cases": READ,
                 # exports of what the role reads (orders, stock, sales); the sales report
                 "exports": WRITE, "sales_report": READ},
    "CustomerService": {"customer_service": WRITE, "shop": READ, "storage": WRITE,
                        "product": READ, "member": READ_REVEAL, "order": READ,
                        "payment": READ, "after_sale": WRITE, "ticket": WRITE,
                        "ticket_internal": WRITE, "ticket_setup": WRITE, "card": READ,
                        "risk_cases": READ,
                        "review": (READ, {"can_reply", "can_hide"}), "moderation": READ,
                        "feedback": WRITE},
    "Marketing": {"marketing": WRITE, "shop": READ, "storage": WRITE, "product": READ,
                  "catalog": READ, "card": WRITE, "member_level": WRITE,
                  "pricing_preview": WRITE, "sales_report": READ,
                  # price batches for campaigns; deep cuts wait for ProductOps' approval
                  "prices": WRITE},
    "Finance": {"finance": WRITE, "payment": WRITE, "settlement": WRITE, "invoice": WRITE,
                "shop": READ, "card": WRITE, "supplier_statement": MANAGE, "purchasing": READ,
                "trade": READ, "after_sale": READ,
                # exports of settlements and sales; the sales report
                "exports": WRITE, "sales_report": READ},
    # warehouse work only: receipts, picking, packing, shipping, counts, transfers
    "Warehouse": {"wms": WRITE, "inventory": WRITE, "dispatch": WRITE, "logistics": READ,
                  "customs": READ,
                  # exports of stock
                  "exports": WRITE},
    "Purchasing": {"purchasing": WRITE, "supplier_statement": WRITE, "inventory": READ,
                   "wms": READ, "storage": WRITE},
    # carriers and their rules, freight templates, tracking, customs declarations
    "Logistics": {"logistics": MANAGE, "freight": WRITE, "tracking": WRITE, "customs": MANAGE,
                  "dispatch": READ, "order": READ, "shop": READ},
    # risk control: rules, blacklists, the case queue; members' pages to judge a case
    "Risk": {"risk": WRITE, "risk_cases": WRITE, "audit": READ, "member": READ},
    "Operations": {"shop": WRITE, "operations": WRITE, "audit": READ, "events": WRITE,
                   # webhooks and the message log (integrations), message templates
                   "integrations": WRITE, "messaging": WRITE,
                   # moderation: the queue's decisions, hiding, the word and image lists
                   "review": WRITE, "moderation": WRITE, "moderation_setup": WRITE,
                   "feedback": WRITE,
                   "storage": WRITE, "member": WRITE, "ticket_setup": WRITE, "card": WRITE,
                   "member_level": WRITE,
                   # the sales report, and its exports
                   "exports": WRITE, "sales_report": READ},
    "Merchant": {"shop": READ, "audit": READ, "storage": WRITE, "product": WRITE,
                 # the shop's own webhooks and its messages' log
                 "integrations": WRITE,
                 # the shop's own price batches; approving deep cuts is the platform's
                 "prices": WRITE,
                 "catalog": READ, "inventory": WRITE, "order": WRITE, "dispatch": WRITE,
                 "after_sale": WRITE, "settlement": READ,
                 # the shop's own exports (orders, settlements, stock, sales) and sales report
                 "exports": WRITE, "sales_report": READ,
                 # the shop's tickets: read, answer, resolve; never open or reassign them
                 "ticket": (READ, {"can_reply", "can_resolve", "can_conversation"}),
                 "ticket_internal": READ,
                 "invoice": (READ, {"can_issue"}), "marketing": WRITE,
                 # the shop's reviews: read and answer; moderation is the platform's
                 "review": (READ, {"can_reply"}),
                 # the shop's own warehouses, suppliers, purchase orders and freight templates
                 "wms": WRITE, "purchasing": WRITE, "supplier_statement": READ,
                 "freight": WRITE, "logistics": READ, "tracking": READ, "customs": WRITE},
    # Products reach storefronts through their own read endpoints (on-sale only, no cost
    # prices), not through the back office's product resources.
    "Storefront": {"storefront": WRITE, "shop": READ, "storage": WRITE, "catalog": READ,
                   "member": WRITE, "checkout": WRITE, "order": (READ, {"can_confirm_receipt"}),
                   "trade": WRITE, "payment": READ,
                   # a member's cards (卡券), read; they pay with them through `trade`
                   "card": READ,
                   # buyers review, follow up, give feedback; texts are checked before posting
                   "review": (READ, {"can_post", "can_follow_up"}),
                   "feedback": (READ, {"can_post"}), "moderation": (READ, {"can_check"}),
                   # levels (and their benefits) the storefront shows its members
                   "member_level": READ,
                   # the buyer asks, sends goods back, or withdraws; the shop decides
                   "after_sale": (READ, {"can_post", "can_return_shipped", "can_close"}),
                   # the buyer's complaints and chat: open, read (no internal notes), write
                   "ticket": (READ, {"can_post", "can_reply"}),
                   "invoice": (READ, {"can_post"}),
                   # members claim coupons into their wallets
                   "marketing": (READ, {"can_claim"}),
                   # a member's 站内信 (inbox messages): read them, mark them read
                   "member_inbox": (READ, {"can_read"})},
}
# Roles that act through the API only: no screens, no menus, no own-account screens.
API_ONLY_ROLES = {"Storefront"}
# Every role with screens may see and edit its own account and password.
OWN_ACCOUNT_PERMISSIONS = [
    ("can_userinfo", "HoutaiUserDBModelView"),
    ("resetmypassword", "HoutaiUserDBModelView"),
    ("userinfoedit", "HoutaiUserDBModelView"),
    ("can_this_form_get", "ResetMyPasswordView"),
    ("can_this_form_post", "ResetMyPasswordView"),
    ("can_this_form_get", "UserInfoEditView"),
    ("can_this_form_post", "UserInfoEditView"),
]
# Every role may read the API's description (integrators script against it).
API_DOC_PERMISSIONS = [("can_get", "OpenApi"), ("can_show", "SwaggerView")]
STAFF_ROLES = [r for r in ROLES if r not in ("Admin", "Merchant", "Storefront")]


class LoginSchema(Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = fields.String(required=True, validate=validate.Length(min=1, max=256))
    provider = fields.String(required=True, validate=validate.OneOf(["db"]))
    refresh = fields.Boolean(load_default=False)


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


class HoutaiSecurityApi(OpenApiErrorsMixin, SecurityApi):
    """FAB's login and refresh, with a validated body (no 500) and a shared rate limit."""

    limits = [Limit(limit_value=_login_limit, key_func=get_remote_address,
                    methods=("POST",), error_message="Too many login attempts")]

    @expose("/login", methods=["POST"])
    @safe
    def login(self):
        """Login with username and password, answer a JWT access (and refresh) token
        ---
        post:
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    username: {type: string}
                    password: {type: string}
                    provider: {type: string, enum: [db]}
                    refresh: {type: boolean}
          responses:
            200:
              description: Authentication succeeded
            400:
              $ref: '#/components/responses/400'
            401:
              $ref: '#/components/responses/401'
            422:
              $ref: '#/components/responses/422'
            429:
              description: Too many login attempts
        """
        from views.schema import json_body
        from services.errors import HoutaiError

        try:
            payload = LoginSchema().load(json_body())
        except HoutaiError as err:
            return self.response(err.status, message=err.message, errors=err.errors)
        except ValidationError as err:
            return self.response(422, message="Validation failed", errors=err.messages)
        user = self.appbuilder.sm.auth_user_db(payload["username"], payload["password"])
        if not user:
            return self.response(401, message="Wrong username or password", errors={})
        from services import risk

        if risk.login_refused(user.id):       # device (X-Device-Id) or IP blacklisted, ...
            return self.response(403, message=risk.BLOCKED, errors={})
        tokens = {"access_token": create_access_token(identity=str(user.id), fresh=True)}
        if payload["refresh"]:
            tokens["refresh_token"] = create_refresh_token(identity=str(user.id))
        return self.response(200, **tokens)


class HoutaiUserDBModelView(UserDBModelView):
    """Users: the shop a merchant belongs to; never a password hash in a list or a form."""

    center = "users"
    list_columns = ["username", "first_name", "last_name", "email", "active", "roles", "shop"]
    show_columns = ["username", "first_name", "last_name", "email", "active", "roles", "shop",
                    "last_login", "login_count", "created_on", "changed_on"]
    add_columns = ["first_name", "last_name", "username", "active", "email", "roles", "shop",
                   "password", "conf_password"]
    edit_columns = ["first_name", "last_name", "username", "active", "email", "roles", "shop"]
    search_columns = ["username", "first_name", "last_name", "email", "active", "roles", "shop"]
    label_columns = {**UserDBModelView.label_columns, "shop": _l("Shop")} \
        if getattr(UserDBModelView, "label_columns", None) else {"shop": _l("Shop")}
    show_fieldsets = [
        (_l("User info"), {"fields": ["username", "active", "roles", "shop", "login_count"]}),
        (_l("Personal info"), {"fields": ["first_name", "last_name", "email"]}),
        (_l("Audit"), {"fields": ["last_login", "created_on", "changed_on"], "expanded": False}),
    ]
    user_show_fieldsets = [
        (_l("User info"), {"fields": ["username", "first_name", "last_name", "email", "shop"]}),
        (_l("Audit"), {"fields": ["last_login", "login_count", "created_on"], "expanded": False}),
    ]


    def _check_shop(self, item):
        from services.security import shop_rule_errors

        # the relationship, not shop_id: the form sets `shop` and shop_id is stale until flush
        errors = shop_rule_errors([r.name for r in item.roles],
                                  item.shop.id if item.shop is not None else None)
        if errors:
            raise ValueError(errors["shop"][0])

    def pre_add(self, item):
        self._check_shop(item)
        super().pre_add(item)

    def pre_update(self, item):
        self._check_shop(item)
        super().pre_update(item)


class AccessAnswers:
    """Permission answers and REST callers' users kept per process for
    `PERMISSION_CACHE_SECONDS` (FAB asks the database on every request: the user, the Public
    role twice, then the permission join). Any write to users, roles, permissions or views in
    this process clears them at once; another process sees a change within the configured
    seconds. 0 turns the cache off."""

    def __init__(self):
        self.answers: dict = {}

    def get(self, key, ask):
        seconds = current_app.config.get("PERMISSION_CACHE_SECONDS", 0)
        if not seconds:
            return ask()
        kept = self.answers.get(key)
        moment = time.monotonic()
        if kept is None or moment - kept[1] >= seconds:
            kept = self.answers[key] = (ask(), moment)
        return kept[0]

    def clear(self):
        self.answers.clear()


ACCESS_ANSWERS = AccessAnswers()
SECURITY_TABLES = {"ab_role", "ab_permission", "ab_view_menu", "ab_permission_view",
                   "ab_permission_view_role", "ab_group", "ab_user"}


@event.listens_for(Session, "after_flush")
def _forget_access_answers(session, _context):
    """Users, roles or permissions changed here: the next check asks the database again."""
    touched = (*session.new, *session.dirty, *session.deleted)
    if any(getattr(obj, "__tablename__", None) in SECURITY_TABLES for obj in touched):
        ACCESS_ANSWERS.clear()


class HoutaiSecurityManager(SecurityManager):
    user_model = UserAccount
    userdbmodelview = HoutaiUserDBModelView
    security_api = HoutaiSecurityApi

    def exist_permission_on_roles(self, view_name, permission_name, role_ids):
        return ACCESS_ANSWERS.get(
            ("roles", view_name, permission_name, tuple(sorted(role_ids))),
            lambda: super(HoutaiSecurityManager, self).exist_permission_on_roles(
                view_name, permission_name, role_ids))

    def is_item_public(self, permission_name, view_name):
        return ACCESS_ANSWERS.get(
            ("public", view_name, permission_name),
            lambda: super(HoutaiSecurityManager, self).is_item_public(permission_name,
                                                                      view_name))

    def get_user_by_id(self, pk):
        """The user with roles and groups in one query (FAB loads each lazily)."""
        return self.session.get(self.user_model, pk, options=self._user_with_roles())

    def _user_with_roles(self) -> list:
        return [joinedload(self.user_model.roles),
                joinedload(self.user_model.groups).joinedload(Group.roles)]

    def load_user_jwt(self, _jwt_header, jwt_data):
        """The REST caller (JWT): the user as loaded within `PERMISSION_CACHE_SECONDS`,
        detached with its roles and groups (nothing the request reads loads lazily), so a
        request does not read the user again; a deactivated user is refused as FAB does."""
        if not current_app.config.get("PERMISSION_CACHE_SECONDS", 0):
            return super().load_user_jwt(_jwt_header, jwt_data)
        identity = str(jwt_data["sub"])
        user = ACCESS_ANSWERS.get(("user", identity), lambda: self._detached_user(identity))
        if user is not None and user.is_active:
            g.user = user
            return user
        return None

    def _detached_user(self, identity: str):
        """The user read in a session of its own, closed at once: its loaded attributes stay,
        and no request's commit expires them."""
        from app.extensions import db

        if not identity.isdigit():
            return None
        with Session(db.engine) as session:
            return session.get(self.user_model, int(identity), options=self._user_with_roles())

    def create_jwt_manager(self, app):
        jwt_manager = super().create_jwt_manager(app)
        register_jwt_errors(jwt_manager)
        return jwt_manager

    def register_views(self):
        super().register_views()
        # The login API is always there, whatever FAB_ADD_SECURITY_API says.
        if not any(isinstance(v, HoutaiSecurityApi) for v in self.appbuilder.baseviews):
            self.appbuilder.add_api(self.security_api)


def register_jwt_errors(jwt_manager) -> None:
    """JWT failures in our error shape ({"message", "errors"}) instead of {"msg"}."""
    from flask import jsonify

    def answer(message, status=401):
        response = jsonify(message=message, errors={})
        response.status_code = status
        return response

    jwt_manager.unauthorized_loader(lambda reason: answer(reason))
    jwt_manager.invalid_token_loader(lambda reason: answer(reason))
    jwt_manager.expired_token_loader(lambda header, data: answer("Token has expired"))
    jwt_manager.revoked_token_loader(lambda header, data: answer("Token has been revoked"))
    jwt_manager.needs_fresh_token_loader(lambda header, data: answer("Fresh token required"))
    jwt_manager.user_lookup_error_loader(lambda header, data: answer("Unknown or inactive user"))


def registered_views(appbuilder):
    """Every registered view and API with the center it declares."""
    return [v for v in appbuilder.baseviews if getattr(v, "center", None)]


def _menu_names(appbuilder, view) -> list[str]:
    names = []
    for category in appbuilder.menu.get_list():
        for item in category.childs or []:
            if getattr(item, "baseview", None) is view or \
                    item.name == getattr(view, "houtai_menu_name", None):
                names += [item.name, category.name]
    return names


def desired_permissions(appbuilder, role: str) -> set[tuple[str, str]]:
    """The exact (permission, view menu) pairs `role` should hold."""
    grants = ROLES[role]
    wanted: set[tuple[str, str]] = set()
    for view in registered_views(appbuilder):
        level = grants.get(view.center)
        if level is None or (role in API_ONLY_ROLES and not isinstance(view, BaseApi)):
            continue
        level, extras = level if isinstance(level, tuple) else (level, set())
        permissions = set(view.base_permissions)
        wanted |= {(p, view.class_permission_name) for p in permissions & extras}
        if level == READ:
            permissions &= READ_PERMISSIONS
        elif level == READ_REVEAL:
            permissions &= READ_PERMISSIONS | {"can_reveal"}
        elif level == WRITE:
            permissions -= REVIEW_PERMISSIONS
        wanted |= {(p, view.class_permission_name) for p in permissions}
        if role not in API_ONLY_ROLES:
            wanted |= {("menu_access", name) for name in _menu_names(appbuilder, view)}
    if role not in API_ONLY_ROLES:
        wanted |= set(OWN_ACCOUNT_PERMISSIONS)
    return wanted | set(API_DOC_PERMISSIONS)


def sync_roles(appbuilder) -> dict[str, int]:
    """Create every permission, then make each declared role hold exactly its grants
    (Admin holds every permission there is)."""
    sm = appbuilder.sm
    roles = {name: sm.find_role(name) or sm.add_role(name) for name in ROLES}
    appbuilder.add_permissions(update_perms=True)
    all_permissions = {(pv.permission.name, pv.view_menu.name)
                       for pv in appbuilder.session.query(sm.permissionview_model)}
    counts = {}
    for role_name, role in roles.items():
        wanted = (all_permissions if role_name == "Admin"
                  else desired_permissions(appbuilder, role_name))
        current = {(pv.permission.name, pv.view_menu.name): pv for pv in role.permissions}
        for permission, view_menu in sorted(wanted - set(current)):
            sm.add_permission_role(role, sm.add_permission_view_menu(permission, view_menu))
        for key in set(current) - wanted:
            sm.del_permission_role(role, current[key])
        counts[role_name] = len(wanted)
    appbuilder.session.commit()
    return counts


def current_user_roles() -> set[str]:
    user = getattr(g, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return set()
    return {role.name for role in user.roles}



