"""RQ worker classes for the benchmarks: the stock classes, plus the bench subscribers and a
start barrier, so every worker of a measurement starts working at the same moment.

`rq worker --worker-class bench.worker.<Class>` imports this module (from the current
directory, rq's default `--path .`). Nothing here changes how a job runs:

* `BenchSimpleWorker`: `rq.worker.SimpleWorker` as `make worker` runs it. The subscribers are
  registered and the worker's application is built (what its first job would do) before the
  barrier, so the measurement is the steady state; the cold start is measured separately.
* `BenchForkWorker`: the default forking `rq.worker.Worker`, untouched: the parent imports
  nothing of the application, each forked work horse imports it, registers the subscribers
  and builds the application for its one job, as `rq worker` without `--worker-class` does.
* `BenchPreloadForkWorker`: a forking worker whose parent imports everything and builds the
  application before forking (database pool emptied first), so each work horse pays only for
  the fork and a fresh database connection. Bench-only: it isolates the cost of fork itself.

Outside the benchmark (BENCH_READY_KEY unset) there is no barrier.
"""
import os

from rq.worker import SimpleWorker, Worker

READY_KEY = "BENCH_READY_KEY"
GO_KEY = "BENCH_GO_KEY"


def _register_subscribers() -> None:
    import bench.subscribers  # noqa: F401  (registers the bench subscribers)


def _build_app() -> None:
    from workers import worker_app

    app = worker_app()
    from app.extensions import db

    with app.app_context():
        db.engine.dispose()  # no connection is ever shared with a forked child


def _wait_for_go(connection) -> None:
    ready_key = os.environ.get(READY_KEY)
    if not ready_key:
        return
    connection.rpush(ready_key, os.getpid())
    if connection.blpop([os.environ[GO_KEY]], timeout=120) is None:
        raise SystemExit("bench worker: no start signal within 120 s")


class BenchSimpleWorker(SimpleWorker):
    def work(self, *args, **kwargs):
        _register_subscribers()
        _build_app()
        _wait_for_go(self.connection)
        return super().work(*args, **kwargs)


class BenchForkWorker(Worker):
    def work(self, *args, **kwargs):
        _wait_for_go(self.connection)
        return super().work(*args, **kwargs)

    def main_work_horse(self, job, queue):
        _register_subscribers()  # in the work horse: what a real subscriber module import does
        return super().main_work_horse(job, queue)


class BenchPreloadForkWorker(Worker):
    def work(self, *args, **kwargs):
        _register_subscribers()
        _build_app()
        _wait_for_go(self.connection)
        return super().work(*args, **kwargs)
