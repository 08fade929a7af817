"""Background work: jobs named by dotted path, enqueued only after the commit they depend on.

With REDIS_URL set, jobs go to the RQ queue `HOUTAI_QUEUE` and `rq worker` processes run them.
Without it, the same job functions run in-process right after the commit (at the end of the
request, the command or the job that committed), so both modes give the same results.
"""
import importlib
import logging

from flask import current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

_PENDING = "houtai_jobs_after_commit"
_INPROCESS = "houtai_jobs_inprocess"
# RQ's own retries: attempts 2..6 after these many seconds (the same schedule tick uses).
RETRY_INTERVALS = [10, 30, 60, 300, 900]


def enqueue_after_commit(session: Session, func_path: str, *args, job_id: str | None = None):
    """Run `func_path(*args)` in the background once the session's transaction commits."""
    session.info.setdefault(_PENDING, []).append((func_path, args, job_id))


def redis_connection():
    from redis import Redis

    url = current_app.config.get("REDIS_URL")
    if not url:
        return None
    connections = current_app.extensions.setdefault("houtai_redis", {})
    if url not in connections:
        connections[url] = Redis.from_url(url)
    return connections[url]


def rq_queue():
    from rq import Queue

    connection = redis_connection()
    if connection is None:
        return None
    return Queue(current_app.config["HOUTAI_QUEUE"], connection=connection)


def enqueue_now(func_path: str, *args, job_id: str | None = None) -> None:
    """Hand a job to RQ (or to the in-process list). Callers must already have committed."""
    from rq import Retry

    queue = rq_queue() if has_app_context() else None
    if queue is None:
        from app.extensions import db

        db.session.info.setdefault(_INPROCESS, []).append((func_path, args))
        return
    queue.enqueue(func_path, *args, job_id=job_id,
                  retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS))


def _after_commit(session: Session) -> None:
    pending = session.info.pop(_PENDING, [])
    if not pending:
        return
    if has_app_context() and current_app.config.get("REDIS_URL"):
        for func_path, args, job_id in pending:
            try:
                enqueue_now(func_path, *args, job_id=job_id)
            except Exception:  # noqa: BLE001 - the outbox and tick re-deliver what is lost here
                log.exception("enqueue of %s failed; tick will re-deliver it", func_path)
    else:
        session.info.setdefault(_INPROCESS, []).extend((f, a) for f, a, _ in pending)


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


def call(func_path: str, *args):
    module_name, _, func_name = func_path.rpartition(".")
    return getattr(importlib.import_module(module_name), func_name)(*args)


def run_inprocess_jobs(session: Session) -> int:
    """Run the jobs committed work left for in-process mode; returns how many ran."""
    ran = 0
    while session.info.get(_INPROCESS):
        func_path, args = session.info[_INPROCESS].pop(0)
        try:
            call(func_path, *args)
        except Exception:  # noqa: BLE001 - failures stay recorded in the outbox for tick
            log.exception("in-process job %s failed", func_path)
        ran += 1
    return ran


def install() -> None:
    """Hook job hand-off into every SQLAlchemy session (idempotent)."""
    if not event.contains(Session, "after_commit", _after_commit):
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_rollback", _after_rollback)
