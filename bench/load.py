"""A load test of the production shape: gunicorn, PostgreSQL, Redis and `rq worker` processes.

    .venv/bin/python -m bench.load [--duration 60] [--clients 16] [--web 2] [--web-workers 2]
                                   [--workers 2] [--hot-stock 150] [--quick] [--keep-db]

What runs (all on 127.0.0.1, started by the benchmark from the project root, exactly as the
README's production section starts them):

* `houtai init` and `houtai demo` on a fresh PostgreSQL database (`houtai_load`), then the load
  catalogue made through the services: one on-sale SPU of shop A with 50 SKUs, a warehouse with
  plenty of each — and a HOT SKU with only `--hot-stock` units, which every client wants —
  and `--members` buyers with their own addresses;
* `--web` gunicorn masters (default 2, each a separate process group on its own port, as two
  machines behind a load balancer would be) with `--web-workers` sync workers each, serving
  `run:app` with HOUTAI_ENV=production, LOG_FORMAT=json;
* `--workers` (default 2) `rq worker` processes (SimpleWorker, as `make worker`) on the same
  Redis queue, handling every event's subscribers while the load runs.

Clients (`--clients` threads, requests spread round-robin over the web processes) run a mix for
`--duration` seconds:

| operation | share | request |
|---|---|---|
| browse | 35 % | `GET /api/v1/storefront/slots` (public) or `GET /api/v1/category/` (storefront) |
| quote | 20 % | `POST /api/v1/checkout/quote`, 1–3 lines |
| place → pay → notify | 25 % | `POST /api/v1/checkout/place` (Idempotency-Key), then `POST /api/v1/trade/<id>/pay` and the sandbox gateway's signed `POST /api/v1/payment/notify/sandbox` for 80 % of the placed trades |
| list orders | 20 % | `GET /api/v1/order/` as the merchant, page 1 of the newest |

Half of the carts hold the hot SKU, so it sells out early and the rest of its checkouts must
be refused with 409 — never oversold.

Reported: requests per second for the whole mix and per operation, p50 / p95 / max latency,
errors (any 5xx, a connection failure, or an answer the operation never gives: a 409 for a
short hot SKU is an expected refusal, not an error). The ceiling measured in the same run is
`GET /health` (one `SELECT 1`) from the same clients for `--ceiling` seconds: the mix's
requests per second ÷ the ceiling's is the ratio printed.

After the load, the workers drain the queue, then the database is checked (the run fails if
any check fails): no stock row below zero or reserving more than it holds; the hot SKU's units
reserved equal the units of the trades placed for it and are at most `--hot-stock`; every
stock row equals the sum of its ledger; every trade a client was told was placed exists, and
every trade whose payment notification was answered "ok" is paid; every event delivery is done
(none pending or failed) and RQ's failed-job registry is empty; the journal balances.
"""
import argparse
import hashlib
import hmac
import http.client
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from bench.common import (PROJECT_ROOT, RESULTS_DIR, VENV_BIN, describe_machine, drop_database,
                          git_revision, machine, markdown_table, median, recreate_database)

DB_NAME = os.environ.get("BENCH_LOAD_DB_NAME", "houtai_load")
REDIS_URL = os.environ.get("BENCH_LOAD_REDIS_URL", "redis://127.0.0.1:6379/4")
QUEUE = "houtai-load"
SKUS = 50
ON_HAND = 100_000
PASSWORD = "load-" + secrets.token_hex(8)
GATEWAY_SECRET = "load-gateway-" + secrets.token_hex(8)
MIX = (("browse", 35), ("quote", 20), ("place", 25), ("list_orders", 20))
OPERATIONS = ("browse", "quote", "place", "pay", "notify", "list_orders")


class LoadError(RuntimeError):
    """The load test could not run or a check failed."""


@dataclass
class Catalogue:
    sku_ids: list[int]
    hot_sku: int
    buyers: list[tuple[int, int]]  # (member id, address id)


@dataclass
class Tally:
    """What every client saw: latencies per operation, errors, what the server promised."""

    latencies: dict = field(default_factory=lambda: defaultdict(list))
    refused: dict = field(default_factory=lambda: defaultdict(int))
    errors: dict = field(default_factory=lambda: defaultdict(int))
    error_samples: list = field(default_factory=list)
    placed: dict = field(default_factory=dict)   # trade id → {sku id: quantity}
    paid: set = field(default_factory=set)       # trade ids whose notification was "ok"
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, operation: str, seconds: float) -> None:
        with self.lock:
            self.latencies[operation].append(seconds)

    def error(self, operation: str, detail: str) -> None:
        with self.lock:
            self.errors[operation] += 1
            if len(self.error_samples) < 20:
                self.error_samples.append(f"{operation}: {detail[:300]}")


# -- the processes ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment(database_url: str) -> dict:
    env = dict(os.environ)
    env.update({"DATABASE_URL": database_url, "REDIS_URL": REDIS_URL, "HOUTAI_QUEUE": QUEUE,
                "HOUTAI_ENV": "production", "SECRET_KEY": "load-" + secrets.token_hex(32),
                "SANDBOX_GATEWAY_SECRET": GATEWAY_SECRET, "DEMO_PASSWORD": PASSWORD,
                "LOG_FORMAT": "json", "ACCESS_LOG": "0", "PYTHONUNBUFFERED": "1"})
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def flask(env: dict, *args: str) -> str:
    done = subprocess.run([str(VENV_BIN / "flask"), "--app", "run", *args], cwd=PROJECT_ROOT,
                          env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise LoadError(f"flask {' '.join(args)} failed:\n{done.stdout[-2000:]}"
                        f"{done.stderr[-4000:]}")
    return done.stdout


class Processes:
    """gunicorn masters and rq workers, each in its own process group, logs in a folder."""

    def __init__(self, env: dict, folder: str):
        self.env, self.folder = env, folder
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.ports: list[int] = []

    def _start(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(os.path.join(self.folder, f"{name}.log"), "w")
        process = subprocess.Popen(argv, cwd=PROJECT_ROOT, env=self.env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((name, process))
        return process

    def web(self, count: int, workers: int) -> None:
        for n in range(count):
            port = free_port()
            self._start(f"web-{n}", [str(VENV_BIN / "gunicorn"), "--no-control-socket",
                                     "-w", str(workers), "-b", f"127.0.0.1:{port}",
                                     "--timeout", "60", "run:app"])
            self.ports.append(port)
        deadline = time.monotonic() + 120
        for port in self.ports:
            while True:
                self.check_alive()
                try:
                    status, _ = request(port, "GET", "/health")
                    if status == 200:
                        break
                except OSError:
                    pass   # not listening yet: asked again until the deadline
                if time.monotonic() > deadline:
                    raise LoadError(f"gunicorn on {port} not ready:\n{self.tail()}")
                time.sleep(0.2)

    def rq_workers(self, count: int) -> None:
        for n in range(count):
            self._start(f"worker-{n}", [str(VENV_BIN / "rq"), "worker", "--url", REDIS_URL,
                                        "--worker-class", "rq.worker.SimpleWorker",
                                        "--name", f"load-{n}-{secrets.token_hex(3)}", QUEUE])

    def check_alive(self) -> None:
        for name, process in self.procs:
            if process.poll() is not None:
                raise LoadError(f"{name} exited with {process.returncode}:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        out = []
        for name, _ in self.procs:
            path = Path(self.folder) / f"{name}.log"
            if path.exists():
                out.append(f"--- {name}\n" + "\n".join(path.read_text().splitlines()[-lines:]))
        return "\n".join(out)

    def stop(self) -> None:
        for _, process in self.procs:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for _, process in self.procs:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


# -- HTTP ------------------------------------------------------------------------------------

def request(port: int, method: str, path: str, body=None, headers=None, raw: bytes = None):
    """One request on a new connection (gunicorn's sync workers close after each answer)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        sent = {"Content-Type": "application/json"} if data is not None else {}
        sent.update(headers or {})
        connection.request(method, path, body=data, headers=sent)
        response = connection.getresponse()
        payload = response.read()
        try:
            answer = json.loads(payload) if payload else None
        except ValueError:
            answer = payload[:200]
        return response.status, answer
    finally:
        connection.close()


def login(port: int, username: str) -> str:
    status, answer = request(port, "POST", "/api/v1/security/login", {
        "username": username, "password": PASSWORD, "provider": "db"})
    if status != 200:
        raise LoadError(f"login of {username}: {status} {answer}")
    return answer["access_token"]


# -- the catalogue ---------------------------------------------------------------------------

def make_catalogue(env: dict, members: int, hot_stock: int) -> Catalogue:
    """Made in a child process on the load database (the application as production builds it)."""
    code = f"""
import json
from bench.load import build_catalogue
print("CATALOGUE " + json.dumps(build_catalogue({members}, {hot_stock})))
"""
    done = subprocess.run([str(VENV_BIN / "python"), "-c", code], cwd=PROJECT_ROOT,
                          env={**env, "REDIS_URL": "", "HOUTAI_ENV": "development"},
                          capture_output=True, text=True, timeout=900)
    line = next((l for l in done.stdout.splitlines() if l.startswith("CATALOGUE ")), None)
    if done.returncode != 0 or line is None:
        raise LoadError(f"catalogue failed:\n{done.stdout[-2000:]}{done.stderr[-4000:]}")
    data = json.loads(line[len("CATALOGUE "):])
    return Catalogue(data["sku_ids"], data["hot_sku"], [tuple(b) for b in data["buyers"]])


def build_catalogue(members: int, hot_stock: int) -> dict:
    """One on-sale SPU of shop A with SKUS SKUs in a warehouse of its own (the hot SKU with
    `hot_stock` units, the others ON_HAND), buyers with addresses; through the services."""
    from app import create_app
    from app.extensions import db
    from models.inventory import Warehouse
    from models.member import Member, MemberAddress
    from models.product import Attribute, AttributeKind, Brand, Category, InputType, Spu
    from models.shop import Shop
    from services import inventory, product
    from services.actor import Actor, acting_as

    app = create_app()
    with app.app_context(), acting_as(Actor.system("load")):
        shop = Shop.query.filter_by(code="A").one()
        root = Category(name="Load")
        db.session.add(root)
        product.place_category(root)
        leaf = Category(name="Load tees", parent_id=root.id)
        db.session.add(leaf)
        product.place_category(leaf)
        size = Attribute(name="Load size", kind=AttributeKind.sales,
                         input_type=InputType.single_select,
                         options=[f"size-{n}" for n in range(SKUS)], required=True,
                         category_id=leaf.id)
        brand = Brand(name="Load brand", enabled=True)
        db.session.add_all([size, brand])
        db.session.commit()
        spu = Spu(shop_id=shop.id, title="Load tee", category_id=leaf.id, brand_id=brand.id,
                  attribute_values={})
        product.prepare_spu(spu, creating=True)
        db.session.add(spu)
        db.session.flush()
        product.record_creation(spu)
        skus = product.generate_skus(spu.id, {str(size.id): size.options}, Decimal("39.00"))
        product.submit_spu(spu.id)
        product.approve_spu(spu.id)
        db.session.commit()
        warehouse = Warehouse(code="WH-LOAD", name="Load warehouse", region="310000",
                              shop_id=shop.id, priority=1)
        db.session.add(warehouse)
        db.session.commit()
        for n, sku in enumerate(skus):
            inventory.adjust(sku.id, warehouse.id, hot_stock if n == 0 else ON_HAND,
                             "load stock")
        db.session.commit()
        buyers = []
        for n in range(members):
            phone = f"139{n:08d}"
            member = Member(account=f"load_buyer_{n}", name=f"买家{n}", phone=phone)
            db.session.add(member)
            db.session.flush()
            address = MemberAddress(member_id=member.id, recipient=f"买家{n}", phone=phone,
                                    province_code="310000", city_code="310100",
                                    district_code="310104", detail=f"漕溪北路 {n} 号",
                                    is_default=True)
            db.session.add(address)
            db.session.flush()
            buyers.append((member.id, address.id))
        db.session.commit()
        return {"sku_ids": [s.id for s in skus], "hot_sku": skus[0].id, "buyers": buyers}


# -- the clients -----------------------------------------------------------------------------

class Client(threading.Thread):
    def __init__(self, number: int, ports: list[int], tokens: dict, catalogue: Catalogue,
                 tally: Tally, stop_at: float, seed: int):
        super().__init__(daemon=True)
        self.number, self.ports, self.tokens = number, ports, tokens
        self.catalogue, self.tally, self.stop_at = catalogue, tally, stop_at
        self.rng = random.Random(seed)
        self.turn = number

    def port(self) -> int:
        self.turn += 1
        return self.ports[self.turn % len(self.ports)]

    def call(self, operation: str, method: str, path: str, body=None, token=None,
             headers=None, raw=None, expected=(200,), refusals=()):
        sent = dict(headers or {})
        if token:
            sent["Authorization"] = f"Bearer {token}"
        started = time.perf_counter()
        try:
            status, answer = request(self.port(), method, path, body, sent, raw)
        except OSError as exc:
            self.tally.error(operation, f"{type(exc).__name__}: {exc}")
            return None, None
        self.tally.record(operation, time.perf_counter() - started)
        if status in refusals:
            with self.tally.lock:
                self.tally.refused[operation] += 1
        elif status not in expected:
            self.tally.error(operation, f"{status} {answer}")
        return status, answer

    def run(self) -> None:
        operations = [name for name, weight in MIX for _ in range(weight)]
        while time.monotonic() < self.stop_at:
            getattr(self, self.rng.choice(operations))()

    def browse(self) -> None:
        if self.rng.random() < 0.5:
            self.call("browse", "GET", "/api/v1/storefront/slots?platform=app")
        else:
            self.call("browse", "GET", "/api/v1/category/?page_size=50",
                      token=self.tokens["storefront"])

    def cart(self) -> dict:
        member_id, address_id = self.rng.choice(self.catalogue.buyers)
        skus = self.rng.sample(self.catalogue.sku_ids[1:], self.rng.randint(1, 2))
        if self.rng.random() < 0.5:
            skus.append(self.catalogue.hot_sku)
        return {"member_id": member_id, "address_id": address_id,
                "lines": [{"sku_id": s, "quantity": self.rng.randint(1, 2)} for s in skus],
                "client": {"device_id": f"load-{member_id}", "ip": f"10.0.{member_id % 250}.9"}}

    def quote(self) -> None:
        self.call("quote", "POST", "/api/v1/checkout/quote", self.cart(),
                  token=self.tokens["storefront"])

    def place(self) -> None:
        body = self.cart()
        status, answer = self.call("place", "POST", "/api/v1/checkout/place", body,
                                   token=self.tokens["storefront"],
                                   headers={"Idempotency-Key": secrets.token_hex(16)},
                                   expected=(201,), refusals=(409,))
        if status != 201:
            return
        trade = answer["result"]
        with self.tally.lock:
            self.tally.placed[trade["id"]] = {line["sku_id"]: line["quantity"]
                                              for line in body["lines"]}
        if self.rng.random() < 0.8 and trade.get("risk_status", "passed") != "held":
            self.pay(trade["id"])

    def pay(self, trade_id: int) -> None:
        status, answer = self.call("pay", "POST", f"/api/v1/trade/{trade_id}/pay",
                                   {"channel": "sandbox"}, token=self.tokens["storefront"],
                                   expected=(201,))
        if status != 201:
            return
        attempt = answer["result"]
        notice = json.dumps({
            "out_trade_no": attempt["out_trade_no"],
            "transaction_id": "LOAD" + secrets.token_hex(10).upper(),
            "amount": attempt["amount"], "currency": "CNY", "status": "SUCCESS",
            "paid_at": datetime.now(timezone.utc).isoformat(),
            "payer_account": "load@example.com"}, separators=(",", ":")).encode()
        signature = hmac.new(GATEWAY_SECRET.encode(), notice, hashlib.sha256).hexdigest()
        status, answer = self.call("notify", "POST", "/api/v1/payment/notify/sandbox",
                                   raw=notice, headers={"X-Signature": signature})
        if status == 200:
            with self.tally.lock:
                self.tally.paid.add(trade_id)

    def list_orders(self) -> None:
        self.call("list_orders", "GET", "/api/v1/order/?page_size=20",
                  token=self.tokens["merchant"])


def run_clients(ports, tokens, catalogue, clients: int, seconds: float, seed: int) -> tuple:
    tally = Tally()
    stop_at = time.monotonic() + seconds
    threads = [Client(n, ports, tokens, catalogue, tally, stop_at, seed * 1000 + n)
               for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tally, time.perf_counter() - started


def run_ceiling(ports, clients: int, seconds: float) -> float:
    """Requests per second of GET /health (one SELECT 1) from the same clients."""
    counts = [0] * clients
    stop_at = time.monotonic() + seconds

    def hammer(n):
        turn = n
        while time.monotonic() < stop_at:
            turn += 1
            status, _ = request(ports[turn % len(ports)], "GET", "/health")
            if status == 200:
                counts[n] += 1

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - started)


# -- after the load --------------------------------------------------------------------------

def drain(processes: Processes, database_url: str, timeout: float = 600) -> float:
    """Wait until the queue is empty, no job is running and no event delivery is pending."""
    import psycopg
    from redis import Redis
    from rq import Queue

    queue = Queue(QUEUE, connection=Redis.from_url(REDIS_URL))
    started = time.monotonic()
    with psycopg.connect(database_url, autocommit=True) as conn:
        while True:
            processes.check_alive()
            pending = conn.execute("SELECT count(*) FROM event_delivery WHERE status "
                                   "IN ('pending', 'retrying')").fetchone()[0]
            if queue.count == 0 and queue.started_job_registry.count == 0 and pending == 0:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise LoadError(f"not drained after {timeout} s: {queue.count} queued, "
                                f"{pending} deliveries pending")
            time.sleep(0.5)


def verify(database_url: str, catalogue: Catalogue, tally: Tally, hot_stock: int) -> dict:
    """The checks named in the module's docstring; returns the figures, raises on a failure."""
    import psycopg
    from redis import Redis
    from rq import Queue

    failures, figures = [], {}
    with psycopg.connect(database_url, autocommit=True) as conn:
        q = lambda sql, *args: conn.execute(sql, args).fetchall()  # noqa: E731
        bad = q("SELECT id, on_hand, reserved FROM stock WHERE on_hand < 0 OR reserved < 0 "
                "OR reserved > on_hand")
        if bad:
            failures.append(f"stock rows out of bounds: {bad[:5]}")
        hot_reserved = q("SELECT coalesce(sum(reserved), 0) FROM stock WHERE sku_id = %s",
                         catalogue.hot_sku)[0][0]
        hot_ordered = q("SELECT coalesce(sum(l.quantity), 0) FROM order_line l "
                        "JOIN \"order\" o ON o.id = l.order_id "
                        "WHERE l.sku_id = %s AND o.status <> 'cancelled'", catalogue.hot_sku)[0][0]
        figures.update(hot_stock=hot_stock, hot_reserved=int(hot_reserved),
                       hot_ordered=int(hot_ordered))
        if hot_reserved != hot_ordered or hot_reserved > hot_stock:
            failures.append(f"hot SKU: {hot_ordered} ordered, {hot_reserved} reserved, "
                            f"{hot_stock} in stock")
        told = sum(q.get(catalogue.hot_sku, 0) for q in tally.placed.values())
        if told != hot_ordered:
            failures.append(f"hot SKU: clients were told {told} units placed, orders hold "
                            f"{hot_ordered}")
        drift = q("SELECT s.id, s.on_hand, s.reserved, l.on_hand_after, l.reserved_after "
                  "FROM stock s JOIN (SELECT DISTINCT ON (stock_id) * FROM stock_ledger "
                  "ORDER BY stock_id, id DESC) l ON l.stock_id = s.id "
                  "WHERE l.on_hand_after <> s.on_hand OR l.reserved_after <> s.reserved")
        broken = q("SELECT count(*) FROM (SELECT on_hand_before, reserved_before, lag("
                   "on_hand_after) OVER w AS on_hand_prev, lag(reserved_after) OVER w AS "
                   "reserved_prev FROM stock_ledger WINDOW w AS (PARTITION BY stock_id "
                   "ORDER BY id)) c WHERE on_hand_prev IS NOT NULL AND (on_hand_before <> "
                   "on_hand_prev OR reserved_before <> reserved_prev)")[0][0]
        if drift or broken:
            failures.append(f"stock rows differ from their ledger: {drift[:5]}, "
                            f"{broken} ledger rows out of chain")
        placed = set(tally.placed)
        found = {row[0] for row in q("SELECT id FROM trade WHERE id = ANY(%s)", list(placed))}
        if placed - found:
            failures.append(f"{len(placed - found)} placed trades missing")
        paid = {row[0] for row in q("SELECT id FROM trade WHERE id = ANY(%s) AND status NOT IN "
                                    "('pending_payment', 'cancelled', 'closed')",
                                    list(tally.paid))}
        if tally.paid - paid:
            failures.append(f"{len(tally.paid - paid)} trades notified paid are not paid")
        figures.update(trades_placed=len(placed), trades_paid=len(paid))
        undone = q("SELECT status, count(*) FROM event_delivery WHERE status <> 'done' "
                   "GROUP BY status")
        if undone:
            failures.append(f"event deliveries not done: {undone}")
        figures["event_deliveries"] = q("SELECT count(*) FROM event_delivery")[0][0]
        debit, credit = q("SELECT coalesce(sum(debit), 0), coalesce(sum(credit), 0) "
                          "FROM journal_line")[0]
        if debit != credit:
            failures.append(f"journal unbalanced: debit {debit}, credit {credit}")
        figures["journal_lines"] = q("SELECT count(*) FROM journal_line")[0][0]
    failed_jobs = Queue(QUEUE, connection=Redis.from_url(REDIS_URL)).failed_job_registry.count
    if failed_jobs:
        failures.append(f"{failed_jobs} RQ jobs failed")
    figures["failures"] = failures
    return figures


# -- the report ------------------------------------------------------------------------------

def percentile(values, share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def summary(tally: Tally, elapsed: float) -> dict:
    rows = {}
    for operation in OPERATIONS:
        values = tally.latencies.get(operation, [])
        rows[operation] = {"requests": len(values), "per_second": len(values) / elapsed,
                           "p50_ms": percentile(values, 0.5) * 1000,
                           "p95_ms": percentile(values, 0.95) * 1000,
                           "max_ms": max(values) * 1000 if values else float("nan"),
                           "refused": tally.refused.get(operation, 0),
                           "errors": tally.errors.get(operation, 0)}
    every = [v for values in tally.latencies.values() for v in values]
    rows["all"] = {"requests": len(every), "per_second": len(every) / elapsed,
                   "p50_ms": percentile(every, 0.5) * 1000,
                   "p95_ms": percentile(every, 0.95) * 1000,
                   "max_ms": max(every) * 1000 if every else float("nan"),
                   "refused": sum(tally.refused.values()), "errors": sum(tally.errors.values())}
    return rows


def table(rows: dict) -> str:
    lines = [[name, str(r["requests"]), f"{r['per_second']:.1f}", f"{r['p50_ms']:.0f}",
              f"{r['p95_ms']:.0f}", f"{r['max_ms']:.0f}", str(r["refused"]), str(r["errors"])]
             for name, r in rows.items()]
    return markdown_table(["operation", "requests", "req/s", "p50 ms", "p95 ms", "max ms",
                           "refused (409)", "errors"], lines)


def one_run(args, run: int) -> dict:
    logs = tempfile.mkdtemp(prefix="houtai-load-")
    database_url = recreate_database(DB_NAME)
    from redis import Redis

    Redis.from_url(REDIS_URL).flushdb()
    env = environment(database_url)
    flask(env | {"HOUTAI_ENV": "development", "REDIS_URL": ""}, "houtai", "init")
    flask(env | {"HOUTAI_ENV": "development", "REDIS_URL": ""}, "houtai", "demo")
    catalogue = make_catalogue(env, args.members, args.hot_stock)
    processes = Processes(env, logs)
    try:
        processes.web(args.web, args.web_workers)
        processes.rq_workers(args.workers)
        tokens = {"storefront": login(processes.ports[0], "storefront"),
                  "merchant": login(processes.ports[-1], "merchant_a")}
        ceiling = run_ceiling(processes.ports, args.clients, args.ceiling)
        tally, elapsed = run_clients(processes.ports, tokens, catalogue, args.clients,
                                     args.duration, seed=run)
        processes.check_alive()
        drained = drain(processes, database_url)
        checks = verify(database_url, catalogue, tally, args.hot_stock)
    except Exception:
        print(processes.tail(), file=sys.stderr)
        raise
    finally:
        processes.stop()
        if not args.keep_db:
            drop_database(DB_NAME)
    rows = summary(tally, elapsed)
    return {"run": run, "elapsed": elapsed, "ceiling_per_second": ceiling,
            "ratio": rows["all"]["per_second"] / ceiling if ceiling else float("nan"),
            "drain_seconds": drained, "rows": rows, "checks": checks,
            "error_samples": tally.error_samples}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs (median; ≥3 unless --quick)")
    parser.add_argument("--duration", type=float, default=60, help="seconds of load per run")
    parser.add_argument("--ceiling", type=float, default=10, help="seconds of GET /health")
    parser.add_argument("--clients", type=int, default=16, help="client threads")
    parser.add_argument("--web", type=int, default=2, help="gunicorn masters (web processes)")
    parser.add_argument("--web-workers", type=int, default=2, help="sync workers per master")
    parser.add_argument("--workers", type=int, default=2, help="rq worker processes")
    parser.add_argument("--members", type=int, default=300, help="buyers")
    parser.add_argument("--hot-stock", type=int, default=150, help="units of the hot SKU")
    parser.add_argument("--quick", action="store_true", help="1 run of 15 s (smoke test)")
    parser.add_argument("--keep-db", action="store_true", help=f"leave {DB_NAME} in place")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.duration, args.ceiling, args.members = 1, 15, 3, 60
        args.hot_stock = min(args.hot_stock, 20)
    elif args.runs < 3:
        parser.error("--runs must be at least 3 (medians of several runs)")
    info = machine(REDIS_URL)
    print(f"bench.load: {describe_machine(info)}", flush=True)
    print(f"{args.web} web processes × {args.web_workers} gunicorn sync workers, "
          f"{args.workers} rq workers, {args.clients} clients, {args.duration:.0f} s per run",
          flush=True)
    results, failed = [], False
    for run in range(1, args.runs + 1):
        result = one_run(args, run)
        results.append(result)
        print(f"\nrun {run}: {result['rows']['all']['per_second']:.1f} req/s, ceiling "
              f"GET /health {result['ceiling_per_second']:.1f} req/s, ratio "
              f"{result['ratio']:.3f}; queue drained {result['drain_seconds']:.1f} s after "
              f"the load", flush=True)
        print(table(result["rows"]), flush=True)
        checks = result["checks"]
        print(f"checks: hot SKU {checks['hot_ordered']} ordered = {checks['hot_reserved']} "
              f"reserved ≤ {checks['hot_stock']}; {checks['trades_placed']} trades placed, "
              f"{checks['trades_paid']} paid; {checks['event_deliveries']} event deliveries "
              f"done; {checks['journal_lines']} journal lines balanced", flush=True)
        for sample in result["error_samples"]:
            print(f"  error: {sample}")
        if checks["failures"] or result["rows"]["all"]["errors"]:
            failed = True
            for failure in checks["failures"]:
                print(f"  FAILED: {failure}")
    ratios = [r["ratio"] for r in results]
    totals = [r["rows"]["all"]["per_second"] for r in results]
    p95s = [r["rows"]["all"]["p95_ms"] for r in results]
    print(f"\nmedian of {len(results)}: {median(totals):.1f} req/s, p95 {median(p95s):.0f} ms, "
          f"ratio to GET /health {median(ratios):.3f}; errors "
          f"{sum(r['rows']['all']['errors'] for r in results)}; "
          f"{'FAILED' if failed else 'all checks passed'}", flush=True)
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS_DIR / f"load-{stamp}.json").write_text(json.dumps(
        {"bench": "load", "revision": git_revision(), "machine": info, "args": vars(args),
         "results": results}, indent=2, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
