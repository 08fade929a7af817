"""RQ job functions: thin, idempotent calls into services, each inside an application context.

An `rq worker` process builds the application once (the first job) and keeps it, with its
database pool, for every later job; run it with `rq.worker.SimpleWorker` (no fork per job).
In in-process mode the job runs inside the application that committed the work.
"""
import functools

from flask import current_app, has_app_context

from services.actor import Actor, acting_as

_worker_app = None


def worker_app():
    """The application of this worker process, created on first use."""
    global _worker_app
    if _worker_app is None:
        from app import create_app

        _worker_app = create_app()
    return _worker_app


def job(name: str):
    """Make a function an RQ job: app context, the job as audit actor, in-process jobs drained."""

    def decorate(func):
        @functools.wraps(func)
        def run(*args, **kwargs):
            if has_app_context():
                return _run(current_app._get_current_object(), func, name, args, kwargs)
            with worker_app().app_context():
                try:
                    return _run(current_app._get_current_object(), func, name, args, kwargs)
                finally:
                    from app.extensions import db

                    db.session.remove()

        return run

    return decorate


def _run(app, func, name, args, kwargs):
    from app.extensions import db
    from app.queue import run_inprocess_jobs

    with acting_as(Actor.job(name)):
        result = func(*args, **kwargs)
    run_inprocess_jobs(db.session)
    return result
