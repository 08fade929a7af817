"""风控中心 rules: a rule engine over events, with rules as data, blacklists, decisions kept with
the rules that fired and their inputs, a queue of cases for people, and members' credit scores.

`assess(event, ...)` records a fact (who, device, IP, address digest, payer digest, amount,
text digest) and evaluates the enabled rules of the event; the most severe action wins
(block > hold > review > allow). A decision other than a plain allow is kept as a
RiskDecision row: open (a case in the queue) for review and hold, closed for block.

The fact and the decision are written on a connection of their own and committed at once, so
a blocked checkout that rolls everything back still leaves its decision behind. Within that
transaction the counting rules of the fact's keys are serialised (PostgreSQL: advisory locks
taken in a fixed order; SQLite: the database's write lock), and each count includes the fact
itself: N simultaneous checkouts of one member under a limit of L let exactly L through
unflagged. When the caller's transaction already writes on SQLite (the only writer there), or
the own connection cannot write (a row the fact names is not committed yet), the fact and the
decision go into the caller's transaction instead.

A rule with `"deferred": true` is evaluated in a job after the caller's commit (heavy counts
on busy events); what it decides acts after the fact: a held or blocked trade is held for a
person, and its case is open.
"""
import hashlib
import hmac
import ipaddress
import logging
import re
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from flask import current_app
from sqlalchemy import and_, delete, func, insert, or_, select, text, update
from sqlalchemy import event as sa_event
from sqlalchemy.exc import DBAPIError

from app.extensions import db
from app.queue import enqueue_after_commit
from models.after_sale import AfterSale
from models.member import Member
from models.order import Order, Trade
from models.risk import (BLACKLIST_KINDS, RISK_ACTIONS, RISK_EVENTS, RULE_KINDS, Blacklist,
                         CreditScore, RiskDecision, RiskFact, RiskRule)
from services.actor import current_actor, is_row_id
from services.clock import now
from services.errors import ConflictError, ForbiddenError, NotFoundError, ValidationFailed
from services.events import publish, subscribe
from services.scheduler import scheduled

log = logging.getLogger(__name__)

BLOCKED = "risk_blocked"
SEVERITY = {"allow": 0, "review": 1, "hold": 2, "block": 3}
DEFERRED_JOB = "workers.risk.evaluate_deferred"
FACT, DECISION, RULE = RiskFact.__table__, RiskDecision.__table__, RiskRule.__table__
# checkout writes a fact on every place: the statements are built once
_INSERT_FACT = insert(FACT).returning(FACT.c.id)
_INSERT_DECISION = insert(DECISION).returning(DECISION.c.id)
BLACKLIST = Blacklist.__table__
MAX_DEVICE, MAX_IP = 64, 45


class RiskBlocked(ForbiddenError):
    """403 {"message": "risk_blocked"}: the engine refused; which rule is not said."""

    def __init__(self):
        super().__init__(BLOCKED, {})


@dataclass
class Assessment:
    decision: str                      # allow | review | hold | block
    fired: list = field(default_factory=list)   # [{"rule_id", "name", "action", "inputs"}]
    decision_id: int | None = None
    fact_id: int | None = None
    deferred: bool = False             # deferred rules wait for a job after the commit
    fresh: bool = False                # this call wrote the fact (not a retry's answer)

    @property
    def blocked(self) -> bool:
        return self.decision == "block"


@dataclass
class Fact:
    event: str
    member_id: int | None = None
    device: str | None = None
    ip: str | None = None
    address: str | None = None
    payer: str | None = None
    amount: str | None = None
    text_digest: str | None = None
    reference: str | None = None
    created_at: object = None
    id: int | None = None
    phone: str | None = None          # the address's phone, for the blacklist (not kept)


# -- normalising what a fact keeps ----------------------------------------------------------------

def _plain(value: str) -> str:
    """Letters and digits only, full-width folded, lower case: the same text however typed."""
    folded = unicodedata.normalize("NFKC", value).lower()
    return "".join(ch for ch in folded if ch.isalnum())


ADDRESS_PARTS = ("province_code", "city_code", "district_code", "detail")


def address_digest(address) -> str | None:
    """Where goods go, as a digest: the region codes and the street detail (not the recipient
    or the phone, which brushing varies); a text address digests the same way."""
    if isinstance(address, dict):
        address = "".join(str(address.get(part) or "") for part in ADDRESS_PARTS)
    if not isinstance(address, str) or not _plain(address):
        return None
    return hashlib.sha256(_plain(address).encode()).hexdigest()


def payer_digest(account: str | None) -> str | None:
    """A payer account as a keyed digest of the whole account (nothing masked), so accounts
    shared by members can be counted without keeping them."""
    if not isinstance(account, str) or not account.strip():
        return None
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, b"payer:" + account.strip().lower().encode(), "sha256").hexdigest()


SIMHASH_BITS = 64


def simhash(value: str) -> int:
    """A 64-bit SimHash of the text's character pairs: near-duplicates differ in few bits."""
    grams = [value[i:i + 2] for i in range(max(len(value) - 1, 1))]
    weights = [0] * SIMHASH_BITS
    for gram in grams:
        bits = int.from_bytes(hashlib.blake2b(gram.encode(), digest_size=8).digest(), "big")
        for bit in range(SIMHASH_BITS):
            weights[bit] += 1 if bits >> bit & 1 else -1
    return sum(1 << bit for bit in range(SIMHASH_BITS) if weights[bit] > 0)


def text_digest(value) -> str | None:
    """16 hex digits of SimHash (near-duplicates) and 48 of SHA-256 (exact duplicates) of the
    normalised text."""
    if not isinstance(value, str) or not _plain(value):
        return None
    plain = _plain(value)
    return f"{simhash(plain):016x}{hashlib.sha256(plain.encode()).hexdigest()[:48]}"


def similarity(one: str, other: str) -> Decimal:
    """How alike two text digests are: 1 for the same text, else 1 − differing SimHash bits / 64."""
    if one[16:] == other[16:]:
        return Decimal(1)
    differing = bin(int(one[:16], 16) ^ int(other[:16], 16)).count("1")
    return Decimal(SIMHASH_BITS - differing) / SIMHASH_BITS


def normal_ip(value) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    try:
        return ipaddress.ip_address(value).compressed
    except ValueError:
        return value[:MAX_IP]


def normal_phone(value) -> str | None:
    if not isinstance(value, str):
        return None
    digits = re.sub(r"\D", "", value)
    return digits or None


def _amount_text(amount) -> str | None:
    if isinstance(amount, bool) or not isinstance(amount, (Decimal, int, str)):
        return None
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        return None
    return f"{value:.2f}"[:16] if value.is_finite() else None


def checked_client(client) -> dict:
    """The checkout body's `client`: optional `device_id` (≤ 64) and `ip` (≤ 45) strings;
    422 naming client.device_id / client.ip otherwise."""
    if client is None:
        client = {}
    if not isinstance(client, dict):
        raise ValidationFailed.field("client", "An object with device_id and ip.")
    errors, clean = {}, {}
    for name, limit in (("device_id", MAX_DEVICE), ("ip", MAX_IP)):
        value = client.get(name)
        if value is None:
            clean[name] = None
        elif not isinstance(value, str) or not value.strip() or len(value.strip()) > limit or \
                not value.strip().isprintable():
            errors[f"client.{name}"] = [f"Text of 1 to {limit} printable characters."]
        else:
            clean[name] = value.strip()
    if errors:
        raise ValidationFailed("Validation failed", errors)
    clean["ip"] = normal_ip(clean["ip"])
    return clean


def _fact(event, member_id, device, ip, address, payer, amount, text_value, reference) -> Fact:
    if event not in RISK_EVENTS:
        raise ValueError(f"unknown risk event {event!r}")
    return Fact(event=event, member_id=member_id if is_row_id(member_id) else None,
                device=device.strip()[:MAX_DEVICE] if isinstance(device, str) and device.strip()
                else None,
                ip=normal_ip(ip), address=address_digest(address), payer=payer_digest(payer),
                amount=_amount_text(amount), text_digest=text_digest(text_value),
                reference=reference[:48] if isinstance(reference, str) else None,
                created_at=now(),
                phone=normal_phone(address.get("phone")) if isinstance(address, dict) else None)


# -- the engine -----------------------------------------------------------------------------------

def assess(event: str, *, member_id: int | None = None, device: str | None = None,
           ip: str | None = None, address: dict | str | None = None, payer: str | None = None,
           amount=None, text: str | None = None, reference: str | None = None) -> Assessment:
    """Record the event as a fact and decide on it with the event's enabled rules (deferred
    ones run in a job after the caller's commit). Callers act on `decision`: block refuses
    (RiskBlocked), hold holds, review goes on while a person looks at the case. The same
    event and reference for the same member again (a retried job) records nothing new and
    answers the first decision."""
    return _assess(_fact(event, member_id, device, ip, address, payer, amount, text, reference))


def _assess(fact: Fact) -> Assessment:
    rules = _rules_of(fact.event)
    now_rules = [r for r in rules if not r["params"].get("deferred")]
    deferred = len(now_rules) != len(rules)
    caller = db.session.connection()
    if caller.dialect.name == "sqlite":
        # one writer at a time: decide on our own connection before the caller writes
        verdict = _on_own_connection(fact, now_rules) or _decide(caller, fact, now_rules)
    else:
        # in the caller's transaction (its key locks held to its commit, no second
        # connection on the hot path); a block is kept on our own connection too, since the
        # caller then rolls back
        verdict = _decide(caller, fact, now_rules)
        if verdict.blocked and verdict.fresh:
            _keep_blocked(caller, fact, verdict)
    if deferred and not verdict.blocked and verdict.fact_id is not None:
        verdict.deferred = True
        enqueue_after_commit(db.session, DEFERRED_JOB, verdict.fact_id,
                             job_id=f"risk-deferred-{verdict.fact_id}")
    return verdict


# The enabled rules of each event, kept per process for RISK_RULES_CACHE_SECONDS (checkout
# asks on every place); a rule written in this process forgets them at once.
_RULES: dict[str, tuple[float, list[dict]]] = {}


def _rules_of(event: str) -> list[dict]:
    cached = _RULES.get(event)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    rows = db.session.connection().execute(
        select(RULE.c.id, RULE.c.name, RULE.c.kind, RULE.c.params, RULE.c.action)
        .where(RULE.c.event == event, RULE.c.enabled.is_(True)).order_by(RULE.c.id)).all()
    rules = [{"id": r.id, "name": r.name, "kind": r.kind, "params": dict(r.params or {}),
              "action": r.action} for r in rows]
    seconds = current_app.config.get("RISK_RULES_CACHE_SECONDS", 5)
    if seconds:
        _RULES[event] = (time.monotonic() + seconds, rules)
    return rules


@sa_event.listens_for(RiskRule, "after_insert")
@sa_event.listens_for(RiskRule, "after_update")
@sa_event.listens_for(RiskRule, "after_delete")
def forget_rules(*_) -> None:
    _RULES.clear()


def _caller_is_writing() -> bool:
    """SQLite has one writer: a caller that already wrote would make our own connection wait
    for it."""
    connection = db.session.connection()
    if connection.dialect.name != "sqlite":
        return False
    return bool(getattr(connection.connection.dbapi_connection, "in_transaction", False))


def _on_own_connection(fact: Fact, rules: list[dict]) -> Assessment | None:
    """Decide on a connection of our own, committed at once; None when that cannot be (the
    caller's transaction then keeps the fact and the decision)."""
    if _caller_is_writing():
        return None
    try:
        with db.engine.connect() as connection:
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    connection.execute(text("SET LOCAL lock_timeout = '3s'"))
                return _decide(connection, fact, rules)
    except DBAPIError as exc:
        log.info("risk fact written in the caller's transaction: %s", exc.orig)
        return None


def _keep_blocked(caller, fact: Fact, verdict: Assessment) -> None:
    """Move a blocked event's fact and decision out of the caller's transaction onto a
    connection of our own, committed at once: they outlive the caller's rollback, and a
    caller that commits anyway does not keep a second copy."""
    caller.execute(delete(DECISION).where(DECISION.c.id == verdict.decision_id))
    caller.execute(delete(FACT).where(FACT.c.id == verdict.fact_id))
    with db.engine.connect() as connection:
        with connection.begin():
            fact_id = connection.execute(_INSERT_FACT, _fact_row(fact)).scalar_one()
            kept = Assessment(verdict.decision, verdict.fired, fact_id=fact_id)
            verdict.decision_id = _record_decision(connection, fact, kept, "closed")
            verdict.fact_id = fact_id


def _decide(connection, fact: Fact, rules: list[dict]) -> Assessment:
    earlier = _earlier(connection, fact)
    if earlier is not None:
        return earlier
    _lock_keys(connection, _counted_keys(fact, rules))
    fact.id = connection.execute(_INSERT_FACT, _fact_row(fact)).scalar_one()
    fired = evaluate(connection, fact, rules)
    verdict = Assessment(_most_severe(fired), fired, fact_id=fact.id, fresh=True)
    if fired or verdict.decision != "allow":
        status = "closed" if verdict.decision in ("allow", "block") else "open"
        verdict.decision_id = _record_decision(connection, fact, verdict, status)
    return verdict


def _fact_row(fact: Fact) -> dict:
    return {"event": fact.event, "member_id": fact.member_id, "device": fact.device,
            "ip": fact.ip, "address": fact.address, "payer": fact.payer, "amount": fact.amount,
            "text_digest": fact.text_digest, "reference": fact.reference,
            "created_at": fact.created_at}


def _earlier(connection, fact: Fact) -> Assessment | None:
    """The decision on the same member's event with this reference, if it was assessed."""
    if fact.reference is None or fact.member_id is None:
        return None
    fact_id = connection.execute(select(FACT.c.id).where(
        FACT.c.member_id == fact.member_id, FACT.c.event == fact.event,
        FACT.c.reference == fact.reference).order_by(FACT.c.id).limit(1)).scalar()
    if fact_id is None:
        return None
    row = connection.execute(select(DECISION.c.id, DECISION.c.decision, DECISION.c.fired).where(
        DECISION.c.reference == fact.reference, DECISION.c.event == fact.event)
        .order_by(DECISION.c.id).limit(1)).first()
    if row is None:
        return Assessment("allow", [], fact_id=fact_id)
    return Assessment(row.decision, list(row.fired or []), row.id, fact_id)


def _record_decision(connection, fact: Fact, verdict: Assessment, status: str) -> int:
    return connection.execute(_INSERT_DECISION, {
        "event": fact.event, "member_id": fact.member_id, "reference": fact.reference,
        "decision": verdict.decision, "fired": verdict.fired, "status": status,
        "created_at": now()}).scalar_one()


def _most_severe(fired: list[dict]) -> str:
    return max((f["action"] for f in fired), key=SEVERITY.__getitem__, default="allow")


def link(verdict: Assessment, reference: str) -> None:
    """Name what the assessed event became (`trade:12`, `after_sale:7`), in the caller's
    transaction: a case is then resolved on it, and a deferred job finds it."""
    if verdict.decision_id is None and not verdict.deferred:
        return
    connection = db.session.connection()
    if verdict.fact_id is not None:
        connection.execute(update(FACT).where(FACT.c.id == verdict.fact_id)
                           .values(reference=reference[:48]))
    if verdict.decision_id is not None:
        connection.execute(update(DECISION).where(DECISION.c.id == verdict.decision_id)
                           .values(reference=reference[:48]))


# -- serialising the counts of one key ------------------------------------------------------------

KEY_COLUMNS = {"member": "member_id", "device": "device", "ip": "ip", "address": "address",
               "payer": "payer"}


def _counted_keys(fact: Fact, rules: list[dict]) -> set[str]:
    """The keys whose facts the rules count: writers of the same key wait for each other."""
    keys = set()
    for rule in rules:
        params, kind = rule["params"], rule["kind"]
        name = params.get("key") or params.get("attribute") or \
            ("member" if kind in ("review_burst", "new_account_coupon") else None)
        if kind == "duplicate_text":
            keys.add(f"{fact.event}|text")
        elif name in KEY_COLUMNS:
            value = getattr(fact, KEY_COLUMNS[name])
            if value is not None:
                keys.add(f"{fact.event}|{name}|{value}")
    return keys


def _lock_keys(connection, keys: set[str]) -> None:
    """PostgreSQL: one transaction-scoped advisory lock per key, in sorted order (no
    deadlock). SQLite serialises every writer already."""
    if connection.dialect.name != "postgresql":
        return
    for key in sorted(keys):
        number = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": number})


# -- the rule kinds -------------------------------------------------------------------------------

def evaluate(connection, fact: Fact, rules: list[dict], upto_id: int | None = None) -> list:
    """Every rule that fires on the fact, with its inputs. Windows end now (or, for a fact
    evaluated later, at the fact: `upto_id`)."""
    fired = []
    for rule in rules:
        inputs = KINDS[rule["kind"]](Window(connection, fact, rule["params"], upto_id))
        if inputs is not None:
            fired.append({"rule_id": rule["id"], "name": rule["name"], "action": rule["action"],
                          "inputs": inputs})
    return fired


@dataclass
class Window:
    """What a rule kind reads: the fact, the rule's params, and the facts of its window."""

    connection: object
    fact: Fact
    params: dict
    upto_id: int | None = None

    def since(self, minutes: int | None = None, days: int | None = None):
        return self.fact.created_at - timedelta(minutes=minutes or 0, days=days or 0)

    def facts(self, *columns, minutes: int):
        query = select(*columns).where(FACT.c.event == self.fact.event,
                                       FACT.c.created_at >= self.since(minutes))
        return query.where(FACT.c.id <= self.upto_id) if self.upto_id else query

    def scalar(self, query):
        return self.connection.execute(query).scalar()


def _velocity(w: Window) -> dict | None:
    key, limit, minutes = w.params["key"], w.params["limit"], w.params["window_minutes"]
    column = KEY_COLUMNS[key]
    value = getattr(w.fact, column)
    if value is None:
        return None
    count = w.scalar(w.facts(func.count(), minutes=minutes).where(FACT.c[column] == value))
    if count <= limit:
        return None
    return {"key": key, "value": value, "count": count, "limit": limit,
            "window_minutes": minutes}


def _shared_attribute(w: Window) -> dict | None:
    attribute, most = w.params["attribute"], w.params["max_members"]
    minutes = w.params["window_minutes"]
    value = getattr(w.fact, KEY_COLUMNS[attribute])
    if value is None or w.fact.member_id is None:
        return None
    members = set(w.connection.execute(w.facts(FACT.c.member_id, minutes=minutes).where(
        FACT.c[KEY_COLUMNS[attribute]] == value, FACT.c.member_id.is_not(None))
        .distinct().limit(1000)).scalars()) | {w.fact.member_id}
    if len(members) <= most:
        return None
    return {"attribute": attribute, "value": value, "members": sorted(members)[:20],
            "count": len(members), "max_members": most, "window_minutes": minutes}


REFUND_KINDS = ("refund_only", "return_refund")


def _refund_rate(w: Window) -> dict | None:
    member_id, params = w.fact.member_id, w.params
    if member_id is None:
        return None
    since = w.since(days=params["window_days"])
    orders = w.scalar(select(func.count()).select_from(Order).where(
        Order.member_id == member_id, Order.paid_at.is_not(None), Order.paid_at >= since))
    requests = and_(AfterSale.member_id == member_id, AfterSale.kind.in_(REFUND_KINDS),
                    AfterSale.created_at >= since,
                    AfterSale.status.not_in(("rejected", "closed")))
    refunds = w.scalar(select(func.count()).select_from(AfterSale).where(requests))
    amount = Decimal(w.scalar(select(func.coalesce(func.sum(AfterSale.amount), 0))
                              .where(requests)) or 0)
    if w.fact.event == "refund_requested":   # the request being decided is not written yet
        refunds, amount = refunds + 1, amount + Decimal(w.fact.amount or 0)
    rate = Decimal(refunds) / orders if orders else Decimal(1 if refunds else 0)
    by_rate = "max_rate" in params and orders >= params["min_orders"] and \
        rate > Decimal(params["max_rate"])
    by_amount = "max_amount" in params and amount > Decimal(params["max_amount"])
    if not (by_rate or by_amount):
        return None
    return {"orders": orders, "refunds": refunds, "rate": f"{rate:.4f}",
            "amount": f"{amount:.2f}", "window_days": params["window_days"],
            **{k: params[k] for k in ("min_orders", "max_rate", "max_amount") if k in params}}


def _review_burst(w: Window) -> dict | None:
    limit, minutes = w.params["limit"], w.params["window_minutes"]
    if w.fact.member_id is None:
        return None
    count = w.scalar(w.facts(func.count(), minutes=minutes)
                     .where(FACT.c.member_id == w.fact.member_id))
    if count <= limit:
        return None
    return {"member_id": w.fact.member_id, "count": count, "limit": limit,
            "window_minutes": minutes}


DUPLICATE_SCAN = 5000


def _duplicate_text(w: Window) -> dict | None:
    digest, most = w.fact.text_digest, w.params["max_accounts"]
    minutes, least = w.params["window_minutes"], Decimal(w.params.get("similarity", "0.85"))
    if digest is None or w.fact.member_id is None:
        return None
    rows = w.connection.execute(w.facts(FACT.c.member_id, FACT.c.text_digest, minutes=minutes)
                                .where(FACT.c.text_digest.is_not(None),
                                       FACT.c.member_id.is_not(None))
                                .order_by(FACT.c.id.desc()).limit(DUPLICATE_SCAN)).all()
    alike = {row.member_id for row in rows if similarity(digest, row.text_digest) >= least}
    alike.add(w.fact.member_id)
    if len(alike) <= most:
        return None
    return {"accounts": len(alike), "members": sorted(alike)[:20], "max_accounts": most,
            "similarity": str(least), "window_minutes": minutes}


def _new_account_coupon(w: Window) -> dict | None:
    params, member_id = w.params, w.fact.member_id
    if member_id is None:
        return None
    created = w.scalar(select(Member.created_at).where(Member.id == member_id))
    if created is None:
        return None
    age = w.fact.created_at - created
    if age >= timedelta(days=params["account_age_days"]):
        return None
    claims = w.scalar(w.facts(func.count(), minutes=params["window_minutes"])
                      .where(FACT.c.member_id == member_id))
    if claims <= params["limit"]:
        return None
    return {"member_id": member_id, "account_age_days": age.days, "claims": claims,
            "limit": params["limit"], "window_minutes": params["window_minutes"],
            "new_below_days": params["account_age_days"]}


def _blacklist(w: Window) -> dict | None:
    wanted = set(w.params.get("kinds") or BLACKLIST_KINDS)
    candidates = [(kind, value) for kind, value in _listed_candidates(w) if kind in wanted]
    if not candidates:
        return None
    rows = w.connection.execute(select(BLACKLIST.c.id, BLACKLIST.c.kind, BLACKLIST.c.value).where(
        or_(*[and_(BLACKLIST.c.kind == k, BLACKLIST.c.value == v) for k, v in candidates]))
        .order_by(BLACKLIST.c.id)).all()
    if not rows:
        return None
    from services.member import mask_phone

    return {"matches": [{"kind": r.kind, "blacklist_id": r.id,
                         "value": mask_phone(r.value) if r.kind == "phone" else r.value}
                        for r in rows]}


def _listed_candidates(w: Window) -> list[tuple[str, str]]:
    fact, found = w.fact, []
    if fact.member_id is not None:
        member = w.connection.execute(select(Member.account, Member.phone)
                                      .where(Member.id == fact.member_id)).first()
        found.append(("member", str(fact.member_id)))
        if member is not None:
            found.append(("member", member.account))
            if normal_phone(member.phone):
                found.append(("phone", normal_phone(member.phone)))
    if fact.phone is not None:
        found.append(("phone", fact.phone))
    found += [(kind, getattr(fact, kind)) for kind in ("device", "ip", "address")
              if getattr(fact, kind) is not None]
    return found


def _credit_below(w: Window) -> dict | None:
    if w.fact.member_id is None:
        return None
    score = stored_or_computed(w.fact.member_id, w.connection)[0]
    if score >= w.params["score"]:
        return None
    return {"member_id": w.fact.member_id, "score": score, "below": w.params["score"]}


KINDS = {"velocity": _velocity, "shared_attribute": _shared_attribute,
         "refund_rate": _refund_rate, "review_burst": _review_burst,
         "duplicate_text": _duplicate_text, "new_account_coupon": _new_account_coupon,
         "blacklist": _blacklist, "credit_below": _credit_below}
assert set(KINDS) == set(RULE_KINDS)


# -- rules and blacklists, checked on save --------------------------------------------------------

MAX_WINDOW_MINUTES = 60 * 24 * 366
MAX_WINDOW_DAYS = 3660
# kinds that read what only some events carry
KIND_EVENTS = {"review_burst": ("review_posted",), "duplicate_text": ("review_posted",),
               "new_account_coupon": ("coupon_claimed",)}
VELOCITY_KEYS = ("member", "device", "ip", "address", "payer")
SHARED_ATTRIBUTES = ("address", "device", "ip", "payer")


class ParamsError(ValidationFailed):
    def __init__(self, reason: str):
        super().__init__("Validation failed", {"params": [reason]})


def _whole(params: dict, name: str, low: int, high: int, default=None) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ParamsError(f"{name}: a whole number from {low} to {high}.")
    return value


def _choice(params: dict, name: str, choices) -> str:
    value = params.get(name)
    if value not in choices:
        raise ParamsError(f"{name}: one of {', '.join(choices)}.")
    return value


def _share(params: dict, name: str, low: Decimal, default=None) -> str:
    """A fraction in [low, 1], kept as text ("0.5")."""
    value = params.get(name, default)
    try:
        number = Decimal(str(value)) if not isinstance(value, bool) and \
            isinstance(value, (int, float, str, Decimal)) else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite() or not low <= number <= 1:
        raise ParamsError(f"{name}: a number from {low} to 1 (0.5 = 50 %).")
    return str(number.normalize()) if number != 1 else "1"


def _money(params: dict, name: str) -> str:
    value = _amount_text(params.get(name))
    if value is None or Decimal(value) <= 0 or Decimal(value) != Decimal(str(params[name])):
        raise ParamsError(f"{name}: an amount above 0 such as \"500.00\".")
    return value


def _window(params: dict) -> dict:
    return {"window_minutes": _whole(params, "window_minutes", 1, MAX_WINDOW_MINUTES)}


def _params_velocity(p):
    return {"key": _choice(p, "key", VELOCITY_KEYS), "limit": _whole(p, "limit", 1, 100000),
            **_window(p)}


def _params_shared(p):
    return {"attribute": _choice(p, "attribute", SHARED_ATTRIBUTES),
            "max_members": _whole(p, "max_members", 1, 10000), **_window(p)}


def _params_refund_rate(p):
    if "max_rate" not in p and "max_amount" not in p:
        raise ParamsError("max_rate (with min_orders) or max_amount, or both.")
    clean = {"window_days": _whole(p, "window_days", 1, MAX_WINDOW_DAYS)}
    if "max_rate" in p:
        clean["max_rate"] = _share(p, "max_rate", Decimal(0))
        clean["min_orders"] = _whole(p, "min_orders", 1, 100000, default=1)
    elif "min_orders" in p:
        raise ParamsError("min_orders goes with max_rate.")
    if "max_amount" in p:
        clean["max_amount"] = _money(p, "max_amount")
    return clean


def _params_burst(p):
    return {"limit": _whole(p, "limit", 1, 100000), **_window(p)}


def _params_duplicate(p):
    return {"max_accounts": _whole(p, "max_accounts", 1, 10000), **_window(p),
            "similarity": _share(p, "similarity", Decimal("0.5"), default="0.85")}


def _params_new_account(p):
    return {"account_age_days": _whole(p, "account_age_days", 1, MAX_WINDOW_DAYS),
            "limit": _whole(p, "limit", 0, 100000), **_window(p)}


def _params_blacklist(p):
    kinds = p.get("kinds", list(BLACKLIST_KINDS))
    if not isinstance(kinds, list) or not kinds or not set(kinds) <= set(BLACKLIST_KINDS):
        raise ParamsError(f"kinds: some of {', '.join(BLACKLIST_KINDS)}.")
    return {"kinds": [k for k in BLACKLIST_KINDS if k in kinds]}


def _params_credit(p):
    return {"score": _whole(p, "score", 1, 1000)}


PARAMS = {"velocity": (_params_velocity, {"key", "limit", "window_minutes"}),
          "shared_attribute": (_params_shared, {"attribute", "max_members", "window_minutes"}),
          "refund_rate": (_params_refund_rate, {"min_orders", "max_rate", "window_days",
                                                "max_amount"}),
          "review_burst": (_params_burst, {"limit", "window_minutes"}),
          "duplicate_text": (_params_duplicate, {"max_accounts", "window_minutes",
                                                 "similarity"}),
          "new_account_coupon": (_params_new_account, {"account_age_days", "limit",
                                                       "window_minutes"}),
          "blacklist": (_params_blacklist, {"kinds"}),
          "credit_below": (_params_credit, {"score"})}


def check_params(kind: str, params) -> dict:
    """A kind's params, normalised; 422 naming `params` with the reason otherwise."""
    if not isinstance(params, dict):
        raise ParamsError("An object; see the kind's params.")
    check, known = PARAMS[kind]
    unknown = sorted(set(params) - known - {"deferred"})
    if unknown:
        raise ParamsError(f"Unknown for {kind}: {', '.join(map(str, unknown))}.")
    clean = check(params)
    deferred = params.get("deferred", False)
    if not isinstance(deferred, bool):
        raise ParamsError("deferred: true or false.")
    if deferred:
        clean["deferred"] = True
    return clean


def check_rule(rule: RiskRule) -> RiskRule:
    """What a rule must say to be saved: 422 naming the field otherwise."""
    if not isinstance(rule.name, str) or not rule.name.strip() or len(rule.name.strip()) > 64:
        raise ValidationFailed.field("name", "Required, at most 64 characters.")
    rule.name = rule.name.strip()
    if rule.event not in RISK_EVENTS:
        raise ValidationFailed.field("event", f"One of: {', '.join(RISK_EVENTS)}.")
    if rule.kind not in RULE_KINDS:
        raise ValidationFailed.field("kind", f"One of: {', '.join(RULE_KINDS)}.")
    if rule.event not in KIND_EVENTS.get(rule.kind, RISK_EVENTS):
        raise ValidationFailed.field("kind", f"{rule.kind} reads only events "
                                             f"{', '.join(KIND_EVENTS[rule.kind])}.")
    rule.action = rule.action or "review"
    if rule.action not in RISK_ACTIONS:
        raise ValidationFailed.field("action", f"One of: {', '.join(RISK_ACTIONS)}.")
    rule.params = check_params(rule.kind, rule.params if rule.params is not None else {})
    if rule.enabled is None:
        rule.enabled = True
    return rule


HEX_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def check_blacklist(entry: Blacklist) -> Blacklist:
    """A blacklist entry, its value normalised as the engine compares it: a member's id or
    account, a phone's digits, a device id, an IP address, an address (its digest; typed as
    region codes and street, or the digest shown in a decision's inputs)."""
    if entry.kind not in BLACKLIST_KINDS:
        raise ValidationFailed.field("kind", f"One of: {', '.join(BLACKLIST_KINDS)}.")
    value = entry.value.strip() if isinstance(entry.value, str) else ""
    if not value or len(value) > 128 or not value.isprintable():
        raise ValidationFailed.field("value", "Text of 1 to 128 characters.")
    if entry.kind == "phone":
        value = normal_phone(value) or ""
        if not 5 <= len(value) <= 20:
            raise ValidationFailed.field("value", "A phone number.")
    elif entry.kind == "ip":
        value = normal_ip(value)
    elif entry.kind == "device" and len(value) > MAX_DEVICE:
        raise ValidationFailed.field("value", f"A device id of at most {MAX_DEVICE} characters.")
    elif entry.kind == "address" and not HEX_DIGEST.match(value.lower()):
        value = address_digest(value) or ""
    entry.value = value.lower() if entry.kind == "address" else value
    if entry.reason is not None and (not isinstance(entry.reason, str) or len(entry.reason) > 255):
        raise ValidationFailed.field("reason", "At most 255 characters.")
    taken = db.session.scalar(select(Blacklist.id).where(
        Blacklist.kind == entry.kind, Blacklist.value == entry.value,
        Blacklist.id != (entry.id or 0)).limit(1))
    if taken is not None:
        raise ValidationFailed.field("value", "Already on the list.")
    return entry


# -- deferred rules and decisions after the fact --------------------------------------------------

def evaluate_deferred(fact_id: int) -> RiskDecision | None:
    """The job: the fact's deferred rules, with windows ending at the fact. Runs once in
    effect: a decision already made for the fact is answered again."""
    row = db.session.get(RiskFact, fact_id)
    if row is None:
        return None
    fact = Fact(**{c.key: getattr(row, c.key) for c in FACT.columns})
    rules = [r for r in _rules_of(fact.event) if r["params"].get("deferred")]
    done = _deferred_decision(fact)
    if done is not None or not rules:
        db.session.rollback()
        return done
    fired = evaluate(db.session.connection(), fact, rules, upto_id=fact.id)
    if not fired:
        db.session.rollback()
        return None
    for item in fired:
        item["inputs"] = {**item["inputs"], "fact_id": fact.id, "deferred": True}
    verdict = Assessment(_most_severe(fired), fired, fact_id=fact.id)
    # after the fact nothing can be refused any more: every flag is a case for a person
    verdict.decision_id = _record_decision(db.session.connection(), fact, verdict,
                                           "closed" if verdict.decision == "allow" else "open")
    if SEVERITY[verdict.decision] >= SEVERITY["hold"]:
        hold_after_the_fact(fact.reference)
    db.session.commit()
    return db.session.get(RiskDecision, verdict.decision_id)


def _deferred_decision(fact: Fact) -> RiskDecision | None:
    if fact.reference is None:
        candidates = db.session.scalars(select(RiskDecision).where(
            RiskDecision.event == fact.event, RiskDecision.reference.is_(None),
            RiskDecision.member_id == fact.member_id,
            RiskDecision.created_at >= fact.created_at))
    else:
        candidates = db.session.scalars(select(RiskDecision).where(
            RiskDecision.event == fact.event, RiskDecision.reference == fact.reference))
    return next((d for d in candidates
                 if any((f.get("inputs") or {}).get("fact_id") == fact.id
                        for f in d.fired or [])), None)


def _trade_of(reference: str | None) -> int | None:
    """The trade a case is about: `trade:<id>`, or the trade of `payment:<id>`."""
    kind, _, ident = (reference or "").partition(":")
    if not ident.isdigit():
        return None
    if kind == "trade":
        return int(ident)
    if kind == "payment":
        from models.payment import Payment

        return db.session.scalar(select(Payment.trade_id).where(Payment.id == int(ident)))
    return None


def hold_after_the_fact(reference: str | None, reason: str | None = None) -> None:
    """The trade a late decision is about waits for a person: held, and its unshipped
    shipping notices held."""
    from services import order

    trade_id = _trade_of(reference)
    if trade_id is None:
        return
    trade = order.trade_for_update(trade_id)
    if trade.status in ("cancelled", "closed"):
        return
    trade.risk_status = "held"
    order.hold_for_risk([n for o in trade.orders for n in o.notices],
                        reason or order.RISK_HOLD)


@subscribe("payment.succeeded", "risk.payment_fact")
def _payment_fact(payload: dict) -> None:
    """Money arrived: the payment is a fact (its payer, as a digest); a hold or block then
    holds the trade's shipping (the money cannot be refused any more)."""
    from models.payment import Payment

    payment = db.session.get(Payment, payload.get("payment_id"))
    if payment is None:
        return
    member_id = db.session.scalar(select(Trade.member_id).where(Trade.id == payment.trade_id))
    fact = _fact("payment", member_id, None, None, None, None, payment.amount, None,
                 f"payment:{payment.id}")
    fact.payer = payload.get("payer") if isinstance(payload.get("payer"), str) else None
    verdict = _assess(fact)
    if SEVERITY[verdict.decision] >= SEVERITY["hold"] and payload.get("applied", True):
        if verdict.decision == "block" and verdict.decision_id is not None:
            db.session.execute(update(DECISION).where(DECISION.c.id == verdict.decision_id)
                               .values(status="open"))
        hold_after_the_fact(fact.reference)


# -- the queue: people resolve cases --------------------------------------------------------------

RESOLUTIONS = ("release", "confirm")


def resolve(decision_id, resolution, note=None) -> RiskDecision:
    """A person decides an open case. release: a held trade and its shipping notices go on.
    confirm: an unpaid trade is cancelled, a paid one stays held (its notices too) with the
    note; a refund request still waiting is rejected. 409 once the case is closed."""
    if resolution not in RESOLUTIONS:
        raise ValidationFailed.field("resolution", "release or confirm.")
    if note is not None and (not isinstance(note, str) or len(note) > 255):
        raise ValidationFailed.field("note", "At most 255 characters.")
    note = note.strip() if note and note.strip() else None
    decision = db.session.execute(select(RiskDecision).where(
        RiskDecision.id == decision_id).with_for_update()).scalar_one_or_none() \
        if is_row_id(decision_id) else None
    if decision is None:
        raise NotFoundError("Not found")
    if decision.status != "open":
        raise ConflictError("The case is closed", {"status": [decision.status]})
    from services.audit import set_reason

    set_reason(db.session, f"risk {resolution}" + (f": {note}" if note else ""))
    decision.status, decision.resolution, decision.note = "closed", resolution, note
    decision.resolved_by, decision.resolved_at = current_actor().name, now()
    _apply(decision)
    if decision.member_id is not None:
        credit_score(decision.member_id)
    publish("risk_decision.resolved", {"decision_id": decision.id, "resolution": resolution})
    return decision


def _apply(decision: RiskDecision) -> None:
    from services import after_sale, order

    trade_id = _trade_of(decision.reference)
    kind, _, ident = (decision.reference or "").partition(":")
    if trade_id is not None and decision.resolution == "release":
        trade = order.trade_for_update(trade_id)
        held = [n.id for o in trade.orders for n in o.notices
                if n.status == "held" and (n.hold_reason or "").startswith(order.RISK_HOLD)]
        for notice_id in held:
            order.release_notice(notice_id, by_risk=True)
        order.trade_for_update(trade_id).risk_status = "none"
    elif trade_id is not None:
        trade = order.trade_for_update(trade_id)
        if trade.status == "pending_payment":
            order.cancel_trade(trade_id, f"Risk control: {decision.note or 'confirmed'}")
        else:
            hold_after_the_fact(decision.reference, f"{order.RISK_HOLD} confirmed: "
                                                    f"{decision.note or decision.decision}")
    elif kind == "after_sale" and ident.isdigit() and decision.resolution == "confirm":
        item = db.session.get(AfterSale, int(ident))
        if item is not None and item.status == "requested":
            after_sale.reject(item.id, f"Risk control: {decision.note or 'confirmed'}")


def refund_on_hold(after_sale_id: int) -> bool:
    """An open hold (or later block) case stops the request's refund until it is resolved."""
    return db.session.scalar(select(RiskDecision.id).where(
        RiskDecision.reference == f"after_sale:{after_sale_id}", RiskDecision.status == "open",
        RiskDecision.decision.in_(("hold", "block"))).limit(1)) is not None


def ensure_refund_not_held(after_sale_id: int) -> None:
    if refund_on_hold(after_sale_id):
        raise ConflictError("Risk control holds this refund until its case is resolved",
                            {"status": ["risk_hold"]})


# -- login ----------------------------------------------------------------------------------------

def login_refused(user_id: int) -> bool:
    """The login API asks: device from X-Device-Id, IP from the remote address. The fact and
    any decision are committed here; True when the login is blocked."""
    from flask import request

    device = request.headers.get("X-Device-Id")
    if device is not None and (len(device) > MAX_DEVICE or not device.isprintable()):
        device = None
    verdict = assess("login", device=device, ip=request.remote_addr,
                     reference=f"user:{user_id}")
    db.session.commit()
    return verdict.blocked


# -- credit score ---------------------------------------------------------------------------------

CREDIT_BASE = 600
CREDIT_REFRESH = timedelta(hours=24)
CREDIT_BATCH = 500


def _factor(value, points: int) -> dict:
    return {"value": value, "points": points}


def credit_factors(member_id: int, connection=None) -> tuple[int, dict]:
    """A member's credit score (0–1000) from history, with each factor's value and points:
    completed orders and account age raise it; refunds, a high refund rate, after-sales
    disputes (rejected requests, complaints) and risk flags lower it."""
    from models.ticket import Ticket

    conn = connection if connection is not None else db.session.connection()

    def count(query) -> int:
        return conn.execute(query).scalar() or 0

    created = conn.execute(select(Member.created_at).where(Member.id == member_id)).scalar()
    age_days = max((now() - created).days, 0) if created is not None else 0
    completed = count(select(func.count()).select_from(Order).where(
        Order.member_id == member_id, Order.status == "completed"))
    paid = count(select(func.count()).select_from(Order).where(
        Order.member_id == member_id, Order.paid_at.is_not(None)))
    refunded = count(select(func.count()).select_from(AfterSale).where(
        AfterSale.member_id == member_id, AfterSale.status == "refunded"))
    rejected = count(select(func.count()).select_from(AfterSale).where(
        AfterSale.member_id == member_id, AfterSale.status == "rejected"))
    complaints = count(select(func.count()).select_from(Ticket).where(
        Ticket.member_id == member_id, Ticket.source == "complaint"))
    flags = dict(conn.execute(select(DECISION.c.decision, func.count()).where(
        DECISION.c.member_id == member_id, DECISION.c.decision.in_(("review", "hold", "block")),
        or_(DECISION.c.resolution.is_(None), DECISION.c.resolution != "release"))
        .group_by(DECISION.c.decision)).all())
    rate = Decimal(refunded) / paid if paid else Decimal(0)
    factors = {
        "base": _factor(CREDIT_BASE, CREDIT_BASE),
        "completed_orders": _factor(completed, min(completed * 10, 250)),
        "account_age_days": _factor(age_days, min(age_days // 5, 100)),
        "refunds": _factor(refunded, -min(refunded * 10, 150)),
        "refund_rate": _factor(f"{rate:.4f}", -int(min(rate, 1) * 200) if paid >= 3 else 0),
        "disputes": _factor(rejected + complaints, -min((rejected + complaints) * 25, 200)),
        "risk_flags": _factor(sum(flags.values()), -min(
            (flags.get("review", 0) + flags.get("hold", 0)) * 20 + flags.get("block", 0) * 60,
            300)),
    }
    score = max(0, min(1000, sum(f["points"] for f in factors.values())))
    return score, factors


def credit_score(member_id) -> CreditScore:
    """Compute and keep a member's score (on demand, after a case, and by the tick)."""
    if not is_row_id(member_id) or db.session.get(Member, member_id) is None:
        raise NotFoundError("Not found", {"member_id": ["No such member."]})
    db.session.flush()          # what this transaction changed counts (a case just resolved)
    score, factors = credit_factors(member_id)
    row = db.session.scalar(select(CreditScore).where(CreditScore.member_id == member_id))
    if row is None:
        row = CreditScore(member_id=member_id, score=score, factors=factors, updated_at=now())
        db.session.add(row)
    elif row.score != score or row.factors != factors:
        row.score, row.factors, row.updated_at = score, factors, now()
    else:
        row.updated_at = now()
    db.session.flush()
    return row


def stored_or_computed(member_id: int, connection=None) -> tuple[int, dict]:
    """The kept score, or one computed now (nothing written)."""
    conn = connection if connection is not None else db.session.connection()
    kept = conn.execute(select(CreditScore.score, CreditScore.factors)
                        .where(CreditScore.member_id == member_id)).first()
    return (kept.score, kept.factors) if kept is not None else credit_factors(member_id, conn)


def credit_of(member_id) -> dict:
    """What the member page shows: "credit_score" and "credit_factors"."""
    if not is_row_id(member_id):
        return {"credit_score": None, "credit_factors": {}}
    score, factors = stored_or_computed(member_id)
    return {"credit_score": score, "credit_factors": factors}


@scheduled("risk.credit_scores")
def refresh_credit_scores() -> int:
    """Members without a score or with one older than a day get theirs (re)computed, a
    batch per tick, oldest first."""
    stale = now() - CREDIT_REFRESH
    due = db.session.scalars(
        select(Member.id).outerjoin(CreditScore, CreditScore.member_id == Member.id)
        .where(or_(CreditScore.id.is_(None), CreditScore.updated_at < stale))
        .order_by(CreditScore.updated_at.is_not(None), CreditScore.updated_at, Member.id)
        .limit(CREDIT_BATCH)).all()
    for member_id in due:
        credit_score(member_id)
    db.session.commit()
    return len(due)


# -- dashboards -----------------------------------------------------------------------------------

def decisions_by_rule(days: int = 30) -> list[tuple[str, int]]:
    """How many decisions each rule fired in over the last `days` days, most first."""
    counts: dict[str, int] = {}
    for (fired,) in db.session.execute(select(DECISION.c.fired).where(
            DECISION.c.created_at >= now() - timedelta(days=days))):
        for name in {item.get("name") for item in fired or []}:
            counts[name] = counts.get(name, 0) + 1
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def top_flagged_members(days: int = 30, limit: int = 10) -> list[tuple[int, str, int]]:
    """Members with the most review, hold or block decisions over the last `days` days."""
    flagged = func.count(DECISION.c.id)
    return [tuple(row) for row in db.session.execute(
        select(Member.id, Member.account, flagged).join(Member, Member.id == DECISION.c.member_id)
        .where(DECISION.c.created_at >= now() - timedelta(days=days),
               DECISION.c.decision.in_(("review", "hold", "block")))
        .group_by(Member.id, Member.account).order_by(flagged.desc(), Member.id).limit(limit))]
