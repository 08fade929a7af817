"""The audit log, written by one session hook in the same transaction as every write.

Any flush that inserts, updates or deletes a row of an audited model adds an `audit_log` row:
who (the current actor: a user, a job or a command), when, model, primary key, action and the
changed fields old → new. Screens, REST endpoints, bulk actions, jobs and commands all flush
through the session, so none of them can write without leaving a trace. The few hot paths that
insert with SQLAlchemy Core (checkout, the outbox) hand their rows to `record_inserts`, which
makes the same entries and writes them in the same transaction.
"""
import enum
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import event, insert, inspect
from sqlalchemy.orm import Session

from models.base import shop_column_of
from services.actor import current_actor
from services.clock import now

HIDDEN = "[hidden]"
# Bookkeeping that is not a business write: the log itself, the outbox, permission plumbing.
NOT_AUDITED_TABLES = {
    "audit_log", "outbox_event",
    "ab_permission", "ab_view_menu", "ab_permission_view", "ab_register_user",
}
# Written by jobs on every delivery (bookkeeping), but a person's decision on them (retry a
# failed delivery) is audited.
AUDITED_FOR_PEOPLE_ONLY = {"event_delivery", "webhook_delivery", "message"}
# Columns that change on every login or every write and carry no decision.
IGNORED_COLUMNS = {"last_login", "login_count", "fail_login_count", "changed_on", "created_on",
                   "updated_at", "created_at"}
SECRET_COLUMNS = {"password", "secret", "api_key", "token"}
# What a secret's derived values end in (a supplier key's hash, an identity number's digest);
# a digest of a request body (idempotency keys) is no secret and stays visible.
SECRET_SUFFIXES = ("key_hash", "_digest", "_secret", "_token")
# Per table: buyers' personal data and redeemable codes. The audit log is read by merchants
# for their shop's records, who see these masked everywhere else; the entry says what
# changed, not to what.
HIDDEN_BY_TABLE = {"order": {"address"}, "trade": {"address"}, "service_code": {"code"},
                   "customs_declaration": {"buyer_name", "buyer_id_hint"},
                   "message": {"recipient"}}
_REASON_KEY = "houtai_audit_reason"
_PENDING_KEY = "houtai_audit_pending"


def set_reason(session: Session, reason: str) -> None:
    """Attach a business reason (approve, refund, adjust...) to the audit rows of this flush."""
    session.info[_REASON_KEY] = reason


def to_json(value):
    """An audit-friendly JSON value: money and times as strings, enums by value."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if value is None or isinstance(value, (bool, int, str, float)):
        return value
    if isinstance(value, (list, dict)):
        return value
    return str(value)


def _is_audited(obj, actor) -> bool:
    table = getattr(obj, "__tablename__", None)
    if table is None or table in NOT_AUDITED_TABLES:
        return False
    return table not in AUDITED_FOR_PEOPLE_ONLY or actor.user_id is not None


def _shown(key: str, value, table: str | None = None):
    hidden = key in SECRET_COLUMNS or key.endswith(SECRET_SUFFIXES) or \
        key in HIDDEN_BY_TABLE.get(table, ())
    return HIDDEN if hidden else to_json(value)


def _column_changes(obj, action: str) -> dict:
    """{column: [old, new]} for the columns this flush changed (all of them on insert/delete)."""
    state = inspect(obj)
    table = getattr(obj, "__tablename__", None)
    changes = {}
    for attr in state.mapper.column_attrs:
        key = attr.key
        if key in IGNORED_COLUMNS:
            continue
        history = state.attrs[key].history
        if action == "update":
            if not history.has_changes():
                continue
            old = history.deleted[0] if history.deleted else None
            new = history.added[0] if history.added else None
            if old == new:
                continue
            changes[key] = [_shown(key, old, table), _shown(key, new, table)]
        elif action == "insert":
            value = getattr(obj, key)
            if value is not None:
                changes[key] = [None, _shown(key, value, table)]
        else:
            value = history.unchanged[0] if history.unchanged else (
                history.deleted[0] if history.deleted else getattr(obj, key, None))
            changes[key] = [_shown(key, value, table), None]
    return changes


def _collection_changes(obj) -> dict:
    """Many-to-many changes (a user's roles): {name: [removed, added]} as text."""
    state = inspect(obj)
    changes = {}
    for relationship in state.mapper.relationships:
        if relationship.secondary is None:
            continue
        history = state.attrs[relationship.key].history
        if history.added or history.deleted:
            changes[relationship.key] = [sorted(str(r) for r in history.deleted),
                                         sorted(str(r) for r in history.added)]
    return changes


def _record_shop_id(obj, changes):
    column = shop_column_of(type(obj))
    if column is None:
        return None
    value = getattr(obj, column, None)
    if value is None and column in changes:
        value = changes[column][0]
    return value


def _primary_key(obj) -> str:
    identity = inspect(obj).identity
    if identity:
        return ",".join(str(part) for part in identity)
    return ",".join(str(getattr(obj, c.key)) for c in inspect(obj).mapper.primary_key)


def _audit_rows(session: Session) -> list[dict]:
    actor = current_actor()
    reason = session.info.get(_REASON_KEY)
    stamp = now()
    rows = []
    for action, objects in (("insert", session.new), ("update", session.dirty),
                            ("delete", session.deleted)):
        for obj in objects:
            if not _is_audited(obj, actor):
                continue
            if action == "update" and not session.is_modified(obj):
                continue
            changes = _column_changes(obj, action)
            if action == "update":
                changes.update(_collection_changes(obj))
            if action == "update" and not changes:
                continue
            rows.append({
                "created_at": stamp, "actor": actor.name, "user_id": actor.user_id,
                "model": type(obj).__name__, "record_pk": _primary_key(obj), "action": action,
                "changes": changes, "reason": reason, "shop_id": _record_shop_id(obj, changes),
            })
    return rows


def record_inserts(session: Session, model, rows: list[dict]) -> None:
    """Audit rows inserted with SQLAlchemy Core (hot paths such as checkout), which the flush
    hook never sees. Each row carries its `id`; the entries are what the hook writes for an ORM
    insert, and go out in one INSERT with the next flush's entries or at commit."""
    table = model.__tablename__
    if table in NOT_AUDITED_TABLES:
        return
    actor = current_actor()
    reason = session.info.get(_REASON_KEY)
    stamp = now()
    keys = _audited_keys(model)
    shop_column = shop_column_of(model)
    pending = session.info.setdefault(_PENDING_KEY, [])
    for row in rows:
        changes = {key: [None, _shown(key, row[key], table)]
                   for key in keys if row.get(key) is not None}
        pending.append({
            "created_at": stamp, "actor": actor.name, "user_id": actor.user_id,
            "model": model.__name__, "record_pk": str(row["id"]), "action": "insert",
            "changes": changes, "reason": reason,
            "shop_id": row.get(shop_column) if shop_column else None,
        })


_KEYS_BY_MODEL: dict = {}


def _audited_keys(model) -> list[str]:
    """The columns an insert entry names, in the mapper's order (as the hook walks them)."""
    keys = _KEYS_BY_MODEL.get(model)
    if keys is None:
        keys = _KEYS_BY_MODEL[model] = [attr.key for attr in inspect(model).column_attrs
                                        if attr.key not in IGNORED_COLUMNS]
    return keys


def _write(session: Session, rows: list[dict]) -> None:
    from models.audit import AuditLog

    if rows:
        session.connection().execute(insert(AuditLog.__table__), rows)


def _after_flush(session: Session, flush_context) -> None:
    _write(session, session.info.pop(_PENDING_KEY, []) + _audit_rows(session))


def _before_commit(session: Session) -> None:
    _write(session, session.info.pop(_PENDING_KEY, []))


def _clear_reason(session: Session) -> None:
    session.info.pop(_REASON_KEY, None)


def _forget(session: Session) -> None:
    session.info.pop(_REASON_KEY, None)
    session.info.pop(_PENDING_KEY, None)


def install() -> None:
    """Hook the audit log into every SQLAlchemy session (idempotent)."""
    if not event.contains(Session, "after_flush", _after_flush):
        event.listen(Session, "after_flush", _after_flush)
        event.listen(Session, "before_commit", _before_commit)
        event.listen(Session, "after_commit", _clear_reason)
        event.listen(Session, "after_rollback", _forget)
