"""The order list API at 1,000,000 orders over HTTP, against a primary-key endpoint of the same app.

    .venv/bin/python -m bench.order_list [--runs 3] [--duration 10] [--quick]
                                         [--keep-db] [--reuse-db] [--orders 1000000]

Set-up: a PostgreSQL database (`houtai_bench_orders`, BENCH_ORDERS_DB_NAME) migrated with
flask-migrate `upgrade()` (whatever migrations exist) and roles synced as `houtai init` does;
100 shops, one big shop holding 10 % of the orders; N orders (each with its own trade) spread
over the order statuses and over the last 365 days, and 100,000 members, loaded with set-based
SQL (`INSERT … SELECT generate_series`), then VACUUM ANALYZE. A staff user with the Admin role
and a merchant user of the big shop are created through `services.security.upsert_user` (what
`houtai create-user` runs). `--keep-db` leaves the database in place, `--reuse-db` skips the
build when it already holds the same data (it still runs `upgrade()`).

The application is served by gunicorn (`-w 2`, sync workers, HOUTAI_ENV=production) through
`bench/wsgi.py`, which adds the ceiling endpoint of `bench/pk_endpoint.py`. Each client logs in
once (JWT). The load: 8 client processes, one HTTP/1.1 connection each (keep-alive requested;
gunicorn's sync worker closes it after every response, as in production), a fixed duration per
scenario after a warm-up, scenarios interleaved run by run in a shuffled order. Per scenario:
p50/p95/p99 latency and requests/s; ratio = p95(list) ÷ p95(PK endpoint) of the same run, the
median of the per-run ratios. The client's own capacity is measured against a static responder
(a process answering a fixed response, no application).

Then, in-process (Flask test client, same database): the SQL statements of one request with
their EXPLAIN ANALYZE plans (custom and generic, since psycopg prepares a statement on its 5th
execution), and a cProfile of the list request split into JWT (with the user kept per process),
permission checks, rison, the direct list of `views/listing.py` (its statements, the response
keys, the rows' dump, the count), the SQL, the JSON answer, the session teardown and the pool
checkout.
"""
import argparse
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from urllib.parse import quote

from bench.common import (PG_ADMIN_URL, PROJECT_ROOT, RESULTS_DIR, VENV_BIN, database_url,
                          drop_database, git_revision, markdown_table, median, recreate_database)

DB_NAME = os.environ.get("BENCH_ORDERS_DB_NAME", "houtai_bench_orders")
OTHER_BENCH_DB = "houtai_bench_checkout"
SECRET_KEY = "bench-only-secret-key-not-used-for-anything-0123456789"
DATA_VERSION = 1
ADMIN, MERCHANT = "bench_admin", "bench_merchant"
BIG_SHOP, SMALL_SHOP = 1, 50
PAGE_SIZE = 20
WINDOW = 20  # pages timed around each depth while following next_cursor
LIST_STATUS = "paid"  # (b): a merchant's "to ship" list
DEPTH_STATUS = "completed"  # (c): the largest status, deep enough to page far
# status: share of the orders, in percent (sums to 100)
STATUS_MIX = [("pending_payment", 4), ("paid", 6), ("fulfilling", 4), ("shipped", 8),
              ("delivered", 6), ("completed", 60), ("cancelled", 8), ("closed", 4)]


class BenchError(RuntimeError):
    pass


# ------------------------------------------------------------------------------------------
# HTTP client processes (spawned: they import nothing of the application)
# ------------------------------------------------------------------------------------------
def _client_process(pipe, host: str, index: int) -> None:
    """One connection; for each job, GET paths in turn until end_at, timing those that start
    inside [start_at, end_at). A lean HTTP/1.1 client on a raw socket (keep-alive asked for,
    reconnecting when the server closes), so the client costs little CPU next to the server."""
    import resource
    from array import array

    sock = None
    buffer = b""
    port = None

    def cpu():
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def fetch(request: bytes):
        """Send one request, read one response; returns (status, server closes)."""
        nonlocal sock, buffer
        if sock is None:
            sock = socket.create_connection((host, port), timeout=60)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buffer = b""
        sock.sendall(request)
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed before the response head")
            buffer += chunk
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, closes = None, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                closes = True
        if length is None:
            raise ConnectionError("response without Content-Length")
        while len(buffer) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed inside the body")
            buffer += chunk
        buffer = buffer[length:]
        return status, closes

    while True:
        job = pipe.recv()
        if job is None:
            break
        job_port, paths, headers, start_at, end_at = job
        if job_port != port and sock is not None:
            sock.close()
            sock = None
        port = job_port
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        requests = [(f"GET {p} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: keep-alive\r\n"
                     f"{extra}\r\n").encode() for p in paths]
        latencies = array("d")
        errors, statuses, connects = 0, {}, 0
        position = (index * max(1, len(paths) // 8)) % len(paths)
        cpu_start = None
        first_error = None
        while True:
            now = time.time()
            if now >= end_at:
                break
            if cpu_start is None and now >= start_at:
                cpu_start = cpu()
            request = requests[position]
            position = (position + 1) % len(requests)
            began = time.perf_counter()
            try:
                if sock is None:
                    connects += 1
                status, closes = fetch(request)
                if closes:
                    sock.close()
                    sock = None
            except (OSError, ValueError, IndexError) as exc:
                status = type(exc).__name__
                if sock is not None:
                    sock.close()
                sock = None
            elapsed = time.perf_counter() - began
            if now >= start_at:
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    latencies.append(elapsed)
                else:
                    errors += 1
                    first_error = first_error or f"{status} on {paths[position - 1]}"
        cpu_used = cpu() - cpu_start if cpu_start is not None else 0.0
        pipe.send((latencies.tobytes(), errors, statuses, cpu_used, connects, first_error))
    if sock is not None:
        sock.close()


def _static_responder(port: int, ready) -> None:
    """A fixed JSON answer to every request, closing the connection as gunicorn's sync
    worker does: what the client can drive when the server costs next to nothing."""
    import asyncio

    body = b'{"id":1,"order_no":"BO0000000001","status":"paid","payable":"10.00"}'
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body)) + body

    class Answer(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.buffer = transport, b""

        def data_received(self, data):
            self.buffer += data
            if b"\r\n\r\n" in self.buffer:
                self.transport.write(answer)
                self.transport.close()

    async def serve():
        server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", port,
                                                                backlog=1024)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


class LoadClients:
    def __init__(self, connections: int):
        import multiprocessing

        self.context = multiprocessing.get_context("spawn")
        self.pipes, self.processes = [], []
        for index in range(connections):
            parent, child = self.context.Pipe()
            process = self.context.Process(target=_client_process,
                                           args=(child, "127.0.0.1", index), daemon=True)
            process.start()
            self.pipes.append(parent)
            self.processes.append(process)

    def run(self, port: int, paths: list[str], headers: dict, warmup: float,
            duration: float) -> dict:
        from array import array

        start_at = time.time() + warmup
        end_at = start_at + duration
        for pipe in self.pipes:
            pipe.send((port, paths, headers, start_at, end_at))
        latencies, errors, statuses, cpu, connects, first_error = [], 0, {}, 0.0, 0, None
        for pipe in self.pipes:
            raw, e, s, c, r, fe = pipe.recv()
            values = array("d")
            values.frombytes(raw)
            latencies.extend(values)
            errors += e
            cpu += c
            connects += r
            first_error = first_error or fe
            for key, count in s.items():
                statuses[str(key)] = statuses.get(str(key), 0) + count
        latencies.sort()
        return {"requests": len(latencies), "errors": errors, "statuses": statuses,
                "rps": len(latencies) / duration, "client_cpu_s": cpu,
                "connects": connects, "first_error": first_error,
                "p50_ms": percentile(latencies, 0.50) * 1000,
                "p95_ms": percentile(latencies, 0.95) * 1000,
                "p99_ms": percentile(latencies, 0.99) * 1000,
                "mean_ms": (sum(latencies) / len(latencies) * 1000) if latencies else float("nan")}

    def close(self):
        for pipe in self.pipes:
            try:
                pipe.send(None)
            except OSError:
                pass
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()


def percentile(sorted_values, q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, int(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


# ------------------------------------------------------------------------------------------
# CPU accounting from /proc: client, gunicorn workers, PostgreSQL backends, the machine
# ------------------------------------------------------------------------------------------
TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def _children(ppid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == ppid:
                pids.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return pids


def _machine_cpu() -> tuple[float, float]:
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / TICK, sum(values) / TICK


def other_benchmark_activity() -> dict:
    """Is bench.checkout (or anything on its database) running right now?"""
    processes = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                if b"bench.checkout" in cmdline.read():
                    processes += 1
        except OSError:
            continue
    sessions = 0
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            sessions = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                    (OTHER_BENCH_DB,)).fetchone()[0]
    except Exception:  # noqa: BLE001
        pass
    return {"checkout_processes": processes, "checkout_db_sessions": sessions}


# ------------------------------------------------------------------------------------------
# The benchmark
# ------------------------------------------------------------------------------------------
class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="houtai-bench-orders-")
        self.password = secrets.token_urlsafe(12)
        self.server: tuple | None = None  # (gunicorn process, port)
        self.clients = None
        self.static = None
        self.timings: dict[str, float] = {}
        self.ctx = None

    # -- the database -------------------------------------------------------------------
    def _wanted_meta(self) -> dict:
        a = self.args
        return {"bench": "order_list", "version": DATA_VERSION, "orders": a.orders,
                "shops": a.shops, "members": a.members}

    def _existing_meta(self) -> dict | None:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            row = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                               "WHERE datname = %s", (DB_NAME,)).fetchone()
        if row is None or not row[0]:
            return None
        try:
            return json.loads(row[0])
        except ValueError:
            return None

    def setup(self):
        started = time.perf_counter()
        reuse = self.args.reuse_db and self._existing_meta() == self._wanted_meta()
        if reuse:
            self.database_url = database_url(DB_NAME)
            print(f"reusing database {DB_NAME} ({self.args.orders:,} orders)", flush=True)
        else:
            if self.args.reuse_db:
                print(f"database {DB_NAME} missing or holding other data: building it",
                      flush=True)
            self.database_url = recreate_database(DB_NAME)
        self.reused = reuse
        self._build_app()
        from flask_migrate import upgrade

        from app.security import sync_roles
        from services.actor import Actor, acting_as

        before = self._alembic_version()
        t0 = time.perf_counter()
        with acting_as(Actor.system("bench")):
            upgrade()
            sync_roles(self.app.appbuilder)
        self.timings["migrate_s"] = time.perf_counter() - t0
        migrated = self._alembic_version() != before
        if not reuse:
            self._load_data()
        elif migrated:
            t0 = time.perf_counter()
            self._vacuum_analyze()
            self.timings["analyze_after_upgrade_s"] = time.perf_counter() - t0
        self._create_users()
        from app.extensions import db

        db.session.remove()
        # Requests must push their own app context (fresh `g`, session and pool checkout per
        # request, as under gunicorn): nothing stays pushed past the set-up.
        self.ctx.pop()
        self.ctx = None
        self.timings["setup_s"] = time.perf_counter() - started

    def _build_app(self):
        from app import create_app
        from bench.pk_endpoint import register

        self.app = create_app({
            "SQLALCHEMY_DATABASE_URI": self.database_url.replace("postgresql://",
                                                                 "postgresql+psycopg://"),
            "SECRET_KEY": SECRET_KEY,
            "HOUTAI_ENV": "production",
            "SESSION_COOKIE_SECURE": True,
            "REDIS_URL": None,
            "RATELIMIT_STORAGE_URI": "memory://",
            "RATELIMIT_ENABLED": True,  # as served (only the logins are limited)
            "HOUTAI_EXTENSIONS": [],
            "JWT_ACCESS_TOKEN_EXPIRES": 4 * 3600,
        }, instance_path=os.path.join(self.tmp, "instance"))
        register(self.app)
        self.ctx = self.app.app_context()
        self.ctx.push()

    def _alembic_version(self):
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as conn:
            try:
                return sorted(r[0] for r in conn.execute("SELECT version_num FROM alembic_version"))
            except psycopg.errors.UndefinedTable:
                return None

    def _load_data(self):
        """Shops, members, trades and orders with set-based SQL, in one transaction."""
        import psycopg

        a = self.args
        n, shops, members = a.orders, a.shops, a.members
        if shops < SMALL_SHOP:
            raise BenchError(f"--shops must be at least {SMALL_SHOP}")
        cases, low = [], 0
        for status, share in STATUS_MIX:
            cases.append(f"WHEN r3 % 100 < {low + share} THEN '{status}'")
            low += share
        status_case = "CASE " + " ".join(cases) + " END"
        steps = [
            ("shops", f"""
                INSERT INTO shop (id, code, name, status, commission_rate, created_at, updated_at)
                SELECT g, 'BENCH' || lpad(g::text, 3, '0'),
                       CASE WHEN g = {BIG_SHOP} THEN 'Bench big shop' ELSE 'Bench shop ' || g END,
                       'open', 0.0500, now() - interval '400 days', now() - interval '400 days'
                FROM generate_series(1, {shops}) g;
                SELECT setval(pg_get_serial_sequence('shop', 'id'), {shops});"""),
            ("members", f"""
                INSERT INTO member (id, account, name, phone, status, created_at, updated_at)
                SELECT g, 'bm' || lpad(g::text, 7, '0'), 'Member ' || g,
                       '139' || lpad(g::text, 8, '0'), 'active',
                       now() - interval '400 days', now() - interval '400 days'
                FROM generate_series(1, {members}) g;
                SELECT setval(pg_get_serial_sequence('member', 'id'), {members});"""),
            ("source rows", f"""
                CREATE TEMP TABLE bench_src ON COMMIT DROP AS
                SELECT id,
                       CASE WHEN id % 10 = 0 THEN {BIG_SHOP}
                            ELSE (ARRAY(SELECT s FROM generate_series(1, {shops}) s
                                        WHERE s <> {BIG_SHOP}))[1 + r1 % {shops - 1}] END
                         AS shop_id,
                       1 + r2 % {members} AS member_id,
                       {status_case} AS status,
                       CASE WHEN r4 % 20 = 0 THEN 'flash_sale' ELSE 'normal' END AS order_type,
                       ((990 + r4 % 99000) / 100.0)::numeric(12,2) AS goods,
                       CASE WHEN r5 % 4 = 0 THEN 8.00 ELSE 0.00 END::numeric(12,2) AS freight,
                       CASE WHEN r5 % 10 = 1 THEN 5.00 ELSE 0.00 END::numeric(12,2) AS discount,
                       date_trunc('second', now()) - interval '365 days'
                         + (id - 1) * (interval '365 days' / {n}) AS created_at,
                       r5
                FROM (SELECT g AS id,
                             ('x' || substr(h, 1, 8))::bit(32)::int & 2147483647 AS r1,
                             ('x' || substr(h, 9, 8))::bit(32)::int & 2147483647 AS r2,
                             ('x' || substr(h, 17, 8))::bit(32)::int & 2147483647 AS r3,
                             ('x' || substr(h, 25, 8))::bit(32)::int & 2147483647 AS r4,
                             (('x' || substr(h, 1, 8))::bit(32)::int # g) & 2147483647 AS r5
                      FROM (SELECT g, md5('bench' || g) AS h
                            FROM generate_series(1, {n}) g) hashed) r;"""),
            ("trades", f"""
                INSERT INTO trade (id, trade_no, member_id, address, status, goods_amount,
                                   discount_amount, freight, payable, created_at, paid_at)
                SELECT id, 'BT' || lpad(id::text, 12, '0'), member_id,
                       '{{"recipient": "Bench", "province_code": "310000", "city_code": "310100",
                         "district_code": "310101", "detail": "1 Bench Road"}}'::json,
                       status, goods, discount, freight, goods + freight - discount, created_at,
                       CASE WHEN status IN ('pending_payment', 'cancelled', 'closed') THEN NULL
                            ELSE created_at + (60 + r5 % 1800) * interval '1 second' END
                FROM bench_src ORDER BY id;
                SELECT setval(pg_get_serial_sequence('trade', 'id'), {n});"""),
            ("orders", f"""
                INSERT INTO "order" (id, order_no, trade_id, member_id, status, order_type,
                                     goods_amount, discount_amount, freight, payable,
                                     created_at, paid_at, delivered_at, shop_id)
                SELECT id, 'BO' || lpad(id::text, 12, '0'), id, member_id, status, order_type,
                       goods, discount, freight, goods + freight - discount, created_at,
                       CASE WHEN status IN ('pending_payment', 'cancelled', 'closed') THEN NULL
                            ELSE created_at + (60 + r5 % 1800) * interval '1 second' END,
                       CASE WHEN status IN ('delivered', 'completed')
                            THEN created_at + interval '3 days' END,
                       shop_id
                FROM bench_src ORDER BY id;
                SELECT setval(pg_get_serial_sequence('order', 'id'), {n});"""),
        ]
        with psycopg.connect(self.database_url) as conn:
            conn.execute("SET synchronous_commit = off")
            conn.execute("SET work_mem = '256MB'")
            conn.execute("SET maintenance_work_mem = '512MB'")
            for name, sql in steps:
                t0 = time.perf_counter()
                conn.execute(sql)
                self.timings[f"load_{name.replace(' ', '_')}_s"] = time.perf_counter() - t0
                print(f"  loaded {name} in {time.perf_counter() - t0:.1f} s", flush=True)
            conn.commit()
        t0 = time.perf_counter()
        self._vacuum_analyze()
        self.timings["vacuum_analyze_s"] = time.perf_counter() - t0
        print(f"  VACUUM ANALYZE in {self.timings['vacuum_analyze_s']:.1f} s", flush=True)
        import psycopg as pg

        with pg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            comment = json.dumps(self._wanted_meta()).replace("'", "''")
            conn.execute(f"COMMENT ON DATABASE \"{DB_NAME}\" IS '{comment}'")

    def _vacuum_analyze(self):
        """VACUUM sets the visibility map (index-only scans for COUNT), as autovacuum does on a
        live table soon after a bulk load; ANALYZE gives the planner its statistics."""
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as conn:
            conn.execute('VACUUM (ANALYZE) shop, member, trade, "order"')

    def _create_users(self):
        from services.actor import Actor, acting_as
        from services.security import upsert_user

        with acting_as(Actor.system("bench")):
            upsert_user(ADMIN, self.password, "Admin")
            upsert_user(MERCHANT, self.password, "Merchant", f"BENCH{BIG_SHOP:03d}")

    def data_facts(self) -> dict:
        """Counts the scenarios depend on, and the indexes the plans can use."""
        from sqlalchemy import text

        from app.extensions import db

        with self.app.app_context(), db.engine.connect() as conn:
            def scalar(sql, **params):
                return conn.execute(text(sql), params).scalar_one()

            facts = {
                "orders": scalar('SELECT count(*) FROM "order"'),
                "trades": scalar("SELECT count(*) FROM trade"),
                "members": scalar("SELECT count(*) FROM member"),
                "shops": scalar("SELECT count(*) FROM shop"),
                "big_shop_orders": scalar('SELECT count(*) FROM "order" WHERE shop_id = :s',
                                          s=BIG_SHOP),
                "small_shop_orders": scalar('SELECT count(*) FROM "order" WHERE shop_id = :s',
                                            s=SMALL_SHOP),
                "big_list_status_rows": scalar('SELECT count(*) FROM "order" WHERE shop_id = :s '
                                               "AND status = :st", s=BIG_SHOP, st=LIST_STATUS),
                "small_list_status_rows": scalar('SELECT count(*) FROM "order" WHERE shop_id = :s'
                                                 " AND status = :st", s=SMALL_SHOP,
                                                 st=LIST_STATUS),
                "big_depth_status_rows": scalar('SELECT count(*) FROM "order" WHERE shop_id = :s '
                                                "AND status = :st", s=BIG_SHOP, st=DEPTH_STATUS),
                "created_at_range": [str(v) for v in conn.execute(text(
                    'SELECT min(created_at), max(created_at) FROM "order"')).one()],
                "order_table_mb": round(scalar("SELECT pg_total_relation_size('\"order\"')")
                                        / 2**20),
                "indexes_on_order": [f"{name}: {definition.split(' USING ', 1)[1]}" for name, definition in conn.execute(text(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'order' "
                    "ORDER BY indexname"))],
                "alembic_version": self._alembic_version(),
            }
        return facts

    # -- the server ---------------------------------------------------------------------
    def start_server(self):
        """gunicorn on a free port, serving `bench/wsgi.py`."""
        import http.client

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = {k: v for k, v in os.environ.items()
               if k not in ("REDIS_URL", "HOUTAI_EXTENSIONS", "RATELIMIT_ENABLED",
                            "LOGIN_RATE_LIMIT")}
        env.update(DATABASE_URL=self.database_url, SECRET_KEY=SECRET_KEY,
                   HOUTAI_ENV="production", JWT_ACCESS_TOKEN_SECONDS=str(4 * 3600),
                   BENCH_INSTANCE_PATH=os.path.join(self.tmp, "instance-server"),
                   PYTHONPATH=str(PROJECT_ROOT))
        log_path = os.path.join(self.tmp, "gunicorn.log")
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [str(VENV_BIN / "gunicorn"), "--no-control-socket", "-w", str(self.args.workers),
                 "-b", f"127.0.0.1:{port}", "bench.wsgi:app"],
                cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        process.log_path = log_path
        self.server = (process, port)
        deadline = time.time() + 90
        while time.time() < deadline:
            if process.poll() is not None:
                raise BenchError(f"gunicorn exited:\n{self._server_tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    conn.close()
                    break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            raise BenchError(f"gunicorn not ready in 90 s:\n{self._server_tail()}")
        # every worker answers (and has imported the app) before anything is timed
        for _ in range(4 * self.args.workers):
            self.http("GET", "/health")

    def _server_tail(self) -> str:
        try:
            with open(self.server[0].log_path) as log:
                return "".join(log.readlines()[-40:])
        except (OSError, TypeError):
            return "(no log)"

    def http(self, method: str, path: str, body: dict | None = None, token: str | None = None):
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.server[1], timeout=120)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        began = time.perf_counter()
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers=headers)
        response = conn.getresponse()
        data = response.read()
        elapsed = time.perf_counter() - began
        conn.close()
        try:
            payload = json.loads(data) if data else None
        except ValueError:
            payload = data[:200]
        return response.status, payload, elapsed

    def login(self):
        """One login per user for the whole benchmark (the login is rate-limited)."""
        self.tokens = {}
        for user in (ADMIN, MERCHANT):
            status, payload, _ = self.http("POST", "/api/v1/security/login", {
                "username": user, "password": self.password, "provider": "db"})
            if status != 200:
                raise BenchError(f"login of {user}: {status} {payload}")
            self.tokens[user] = payload["access_token"]

    def stop_server(self):
        if self.server is None:
            return
        process = self.server[0]
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    # -- scenarios ----------------------------------------------------------------------
    @staticmethod
    def list_url(shop: int, status: str, page: int | None = None, cursor: str | None = None,
                 page_size: int = PAGE_SIZE) -> str:
        q = (f"(filters:!((col:shop_id,opr:eq,value:{shop}),(col:status,opr:eq,value:{status})),"
             f"page_size:{page_size}" + (f",page:{page}" if page is not None else "") + ")")
        url = f"/api/v1/order/?q={quote(q, safe='')}"
        if cursor:
            url += f"&cursor={cursor}"
        return url

    def walk(self) -> dict:
        """Follow next_cursor from page 1 of the big shop's DEPTH_STATUS orders (Admin, one
        client, sequential), keeping the cursor of every page asked for in --depths."""
        token = self.tokens[ADMIN]
        wanted = sorted(self.depths)
        last = wanted[-1] + WINDOW - 1
        cursors, per_page, counts = {1: None}, [], {}
        cursor, page = None, 1
        while page <= last:
            status, payload, elapsed = self.http(
                "GET", self.list_url(BIG_SHOP, DEPTH_STATUS, cursor=cursor), token=token)
            if status != 200:
                raise BenchError(f"walk page {page}: {status} {payload}")
            per_page.append(elapsed)
            if page in wanted:
                cursors[page] = cursor
                counts[page] = payload["count"]
            cursor = payload.get("next_cursor")
            if cursor is None:
                break
            page += 1
        buckets = []
        for depth in wanted:
            chunk = sorted(per_page[depth - 1:depth - 1 + WINDOW])
            if chunk:
                buckets.append({"pages": f"{depth:,}–{depth + len(chunk) - 1:,}",
                                "n": len(chunk), "median_ms": median(chunk) * 1000,
                                "p95_ms": percentile(chunk, 0.95) * 1000})
        # keyset page d and offset page d hold the same rows on this unchanging data
        for depth in wanted:
            if depth == 1 or depth not in cursors:
                continue
            _, by_cursor, _ = self.http("GET", self.list_url(BIG_SHOP, DEPTH_STATUS,
                                                             cursor=cursors[depth]), token=token)
            _, by_offset, _ = self.http("GET", self.list_url(BIG_SHOP, DEPTH_STATUS,
                                                             page=depth - 1), token=token)
            if by_cursor["ids"] != by_offset["ids"]:
                raise BenchError(f"page {depth}: keyset {by_cursor['ids'][:3]}… != offset "
                                 f"{by_offset['ids'][:3]}…")
        self.cursors = cursors
        return {"pages_walked": len(per_page), "seconds": sum(per_page), "buckets": buckets,
                "counts_at_depth": counts}

    def scenarios(self) -> list[dict]:
        admin = {"Authorization": f"Bearer {self.tokens[ADMIN]}"}
        merchant = {"Authorization": f"Bearer {self.tokens[MERCHANT]}"}
        rng = random.Random(7)
        pk_paths = [f"/bench/pk/order/{rng.randint(1, self.args.orders)}" for _ in range(2000)]
        big, small = self.list_url(BIG_SHOP, LIST_STATUS), self.list_url(SMALL_SHOP, LIST_STATUS)
        out = [
            {"key": "static", "what": "static responder (client capacity)", "as": "—",
             "paths": ["/"], "headers": {}, "server": "static"},
            {"key": "pk", "what": "PK endpoint (ceiling): db.session.get(Order, id)",
             "as": "no auth", "paths": pk_paths, "headers": {}},
            {"key": "list_admin_big", "what": f"list page 1, big shop, {LIST_STATUS}",
             "as": "Admin", "paths": [big], "headers": admin},
            {"key": "list_admin_small", "what": f"list page 1, small shop, {LIST_STATUS}",
             "as": "Admin", "paths": [small], "headers": admin},
            {"key": "list_merchant_big", "what": f"list page 1, big shop, {LIST_STATUS}",
             "as": "Merchant (big shop)", "paths": [big], "headers": merchant},
        ]
        for depth in sorted(self.cursors):
            cursor = self.cursors[depth]
            out.append({"key": f"keyset_{depth}", "depth": depth, "mode": "keyset",
                        "what": f"big shop, {DEPTH_STATUS}, page {depth:,} by cursor"
                        if depth > 1 else f"big shop, {DEPTH_STATUS}, page 1",
                        "as": "Admin", "headers": admin,
                        "paths": [self.list_url(BIG_SHOP, DEPTH_STATUS, cursor=cursor)]})
            if depth > 1:
                out.append({"key": f"offset_{depth}", "depth": depth, "mode": "offset",
                            "what": f"big shop, {DEPTH_STATUS}, page {depth:,} by page=N "
                                    f"(OFFSET {(depth - 1) * PAGE_SIZE:,})",
                            "as": "Admin", "headers": admin,
                            "paths": [self.list_url(BIG_SHOP, DEPTH_STATUS, page=depth - 1)]})
        return out

    def check_scenarios(self, scenarios):
        """Every URL answers 200 with what it should, before anything is timed."""
        for scenario in scenarios:
            if scenario["key"] == "static":
                continue
            token = scenario["headers"].get("Authorization", "").removeprefix("Bearer ") or None
            status, payload, _ = self.http("GET", scenario["paths"][0], token=token)
            if status != 200:
                raise BenchError(f"{scenario['key']}: {status} {payload}")
            if scenario["key"] == "pk":
                continue
            rows = payload["result"]
            if len(rows) != PAGE_SIZE:
                raise BenchError(f"{scenario['key']}: {len(rows)} rows")
            shop = SMALL_SHOP if "small" in scenario["key"] else BIG_SHOP
            if any(r["shop_id"] != shop for r in rows) or payload["ids"] != sorted(
                    payload["ids"], reverse=True):
                raise BenchError(f"{scenario['key']}: wrong rows or order")
            scenario["count"] = payload["count"]

    def measure(self, scenario, warmup: float, duration: float) -> dict:
        if scenario.get("server") == "static":
            port, server_pids = self.static_port, []
        else:
            process, port = self.server
            server_pids = _children(process.pid)
        backends = self._backends()
        other_before = other_benchmark_activity()
        snap = {}

        def snapshot():
            snap["server"] = sum(_proc_cpu(p) for p in server_pids)
            snap["pg"] = {p: _proc_cpu(p) for p in backends}
            snap["machine"] = _machine_cpu()

        # the CPU snapshot is taken when the timed window starts, after the warm-up
        import threading

        timer = threading.Timer(warmup, snapshot)
        timer.start()
        result = self.clients.run(port, scenario["paths"], scenario["headers"], warmup, duration)
        timer.join()
        server_cpu = sum(_proc_cpu(p) for p in server_pids) - snap["server"]
        pg_cpu = sum(_proc_cpu(p) - snap["pg"][p] for p in backends)
        busy, total = _machine_cpu()
        machine_busy = (busy - snap["machine"][0]) / max(1e-9, total - snap["machine"][1])
        other_after = other_benchmark_activity()
        result.update(server_cpu_s=server_cpu, pg_cpu_s=pg_cpu, machine_busy=machine_busy,
                      other_bench=max(other_before["checkout_processes"],
                                      other_after["checkout_processes"],
                                      other_before["checkout_db_sessions"],
                                      other_after["checkout_db_sessions"]) > 0,
                      load_1min=round(os.getloadavg()[0], 2))
        if result["errors"]:
            raise BenchError(f"{scenario['key']}: {result['errors']} failed requests "
                             f"({result['statuses']}), e.g. {result['first_error']}")
        return result

    def _backends(self) -> list[int]:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            return [r[0] for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND backend_type = "
                "'client backend'", (DB_NAME,))]

    def start_clients(self):
        import multiprocessing

        self.clients = LoadClients(self.args.connections)
        ctx = multiprocessing.get_context("spawn")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.static_port = probe.getsockname()[1]
        ready = ctx.Event()
        self.static = ctx.Process(target=_static_responder, args=(self.static_port, ready),
                                  daemon=True)
        self.static.start()
        if not ready.wait(30):
            raise BenchError("static responder did not start")

    def teardown(self):
        if self.clients is not None:
            self.clients.close()
        if self.static is not None and self.static.is_alive():
            self.static.terminate()
            self.static.join(timeout=5)
        self.stop_server()
        if self.ctx is not None:
            try:
                self.ctx.pop()
            except Exception:  # noqa: BLE001
                pass
        try:
            from app.extensions import db

            with self.app.app_context():
                db.session.remove()
                db.engine.dispose()
        except Exception:  # noqa: BLE001
            pass
        if not self.args.keep_db:
            drop_database(DB_NAME)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- in-process: statements, plans, profile ------------------------------------------
    def analyse(self, scenarios) -> dict:
        from sqlalchemy import event

        from app.extensions import db

        client = self.app.test_client()  # each request pushes its own app context
        with self.app.app_context():
            engine = db.engine
        wanted = ["pk", "list_admin_big", "list_admin_small", "list_merchant_big"]
        deep = [s["key"] for s in scenarios if s["key"].startswith(("keyset_", "offset_"))]
        if deep:
            deepest = max(int(k.split("_")[1]) for k in deep)
            wanted += ["keyset_1", f"keyset_{deepest}", f"offset_{deepest}"]
        by_key = {s["key"]: s for s in scenarios}
        records, checkouts = [], [0]

        def before(conn, cursor, statement, parameters, context, executemany):
            conn.info["bench_t0"] = time.perf_counter()

        def after(conn, cursor, statement, parameters, context, executemany):
            records.append({"sql": statement, "params": parameters,
                            "ms": (time.perf_counter() - conn.info.pop("bench_t0")) * 1000,
                            "rows": cursor.rowcount})

        def on_checkout(*_):
            checkouts[0] += 1

        out = {"requests": {}, "profiles": {}}
        for key in wanted:
            if key not in by_key:
                continue
            scenario = by_key[key]
            path, headers = scenario["paths"][0], scenario["headers"]
            for _ in range(8):  # warm: connection, prepared statements, caches
                assert client.get(path, headers=headers).status_code == 200
            reps = 50
            t0 = time.perf_counter()
            for _ in range(reps):
                client.get(path, headers=headers)
            wall_ms = (time.perf_counter() - t0) / reps * 1000
            records.clear()
            checkouts[0] = 0
            event.listen(engine, "before_cursor_execute", before)
            event.listen(engine, "after_cursor_execute", after)
            event.listen(engine, "checkout", on_checkout)
            try:
                captured = []
                for _ in range(reps):
                    records.clear()
                    response = client.get(path, headers=headers)
                    assert response.status_code == 200
                    captured.append(list(records))
            finally:
                event.remove(engine, "before_cursor_execute", before)
                event.remove(engine, "after_cursor_execute", after)
                event.remove(engine, "checkout", on_checkout)
            statements = []
            for index, first in enumerate(captured[0]):
                times = sorted(run[index]["ms"] for run in captured if len(run) > index)
                statements.append({"sql": first["sql"], "params": _jsonable(first["params"]),
                                   "rows": first["rows"], "median_ms": median(times)})
            out["requests"][key] = {
                "what": scenario["what"], "as": scenario["as"], "wall_ms": wall_ms,
                "statements": statements, "checkouts": checkouts[0] / reps,
                "sql_ms": sum(s["median_ms"] for s in statements),
            }
        out["plans"] = self._plans(out["requests"])
        for key in ("list_admin_big", "pk"):
            if key in by_key:
                out["profiles"][key] = self._profile(client, by_key[key],
                                                     self.args.profile_requests)
        return out

    def _plans(self, requests: dict) -> list[dict]:
        """EXPLAIN (ANALYZE, BUFFERS) of every distinct statement on the order table: the
        custom plan (parameter values known) and the generic one psycopg's prepared statement
        may end up with."""
        import psycopg

        plans, seen = [], set()
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            for key, request in requests.items():
                for number, statement in enumerate(request["statements"], 1):
                    text_, params = statement["sql"], statement["params"]
                    if not text_.lstrip().upper().startswith("SELECT"):
                        continue
                    signature = (text_, json.dumps(params, sort_keys=True, default=str))
                    if signature in seen:
                        continue
                    seen.add(signature)
                    try:
                        plans.append({"request": key, "statement": number, "sql": text_,
                                      "params": params, **_custom_and_generic(conn, text_,
                                                                              params)})
                    except psycopg.Error as exc:
                        plans.append({"request": key, "statement": number, "sql": text_,
                                      "params": params, "error": str(exc)})
        return plans

    def _profile(self, client, scenario, n: int) -> dict:
        """cProfile of n requests; cumulative time of the parts of a request, per request."""
        import cProfile
        import pstats

        path, headers = scenario["paths"][0], scenario["headers"]
        for _ in range(5):
            client.get(path, headers=headers)
        profiler = cProfile.Profile()
        t0 = time.perf_counter()
        profiler.enable()
        for _ in range(n):
            client.get(path, headers=headers)
        profiler.disable()
        wall = (time.perf_counter() - t0) / n * 1000
        stats = pstats.Stats(profiler)
        parts = [
            ("whole request (test client)", "flask/testing.py", "open"),
            ("Flask dispatch (full_dispatch_request)", "flask/app.py", "full_dispatch_request"),
            ("JWT: verify_jwt_in_request (decode + user lookup)",
             "flask_jwt_extended/view_decorators.py", "verify_jwt_in_request"),
            ("  user lookup: load_user_jwt (the user kept per process)", "app/security.py",
             "load_user_jwt"),
            ("permission checks: has_access", "flask_appbuilder/security/manager.py",
             "has_access"),
            ("  is_item_public (public role, answer kept per process)", "app/security.py",
             "is_item_public"),
            ("rison parse (prison.loads)", "prison/decoder.py", "loads"),
            ("rison JSON Schema check (jsonschema.validate)", "jsonschema/validators.py",
             "validate"),
            ("  of which the schema's own check (check_schema)", "jsonschema/validators.py",
             "check_schema"),
            ("rison JSON Schema check (views/base.py, schema checked once)", "views/base.py",
             "validate"),
            ("direct list (views/listing.py: DirectList.answer)", "views/listing.py", "answer"),
            ("  its statements (_statements, built once per filter shape)", "views/listing.py",
             "_statements"),
            ("  response keys (views/base.py, made once per locale)", "views/base.py",
             "set_response_key_mappings"),
            ("  rows dumped by the list schema's fields (_dumped)", "views/listing.py",
             "_dumped"),
            ("  count (ListCounts.get: COUNT, or the count kept for a big list)",
             "views/listing.py", "get"),
            ("Session.get (PK endpoint: the order; list: the JWT user when not kept)",
             "sqlalchemy/orm/session.py", "get"),
            ("SQL on the wire (psycopg Cursor.execute)", "psycopg/cursor.py", "execute"),
            ("JSON answer (BaseApi.response)", "flask_appbuilder/api/__init__.py", "response"),
            ("  jsonify", "flask/json/__init__.py", "jsonify"),
            ("after-request hooks (in-process jobs)", "app/queue.py", "run_inprocess_jobs"),
            ("session teardown (remove → rollback)", "sqlalchemy/orm/scoping.py", "remove"),
            ("pool checkout (incl. pre-ping)", "sqlalchemy/pool/base.py", "_checkout"),
        ]
        rows = []
        for label, file_part, func in parts:
            # the matching function with the most cumulative time (a file may define several
            # functions of that name, e.g. jsonschema's validate() calling Validator.validate)
            best = None
            for (filename, _, name), (cc, nc, tt, ct, callers) in stats.stats.items():
                if name == func and filename.replace("\\", "/").endswith(file_part):
                    if best is None or ct > best[1]:
                        best = (nc, ct)
            if best:
                rows.append({"part": label, "ms_per_request": best[1] / n * 1000,
                             "calls_per_request": best[0] / n})
        top = sorted(((tt, nc, f"{os.path.basename(fn)}:{ln} {name}")
                      for (fn, ln, name), (cc, nc, tt, ct, _) in stats.stats.items()),
                     reverse=True)[:15]
        return {"requests": n, "wall_ms_profiled": wall, "parts": rows,
                "top_self": [{"function": f, "ms_per_request": tt / n * 1000,
                              "calls_per_request": nc / n} for tt, nc, f in top]}


def _explain(conn, statement, params=None) -> dict:
    rows = conn.execute(statement, params).fetchall() if params else \
        conn.execute(statement).fetchall()
    text_ = "\n".join(r[0] for r in rows)
    match = re.search(r"Execution Time: ([\d.]+) ms", text_)
    return {"text": text_, "execution_ms": float(match.group(1)) if match else None,
            "indexes": sorted(set(re.findall(r"(?:using|on) (\w+) ", text_)) - {"order"})}


def _custom_and_generic(conn, text_: str, params) -> dict:
    """The custom plan (values known), the generic plan, and which one PostgreSQL's plan cache
    settles on after 6 executions of the prepared statement with these values."""
    from psycopg import sql as psql

    names = []

    def dollar(match):
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    params = params or {}
    prepared = re.sub(r"%\((\w+)\)s", dollar, text_)
    call = "bench_plan" + (f"({', '.join(psql.Literal(params[n]).as_string(conn) for n in names)})"
                           if names else "")
    custom = _explain(conn, f"EXPLAIN (ANALYZE, BUFFERS) {text_}", params or None)
    conn.execute(f"PREPARE bench_plan AS {prepared}")
    try:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        generic = _explain(conn, f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE {call}")
        conn.execute("SET plan_cache_mode = auto")
        for _ in range(6):
            conn.execute(f"EXECUTE {call}").fetchall()
        auto = _explain(conn, f"EXPLAIN EXECUTE {call}")
    finally:
        conn.execute("RESET plan_cache_mode")
        conn.execute("DEALLOCATE bench_plan")
    return {"custom": custom, "generic": generic,
            "auto_after_6_is_generic": bool(re.search(r"\$\d", auto["text"])),
            "auto_plan": auto["text"]}


def _jsonable(params):
    if isinstance(params, dict):
        return {k: _jsonable(v) for k, v in params.items()}
    if isinstance(params, (list, tuple)):
        return [_jsonable(v) for v in params]
    if isinstance(params, (int, float, str)) or params is None:
        return params
    return str(params) if not hasattr(params, "isoformat") else params.isoformat()


# ------------------------------------------------------------------------------------------
# Summaries and tables
# ------------------------------------------------------------------------------------------
def summarise(results: list[dict], scenarios: list[dict]) -> list[dict]:
    pk = {r["run"]: r for r in results if r["key"] == "pk"}
    rows = []
    for scenario in scenarios:
        runs = [r for r in results if r["key"] == scenario["key"]]
        if not runs:
            continue
        p95_ratios = [r["p95_ms"] / pk[r["run"]]["p95_ms"] for r in runs if r["run"] in pk]
        rps_ratios = [r["rps"] / pk[r["run"]]["rps"] for r in runs if r["run"] in pk]
        rows.append({
            "key": scenario["key"], "what": scenario["what"], "as": scenario["as"],
            "runs": len(runs), "count": scenario.get("count"),
            "p50_ms": median([r["p50_ms"] for r in runs]),
            "p95_ms": median([r["p95_ms"] for r in runs]),
            "p99_ms": median([r["p99_ms"] for r in runs]),
            "p95_spread": (min(r["p95_ms"] for r in runs), max(r["p95_ms"] for r in runs)),
            "rps": median([r["rps"] for r in runs]),
            "rps_spread": (min(r["rps"] for r in runs), max(r["rps"] for r in runs)),
            "p95_ratio": median(p95_ratios), "rps_ratio": median(rps_ratios),
            "client_cpu_pct": median([r["client_cpu_s"] / r["duration"] * 100 for r in runs]),
            "client_cpu_ms_per_req": median([r["client_cpu_s"] / max(1, r["requests"]) * 1000
                                             for r in runs]),
            "server_cpu_ms_per_req": median([r["server_cpu_s"] / max(1, r["requests"]) * 1000
                                             for r in runs]),
            "pg_cpu_ms_per_req": median([r["pg_cpu_s"] / max(1, r["requests"]) * 1000
                                         for r in runs]),
            "machine_busy_pct": median([r["machine_busy"] * 100 for r in runs]),
            "other_bench_runs": sorted({r["run"] for r in runs if r["other_bench"]}),
        })
    return rows


def render(rows: list[dict]) -> str:
    table = []
    for row in rows:
        ceiling = row["key"] in ("static", "pk")
        table.append([
            row["what"], row["as"],
            "—" if row["count"] is None else f"{row['count']:,}",
            f"{row['p50_ms']:.1f}", f"**{row['p95_ms']:.1f}**",
            f"{row['p95_spread'][0]:.1f}–{row['p95_spread'][1]:.1f}", f"{row['p99_ms']:.1f}",
            f"**{row['rps']:.0f}**", f"{row['rps_spread'][0]:.0f}–{row['rps_spread'][1]:.0f}",
            "—" if row["key"] == "static" else
            ("1.00" if ceiling else f"**{row['p95_ratio']:.2f}**"),
            "—" if row["key"] == "static" else
            ("1.00" if ceiling else f"{row['rps_ratio']:.2f}"),
            f"{row['server_cpu_ms_per_req']:.2f} / {row['pg_cpu_ms_per_req']:.2f} / "
            f"{row['client_cpu_ms_per_req']:.2f}",
            f"{row['machine_busy_pct']:.0f}",
        ])
    return markdown_table(
        ["scenario", "as", "count in answer", "p50 ms", "p95 ms", "p95 min–max", "p99 ms",
         "req/s", "req/s min–max", "p95 ÷ PK p95", "req/s ÷ PK req/s",
         "CPU ms/req: gunicorn / PostgreSQL / client", "machine CPU busy %"], table)


def render_depth(rows: list[dict]) -> str:
    keyset = {r["key"].split("_")[1]: r for r in rows if r["key"].startswith("keyset_")}
    offset = {r["key"].split("_")[1]: r for r in rows if r["key"].startswith("offset_")}
    table = []
    for depth in sorted(keyset, key=int):
        k, o = keyset[depth], offset.get(depth)
        table.append([f"{int(depth):,}", f"{(int(depth) - 1) * PAGE_SIZE:,}",
                      f"{k['count']:,}" if k["count"] is not None else "?",
                      f"**{k['p95_ms']:.1f}**", f"{k['rps']:.0f}", f"{k['p95_ratio']:.2f}",
                      f"**{o['p95_ms']:.1f}**" if o else "(same request)",
                      f"{o['rps']:.0f}" if o else "", f"{o['p95_ratio']:.2f}" if o else ""])
    return markdown_table(["page", "rows before it", "`count` answered (keyset)",
                           "keyset p95 ms", "keyset req/s", "keyset p95 ÷ PK",
                           "page=N p95 ms", "page=N req/s", "page=N p95 ÷ PK"], table)


def render_statements(analysis: dict) -> str:
    out = []
    plans = {(p["request"], p["statement"]): p for p in analysis["plans"]}
    for key, request in analysis["requests"].items():
        out.append(f"\n{request['what']} ({request['as']}): {len(request['statements'])} "
                   f"statements, {request['sql_ms']:.2f} ms of {request['wall_ms']:.2f} ms "
                   f"in-process; {request['checkouts']:.0f} pool checkout(s), each with a "
                   f"pre-ping")
        table = []
        for number, statement in enumerate(request["statements"], 1):
            plan = plans.get((key, number))
            if plan is None:
                custom = generic = "(same as above)"
            elif "error" in plan:
                custom = generic = f"EXPLAIN failed: {plan['error'][:60]}"
            else:
                custom = _plan_cell(plan["custom"])
                generic = _plan_cell(plan["generic"]) + (
                    " (chosen after 6 runs)" if plan["auto_after_6_is_generic"] else "")
            table.append([number, _short_sql(statement["sql"]), statement["rows"],
                          f"{statement['median_ms']:.2f}", custom, generic])
        out.append(markdown_table(["#", "statement", "rows", "ms (median)",
                                   "custom plan: index, ms", "generic plan: index, ms"], table))
    return "\n".join(out)


def _plan_cell(plan: dict) -> str:
    first = plan["text"].splitlines()[0] if plan["text"] else ""
    node = re.sub(r"\s+\(cost=.*", "", first).strip()
    return f"{node}; {', '.join(plan['indexes']) or 'no index'}; {plan['execution_ms']:.2f}"


def _short_sql(sql: str) -> str:
    s = " ".join(sql.split())
    if "count(*)" in s:
        where = s.split("WHERE", 1)[1].split(")")[0] if "WHERE" in s else ""
        return f"SELECT count(*) FROM (SELECT … FROM order WHERE{where[:90]}…)"
    s = re.sub(r"SELECT .*? FROM", "SELECT … FROM", s, count=1)
    return s[:150] + ("…" if len(s) > 150 else "")


def render_profile(profile: dict) -> str:
    table = [[p["part"], f"{p['ms_per_request']:.2f}", f"{p['calls_per_request']:.1f}"]
             for p in profile["parts"]]
    return markdown_table(["part of the request (cumulative, under cProfile)", "ms/request",
                           "calls/request"], table)


def machine_info() -> dict:
    import platform
    from importlib.metadata import version

    import psycopg

    info = {"nproc": os.cpu_count(), "python": platform.python_version()}
    try:
        from bench.common import machine

        info.update(machine())
    except Exception:  # noqa: BLE001  (Redis is not needed here)
        try:
            with psycopg.connect(PG_ADMIN_URL) as conn:
                info["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
        except Exception:  # noqa: BLE001
            info["postgresql"] = "?"
    for name, package in (("flask", "flask"), ("flask_appbuilder", "flask-appbuilder"),
                          ("sqlalchemy", "sqlalchemy"), ("psycopg", "psycopg"),
                          ("gunicorn", "gunicorn"), ("marshmallow", "marshmallow")):
        try:
            info[name] = version(package)
        except Exception:  # noqa: BLE001
            info[name] = "?"
    try:
        with psycopg.connect(PG_ADMIN_URL) as conn:
            info["pg_settings"] = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in
                                   ("shared_buffers", "work_mem", "random_page_cost",
                                    "effective_cache_size", "jit")}
    except Exception:  # noqa: BLE001
        pass
    info["load_1min"] = round(os.getloadavg()[0], 2)
    return info


def describe(info: dict) -> str:
    return (f"{info['nproc']} CPU ({info.get('cpu', '?')}), {info.get('memory_gb', '?')} GB RAM, "
            f"PostgreSQL {info.get('postgresql')}, Python {info['python']}, "
            f"Flask-AppBuilder {info['flask_appbuilder']}, SQLAlchemy {info['sqlalchemy']}, "
            f"psycopg {info['psycopg']}, gunicorn {info['gunicorn']}, "
            f"marshmallow {info['marshmallow']}, load {info.get('load_1min', '?')}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.order_list", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario (median; ≥3)")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="timed seconds per scenario (default 10)")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="untimed seconds before each scenario (default 1)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent connections")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--orders", type=int, default=None,
                        help="orders (default 1,000,000; 100,000 with --quick)")
    parser.add_argument("--shops", type=int, default=100)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--depths", default="1,100,1000,2500",
                        help="pages of the depth scenarios (clipped to the pages there are)")
    parser.add_argument("--profile-requests", type=int, default=300,
                        help="requests profiled in-process (default 300)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 1 run of 2 s per scenario (100,000 orders unless "
                             "--orders is given)")
    parser.add_argument("--keep-db", action="store_true", help=f"leave {DB_NAME} in place")
    parser.add_argument("--reuse-db", action="store_true",
                        help=f"use {DB_NAME} as it is when it holds the same data")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.duration, args.warmup = 1, 2.0, 0.5
        args.profile_requests = min(args.profile_requests, 50)
        if args.orders is None:
            args.orders = 100_000
    elif args.runs < 3:
        parser.error("--runs must be at least 3 (medians of several runs)")
    if args.orders is None:
        args.orders = 1_000_000

    info = machine_info()
    print(f"bench.order_list: {describe(info)}", flush=True)
    started = time.perf_counter()
    bench = Bench(args)
    results = []
    try:
        bench.setup()
        facts = bench.data_facts()
        print(f"database {DB_NAME}: {facts['orders']:,} orders, big shop {facts['big_shop_orders']:,}"
              f", small shop {facts['small_shop_orders']:,}; setup {bench.timings['setup_s']:.0f} s",
              flush=True)
        for index in facts["indexes_on_order"]:
            print(f"  index {index}")
        pages = facts["big_depth_status_rows"] // PAGE_SIZE
        bench.depths = sorted({1} | {int(d) for d in args.depths.split(",") if 1 <= int(d) <= pages})
        bench.start_server()
        bench.login()
        t0 = time.perf_counter()
        walk = bench.walk()
        bench.timings["walk_s"] = time.perf_counter() - t0
        print(f"walked {walk['pages_walked']:,} pages by next_cursor in {walk['seconds']:.1f} s",
              flush=True)
        scenarios = bench.scenarios()
        bench.check_scenarios(scenarios)
        bench.start_clients()
        t0 = time.perf_counter()
        for run in range(1, args.runs + 1):
            order = list(scenarios)
            random.Random(run).shuffle(order)
            for scenario in order:
                result = bench.measure(scenario, args.warmup, args.duration)
                result.update(run=run, key=scenario["key"], duration=args.duration)
                results.append(result)
                print(f"  run {run}: {scenario['key']:<18} {result['rps']:7.0f} req/s  "
                      f"p50 {result['p50_ms']:6.1f}  p95 {result['p95_ms']:6.1f} ms  "
                      f"busy {result['machine_busy'] * 100:3.0f}%"
                      + ("  [bench.checkout running]" if result["other_bench"] else ""),
                      flush=True)
        bench.timings["http_runs_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        analysis = bench.analyse(scenarios)
        bench.timings["analysis_s"] = time.perf_counter() - t0
    finally:
        bench.teardown()
    elapsed = time.perf_counter() - started
    rows = summarise(results, scenarios)
    info["load_1min_end"] = round(os.getloadavg()[0], 2)
    print()
    print(f"Medians of {args.runs} runs of {args.duration:g} s, {args.connections} connections, "
          f"gunicorn -w {args.workers} (sync); ratio = p95 ÷ p95 of the PK endpoint in the same "
          f"run (median of per-run ratios); {elapsed:.0f} s in all:")
    print(render(rows))
    print()
    print(f"Keyset (next_cursor) vs page=N at depth, big shop, {DEPTH_STATUS}:")
    print(render_depth(rows))
    print()
    print("Following next_cursor page by page (one client, sequential):")
    print(markdown_table(["pages", "n", "median ms", "p95 ms"],
                         [[b["pages"], b["n"], f"{b['median_ms']:.1f}", f"{b['p95_ms']:.1f}"]
                          for b in walk["buckets"]]))
    print()
    print("SQL per request (in-process, Flask test client; plans by EXPLAIN ANALYZE):")
    print(render_statements(analysis))
    for key, profile in analysis["profiles"].items():
        print(f"\nWhere the time of one request goes ({key}; {profile['requests']} requests; "
              f"{profile['wall_ms_profiled']:.2f} ms/request under cProfile, "
              f"{analysis['requests'][key]['wall_ms']:.2f} ms without):")
        print(render_profile(profile))
    others = sorted({run for row in rows for run in row["other_bench_runs"]})
    print(f"\nbench.checkout active during runs: {others or 'none'}")
    print(f"load average (1 min) at start {info.get('load_1min')}, at end "
          f"{info.get('load_1min_end')} on {info['nproc']} CPUs")
    print("timings: " + ", ".join(f"{k} {v:.0f}" for k, v in bench.timings.items()))
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = RESULTS_DIR / f"order_list-{stamp}.json"
    path.write_text(json.dumps({
        "machine": info, "git": git_revision(), "args": vars(args), "elapsed_s": elapsed,
        "timings": bench.timings, "facts": facts, "walk": walk, "summary": rows,
        "runs": results, "analysis": analysis,
        "scenarios": [{k: v for k, v in s.items() if k not in ("paths", "headers")} |
                      {"path": s["paths"][0]} for s in scenarios]}, indent=2, default=str))
    print(f"\nraw results: {path.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
