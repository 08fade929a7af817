"""Checkout through `services.order.place`, against the same transaction in raw SQL, in one run.

    .venv/bin/python -m bench.checkout [--runs 3] [--duration 5] [--ramp 1] [--quick]
                                       [--keep-db] [--show-sql] [--no-profile]
                                       [--profile-ops 150] [--profile-clock wall|cpu]

Scenarios (clients are real OS processes forked from the benchmark, one database connection
each, released together by a start barrier; each client places checkouts in a loop until
ramp + duration has passed, and the checkouts that END inside [start + ramp, start + ramp +
duration] are counted, so every client is busy during the whole counted window):

* **hot SKU**: 1-line checkouts (quantity 1) of ONE SKU, 8 and 32 clients (every client
  contends for the same stock row). Goal: service ≥ 60 % of raw SQL.
* **place**: 3-line checkouts (3 different SKUs out of 100, quantity 1 each), 8 clients.
  Goal: service ≥ 50 % of raw SQL.

Sides, interleaved run by run (the order rotates from run to run):

* **service**: `services.order.place(body, key)` + `db.session.commit()` inside
  `app.app_context()` and `acting_as(Actor.system("bench"))`, the application built by
  `app.create_app()` on the bench database (production engine options: `pool_pre_ping`).
* **raw**: the ceiling. psycopg 3, one connection per client, replaying **exactly the
  statements the service issued** for the same checkout (captured once per run with a
  SQLAlchemy `before_cursor_execute` listener: same SQL text, same order, same executemany
  batches, the parameters computed for each checkout, the audit rows built as the audit hook
  builds them: same columns, same masked values, same order). Ratio = service ops/s ÷ raw
  ops/s of the same run (median of per-run ratios). The mirror also knows the statements of
  the service before 7f249e0 (per-line SKU/SPU, alert and reload SELECTs, lazy loads), so
  the same benchmark can be run on an export of an older commit.
* **lean**: informative. The same rows written (trade, order, lines, timeline, idempotency
  key, reservations, outbox event, ledger, audit) with the fewest statements: buyer and cart
  read in two SELECTs, ledger and audit rows in one multi-row INSERT each, and the hot stock
  UPDATE issued last, so the row lock is held for 2 statements + COMMIT. It shows how much of
  the gap statement count and lock hold time explain.

After each measurement the database is checked: trades, orders, lines, reservations,
idempotency keys and outbox events equal the checkouts counted, `stock.reserved` equals the
units reserved, the ledger holds one row per reservation (with consecutive `reserved_after`
values per stock row) and the audit log the same rows per checkout as the service writes.
Before the first run, one checkout of each side must write the same rows table by table, and
audit rows that name the same columns and mask the same values.
Background jobs: REDIS_URL is unset and `trade.placed` has no subscriber, so `publish()`
writes the outbox row only and no delivery job exists; the benchmark fails if a job appears.

Then, one client alone (no contention): ms and client CPU per checkout for each side, the
service with the audit hook, pool pre-ping or low-stock check switched off (bench only), and
a cProfile of the service grouped by library (wall clock, or the client's CPU time with
`--profile-clock cpu`).
"""
import argparse
import cProfile
import functools
import hashlib
import io
import json
import multiprocessing
import os
import pstats
import random
import re
import resource
import secrets
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

from bench.common import (PROJECT_ROOT, RESULTS_DIR, describe_machine, drop_database,
                          git_revision, machine, markdown_table, median, recreate_database)

DB_NAME = os.environ.get("BENCH_DB_NAME", "houtai_bench_checkout")
ACTOR_NAME = "bench"           # Actor.system("bench") → "system:bench"
SKU_COUNT = 100                # 10 colours × 10 sizes of one on-sale SPU
ON_HAND = 10_000_000           # never runs out (and stock is reset between measurements)
WARMUP_OPS = 6                 # per client before the barrier (psycopg prepares after 5)
ZERO = Decimal("0.00")
CENT = Decimal("0.01")
SECRET = "bench-only-secret-key-not-used-for-anything-0123456789"
# Columns the audit hook leaves out of `changes` (services/audit.py IGNORED_COLUMNS).
AUDIT_IGNORED = {"last_login", "login_count", "fail_login_count", "changed_on", "created_on",
                 "updated_at", "created_at"}
# What the audit hook writes for a masked value (services/audit.py HIDDEN).
AUDIT_HIDDEN = "[hidden]"
# model name → columns the audit hook masks (filled from services/audit.py by build_app)
AUDIT_HIDDEN_BY_MODEL: dict = {}
SIDES = ("service", "raw", "lean")
SIDE_LABEL = {"service": "service (place + commit)", "raw": "raw SQL, same statements",
              "lean": "raw SQL, lean (batched, hot row last)"}
WRITTEN_TABLES = ["trade", '"order"', "order_line", "order_event", "order_reservation",
                  "idempotency_key", "outbox_event", "event_delivery", "stock_ledger",
                  "audit_log"]


class BenchError(RuntimeError):
    pass


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    clients: int
    lines: int
    goal: float

    @property
    def key(self) -> str:
        return f"{self.name}-{self.clients}"


SCENARIOS = [
    Scenario("hot", "hot SKU, 1 line", 8, 1, 0.60),
    Scenario("hot", "hot SKU, 1 line", 32, 1, 0.60),
    Scenario("place", "place, 3 lines over 100 SKUs", 8, 3, 0.50),
]


@dataclass
class Fixture:
    database_url: str
    member_id: int
    address_id: int
    sku_ids: list
    stock_of: dict              # sku id → stock id
    warehouse_id: int
    hot_sku: int


# Everything a forked client needs; set in the parent before forking (fork copies it).
STATE: dict = {}


# -- bodies ---------------------------------------------------------------------------------------

def cart(scenario: Scenario, rng: random.Random, fixture: Fixture) -> list[int]:
    if scenario.name == "hot":
        return [fixture.hot_sku]
    return rng.sample(fixture.sku_ids, scenario.lines)


def body_of(fixture: Fixture, skus: list[int]) -> dict:
    return {"member_id": fixture.member_id, "address_id": fixture.address_id,
            "lines": [{"sku_id": sku, "quantity": 1} for sku in skus]}


# -- the application and the data ---------------------------------------------------------------

def build_app(database_url: str, instance_path: str):
    from app import create_app
    from config import normalise_database_url

    app = create_app({
        "SQLALCHEMY_DATABASE_URI": normalise_database_url(database_url),
        # production's pre-ping; one connection per client process (two at most)
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True, "pool_size": 1, "max_overflow": 1},
        "REDIS_URL": None,            # no RQ: jobs would run in-process after commit
        "RATELIMIT_STORAGE_URI": "memory://",
        "RATELIMIT_ENABLED": False,
        "SECRET_KEY": SECRET,
        "HOUTAI_QUEUE": "houtai-bench-checkout",
    }, instance_path=instance_path)
    read_audit_masks()
    return app


def make_data(app, database_url: str) -> Fixture:
    """A shop, a category with two sales attributes, a brand, one on-sale SPU with 100 SKUs,
    a warehouse with ON_HAND units of each SKU, a member with an address; all through the
    services, as `houtai demo` and tests/factories.py make them."""
    from app.extensions import db
    from models.inventory import Warehouse
    from models.member import Member, MemberAddress
    from models.product import Attribute, AttributeKind, Brand, Category, InputType, Spu
    from models.shop import ShopStatus
    from services import inventory, product
    from services.actor import Actor, acting_as
    from services.demo import ensure_shop

    with app.app_context(), acting_as(Actor.system(ACTOR_NAME)):
        shop = ensure_shop("BENCH", "Bench shop", ShopStatus.open, Decimal("0.0500"))
        root = Category(name="Bench")
        db.session.add(root)
        product.place_category(root)
        leaf = Category(name="Bench tees", parent_id=root.id)
        db.session.add(leaf)
        product.place_category(leaf)
        colour = Attribute(name="Colour", kind=AttributeKind.sales,
                           input_type=InputType.single_select,
                           options=[f"colour-{n}" for n in range(10)], required=True,
                           category_id=leaf.id)
        size = Attribute(name="Size", kind=AttributeKind.sales,
                         input_type=InputType.single_select,
                         options=[f"size-{n}" for n in range(10)], required=True,
                         category_id=leaf.id)
        brand = Brand(name="Bench brand", enabled=True)
        db.session.add_all([colour, size, brand])
        db.session.commit()
        spu = Spu(shop_id=shop.id, title="Bench tee", category_id=leaf.id, brand_id=brand.id,
                  attribute_values={})
        product.prepare_spu(spu, creating=True)
        db.session.add(spu)
        db.session.flush()
        product.record_creation(spu)
        skus = product.generate_skus(spu.id, {str(colour.id): colour.options,
                                              str(size.id): size.options}, Decimal("99.00"))
        product.submit_spu(spu.id)
        product.approve_spu(spu.id)
        db.session.commit()
        if len(skus) != SKU_COUNT:
            raise BenchError(f"{len(skus)} SKUs generated, expected {SKU_COUNT}")
        warehouse = Warehouse(code="WH-BENCH", name="Bench warehouse", region="310000")
        db.session.add(warehouse)
        db.session.commit()
        stock_of = {}
        for sku in skus:
            stock_of[sku.id] = inventory.adjust(sku.id, warehouse.id, ON_HAND, "bench stock").id
        db.session.commit()
        member = Member(account="bench_buyer", name="王小明", phone="13812345678")
        db.session.add(member)
        db.session.flush()
        address = MemberAddress(member_id=member.id, recipient="王小明", phone="13812345678",
                                province_code="310000", city_code="310100",
                                district_code="310104", detail="漕溪北路 88 号 2 号楼 301 室",
                                is_default=True)
        db.session.add(address)
        db.session.commit()
        sku_ids = [sku.id for sku in skus]
        fixture = Fixture(database_url=database_url, member_id=member.id,
                          address_id=address.id, sku_ids=sku_ids, stock_of=stock_of,
                          warehouse_id=warehouse.id, hot_sku=sku_ids[0])
        db.session.remove()
    return fixture


def reset(database_url: str) -> None:
    """Empty what checkouts write, give the stock back, vacuum, checkpoint."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(WRITTEN_TABLES)} RESTART IDENTITY CASCADE")
        conn.execute("UPDATE stock SET reserved = 0, on_hand = %s", (ON_HAND,))
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")


def effects(database_url: str) -> dict:
    import psycopg

    with psycopg.connect(database_url) as conn:
        counts = {table.strip('"'): conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                  for table in WRITTEN_TABLES}
        counts["reserved_units"] = conn.execute(
            "SELECT coalesce(sum(reserved), 0) FROM stock").fetchone()[0]
        counts["reservation_units"] = conn.execute(
            "SELECT coalesce(sum(quantity), 0) FROM order_reservation").fetchone()[0]
        counts["reserve_ledger_rows"] = conn.execute(
            "SELECT count(*) FROM stock_ledger WHERE reason = 'reserve'").fetchone()[0]
        counts["trade.placed"] = conn.execute(
            "SELECT count(*) FROM outbox_event WHERE name = 'trade.placed'").fetchone()[0]
        counts["audit"] = dict(conn.execute(
            "SELECT model, count(*) FROM audit_log GROUP BY model ORDER BY model").fetchall())
        # one ledger row per reservation: per stock row, reserved_after runs 1..reserved
        counts["ledger_mismatch"] = conn.execute("""
            SELECT count(*) FROM stock s LEFT JOIN (
                SELECT stock_id, count(*) AS n, count(DISTINCT reserved_after) AS d,
                       max(reserved_after) AS hi, min(reserved_before) AS lo
                FROM stock_ledger WHERE reason = 'reserve' GROUP BY stock_id) l
              ON l.stock_id = s.id
            WHERE s.reserved <> coalesce(l.n, 0) OR coalesce(l.d, 0) <> coalesce(l.n, 0)
               OR (l.n > 0 AND (l.hi <> s.reserved OR l.lo <> 0))""").fetchone()[0]
    return counts


def expected_effects(ops: int, lines: int, audit_per_op: Counter) -> dict:
    units = ops * lines
    return {"trade": ops, "order": ops, "order_line": units, "order_event": ops,
            "order_reservation": units, "idempotency_key": ops, "outbox_event": ops,
            "event_delivery": 0, "stock_ledger": units, "audit_log": ops * sum(
                audit_per_op.values()),
            "reserved_units": units, "reservation_units": units, "reserve_ledger_rows": units,
            "trade.placed": ops, "audit": {model: n * ops for model, n in
                                           sorted(audit_per_op.items()) if n * ops},
            "ledger_mismatch": 0}


def verify(database_url: str, ops: int, lines: int, audit_per_op: Counter, what: str,
           hot_stock: int | None = None) -> None:
    found = effects(database_url)
    expected = expected_effects(ops, lines, audit_per_op)
    wrong = {k: (found.get(k), v) for k, v in expected.items() if found.get(k) != v}
    if hot_stock is not None:
        import psycopg

        with psycopg.connect(database_url) as conn:
            reserved = conn.execute("SELECT reserved FROM stock WHERE id = %s",
                                    (hot_stock,)).fetchone()[0]
        if reserved != ops:
            wrong["hot stock reserved"] = (reserved, ops)
    if wrong:
        raise BenchError(f"{what}: database does not match the {ops} checkouts counted "
                         f"(found, expected): {wrong}")


# -- capturing the service's statements ------------------------------------------------------------

def normalised(sql: str) -> str:
    return " ".join(sql.split())


@dataclass
class Step:
    kind: str
    sql: str
    params: object              # dict, or a list of dicts (executemany)
    many: bool                  # cursor.executemany (a list of parameter sets)
    rows: int                   # rows the statement writes or the list's length

    @property
    def multi_values(self) -> bool:
        """SQLAlchemy's "insertmanyvalues" form: one INSERT … SELECT FROM (VALUES …)."""
        return isinstance(self.params, dict) and any(k.endswith("__0") for k in self.params)


# What each statement of the service is, by its SQL text. A statement the benchmark does not
# know fails the run: the raw mirror must then learn to bind it.
KINDS = [
    # the service's reads since checkout went to SQLAlchemy Core: the key's hash and trade,
    # member and address in one row, the cart's SKUs with their SPU columns, and the candidate
    # stock rows of the whole cart
    ("key_lookup", r"^SELECT idempotency_key\.request_hash, idempotency_key\.trade_id FROM "),
    ("buyer", r"^SELECT member\.id AS member_id, member\.status, .* FROM member LEFT OUTER JOIN "
              r"member_address ON "),
    ("cart", r"^SELECT sku\.id, .* FROM sku JOIN spu ON spu\.id = sku\.spu_id "
             r"(JOIN category ON category\.id = spu\.category_id )?WHERE sku\.id IN \("),
    # the pricing engine's rules: the live promotions of the cart's shops and the platform
    ("promotions", r"^SELECT promotion\.id, .* FROM promotion LEFT OUTER JOIN promotion_zone "),
    # freight: the templates of the cart's shops (kept per process, so a capture may not hold it)
    ("freight_templates", r"^SELECT freight_template\.id, .* FROM freight_template LEFT OUTER "
                          r"JOIN freight_rule ON "),
    # risk control at checkout: the event's rules, and the fact the rules count
    ("risk_rules", r"^SELECT risk_rule\.id, .* FROM risk_rule WHERE risk_rule\.event = "),
    ("risk_fact", r"^INSERT INTO risk_fact \("),
    ("stocks", r"^SELECT stock\.id, .* FROM stock JOIN warehouse ON .* WHERE stock\.sku_id IN \("),
    # the ORM statements of the service before that (and before 7f249e0, further below)
    ("idem_select", r"^SELECT idempotency_key\.id\b.* FROM idempotency_key WHERE "),
    ("member", r"^SELECT member\.id\b.* FROM member WHERE member\.id = "),
    ("address", r"^SELECT member_address\.id\b.* FROM member_address WHERE member_address\.id = "),
    ("sku_spu", r"^SELECT sku\.id\b.* FROM sku LEFT OUTER JOIN spu AS spu_1 ON spu_1\.id = "
                r"sku\.spu_id WHERE sku\.id IN \("),
    # the kinds below (sku, spu, alert, stock_reload, reservation_load, delivery_load) are the
    # service's statements before 7f249e0; kept so that the mirror still replays that version
    ("sku", r"^SELECT sku\.id\b.* FROM sku WHERE sku\.id = "),
    ("spu", r"^SELECT spu\.id\b.* FROM spu WHERE spu\.id = "),
    ("trade", r"^INSERT INTO trade \("),
    ("order", r'^INSERT INTO "order" \('),
    ("order_event", r"^INSERT INTO order_event \("),
    ("order_line", r"^INSERT INTO order_line \("),
    ("audit", r"^INSERT INTO audit_log \("),
    ("idem_insert", r"^INSERT INTO idempotency_key \("),
    ("stock_select", r"^SELECT stock\.id\b.* FROM stock JOIN warehouse ON .* WHERE stock\.sku_id = "),
    ("stock_update", r"^UPDATE stock SET .* WHERE stock\.id = .* RETURNING "),
    ("ledger", r"^INSERT INTO stock_ledger \("),
    ("alert", r"^SELECT sku\.stock_alert_qty FROM sku WHERE sku\.id = "),
    ("stock_reload", r"^SELECT stock\.id\b.* FROM stock WHERE stock\.id = "),
    ("reservation_load", r"^SELECT order_reservation\.id\b.* FROM order_reservation WHERE "),
    ("outbox", r"^INSERT INTO outbox_event \("),
    ("reservation", r"^INSERT INTO order_reservation \("),
    ("delivery_load", r"^SELECT event_delivery\.id\b.* FROM event_delivery WHERE "),
]
KIND_LABEL = {
    "key_lookup": "SELECT idempotency key's hash and trade (replay check)",
    "buyer": "SELECT member + address (one row)",
    "cart": "SELECT SKUs with their SPUs' columns (one query for the cart)",
    "promotions": "SELECT the live promotions of the cart's shops (pricing engine)",
    "freight_templates": "SELECT the freight templates of the cart's shops (freight)",
    "risk_rules": "SELECT the enabled risk rules of order_placed (risk control)",
    "risk_fact": "INSERT the risk fact of the checkout (risk control)",
    "stocks": "SELECT candidate stock rows + warehouse + alert quantity (one query for the cart)",
    "idem_select": "SELECT idempotency key (replay check)",
    "member": "SELECT member by id", "address": "SELECT address by id",
    "sku_spu": "SELECT SKUs with their SPUs (one query for the cart)",
    "sku": "SELECT SKU by id (one per line)", "spu": "SELECT SPU by id (lazy load)",
    "trade": "INSERT trade", "order": "INSERT order", "order_event": "INSERT order timeline row",
    "order_line": "INSERT order lines", "audit": "INSERT audit rows (one per flush)",
    "idem_insert": "INSERT idempotency key",
    "stock_select": "SELECT stock rows + warehouse (+ SKU alert quantity) (per line)",
    "stock_update": "UPDATE stock … reserved + n WHERE available ≥ n RETURNING (per line)",
    "ledger": "INSERT ledger rows",
    "alert": "SELECT sku.stock_alert_qty (low-stock check, per line)",
    "stock_reload": "SELECT stock by id (reload of the expired row, per line)",
    "reservation_load": "SELECT order reservations (lazy load before append)",
    "outbox": "INSERT outbox event", "reservation": "INSERT order reservations",
    "delivery_load": "SELECT event deliveries (lazy load after publish)",
}


def kind_of(sql: str) -> str:
    text = normalised(sql)
    for kind, pattern in KINDS:
        if re.search(pattern, text):
            return kind
    raise BenchError("the service issued a statement the raw mirror does not know; teach "
                     f"bench/checkout.py to bind it:\n  {text[:400]}")


@dataclass
class Capture:
    steps: list
    checkouts: int              # pool checkouts (each one a pre-ping SELECT 1 when enabled)
    pre_ping: bool
    commits: int
    audit_per_op: Counter
    ms: float


def service_op(app, body: dict, key: str) -> int:
    """One checkout through the service, as the REST endpoint does it; returns the number of
    in-process jobs the commit left (they are not run: no subscriber means none)."""
    from app.extensions import db
    from services.actor import Actor, acting_as
    from services.order import place

    with app.app_context(), acting_as(Actor.system(ACTOR_NAME)):
        trade, created = place(body, key)
        if not created:
            raise BenchError(f"key {key} replayed")
        db.session.commit()
        return len(db.session.info.pop("houtai_jobs_inprocess", None) or [])


def capture(app, body: dict, key: str) -> Capture:
    from sqlalchemy import event

    from app.extensions import db

    steps, checkouts, commits = [], [0], [0]

    def record(conn, cursor, statement, parameters, context, executemany):
        many = isinstance(parameters, (list, tuple))
        steps.append(Step(kind_of(statement), statement, parameters, many,
                          len(parameters) if many else 1))

    def checkout(*_):
        checkouts[0] += 1

    def commit(*_):
        commits[0] += 1

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    event.listen(engine.pool, "checkout", checkout)
    event.listen(engine, "commit", commit)
    try:
        started = time.perf_counter()
        jobs = service_op(app, body, key)
        ms = (time.perf_counter() - started) * 1000
    finally:
        event.remove(engine, "before_cursor_execute", record)
        event.remove(engine.pool, "checkout", checkout)
        event.remove(engine, "commit", commit)
    if jobs:
        raise BenchError(f"placing a trade left {jobs} in-process job(s): a subscriber of "
                         "trade.placed exists; the raw mirror must then write its deliveries")
    for step in steps:
        if step.multi_values:
            step.rows = len({k.rsplit("__", 1)[1] for k in step.params
                             if re.search(r"__\d+$", k)})
    audit = Counter()
    for step in steps:
        if step.kind == "audit":
            for row in (step.params if step.many else [step.params]):
                audit[row["model"]] += 1
    return Capture(steps, checkouts[0], bool(getattr(engine.pool, "_pre_ping", False)),
                   commits[0], audit, ms)


# -- the raw mirror: the service's statements through psycopg ---------------------------------------

def _audit_hidden(model: str) -> set:
    return AUDIT_HIDDEN_BY_MODEL[model]


def read_audit_masks() -> None:
    """The columns services/audit.py masks, per model: SECRET_COLUMNS everywhere and
    HIDDEN_BY_TABLE (buyers' addresses, since ae0d83f) for its tables."""
    global AUDIT_HIDDEN
    from app.extensions import db
    from services import audit

    AUDIT_HIDDEN = audit.HIDDEN
    secret = set(getattr(audit, "SECRET_COLUMNS", ()))
    by_table = getattr(audit, "HIDDEN_BY_TABLE", {})
    for mapper in db.Model.registry.mappers:
        table = getattr(mapper.class_, "__tablename__", None)
        AUDIT_HIDDEN_BY_MODEL[mapper.class_.__name__] = secret | set(by_table.get(table, ()))


def audit_shape(database_url: str) -> list:
    """What the audit rows say, without the values that differ per checkout: per row, the
    model, the action, and each changed column with whether its new value is masked."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT model, action, changes, shop_id IS NULL FROM audit_log "
                            "ORDER BY id").fetchall()
    return [(model, action, sorted((k, v[1] == AUDIT_HIDDEN) for k, v in changes.items()),
             no_shop) for model, action, changes, no_shop in rows]


def _jsonable(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "obj"):           # psycopg Json wrapper
        return value.obj
    return value


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _number(prefix: str, like: str | None = None) -> str:
    """As services.order._number: the moment to the microsecond plus 6 random digits (before
    7f249e0 the moment was to the second; `like`, a number the service made, tells which)."""
    stamp = "%Y%m%d%H%M%S" if like is not None and len(like) == len(prefix) + 20 else \
        "%Y%m%d%H%M%S%f"
    return f"{prefix}{_now().strftime(stamp)}{secrets.randbelow(10**6):06d}"


def _request_hash(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _over(base: dict, **values) -> dict:
    """The captured parameters with this checkout's values; a name the service no longer
    uses fails (the mirror would otherwise silently bind a stale constant)."""
    params = base.copy()
    for name, value in values.items():
        if name not in params:
            raise BenchError(f"parameter {name!r} not in the service's statement: {sorted(base)}")
        params[name] = value
    return params


def _only_key(base: dict) -> str:
    if len(base) != 1:
        raise BenchError(f"expected one parameter, the service binds {sorted(base)}")
    return next(iter(base))


@functools.lru_cache(maxsize=None)
def _joined_columns(sql: str) -> list[str]:
    """Qualified names of a joined-eager-load SELECT's columns: `spu_1.id AS id_1` → `spu.id`."""
    head = normalised(sql)[len("SELECT "):].split(" FROM ", 1)[0]
    return [re.sub(r"^(\w+)_1\.", r"\1.", column.split(" AS ")[0].strip())
            for column in head.split(", ")]


@functools.lru_cache(maxsize=None)
def _select_columns(sql: str) -> list[str]:
    """Qualified names of a SELECT's columns, from its text (joined tables repeat `id`)."""
    head = normalised(sql)[len("SELECT "):].split(" FROM ", 1)[0]
    return [column.split(" AS ")[-1].strip() for column in head.split(", ")]


def _named(cur, values) -> dict:
    """A row by its column labels."""
    return dict(zip((column.name for column in cur.description), values))


def _rank(stock: dict, quantity: int, province: str | None):
    """The dispatch rules of services/inventory.py `_preferred`."""
    available = stock["stock.on_hand"] - stock["stock.reserved"]
    serves = bool(province) and (province == stock.get("warehouse.region") or
                                 province in (stock.get("warehouse.service_regions") or []))
    return (available < quantity, not serves, stock.get("warehouse.priority", 100), -available,
            stock["stock.id"])


def _multi(rows: list[dict]) -> dict:
    """Parameters of an insertmanyvalues statement: row i's names get the suffix __i."""
    params = {}
    for n, row in enumerate(rows):
        for name, value in row.items():
            params[f"{name}__{n}"] = value
    return params


def _row_base(step: Step) -> dict:
    """Row 0's captured parameters, without the __0 suffix."""
    if step.multi_values:
        return {k[:-3]: v for k, v in step.params.items() if k.endswith("__0")}
    return step.params[0] if step.many else step.params


class Checkout:
    """The state of one mirrored checkout."""

    __slots__ = ("body", "key", "member", "address", "skus", "spus", "sku_queue", "priced",
                 "trade_id", "trade_no", "order_id", "address_json", "stock_queue", "stock",
                 "stock_sku", "quantity", "after", "reservations", "event_id", "unaudited",
                 "shop_id", "ledger", "candidates")

    def __init__(self, body: dict, key: str):
        self.body, self.key = body, key
        self.skus, self.spus, self.priced, self.reservations, self.unaudited = {}, {}, [], [], []
        self.ledger = []            # ledger rows of the reservations taken, not yet written
        self.candidates = None      # sku id → candidate stock rows (one read for the cart)
        self.sku_queue = [line["sku_id"] for line in body["lines"]]
        merged: dict[int, int] = {}
        for line in body["lines"]:
            merged[line["sku_id"]] = merged.get(line["sku_id"], 0) + line["quantity"]
        self.stock_queue = sorted(merged.items())


class Mirror:
    """Replays the captured statements, in order, with this checkout's parameters."""

    def __init__(self, conn, steps: list[Step], caller: str):
        self.conn, self.steps, self.caller = conn, steps, caller
        self._audit_orders: dict = {}
        self.binders = [(step, getattr(self, "bind_" + step.kind),
                         getattr(self, "after_" + step.kind, None)) for step in steps]

    def op(self, body: dict, key: str, trace: list | None = None) -> None:
        c = Checkout(body, key)
        cur = self.conn.cursor()
        try:
            for step, bind, after in self.binders:
                params = bind(c, step)
                if step.many:
                    cur.executemany(step.sql, params)
                else:
                    cur.execute(step.sql, params)
                if after is not None:
                    after(c, step, cur)
                if trace is not None:
                    trace.append((step.kind, normalised(step.sql),
                                  len(params) if step.many else 1))
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        finally:
            cur.close()

    # audit rows, as services/audit.py builds them for inserted rows
    def audited(self, c: Checkout, model: str, pk, values: dict, shop_id) -> None:
        hidden = _audit_hidden(model)
        changes = {"id": [None, pk]}
        for name, value in values.items():
            if value is not None and name not in AUDIT_IGNORED:
                changes[name] = [None, AUDIT_HIDDEN if name in hidden else _jsonable(value)]
        c.unaudited.append((model, str(pk), changes, shop_id))

    def _audit_order(self, step: Step) -> tuple[list, dict]:
        """The models of a captured audit INSERT (sorted) and each model's first position."""
        order = self._audit_orders.get(id(step))
        if order is None:
            models = [row["model"] for row in (step.params if step.many else [step.params])]
            order = self._audit_orders[id(step)] = (
                sorted(models), {model: models.index(model) for model in set(models)})
        return order

    def bind_audit(self, c: Checkout, step: Step):
        from psycopg.types.json import Json

        rows, c.unaudited = c.unaudited, []
        if len(rows) != step.rows:
            raise BenchError(f"audit flush of {len(rows)} rows, the service writes {step.rows}")
        # in the service's order (the hook walks session.new, i.e. the order of session.add)
        captured, rank = self._audit_order(step)
        if sorted(row[0] for row in rows) != captured:
            raise BenchError(f"audit rows {sorted(row[0] for row in rows)}, the service writes "
                             f"{captured}")
        rows.sort(key=lambda row: rank[row[0]])
        base, stamp = _row_base(step), _now()
        params = [_over(base, created_at=stamp, actor=self.caller, model=model, record_pk=pk,
                        action="insert", changes=Json(changes), shop_id=shop_id)
                  for model, pk, changes, shop_id in rows]
        return params if step.many else params[0]

    # reads (SQLAlchemy Core: labelled columns, named parameters)
    def bind_key_lookup(self, c, step):
        return _over(step.params, caller=self.caller, key=c.key)

    def after_key_lookup(self, c, step, cur):
        if cur.fetchone() is not None:
            raise BenchError(f"key {c.key} replayed")

    def bind_buyer(self, c, step):
        return _over(step.params, member_id=c.body["member_id"],
                     address_id=c.body["address_id"])

    def after_buyer(self, c, step, cur):
        row = _named(cur, cur.fetchone())
        if row["status"] != "active" or row["address_id"] is None:
            raise BenchError("member or address not found")
        c.member = {"member.id": row["member_id"]}
        c.address = {f"member_address.{name}": row[name] for name in
                     ("recipient", "phone", "province_code", "city_code", "district_code",
                      "detail")}

    def bind_cart(self, c, step):
        return self.bind_sku_spu(c, step)

    def after_cart(self, c, step, cur):
        for values in cur.fetchall():
            row = _named(cur, values)
            sku = {f"sku.{name}": row[name] for name in
                   ("id", "spu_id", "shop_id", "code", "price", "enabled", "sales_values")}
            spu = {f"spu.{name}": row[name] for name in
                   ("title", "status", "goods_kind", "fulfilment", "presale_ships_on")}
            spu["spu.id"] = sku["sku.spu_id"]
            if not sku["sku.enabled"]:
                raise BenchError("SKU disabled")
            self._check_spu(spu)
            c.skus[sku["sku.id"]] = sku
            c.spus[spu["spu.id"]] = spu
        if len(c.skus) != len({line["sku_id"] for line in c.body["lines"]}):
            raise BenchError("a SKU of the cart was not found")

    def bind_promotions(self, c, step):
        from datetime import timedelta

        shops = sorted({sku["sku.shop_id"] for sku in c.skus.values()})
        names = sorted((n for n in step.params if n.startswith("shops_")),
                       key=lambda name: int(name.rsplit("_", 1)[1]))
        if len(names) != len(shops):
            raise BenchError(f"{len(shops)} shops in the cart, the captured IN list has {names}")
        moment = _now()
        return _over(step.params, moment=moment, horizon=moment + timedelta(days=7),
                     **dict(zip(names, shops)))

    def after_promotions(self, c, step, cur):
        if cur.fetchall():
            raise BenchError("the bench database has promotions: the mirror prices carts "
                             "without any")

    def bind_freight_templates(self, c, step):
        shops = sorted({sku["sku.shop_id"] for sku in c.skus.values()})
        names = sorted((n for n in step.params if n.startswith("shop_ids_")),
                       key=lambda name: int(name.rsplit("_", 1)[1]))
        if len(names) != len(shops):
            raise BenchError(f"{len(shops)} shops in the cart, the captured IN list has {names}")
        return _over(step.params, **dict(zip(names, shops)))

    def after_freight_templates(self, c, step, cur):
        if cur.fetchall():
            raise BenchError("the bench database has freight templates: the mirror charges no "
                             "freight")

    def bind_risk_rules(self, c, step):
        return step.params

    def after_risk_rules(self, c, step, cur):
        if cur.fetchall():
            raise BenchError("the bench database has risk rules: the mirror evaluates none")

    def bind_risk_fact(self, c, step):
        from services.risk import address_digest

        address = {name.split(".", 1)[1]: value for name, value in c.address.items()}
        amount = sum((sku["sku.price"] * line["quantity"] for line in c.body["lines"]
                      for sku in [c.skus[line["sku_id"]]]), ZERO)
        return _over(step.params, event="order_placed", member_id=c.member["member.id"],
                     device=None, ip=None, address=address_digest(address),
                     amount=f"{amount:.2f}", created_at=_now())

    def after_risk_fact(self, c, step, cur):
        cur.fetchone()

    def bind_stocks(self, c, step):
        ids = [sku_id for sku_id, _ in c.stock_queue]
        names = sorted(step.params, key=lambda name: int(name.rsplit("_", 1)[1]))
        if len(names) != len(ids):
            raise BenchError(f"{len(ids)} SKUs to reserve, the captured IN list has {names}")
        return dict(zip(names, ids))

    def after_stocks(self, c, step, cur):
        c.candidates = {}
        for values in cur.fetchall():
            row = _named(cur, values)
            if row["stock_alert_qty"]:
                raise BenchError("a stock alert quantity is set: the mirror does not publish "
                                 "stock.low")
            stock = {f"stock.{name}": row[name] for name in
                     ("id", "sku_id", "warehouse_id", "shop_id", "on_hand", "reserved")}
            stock.update({f"warehouse.{name}": row[name] for name in
                          ("region", "service_regions", "priority")})
            c.candidates.setdefault(stock["stock.sku_id"], []).append(stock)

    def bind_idem_select(self, c, step):
        return _over(step.params, caller_1=self.caller, key_1=c.key)

    def after_idem_select(self, c, step, cur):
        if cur.fetchone() is not None:
            raise BenchError(f"key {c.key} replayed")

    def bind_member(self, c, step):
        return {_only_key(step.params): c.body["member_id"]}

    def after_member(self, c, step, cur):
        c.member = dict(zip(_select_columns(step.sql), cur.fetchone()))
        if c.member["member.status"] != "active":
            raise BenchError("member not active")

    def bind_address(self, c, step):
        return {_only_key(step.params): c.body["address_id"]}

    def after_address(self, c, step, cur):
        c.address = dict(zip(_select_columns(step.sql), cur.fetchone()))
        if c.address["member_address.member_id"] != c.member["member.id"]:
            raise BenchError("address of another member")

    def bind_sku_spu(self, c, step):
        # the ids in the order services/order.py `_checked_lines` binds them (a set's order)
        ids = list({line["sku_id"] for line in c.body["lines"]})
        names = sorted(step.params, key=lambda name: int(name.rsplit("_", 1)[1]))
        if len(names) != len(ids):
            raise BenchError(f"{len(ids)} SKUs in the cart, the captured IN list has {names}")
        return dict(zip(names, ids))

    def after_sku_spu(self, c, step, cur):
        columns = _joined_columns(step.sql)
        for row in cur.fetchall():
            values = dict(zip(columns, row))
            sku = {k: v for k, v in values.items() if k.startswith("sku.")}
            spu = {k: v for k, v in values.items() if k.startswith("spu.")}
            if not sku["sku.enabled"]:
                raise BenchError("SKU disabled")
            self._check_spu(spu)
            c.skus[sku["sku.id"]] = sku
            c.spus[spu["spu.id"]] = spu
        if len(c.skus) != len({line["sku_id"] for line in c.body["lines"]}):
            raise BenchError("a SKU of the cart was not found")

    def _check_spu(self, spu: dict) -> None:
        if spu["spu.status"] != "on_sale":
            raise BenchError("SPU not on sale")
        if spu.get("spu.goods_kind", "physical") == "service" or \
                spu.get("spu.presale_ships_on") is not None or \
                spu.get("spu.fulfilment", "own") == "dropship":
            raise BenchError("the mirror places normal physical orders from own stock only")

    def bind_sku(self, c, step):
        return {_only_key(step.params): c.sku_queue.pop(0)}

    def after_sku(self, c, step, cur):
        sku = dict(zip(_select_columns(step.sql), cur.fetchone()))
        if not sku["sku.enabled"]:
            raise BenchError("SKU disabled")
        c.skus[sku["sku.id"]] = sku

    def bind_spu(self, c, step):
        missing = [s["sku.spu_id"] for s in c.skus.values() if s["sku.spu_id"] not in c.spus]
        return {_only_key(step.params): missing[0]}

    def after_spu(self, c, step, cur):
        spu = dict(zip(_select_columns(step.sql), cur.fetchone()))
        self._check_spu(spu)
        c.spus[spu["spu.id"]] = spu

    def _price(self, c: Checkout) -> None:
        for line in c.body["lines"]:
            sku = c.skus[line["sku_id"]]
            amount = (sku["sku.price"] * line["quantity"]).quantize(CENT)
            c.priced.append((sku, c.spus[sku["sku.spu_id"]], line["quantity"], amount))
        c.shop_id = c.priced[0][0]["sku.shop_id"]
        a = c.address
        c.address_json = {"recipient": a["member_address.recipient"],
                          "phone": a["member_address.phone"],
                          "province_code": a["member_address.province_code"],
                          "city_code": a["member_address.city_code"],
                          "district_code": a["member_address.district_code"],
                          "detail": a["member_address.detail"]}

    # the trade, its order, lines and timeline (one flush)
    def bind_trade(self, c, step):
        from psycopg.types.json import Json

        self._price(c)
        goods = sum((p[3] for p in c.priced), ZERO)
        c.trade_no = _number("T", step.params["trade_no"])
        return _over(step.params, trade_no=c.trade_no, member_id=c.member["member.id"],
                     address=Json(c.address_json), goods_amount=goods, discount_amount=ZERO,
                     freight=ZERO, payable=goods, created_at=_now())

    def after_trade(self, c, step, cur):
        c.trade_id = cur.fetchone()[0]
        self.audited(c, "Trade", c.trade_id, {**_row_base(step), "trade_no": c.trade_no,
                                              "member_id": c.member["member.id"]}, None)

    def bind_order(self, c, step):
        from psycopg.types.json import Json

        goods = sum((p[3] for p in c.priced), ZERO)
        values = dict(order_no=_number("O", step.params["order_no"]), trade_id=c.trade_id,
                      member_id=c.member["member.id"],
                      goods_amount=goods, discount_amount=ZERO, freight=ZERO, payable=goods,
                      created_at=_now(), shop_id=c.shop_id)
        if "address" in step.params:
            values["address"] = Json(c.address_json)
        if "order_type" in step.params:
            values["order_type"] = "normal"
        self._order_values = values
        return _over(step.params, **values)

    def after_order(self, c, step, cur):
        c.order_id = cur.fetchone()[0]
        self.audited(c, "Order", c.order_id, {**step.params, **self._order_values}, c.shop_id)

    def bind_order_event(self, c, step):
        self._event_values = dict(order_id=c.order_id, from_status=None,
                                  to_status="pending_payment", actor=self.caller,
                                  created_at=_now(), shop_id=c.shop_id)
        return _over(step.params, **self._event_values)

    def after_order_event(self, c, step, cur):
        self.audited(c, "OrderEvent", cur.fetchone()[0], self._event_values, c.shop_id)

    def bind_order_line(self, c, step):
        from psycopg.types.json import Json

        base, rows = _row_base(step), []
        for sku, spu, quantity, amount in c.priced:
            row = _over(base, order_id=c.order_id, sku_id=sku["sku.id"], spu_id=sku["sku.spu_id"],
                        sku_code=sku["sku.code"], title=spu["spu.title"],
                        sales_values=Json(dict(sku["sku.sales_values"])),
                        unit_price=sku["sku.price"], quantity=quantity, amount=amount,
                        discount=ZERO, payable=amount, shop_id=c.shop_id)
            for name in ("goods_kind", "fulfilment"):
                if name in row:
                    row[name] = spu[f"spu.{name}"]
            rows.append(row)
        self._line_rows = rows
        return _multi(rows) if step.multi_values else rows[0]

    def after_order_line(self, c, step, cur):
        for row, (line_id, *_) in zip(self._line_rows, cur.fetchall()):
            self.audited(c, "OrderLine", line_id, row, c.shop_id)

    def bind_idem_insert(self, c, step):
        self._idem_values = dict(caller=self.caller, key=c.key,
                                 request_hash=_request_hash(c.body), trade_id=c.trade_id,
                                 created_at=_now())
        return _over(step.params, **self._idem_values)

    def after_idem_insert(self, c, step, cur):
        self.audited(c, "IdempotencyKey", cur.fetchone()[0], self._idem_values, None)

    # reservation, per SKU in SKU order
    def bind_stock_select(self, c, step):
        c.stock_sku, c.quantity = c.stock_queue.pop(0)
        return {_only_key(step.params): c.stock_sku}

    def after_stock_select(self, c, step, cur):
        columns = _select_columns(step.sql)
        rows = [dict(zip(columns, row)) for row in cur.fetchall()]
        if any(row.get("sku.stock_alert_qty") for row in rows):
            raise BenchError("a stock alert quantity is set: the mirror does not publish stock.low")
        province = c.address["member_address.province_code"]
        c.stock = min(rows, key=lambda s: _rank(s, c.quantity, province))

    def bind_stock_update(self, c, step):
        if c.candidates is not None:        # the cart's stock rows were read at once
            c.stock_sku, c.quantity = c.stock_queue.pop(0)
            province = c.address["member_address.province_code"]
            c.stock = min(c.candidates[c.stock_sku],
                          key=lambda s: _rank(s, c.quantity, province))
        if "stock_id" in step.params:       # the Core statement's names
            return _over(step.params, stock_id=c.stock["stock.id"], wanted=c.quantity,
                         stamp=_now())
        return _over(step.params, on_hand_1=0, reserved_1=c.quantity, updated_at=_now(),
                     id_1=c.stock["stock.id"], param_1=c.quantity)

    def after_stock_update(self, c, step, cur):
        c.after = cur.fetchone()
        if c.after is None:
            raise BenchError("stock ran out")
        s, (on_hand, reserved) = c.stock, c.after
        c.reservations.append((s["stock.id"], s["stock.sku_id"], s["stock.warehouse_id"],
                               c.quantity, s["stock.shop_id"]))
        c.ledger.append(dict(
            stock_id=s["stock.id"], sku_id=s["stock.sku_id"], warehouse_id=s["stock.warehouse_id"],
            shop_id=s["stock.shop_id"], reason="reserve", reference=c.trade_no, note=None,
            on_hand_before=on_hand, on_hand_after=on_hand, reserved_before=reserved - c.quantity,
            reserved_after=reserved, actor=self.caller, created_at=_now()))

    def bind_ledger(self, c, step):
        """The ledger rows of the reservations taken so far: all of them in one INSERT since
        7f249e0 (one per reservation before)."""
        rows, c.ledger = c.ledger, []
        if len(rows) != step.rows:
            raise BenchError(f"{len(rows)} ledger rows pending, the service writes {step.rows}")
        base = _row_base(step)
        self._ledger_rows = [_over(base, **row) for row in rows]
        if step.multi_values:
            return _multi(self._ledger_rows)
        return self._ledger_rows if step.many else self._ledger_rows[0]

    def after_ledger(self, c, step, cur):
        for row, (ledger_id, *_) in zip(self._ledger_rows, cur.fetchall()):
            self.audited(c, "StockLedger", ledger_id, row, row["shop_id"])

    def bind_alert(self, c, step):
        return {_only_key(step.params): c.stock["stock.sku_id"]}

    def after_alert(self, c, step, cur):
        if cur.fetchone()[0]:
            raise BenchError("a stock alert quantity is set: the mirror does not publish stock.low")

    def bind_stock_reload(self, c, step):
        return {_only_key(step.params): c.stock["stock.id"]}

    def after_stock_reload(self, c, step, cur):
        cur.fetchone()

    def bind_reservation_load(self, c, step):
        return {_only_key(step.params): c.order_id}

    def after_reservation_load(self, c, step, cur):
        cur.fetchall()

    # the outbox event and the reservations (one flush), then the lazy load of deliveries
    def bind_outbox(self, c, step):
        from psycopg.types.json import Json

        return _over(step.params, name="trade.placed", payload=Json({"trade_id": c.trade_id}),
                     shop_id=None, created_at=_now())

    def after_outbox(self, c, step, cur):
        c.event_id = cur.fetchone()[0]

    def bind_reservation(self, c, step):
        base = _row_base(step)
        self._reservation_rows = [
            _over(base, order_id=c.order_id, stock_id=stock_id, sku_id=sku_id,
                  warehouse_id=warehouse_id, quantity=quantity, released=False, shop_id=shop_id)
            for stock_id, sku_id, warehouse_id, quantity, shop_id in c.reservations]
        rows = self._reservation_rows
        return _multi(rows) if step.multi_values else rows[0]

    def after_reservation(self, c, step, cur):
        for row, (reservation_id, *_) in zip(self._reservation_rows, cur.fetchall()):
            self.audited(c, "OrderReservation", reservation_id, row, row["shop_id"])

    def bind_delivery_load(self, c, step):
        return {_only_key(step.params): c.event_id}

    def after_delivery_load(self, c, step, cur):
        if cur.fetchall():
            raise BenchError("trade.placed has deliveries: the mirror does not write them")



# -- the lean variant: the same rows, the fewest statements, the hot row last ---------------------

LEAN_BUYER = """SELECT member.status, member_address.member_id, member_address.recipient,
    member_address.phone, member_address.province_code, member_address.city_code,
    member_address.district_code, member_address.detail
FROM member JOIN member_address ON member_address.member_id = member.id
WHERE member.id = %s AND member_address.id = %s"""
LEAN_CART = """SELECT sku.id, sku.spu_id, sku.code, sku.sales_values, sku.price, sku.enabled,
    sku.shop_id, sku.stock_alert_qty, spu.title, spu.status, spu.goods_kind, spu.fulfilment,
    spu.presale_ships_on, stock.id, stock.warehouse_id, stock.on_hand, stock.reserved,
    warehouse.region, warehouse.service_regions, warehouse.priority
FROM sku JOIN spu ON spu.id = sku.spu_id
LEFT JOIN (stock JOIN warehouse ON warehouse.id = stock.warehouse_id AND warehouse.enabled)
    ON stock.sku_id = sku.id AND stock.on_hand > stock.reserved
WHERE sku.id = ANY(%s)"""


def multi_row_insert(sql: str, n: int, returning: bool) -> str:
    """A single-row `INSERT … VALUES (…)` of the service as an n-row VALUES list."""
    text = normalised(sql)
    match = re.match(r"^(INSERT INTO .+? \(.+?\)) VALUES \((.+?)\)( RETURNING .+)?$", text)
    if not match:
        raise BenchError(f"not a single-row INSERT: {text[:200]}")
    head, values, tail = match.groups()
    rows = ", ".join("(" + re.sub(r"%\((\w+)\)s", rf"%(\1__{i})s", values) + ")"
                     for i in range(n))
    return f"{head} VALUES {rows}" + ((tail or "") if returning else "")


class Lean(Mirror):
    """The same rows as the service, batched, with the conditional UPDATEs just before the
    ledger + audit INSERT and the COMMIT (the hot row is locked for 2 statements)."""

    def __init__(self, conn, steps: list[Step], caller: str, lines: int):
        super().__init__(conn, steps, caller)
        first = {}
        for step in steps:
            first.setdefault(step.kind, step)
        self.step = first
        single_audit = next((s for s in steps if s.kind == "audit" and not s.many), None)
        many_audit = next((s for s in steps if s.kind == "audit" and s.many), None)
        audit_template = many_audit or single_audit
        self.audit_rows = sum(s.rows for s in steps if s.kind == "audit")
        self.audit_base = _row_base(audit_template)
        self.audit_sql = multi_row_insert(audit_template.sql, self.audit_rows, returning=False)
        ledger = first["ledger"]
        if ledger.multi_values:     # already one INSERT of all the lines' rows
            if ledger.rows != lines:
                raise BenchError(f"the service's ledger INSERT has {ledger.rows} rows, "
                                 f"{lines} expected")
            self.ledger_sql = ledger.sql
        else:
            self.ledger_sql = multi_row_insert(ledger.sql, lines, returning=True)

    def op(self, body: dict, key: str, trace: list | None = None) -> None:
        from psycopg.types.json import Json

        c = Checkout(body, key)
        cur = self.conn.cursor()
        step = self.step
        executed = []

        def run(sql, params):
            cur.execute(sql, params)
            executed.append(sql)

        try:
            lookup = "key_lookup" if "key_lookup" in step else "idem_select"
            run(step[lookup].sql, getattr(self, "bind_" + lookup)(c, step[lookup]))
            getattr(self, "after_" + lookup)(c, None, cur)
            run(LEAN_BUYER, (body["member_id"], body["address_id"]))
            buyer = cur.fetchone()
            if buyer is None or buyer[0] != "active":
                raise BenchError("member or address not found")
            c.member = {"member.id": buyer[1]}
            c.address = dict(zip(("member_address.recipient", "member_address.phone",
                                  "member_address.province_code", "member_address.city_code",
                                  "member_address.district_code", "member_address.detail"),
                                 buyer[2:]))
            run(LEAN_CART, ([line["sku_id"] for line in body["lines"]],))
            stocks: dict[int, list[dict]] = {}
            for row in cur.fetchall():
                (sku_id, spu_id, code, sales_values, price, enabled, shop_id, alert, title,
                 status, goods_kind, fulfilment, presale, stock_id, warehouse_id, on_hand,
                 reserved, region, regions, priority) = row
                if not enabled or status != "on_sale" or alert or goods_kind == "service" \
                        or presale is not None:
                    raise BenchError("the lean variant places normal, in-stock lines only")
                c.skus[sku_id] = {"sku.id": sku_id, "sku.spu_id": spu_id, "sku.code": code,
                                  "sku.sales_values": sales_values, "sku.price": price,
                                  "sku.shop_id": shop_id}
                c.spus[spu_id] = {"spu.title": title, "spu.goods_kind": goods_kind,
                                  "spu.fulfilment": fulfilment}
                if stock_id is not None:
                    stocks.setdefault(sku_id, []).append({
                        "stock.id": stock_id, "stock.sku_id": sku_id,
                        "stock.warehouse_id": warehouse_id, "stock.shop_id": shop_id,
                        "stock.on_hand": on_hand, "stock.reserved": reserved,
                        "warehouse.region": region, "warehouse.service_regions": regions,
                        "warehouse.priority": priority})
            province = c.address["member_address.province_code"]
            s = step["risk_fact"]
            run(s.sql, self.bind_risk_fact(c, s))
            self.after_risk_fact(c, s, cur)
            for step_kind in ("trade", "order", "order_event", "order_line", "idem_insert"):
                s = step[step_kind]
                run(s.sql, getattr(self, "bind_" + step_kind)(c, s))
                getattr(self, "after_" + step_kind)(c, s, cur)
            # reservations first (the stock rows are known), then the outbox event
            chosen = []
            for sku_id, quantity in c.stock_queue:
                rows = stocks.get(sku_id) or []
                if not rows:
                    raise BenchError(f"no stock for SKU {sku_id}")
                stock = min(rows, key=lambda r: _rank(r, quantity, province))
                chosen.append((stock, quantity))
                c.reservations.append((stock["stock.id"], sku_id, stock["stock.warehouse_id"],
                                       quantity, stock["stock.shop_id"]))
            s = step["reservation"]
            run(s.sql, self.bind_reservation(c, s))
            self.after_reservation(c, s, cur)
            s = step["outbox"]
            run(s.sql, self.bind_outbox(c, s))
            self.after_outbox(c, s, cur)
            # the conditional UPDATEs last, in SKU order: the hot row is locked from here on
            ledger_rows, update = [], step["stock_update"]
            for stock, quantity in chosen:
                c.stock, c.quantity = stock, quantity
                run(update.sql, self.bind_stock_update(c, update))
                after = cur.fetchone()
                if after is None:
                    raise BenchError("stock ran out")
                on_hand, reserved = after
                ledger_rows.append(_over(
                    _row_base(step["ledger"]), stock_id=stock["stock.id"],
                    sku_id=stock["stock.sku_id"], warehouse_id=stock["stock.warehouse_id"],
                    shop_id=stock["stock.shop_id"], reason="reserve", reference=c.trade_no,
                    note=None, on_hand_before=on_hand, on_hand_after=on_hand,
                    reserved_before=reserved - quantity, reserved_after=reserved,
                    actor=self.caller, created_at=_now()))
            run(self.ledger_sql, _multi(ledger_rows))
            for row, (ledger_id, *_) in zip(ledger_rows, cur.fetchall()):
                self.audited(c, "StockLedger", ledger_id, row, row["shop_id"])
            if len(c.unaudited) != self.audit_rows:
                raise BenchError(f"{len(c.unaudited)} audit rows, the service writes "
                                 f"{self.audit_rows}")
            stamp = _now()
            audit = [_over(self.audit_base, created_at=stamp, actor=self.caller, model=model,
                           record_pk=pk, action="insert", changes=Json(changes),
                           shop_id=shop_id)
                     for model, pk, changes, shop_id in c.unaudited]
            run(self.audit_sql, _multi(audit))
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        finally:
            cur.close()
        if trace is not None:
            trace.extend(("lean", normalised(sql), 1) for sql in executed)


# -- one client process ------------------------------------------------------------------------------

def _runner(side: str, scenario: Scenario):
    """(op, close) for one client of `side`, built in the client process."""
    fixture = STATE["fixture"]
    caller = f"system:{ACTOR_NAME}"
    if side == "service":
        from app.extensions import db

        app = STATE["app"]
        with app.app_context():
            db.engine.dispose(close=False)   # never reuse the parent's connections

        def close():
            with app.app_context():
                db.session.remove()
                db.engine.dispose()

        return (lambda body, key: service_op(app, body, key)), close
    import psycopg

    conn = psycopg.connect(fixture.database_url)
    steps = STATE["captures"][scenario.name].steps
    mirror = Mirror(conn, steps, caller) if side == "raw" else \
        Lean(conn, steps, caller, scenario.lines)
    return mirror.op, conn.close


def client_main(side: str, scenario: Scenario, index: int, run: int, ramp: float,
                duration: float, barrier, results) -> None:
    """Warm up, wait at the barrier, then place checkouts until ramp + duration has passed;
    the ops that end inside [start + ramp, start + ramp + duration] are the ones counted."""
    fixture = STATE["fixture"]
    rng = random.Random(f"{run}-{index}")
    prefix = f"{side}-{scenario.key}-r{run}-c{index}-"
    try:
        op, close = _runner(side, scenario)
        for n in range(WARMUP_OPS):
            op(body_of(fixture, cart(scenario, rng, fixture)), f"{prefix}w{n}")
    except BaseException:  # noqa: BLE001 - reported to the parent, which fails the run
        results.put({"index": index, "fatal": traceback.format_exc()})
        barrier.abort()
        return
    finished, errors, examples, jobs = [], Counter(), {}, 0
    try:
        barrier.wait()
    except Exception:  # noqa: BLE001 - another client failed; the parent reports it
        close()
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = usage.ru_utime + usage.ru_stime
    start = time.perf_counter()
    stop = start + ramp + duration
    n = 0
    while True:
        began = time.perf_counter()
        if began >= stop:
            break
        body = body_of(fixture, cart(scenario, rng, fixture))
        n += 1
        try:
            left = op(body, f"{prefix}{n}")
            jobs += left or 0
            finished.append((began, time.perf_counter()))
        except BenchError:
            results.put({"index": index, "fatal": traceback.format_exc()})
            close()
            return
        except Exception as exc:  # noqa: BLE001 - counted, reported, not in the ops
            name = type(getattr(exc, "orig", None) or exc).__name__
            errors[name] += 1
            examples.setdefault(name, " ".join(str(exc).splitlines()[:2])[:300])
    usage = resource.getrusage(resource.RUSAGE_SELF)
    close()
    low, high = start + ramp, start + ramp + duration
    counted = [end - began for began, end in finished if low <= end <= high]
    results.put({"index": index, "ops": len(counted), "all_ops": len(finished),
                 "warmup_ops": WARMUP_OPS, "errors": dict(errors), "error_examples": examples,
                 "jobs": jobs, "latencies": counted,
                 "cpu_s": usage.ru_utime + usage.ru_stime - cpu0})


def _cpu_busy() -> float:
    """Seconds of CPU the whole machine spent busy so far (all cores, /proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _process_cpu(pids) -> float:
    """Seconds of CPU used so far by these processes (PostgreSQL backends), from /proc."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])      # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def _backend_pids(monitor) -> list[int]:
    return [pid for (pid,) in monitor.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND backend_type = 'client backend' AND pid <> pg_backend_pid()").fetchall()]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def measure(side: str, scenario: Scenario, run: int, ramp: float, duration: float) -> dict:
    fixture = STATE["fixture"]
    reset(fixture.database_url)
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(scenario.clients + 1)
    results = ctx.Queue()
    processes = [ctx.Process(target=client_main, daemon=True,
                             args=(side, scenario, i, run, ramp, duration, barrier, results))
                 for i in range(scenario.clients)]
    for process in processes:
        process.start()
    import psycopg

    monitor = psycopg.connect(fixture.database_url, autocommit=True)   # after the forks
    reports = []
    try:
        try:
            barrier.wait(timeout=300)
        except Exception:  # noqa: BLE001 - a client failed before the start
            fatal = []
            while True:
                try:
                    report = results.get(timeout=2)
                except Exception:  # noqa: BLE001
                    break
                if "fatal" in report:
                    fatal.append(report["fatal"])
            raise BenchError(f"{side} client failed before the start:\n" +
                             (fatal[0] if fatal else "(no report; barrier timeout)"))
        released = time.perf_counter()
        time.sleep(max(0.0, released + ramp - time.perf_counter()))
        pids = _backend_pids(monitor)
        cpu0, pg0 = _cpu_busy(), _process_cpu(pids)
        time.sleep(max(0.0, released + ramp + duration - time.perf_counter()))
        cpu1, pg1 = _cpu_busy(), _process_cpu(pids)
        for _ in processes:
            report = results.get(timeout=duration + 300)
            if "fatal" in report:
                raise BenchError(f"{side} client {report['index']} failed:\n{report['fatal']}")
            reports.append(report)
    finally:
        monitor.close()
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    if len(pids) < scenario.clients:
        raise BenchError(f"{len(pids)} backends for {scenario.clients} clients")
    ops = sum(r["ops"] for r in reports)
    all_ops = sum(r["all_ops"] for r in reports)
    latencies = [x for r in reports for x in r["latencies"]]
    errors = Counter()
    examples = {}
    for r in reports:
        errors.update(r["errors"])
        examples.update(r["error_examples"])
    jobs = sum(r["jobs"] for r in reports)
    if jobs:
        raise BenchError(f"{side}: {jobs} in-process jobs were left by the commits")
    total = all_ops + sum(r["warmup_ops"] for r in reports)
    hot = fixture.stock_of[fixture.hot_sku] if scenario.name == "hot" else None
    verify(fixture.database_url, total, scenario.lines,
           STATE["captures"][scenario.name].audit_per_op, f"{side} {scenario.key}", hot)
    client_cpu_per_op = sum(r["cpu_s"] for r in reports) / max(all_ops, 1)
    busy, backends = cpu1 - cpu0, pg1 - pg0
    return {"side": side, "scenario": scenario.key, "clients": scenario.clients, "run": run,
            "ops": ops, "all_ops": all_ops, "seconds": duration, "ops_per_s": ops / duration,
            "p50_ms": percentile(latencies, 0.50) * 1000,
            "p95_ms": percentile(latencies, 0.95) * 1000,
            "failed": sum(errors.values()), "errors": dict(errors), "error_examples": examples,
            "client_cpu_ms_per_op": client_cpu_per_op * 1000,
            "pg_cpu_ms_per_op": backends / max(ops, 1) * 1000,
            "machine_busy_cpus": busy / duration,
            "other_load_cpus": max(busy - backends - client_cpu_per_op * ops, 0) / duration}


# -- statement counts and the single-client profile --------------------------------------------------

def statement_table(captures: dict) -> tuple[str, dict]:
    counts = {}
    rows = []
    kinds = [kind for kind, _ in KINDS]
    for name, cap in captures.items():
        per_kind = Counter(step.kind for step in cap.steps)
        counts[name] = {"statements": len(cap.steps), "per_kind": dict(per_kind),
                        "checkouts_pre_ping": cap.checkouts if cap.pre_ping else 0,
                        "commits": cap.commits,
                        "audit_rows": sum(cap.audit_per_op.values()),
                        "lean_statements": STATE["lean_statements"][name]}
    for kind in kinds:
        row = [KIND_LABEL[kind]] + [str(Counter(s.kind for s in cap.steps).get(kind, 0))
                                    for cap in captures.values()]
        if any(cell != "0" for cell in row[1:]):
            rows.append(row)
    rows.append(["**statements per checkout (service = raw mirror)**"] +
                 [f"**{len(cap.steps)}**" for cap in captures.values()])
    rows.append(["+ pool pre-ping `SELECT 1` (service only), BEGIN, COMMIT"] +
                 [f"{cap.checkouts if cap.pre_ping else 0} + 1 + {cap.commits}"
                  for cap in captures.values()])
    rows.append(["lean variant: statements per checkout"] +
                 [str(STATE["lean_statements"][name]) for name in captures])
    headers = ["statement"] + [f"{name} ({STATE['lines'][name]} "
                               f"line{'s' if STATE['lines'][name] > 1 else ''})"
                               for name in captures]
    return markdown_table(headers, rows), counts


PROFILE_GROUPS = [
    ("waiting for PostgreSQL (psycopg `wait`)",
     lambda f, n: f.endswith("psycopg/connection.py") and n == "wait"),
    ("psycopg: sending (loopback syscalls), adapting parameters, building rows",
     lambda f, n: "psycopg" in f),
    ("SQLAlchemy ORM (unit of work, identity map, loading, attribute events)",
     lambda f, n: "sqlalchemy/orm" in f),
    ("SQLAlchemy Core (execute, compiled-cache lookup, results)",
     lambda f, n: "sqlalchemy/engine" in f or "sqlalchemy/sql" in f),
    ("SQLAlchemy pool, events, util", lambda f, n: "sqlalchemy" in f),
    ("audit hook (services/audit.py)", lambda f, n: f.endswith("services/audit.py")),
    ("services (order, inventory, events, actor, clock)", lambda f, n: "/services/" in f),
    ("Flask app context, Flask-SQLAlchemy session scope",
     lambda f, n: "flask" in f or "werkzeug" in f),
    ("other Python (JSON, hashing, Decimal, datetime, builtins)", lambda f, n: True),
]


class _Ablation:
    """Switch one part of the service off for a single-client measurement (bench only)."""

    def __init__(self, app, parts: tuple[str, ...]):
        self.app, self.parts, self.undo = app, parts, []

    def __enter__(self):
        from sqlalchemy import event
        from sqlalchemy.orm import Session

        from app.extensions import db
        from services import audit, inventory

        if "audit" in self.parts:
            # the flush hook (ORM writes) and the commit hook (rows inserted with Core)
            for name, hook in (("after_flush", audit._after_flush),
                               ("before_commit", audit._before_commit)):
                if event.contains(Session, name, hook):
                    event.remove(Session, name, hook)
                    self.undo.append(functools.partial(event.listen, Session, name, hook))
        if "pre_ping" in self.parts:
            with self.app.app_context():
                pool = db.engine.pool
            previous = pool._pre_ping
            pool._pre_ping = False
            self.undo.append(lambda: setattr(pool, "_pre_ping", previous))
        if "low_stock" in self.parts:
            signal = inventory._signal_if_low
            inventory._signal_if_low = lambda *args, **kwargs: None
            self.undo.append(lambda: setattr(inventory, "_signal_if_low", signal))
        return self

    def __exit__(self, *exc):
        for undo in reversed(self.undo):
            undo()


ABLATIONS = [
    ("service as it is", ()),
    ("without the audit hook", ("audit",)),
    ("without pool pre-ping", ("pre_ping",)),
    ("without the low-stock check", ("low_stock",)),
    ("without all three", ("audit", "pre_ping", "low_stock")),
]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def single_client(app, scenario: Scenario, ops: int, repeats: int = 3) -> dict:
    """One client alone (no contention), in this process: ms of wall time and of client CPU
    per checkout for each side and for the service with parts switched off; then a cProfile
    of the service. Each figure is the best of `repeats` interleaved passes."""
    import psycopg
    from sqlalchemy import event

    from app.extensions import db

    fixture = STATE["fixture"]
    reset(fixture.database_url)
    rng = random.Random(f"single-{scenario.key}")
    bodies = [body_of(fixture, cart(scenario, rng, fixture)) for _ in range(ops)]
    steps = STATE["captures"][scenario.name].steps
    caller = f"system:{ACTOR_NAME}"
    with app.app_context():
        engine = db.engine
    seq = [0]

    failures = Counter()

    def attempt(op, body):
        """One checkout; a failure (a checkout-number collision) is counted, not fatal."""
        seq[0] += 1
        try:
            op(body, f"single-{scenario.key}-{seq[0]}")
            return True
        except BenchError:
            raise
        except Exception as exc:  # noqa: BLE001
            failures[type(getattr(exc, "orig", None) or exc).__name__] += 1
            return False

    def timed(op, label):
        for n in range(WARMUP_OPS):
            attempt(op, bodies[n])
        statements = [0]

        def count(*_):
            statements[0] += 1

        event.listen(engine, "before_cursor_execute", count)
        attempt(op, bodies[0])
        event.remove(engine, "before_cursor_execute", count)
        wall, cpu = time.perf_counter(), _cpu()
        done = sum(attempt(op, body) for body in bodies)
        return {"wall_ms": (time.perf_counter() - wall) * 1000 / max(done, 1),
                "cpu_ms": (_cpu() - cpu) * 1000 / max(done, 1),
                "statements": statements[0] if label == "service" else None}

    passes: dict[str, list[dict]] = {}
    for _ in range(repeats):
        for side in ("raw", "lean"):
            with psycopg.connect(fixture.database_url) as conn:
                runner = Mirror(conn, steps, caller) if side == "raw" else \
                    Lean(conn, steps, caller, scenario.lines)
                passes.setdefault(side, []).append(timed(runner.op, side))
        for label, parts in ABLATIONS:
            with _Ablation(app, parts):
                passes.setdefault(label, []).append(
                    timed(lambda body, key: service_op(app, body, key), "service"))
        reset(fixture.database_url)
    best = {label: {"wall_ms": min(p["wall_ms"] for p in runs),
                    "cpu_ms": min(p["cpu_ms"] for p in runs),
                    "statements": runs[0]["statements"]} for label, runs in passes.items()}
    best["raw"]["statements"] = len(steps)
    best["lean"]["statements"] = STATE["lean_statements"][scenario.name]

    # wall clock by default; CPU time (--profile-clock cpu) leaves out the time the client
    # waits for PostgreSQL or for a CPU, which matters on a busy machine
    clock = (time.process_time,) if STATE.get("profile_clock") == "cpu" else ()
    profiler = cProfile.Profile(*clock)
    profiler.enable()
    for body in bodies:
        attempt(lambda b, key: service_op(app, b, key), body)
    profiler.disable()
    stats = pstats.Stats(profiler)
    calls = {"service": stats.total_calls / ops}
    with psycopg.connect(fixture.database_url) as conn:
        mirror = Mirror(conn, steps, caller)
        mirror_profiler = cProfile.Profile(*clock)
        mirror_profiler.enable()
        for body in bodies:
            attempt(mirror.op, body)
        mirror_profiler.disable()
    calls["raw"] = pstats.Stats(mirror_profiler).total_calls / ops
    groups = Counter()
    for (filename, _, name), (_, _, tottime, _, _) in stats.stats.items():
        for label, test in PROFILE_GROUPS:
            if test(filename, name):
                groups[label] += tottime
                break
    total = sum(groups.values())
    interesting = {"place": "services/order.py", "_new_trade": "services/order.py",
                   "_claimed_trade": "services/order.py", "_new_orders": "services/order.py",
                   "_inserted": "services/order.py", "_buyer": "services/order.py",
                   "_checked_lines": "services/order.py", "replayed_trade": "services/order.py",
                   "_replayed": "services/order.py",
                   "_member_and_address": "services/order.py",
                   "_attach_reservations": "services/order.py",
                   "reserve": "services/inventory.py", "_change": "services/inventory.py",
                   "_reserve_one": "services/inventory.py", "piece": "services/inventory.py",
                   "write_ledger": "services/inventory.py", "_audit_rows": "services/audit.py",
                   "record_inserts": "services/audit.py", "_before_commit": "services/audit.py",
                   "_signal_if_low": "services/inventory.py", "publish": "services/events.py",
                   "_after_flush": "services/audit.py", "flush": "sqlalchemy/orm/session.py",
                   "commit": "sqlalchemy/orm/session.py",
                   "_execute_context": "sqlalchemy/engine/base.py",
                   "_do_ping_w_event": "sqlalchemy/engine/default.py",
                   "app_context": "flask/app.py", "remove": "sqlalchemy/orm/scoping.py"}
    cumulative = {}
    for (filename, _, name), (_, ncalls, _, cumtime, _) in stats.stats.items():
        if name in interesting and filename.endswith(interesting[name]):
            key = f"{interesting[name].rsplit('/', 1)[-1]} {name}"
            if key not in cumulative or cumulative[key][1] < cumtime * 1000 / ops:
                cumulative[key] = (ncalls / ops, cumtime * 1000 / ops)
    top = io.StringIO()
    pstats.Stats(profiler, stream=top).sort_stats("tottime").print_stats(20)
    import sysconfig

    site = sysconfig.get_paths()["purelib"] + "/"
    top_text = "\n".join(line.replace(site, "").replace(str(PROJECT_ROOT) + "/", "")
                         for line in top.getvalue().splitlines()
                         if line.strip() and "Ordered by" not in line
                         and "List reduced" not in line and "function calls" not in line)
    reset(fixture.database_url)
    return {"scenario": scenario.key, "title": scenario.title, "ops": ops, "single": best,
            "profile_clock": STATE.get("profile_clock", "wall"),
            "failed": dict(failures), "python_calls_per_op": calls,
            "profile_ms_per_op": total * 1000 / ops,
            "groups_ms_per_op": {k: v * 1000 / ops for k, v in groups.most_common()},
            "cumulative_ms_per_op": dict(sorted(cumulative.items(), key=lambda kv: -kv[1][1])),
            "top": top_text}


def render_single(profiles: list[dict]) -> str:
    labels = ["raw", "lean"] + [label for label, _ in ABLATIONS]
    names = {"raw": "raw SQL, same statements", "lean": "raw SQL, lean"}
    rows = []
    for label in labels:
        row = [names.get(label, label)]
        for profile in profiles:
            one = profile["single"][label]
            row += [f"{one['wall_ms']:.2f}", f"{one['cpu_ms']:.2f}", str(one["statements"])]
        rows.append(row)
    headers = ["one client alone"]
    for profile in profiles:
        headers += [f"{profile['title']}: ms/checkout", "client CPU ms", "statements"]
    return markdown_table(headers, rows)


def render_profile(profile: dict) -> str:
    calls = profile["python_calls_per_op"]
    lines = [f"cProfile of the service, one client, {profile['ops']} checkouts "
             f"({profile['title']}): {calls['service']:,.0f} Python function calls per "
             f"checkout (raw mirror: {calls['raw']:,.0f}); own time in ms per checkout "
             f"({profile.get('profile_clock', 'wall')} clock; profiling inflates Python time: "
             f"{profile['profile_ms_per_op']:.1f} ms in all):",
             ""]
    total = sum(profile["groups_ms_per_op"].values())
    lines.append(markdown_table(["part", "ms per checkout", "share"], [
        [label, f"{ms:.2f}", f"{ms / total:.0%}"]
        for label, ms in profile["groups_ms_per_op"].items()]))
    lines += ["", "Inclusive time of the main steps (calls and ms per checkout, profiled):", ""]
    lines.append(markdown_table(["function", "calls per checkout", "ms per checkout"], [
        [name, f"{calls:.1f}", f"{ms:.2f}"]
        for name, (calls, ms) in profile["cumulative_ms_per_op"].items()]))
    return "\n".join(lines)


# -- summary -------------------------------------------------------------------------------------

def summarise(results: list[dict]) -> list[dict]:
    rows = []
    by = {}
    for r in results:
        by.setdefault((r["scenario"], r["side"]), []).append(r)
    for scenario in SCENARIOS:
        runs = {side: by.get((scenario.key, side), []) for side in SIDES}
        if not runs["service"]:
            continue

        def ratio(a, b):
            per_run = {r["run"]: r["ops_per_s"] for r in runs[b]}
            return median([r["ops_per_s"] / per_run[r["run"]] for r in runs[a]
                           if r["run"] in per_run])

        row = {"scenario": scenario.key, "title": scenario.title, "clients": scenario.clients,
               "lines": scenario.lines, "goal": scenario.goal, "runs": len(runs["service"]),
               "service_vs_raw": ratio("service", "raw"), "service_vs_lean": ratio("service", "lean"),
               "raw_vs_lean": ratio("raw", "lean")}
        for side in SIDES:
            rs = runs[side]
            row[side] = {
                "ops_per_s": median([r["ops_per_s"] for r in rs]),
                "spread": (min(r["ops_per_s"] for r in rs), max(r["ops_per_s"] for r in rs)),
                "p50_ms": median([r["p50_ms"] for r in rs]),
                "p95_ms": median([r["p95_ms"] for r in rs]),
                "failed": sum(r["failed"] for r in rs),
                "ops": sum(r["ops"] for r in rs),
                "errors": dict(sum((Counter(r["errors"]) for r in rs), Counter())),
                "client_cpu_ms_per_op": median([r["client_cpu_ms_per_op"] for r in rs]),
                "pg_cpu_ms_per_op": median([r["pg_cpu_ms_per_op"] for r in rs]),
                "machine_busy_cpus": median([r["machine_busy_cpus"] for r in rs]),
                "other_load_cpus": median([r["other_load_cpus"] for r in rs]),
            }
        rows.append(row)
    return rows


def render(rows: list[dict]) -> str:
    head = markdown_table(
        ["scenario", "clients", "service ops/s", "raw SQL ops/s (same statements)",
         "**service ÷ raw**", "goal", "service p95 ms", "raw p95 ms", "lean raw ops/s",
         "service ÷ lean", "lean p95 ms"],
        [[row["title"], row["clients"], f"{row['service']['ops_per_s']:.0f}",
          f"{row['raw']['ops_per_s']:.0f}",
          f"**{row['service_vs_raw']:.2f}**" + ("" if row["service_vs_raw"] >= row["goal"]
                                                 else " (below)"),
          f"≥ {row['goal']:.2f}", f"{row['service']['p95_ms']:.1f}",
          f"{row['raw']['p95_ms']:.1f}", f"{row['lean']['ops_per_s']:.0f}",
          f"{row['service_vs_lean']:.2f}", f"{row['lean']['p95_ms']:.1f}"] for row in rows])
    detail = markdown_table(
        ["scenario", "clients", "side", "ops/s", "min–max", "p50 ms", "p95 ms",
         "client CPU ms/op", "PostgreSQL CPU ms/op", "busy CPUs (of which other load)",
         "failed / ops"],
        [[row["title"], row["clients"], SIDE_LABEL[side], f"{row[side]['ops_per_s']:.0f}",
          f"{row[side]['spread'][0]:.0f}–{row[side]['spread'][1]:.0f}",
          f"{row[side]['p50_ms']:.1f}", f"{row[side]['p95_ms']:.1f}",
          f"{row[side]['client_cpu_ms_per_op']:.2f}", f"{row[side]['pg_cpu_ms_per_op']:.2f}",
          f"{row[side]['machine_busy_cpus']:.2f} ({row[side]['other_load_cpus']:.2f})",
          f"{row[side]['failed']} / {row[side]['ops']}" +
          (f" ({', '.join(f'{k} {v}' for k, v in row[side]['errors'].items())})"
           if row[side]["errors"] else "")]
         for row in rows for side in SIDES])
    return head + "\n\n" + detail


# -- main ---------------------------------------------------------------------------------------

def machine_info() -> dict:
    try:
        return machine()
    except Exception:  # noqa: BLE001 - Redis is not needed here; describe the rest
        import platform

        import psycopg

        from bench.common import PG_ADMIN_URL

        with psycopg.connect(PG_ADMIN_URL) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
        return {"nproc": os.cpu_count(), "python": platform.python_version(), "rq": "n/a",
                "redis": "n/a", "postgresql": version,
                "load_1min": round(os.getloadavg()[0], 2)}


def check_connections(needed: int) -> int:
    import psycopg

    from bench.common import PG_ADMIN_URL

    with psycopg.connect(PG_ADMIN_URL) as conn:
        limit = int(conn.execute("SHOW max_connections").fetchone()[0])
        reserved = int(conn.execute("SHOW superuser_reserved_connections").fetchone()[0])
        used = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                            "'client backend'").fetchone()[0]
    free = limit - reserved - used
    if free < needed:
        raise BenchError(f"PostgreSQL max_connections={limit} ({used} in use, {reserved} "
                         f"reserved): {needed} needed for the clients")
    return limit


def same_rows_check(app, captures: dict) -> dict:
    """One checkout per side on an empty database: the same rows, table by table."""
    import psycopg

    fixture = STATE["fixture"]
    caller = f"system:{ACTOR_NAME}"
    found = {}
    for scenario in (SCENARIOS[0], SCENARIOS[2]):
        cap = captures[scenario.name]
        shapes = {}
        skus = [fixture.hot_sku] if scenario.name == "hot" else fixture.sku_ids[10:13]
        body = body_of(fixture, skus)
        for side in SIDES:
            reset(fixture.database_url)
            if side == "service":
                service_op(app, body, f"check-{side}-{scenario.name}")
            else:
                with psycopg.connect(fixture.database_url) as conn:
                    runner = Mirror(conn, cap.steps, caller) if side == "raw" else \
                        Lean(conn, cap.steps, caller, scenario.lines)
                    trace = []
                    runner.op(body, f"check-{side}-{scenario.name}", trace)
                    if side == "raw":
                        service = [normalised(s.sql) for s in cap.steps]
                        if [t[1] for t in trace] != service:
                            raise BenchError("the raw mirror's statements differ from the "
                                             "service's")
                    else:
                        STATE["lean_statements"][scenario.name] = len(trace)
            found[(scenario.name, side)] = effects(fixture.database_url)
            shapes[side] = audit_shape(fixture.database_url)
            verify(fixture.database_url, 1, scenario.lines, cap.audit_per_op,
                   f"{side} {scenario.name} check")
        if not (found[(scenario.name, "service")] == found[(scenario.name, "raw")]
                == found[(scenario.name, "lean")]):
            raise BenchError(f"sides write different rows: {found}")
        # the audit rows say the same (columns, masked values); the raw mirror also writes
        # them in the service's order, the lean variant in its own
        if shapes["raw"] != shapes["service"] or \
                sorted(shapes["lean"]) != sorted(shapes["service"]):
            raise BenchError(f"{scenario.name}: the audit rows differ between the sides: {shapes}")
        found[(scenario.name, "service")]["audit_rows"] = shapes["service"]
    return {f"{k[0]}/{k[1]}": v for k, v in found.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.checkout", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario (median; ≥3)")
    parser.add_argument("--duration", type=float, default=5.0,
                        help="seconds of each measurement's counted window (default 5)")
    parser.add_argument("--ramp", type=float, default=1.0,
                        help="seconds after the start before the window opens (default 1)")
    parser.add_argument("--quick", action="store_true",
                        help="1 run of 1 s per measurement, short profile (smoke test)")
    parser.add_argument("--keep-db", action="store_true", help=f"leave {DB_NAME} in place")
    parser.add_argument("--show-sql", action="store_true",
                        help="print the service's statements for each scenario")
    parser.add_argument("--no-profile", action="store_true",
                        help="skip the single-client cProfile of the service")
    parser.add_argument("--profile-clock", choices=("wall", "cpu"), default="wall",
                        help="cProfile's clock: wall time (default) or the client's CPU time")
    parser.add_argument("--profile-ops", type=int, default=150,
                        help="checkouts per single-client pass (3 passes; default 150)")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.duration, args.ramp, args.profile_ops = 1, 1.0, 0.25, 50
    elif args.runs < 3:
        parser.error("--runs must be at least 3 (medians of several runs)")

    info = machine_info()
    print(f"bench.checkout: {describe_machine(info)}", flush=True)
    started = time.perf_counter()
    instance = tempfile.mkdtemp(prefix="houtai-bench-checkout-")
    results, profiles = [], []
    failed = True
    try:
        info["max_connections"] = check_connections(max(s.clients for s in SCENARIOS) + 4)
        database_url = recreate_database(DB_NAME)
        app = build_app(database_url, instance)
        from flask_migrate import upgrade

        from app.extensions import db

        with app.app_context():
            upgrade()
        fixture = make_data(app, database_url)
        STATE.update(app=app, fixture=fixture, captures={}, lean_statements={},
                     profile_clock=args.profile_clock,
                     lines={s.name: s.lines for s in SCENARIOS})
        print(f"database {DB_NAME}: {SKU_COUNT} SKUs × {ON_HAND:,} units, hot SKU "
              f"{fixture.hot_sku}; {args.runs} run(s) of {args.duration:g} s per measurement",
              flush=True)
        for run in range(1, args.runs + 1):
            # capture the service's statements (the 3rd checkout of a fresh database: caches
            # warm) and check that the mirror writes the same rows
            reset(database_url)
            for scenario in (SCENARIOS[0], SCENARIOS[2]):
                skus = [fixture.hot_sku] if scenario.name == "hot" else fixture.sku_ids[:3]
                for n in range(2):
                    service_op(app, body_of(fixture, skus), f"capture-warm-{run}-{scenario.name}-{n}")
                STATE["captures"][scenario.name] = capture(
                    app, body_of(fixture, skus), f"capture-{run}-{scenario.name}")
            if run == 1:
                same = same_rows_check(app, STATE["captures"])
                table, counts = statement_table(STATE["captures"])
                print("\nStatements per checkout (captured from the service; the raw side "
                      "replays the same list):\n" + table, flush=True)
                if args.show_sql:
                    for name, cap in STATE["captures"].items():
                        print(f"\n-- {name}: {len(cap.steps)} statements")
                        for step in cap.steps:
                            print(f"[{step.kind}{' ×' + str(step.rows) if step.rows > 1 else ''}] "
                                  f"{normalised(step.sql)[:300]}")
                print("same rows written by service, raw and lean: yes", flush=True)
            with app.app_context():
                db.session.remove()
                db.engine.dispose()          # no connection crosses a fork
            order = SIDES[(run - 1) % 3:] + SIDES[:(run - 1) % 3]
            for scenario in SCENARIOS:
                for side in order:
                    result = measure(side, scenario, run, args.ramp, args.duration)
                    results.append(result)
                    print(f"  run {run}: {scenario.title:<30} x{scenario.clients:<2} "
                          f"{side:<7} {result['ops']:>6} ops {result['ops_per_s']:8.1f} /s  "
                          f"p95 {result['p95_ms']:6.1f} ms  failed {result['failed']}",
                          flush=True)
        rows = summarise(results)
        below = [row for row in rows if row["service_vs_raw"] < row["goal"]]
        if not args.no_profile:
            print("\nsingle client: timings, ablations, cProfile …", flush=True)
            for scenario in (SCENARIOS[0], SCENARIOS[2]):
                profiles.append(single_client(app, scenario, args.profile_ops))
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
        failed = False
    finally:
        STATE.pop("app", None)
        if not args.keep_db:
            try:
                drop_database(DB_NAME)
            except Exception as exc:  # noqa: BLE001
                print(f"could not drop {DB_NAME}: {exc}", file=sys.stderr)
        shutil.rmtree(instance, ignore_errors=True)
    elapsed = time.perf_counter() - started
    print()
    print(f"Medians of {args.runs} run(s) of {args.duration:g} s ({elapsed:.0f} s in all); "
          "ratio = median of the per-run ratios (same run, sides interleaved):")
    print(render(rows))
    if below:
        print("\nBelow goal: " + ", ".join(f"{r['title']} ×{r['clients']} "
                                           f"({r['service_vs_raw']:.2f} < {r['goal']:.2f})"
                                           for r in below))
    if profiles:
        print("\nOne client alone, no contention (best of 3 passes of "
              f"{args.profile_ops} checkouts; parts switched off for the service only):")
        print(render_single(profiles))
    for profile in profiles:
        print()
        print(render_profile(profile))
        print("\nTop functions by own time (profiled service client):")
        print(profile["top"])
    try:
        info["load_1min_end"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    print(f"\nload average (1 min) at start {info.get('load_1min')}, at end "
          f"{info.get('load_1min_end')} on {info['nproc']} CPUs")
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = RESULTS_DIR / f"checkout-{stamp}.json"
    path.write_text(json.dumps({
        "machine": info, "git": git_revision(), "args": vars(args), "elapsed_s": elapsed,
        "summary": rows, "runs": [{k: v for k, v in r.items()} for r in results],
        "statements": counts, "same_rows_check": same, "profiles": profiles,
        "captured_sql": {name: [[s.kind, normalised(s.sql), s.rows]
                                for s in cap.steps] for name, cap in STATE["captures"].items()},
    }, indent=2, default=str))
    print(f"\nraw results: {path.relative_to(PROJECT_ROOT)}")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
