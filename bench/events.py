"""Events handled per second per RQ worker, against the no-op job ceiling of the same run.

    .venv/bin/python -m bench.events [--runs 3] [--events 300] [--fork-events 8] [--quick]

Set-up: a fresh PostgreSQL database (`houtai_bench`, dropped and re-created, migrated), a private
RQ queue on Redis database 3 (only that database is flushed), the bench subscribers of
`bench/subscribers.py` (event `bench.one`: 1 subscriber; `bench.three`: 3 subscribers).

Each measurement: publish N events through `services.events.publish()`, one event per
committed transaction (so `deliver_event` jobs are enqueued after each commit, as in the
application), or enqueue N `workers.events.noop` jobs (the ceiling); start W real
`rq worker --burst` processes, wait until each is ready, release them together and time from
the release to the end of the last job (RQ's `ended_at`). The ceiling is the same number of
no-op jobs drained by the same worker class and worker count, measured in the same run
(interleaved), and the ratio printed is the median of the per-run ratios.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone

from bench.common import (PROJECT_ROOT, REDIS_BENCH_URL, RESULTS_DIR, VENV_BIN, describe_machine,
                          drop_database, git_revision, machine, markdown_table, median,
                          recreate_database)

DB_NAME = os.environ.get("BENCH_DB_NAME", "houtai_bench")
WORKER_CLASSES = {
    "SimpleWorker": "bench.worker.BenchSimpleWorker",
    "Worker (fork)": "bench.worker.BenchForkWorker",
    "Worker (fork, app preloaded)": "bench.worker.BenchPreloadForkWorker",
}
SUBSCRIBERS_OF = {"noop": 0, "one": 1, "three": 3}


class BenchError(RuntimeError):
    pass


def plan(args) -> list[tuple[str, int, str, int]]:
    """(worker class, workers, job kind, jobs) of one run, in the order they are measured."""
    n, f = args.events, args.fork_events
    scenarios = []
    for workers in (1, 2):
        for kind in ("noop", "one", "three"):
            scenarios.append(("SimpleWorker", workers, kind, n))
    for workers in (1, 2):
        for kind in ("noop", "one"):
            scenarios.append(("Worker (fork)", workers, kind, f))
    for kind in ("noop", "one"):
        scenarios.append(("Worker (fork, app preloaded)", 1, kind, max(n // 3, 1)))
    return scenarios


class Bench:
    def __init__(self, args):
        self.args = args
        self.redis_url = REDIS_BENCH_URL
        self.queue_name = f"houtai-bench-{uuid.uuid4().hex[:8]}"
        self.logdir = tempfile.mkdtemp(prefix="houtai-bench-")
        self.processes: list[subprocess.Popen] = []
        self.seq = 0

    # -- set-up -------------------------------------------------------------------------
    def setup(self):
        from redis import Redis

        self.redis = Redis.from_url(self.redis_url)
        self.redis.flushdb()
        self.database_url = recreate_database(DB_NAME)
        from app import create_app

        self.app = create_app({
            "SQLALCHEMY_DATABASE_URI": self.database_url.replace("postgresql://",
                                                                 "postgresql+psycopg://"),
            "REDIS_URL": self.redis_url,
            "HOUTAI_QUEUE": self.queue_name,
            "SECRET_KEY": "bench-only-secret-key-not-used-for-anything-0123456789",
            "RATELIMIT_ENABLED": False,
        }, instance_path=os.path.join(self.logdir, "instance"))
        self.ctx = self.app.app_context()
        self.ctx.push()
        from flask_migrate import upgrade

        from app.extensions import db
        from bench import subscribers

        upgrade()
        with db.engine.begin() as connection:
            subscribers.create_tables(connection)
        self.worker_env = dict(
            os.environ,
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            HOUTAI_QUEUE=self.queue_name,
            SECRET_KEY="bench-only-secret-key-not-used-for-anything-0123456789",
            RATELIMIT_ENABLED="0",
            PYTHONPATH=str(PROJECT_ROOT),
        )

    def teardown(self, failed: bool = False):
        for process in self.processes:
            self._stop(process)
        try:
            from app.extensions import db

            db.session.remove()
            db.engine.dispose()
            self.ctx.pop()
        except Exception:  # noqa: BLE001
            pass
        try:
            self.redis.flushdb()
        except Exception:  # noqa: BLE001
            pass
        if not self.args.keep_db:
            drop_database(DB_NAME)
        if failed:
            print(f"worker logs kept in {self.logdir}", file=sys.stderr)
        else:
            shutil.rmtree(self.logdir, ignore_errors=True)

    # -- one measurement ----------------------------------------------------------------
    def reset(self):
        from sqlalchemy import text

        from app.extensions import db
        from bench import subscribers

        self.redis.flushdb()
        db.session.remove()
        with db.engine.begin() as connection:
            connection.execute(text("TRUNCATE event_delivery, outbox_event"))
            subscribers.reset_tables(connection)

    def fill(self, kind: str, n: int) -> tuple[list[str], float]:
        """Put n jobs on the queue; returns their ids and the enqueue (or publish) rate."""
        from rq import Queue

        from app.extensions import db
        from bench.subscribers import ONE, THREE
        from services.events import publish

        started = time.perf_counter()
        if kind == "noop":
            queue = Queue(self.queue_name, connection=self.redis)
            jobs = queue.enqueue_many([Queue.prepare_data("workers.events.noop")
                                       for _ in range(n)])
            ids = [job.id for job in jobs]
        else:
            name = ONE if kind == "one" else THREE
            ids = []
            for i in range(n):
                self.seq += 1
                event = publish(name, {"key": f"e{self.seq}", "amount": i % 97 + 1,
                                       "sku": i % 100, "shop_id": i % 10 + 1},
                                shop_id=i % 10 + 1)
                ids.append(f"event-{event.id}")
                db.session.commit()
            db.session.remove()
        rate = n / (time.perf_counter() - started)
        queued = self.redis.llen(f"rq:queue:{self.queue_name}")
        if queued != n:
            raise BenchError(f"{queued} jobs on the queue, expected {n}")
        return ids, rate

    def start_workers(self, worker_class: str, count: int) -> tuple[list, float]:
        ready_key, go_key = f"bench:ready:{uuid.uuid4().hex}", f"bench:go:{uuid.uuid4().hex}"
        env = dict(self.worker_env, BENCH_READY_KEY=ready_key, BENCH_GO_KEY=go_key)
        spawned = time.perf_counter()
        workers = []
        for index in range(count):
            log = open(os.path.join(self.logdir, f"worker-{len(self.processes)}.log"), "w")
            process = subprocess.Popen(
                [str(VENV_BIN / "rq"), "worker", "--burst", "--url", self.redis_url,
                 "--worker-class", WORKER_CLASSES[worker_class], self.queue_name],
                cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
            process.log_path = log.name
            log.close()
            self.processes.append(process)
            workers.append(process)
        deadline = time.perf_counter() + 60
        while self.redis.llen(ready_key) < count:
            for process in workers:
                if process.poll() is not None:
                    raise BenchError(f"worker exited before start:\n{self._tail(process)}")
            if time.perf_counter() > deadline:
                raise BenchError("workers not ready within 60 s")
            time.sleep(0.005)
        cold_start = time.perf_counter() - spawned
        self.go = (go_key, count)
        return workers, cold_start

    def release_and_wait(self, workers, n: int) -> float:
        go_key, count = self.go
        released = datetime.now(timezone.utc)
        self.redis.rpush(go_key, *["go"] * count)
        deadline = time.perf_counter() + max(120, n * 2)
        for process in workers:
            try:
                process.wait(timeout=max(1, deadline - time.perf_counter()))
            except subprocess.TimeoutExpired:
                raise BenchError(f"worker did not finish the queue:\n{self._tail(process)}")
            if process.returncode != 0:
                raise BenchError(f"worker exit code {process.returncode}:\n{self._tail(process)}")
            self.processes.remove(process)
        return released

    def job_end(self, ids: list[str]) -> datetime:
        from rq.utils import utcparse

        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(f"rq:job:{job_id}", "status", "ended_at")
        rows = pipe.execute()
        unfinished = [job_id for job_id, (status, _) in zip(ids, rows) if status != b"finished"]
        if unfinished:
            raise BenchError(f"{len(unfinished)} jobs not finished, e.g. {unfinished[:3]}")
        return max(utcparse(ended.decode()) for _, ended in rows)

    def verify(self, kind: str, n: int) -> None:
        if kind == "noop":
            return
        from sqlalchemy import text

        from app.extensions import db
        from bench import subscribers

        with db.engine.connect() as connection:
            undone = connection.execute(text(
                "SELECT count(*) FROM event_delivery WHERE status <> 'done'")).scalar_one()
            effects = subscribers.counts(connection)
        expected = {"ledger": n, "reserved": n if kind == "three" else 0,
                    "daily_events": n if kind == "three" else 0}
        if undone or effects != expected:
            raise BenchError(f"{undone} deliveries not done; effects {effects} != {expected}")

    def measure(self, worker_class: str, count: int, kind: str, n: int) -> dict:
        self.reset()
        ids, fill_rate = self.fill(kind, n)
        workers, cold_start = self.start_workers(worker_class, count)
        released = self.release_and_wait(workers, n)
        seconds = (self.job_end(ids) - released).total_seconds()
        self.verify(kind, n)
        return {"worker_class": worker_class, "workers": count, "kind": kind, "jobs": n,
                "seconds": seconds, "jobs_per_s": n / seconds,
                "per_worker": n / seconds / count, "cold_start_s": cold_start,
                "fill_per_s": fill_rate}

    def measure_inprocess(self, kind: str, n: int) -> dict:
        """`services.events.deliver()` called directly in this process: no RQ, no worker.

        What handling an event costs on its own, and the SQL statements it sends."""
        from sqlalchemy import event as sa_event
        from sqlalchemy import select

        from app.extensions import db
        from models.events import OutboxEvent
        from services.events import deliver

        self.reset()
        self.fill(kind, n)
        self.redis.flushdb()  # the jobs publish() enqueued are not wanted here
        ids = db.session.execute(select(OutboxEvent.id).order_by(OutboxEvent.id)).scalars().all()
        db.session.remove()
        statements = []

        def count(conn, cursor, statement, *rest):
            statements.append(statement)

        sa_event.listen(db.engine, "before_cursor_execute", count)
        try:
            started = time.perf_counter()
            for event_id in ids:
                deliver(event_id)
            seconds = time.perf_counter() - started
        finally:
            sa_event.remove(db.engine, "before_cursor_execute", count)
            db.session.remove()
        self.verify(kind, n)
        return {"kind": kind, "jobs": n, "seconds": seconds, "per_s": n / seconds,
                "statements_per_event": len(statements) / n}

    # -- helpers ------------------------------------------------------------------------
    @staticmethod
    def _tail(process) -> str:
        try:
            with open(process.log_path) as log:
                return "".join(log.readlines()[-30:])
        except OSError:
            return "(no log)"

    @staticmethod
    def _stop(process) -> None:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def summarise(results: list[dict]) -> list[dict]:
    """Median per scenario, and the median per-run ratio to the same run's no-op ceiling."""
    groups: dict[tuple, list[dict]] = {}
    for result in results:
        key = (result["worker_class"], result["workers"], result["kind"])
        groups.setdefault(key, []).append(result)
    rows = []
    for (worker_class, workers, kind), runs in groups.items():
        ceilings = {r["run"]: r["jobs_per_s"] for r in groups.get((worker_class, workers, "noop"), [])}
        ratios = [r["jobs_per_s"] / ceilings[r["run"]] for r in runs if r["run"] in ceilings]
        per_worker = median([r["per_worker"] for r in runs])
        rows.append({
            "worker_class": worker_class, "workers": workers, "kind": kind,
            "subscribers": SUBSCRIBERS_OF[kind], "jobs": runs[0]["jobs"], "runs": len(runs),
            "jobs_per_s": median([r["jobs_per_s"] for r in runs]),
            "per_worker": per_worker,
            "deliveries_per_worker": per_worker * SUBSCRIBERS_OF[kind],
            "ratio": median(ratios),
            "spread": (min(r["per_worker"] for r in runs), max(r["per_worker"] for r in runs)),
            "cold_start_s": median([r["cold_start_s"] for r in runs]),
            "fill_per_s": median([r["fill_per_s"] for r in runs]),
        })
    return rows


def render(rows: list[dict]) -> str:
    table = []
    for row in rows:
        what = "no-op (ceiling)" if row["kind"] == "noop" else f"event, {row['subscribers']} sub."
        fill = "enqueue_many" if row["kind"] == "noop" else "publish+commit"
        table.append([
            row["worker_class"], row["workers"], what, row["jobs"],
            f"{row['jobs_per_s']:.1f}", f"**{row['per_worker']:.1f}**",
            f"{row['spread'][0]:.1f}–{row['spread'][1]:.1f}",
            "—" if row["kind"] == "noop" else f"{row['deliveries_per_worker']:.1f}",
            "1.00" if row["kind"] == "noop" else f"**{row['ratio']:.2f}**",
            f"{row['cold_start_s']:.2f}", f"{row['fill_per_s']:.0f} ({fill})",
        ])
    return markdown_table(
        ["worker class", "workers", "job", "jobs", "jobs/s (all)", "per worker /s",
         "per worker, min–max", "subscriber runs /s per worker", "vs no-op ceiling",
         "cold start s", "queue fill /s"], table)


def summarise_inprocess(inprocess: list[dict], rows: list[dict]) -> list[dict]:
    simple = {row["kind"]: row for row in rows
              if row["worker_class"] == "SimpleWorker" and row["workers"] == 1}
    out = []
    for kind in ("one", "three"):
        runs = [r for r in inprocess if r["kind"] == kind]
        if not runs:
            continue
        per_s = median([r["per_s"] for r in runs])
        ms_event = 1000 / per_s
        worker = simple.get(kind)
        noop = simple.get("noop")
        out.append({
            "kind": kind, "subscribers": SUBSCRIBERS_OF[kind], "per_s": per_s,
            "ms_per_event": ms_event,
            "ms_per_event_worker": 1000 / worker["per_worker"] if worker else None,
            "ms_per_noop_job": 1000 / noop["per_worker"] if noop else None,
            "statements_per_event": median([r["statements_per_event"] for r in runs]),
        })
    return out


def render_inprocess(rows: list[dict]) -> str:
    def ms(value):
        return "?" if value is None else f"{value:.1f}"

    return markdown_table(
        ["event", "deliver() in-process /s", "ms per event in-process",
         "ms per event, 1 SimpleWorker", "ms per no-op job, 1 SimpleWorker",
         "SQL statements per event (+ commits)"],
        [[f"{row['subscribers']} sub.", f"{row['per_s']:.1f}", ms(row["ms_per_event"]),
          ms(row["ms_per_event_worker"]), ms(row["ms_per_noop_job"]),
          f"{row['statements_per_event']:.0f}"] for row in rows])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.events", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario (median; ≥3)")
    parser.add_argument("--events", type=int, default=300,
                        help="jobs per SimpleWorker measurement (default 300; a third of it "
                             "for the preloaded forking worker)")
    parser.add_argument("--fork-events", type=int, default=8,
                        help="jobs per default forking-Worker measurement (default 8)")
    parser.add_argument("--quick", action="store_true", help="1 run of few jobs (smoke test)")
    parser.add_argument("--keep-db", action="store_true", help=f"leave {DB_NAME} in place")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.events, args.fork_events = 1, 20, 4
    elif args.runs < 3:
        parser.error("--runs must be at least 3 (medians of several runs)")

    info = machine()
    print(f"bench.events: {describe_machine(info)}", flush=True)
    bench = Bench(args)
    results, inprocess = [], []
    started = time.perf_counter()
    failed = True
    try:
        bench.setup()
        print(f"database {DB_NAME}, Redis {bench.redis_url}, queue {bench.queue_name}", flush=True)
        for run in range(1, args.runs + 1):
            for worker_class, workers, kind, n in plan(args):
                result = bench.measure(worker_class, workers, kind, n)
                result["run"] = run
                results.append(result)
                print(f"  run {run}: {worker_class:<29} x{workers} {kind:<5} {n:>4} jobs "
                      f"{result['seconds']:6.2f} s  {result['per_worker']:7.1f} /s per worker",
                      flush=True)
            for kind in ("one", "three"):
                result = bench.measure_inprocess(kind, args.events)
                result["run"] = run
                inprocess.append(result)
                print(f"  run {run}: deliver() in-process, no RQ     {kind:<5} {args.events:>4} "
                      f"events {result['seconds']:6.2f} s  {result['per_s']:7.1f} /s", flush=True)
        failed = False
    finally:
        bench.teardown(failed)
    rows = summarise(results)
    elapsed = time.perf_counter() - started
    print()
    print(f"Medians of {args.runs} runs ({elapsed:.0f} s in all); ratio = events/s ÷ no-op jobs/s "
          f"of the same worker class and count in the same run (median of per-run ratios):")
    print(render(rows))
    inprocess_rows = summarise_inprocess(inprocess, rows)
    print()
    print("The same events handled by calling services.events.deliver() in-process (no RQ):")
    print(render_inprocess(inprocess_rows))
    try:
        info["load_1min_end"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    print(f"\nload average (1 min) at start {info.get('load_1min')}, at end "
          f"{info.get('load_1min_end')} on {info['nproc']} CPUs")
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = RESULTS_DIR / f"events-{stamp}.json"
    path.write_text(json.dumps({"machine": info, "git": git_revision(), "args": vars(args),
                                "elapsed_s": elapsed, "summary": rows, "runs": results,
                                "inprocess_summary": inprocess_rows, "inprocess": inprocess},
                               indent=2, default=str))
    print(f"\nraw results: {path.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
