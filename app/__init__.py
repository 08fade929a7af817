"""The application factory."""
import importlib
import logging
from pathlib import Path

from flask import Flask

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_app(config: dict | None = None, instance_path: str | None = None) -> Flask:
    """Build the Houtai application; `config` overrides settings read from the environment."""
    from flask_appbuilder import AppBuilder

    from app import cli, errors, logs, queue
    from app.extensions import csrf, db, enforce_sqlite_foreign_keys, migrate
    from app.security import HoutaiSecurityManager
    from config import build_config
    from services import audit
    from views.dashboard import DashboardIndexView

    app = Flask(__name__, instance_path=instance_path or str(PROJECT_ROOT / "instance"),
                instance_relative_config=True)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    settings = build_config(app.instance_path)
    settings.update(config or {})
    # One limit for both logins: the console form (FAB) and the REST API (ours).
    settings["AUTH_RATE_LIMIT"] = settings["LOGIN_RATE_LIMIT"]
    app.config.update(settings)
    logs.install(app)
    if settings.get("REDIS_URL") and "RATELIMIT_STORAGE_URI" not in (config or {}):
        app.config["RATELIMIT_STORAGE_URI"] = settings["REDIS_URL"]

    import models  # noqa: F401  (every table on the one MetaData)
    import services  # noqa: F401  (every center's subscribers and scheduled tasks)

    for module in app.config["HOUTAI_EXTENSIONS"]:
        importlib.import_module(module)

    enforce_sqlite_foreign_keys()
    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    # CSRF before AppBuilder, so the REST APIs are exempted when they are added.
    csrf.init_app(app)
    audit.install()
    queue.install()

    with app.app_context():
        appbuilder = AppBuilder(security_manager_class=HoutaiSecurityManager,
                                indexview=DashboardIndexView)
        appbuilder.init_app(app, db.session)
        from views import register
        from views.health import health
        from views.payment import sandbox_pages

        register(appbuilder)
    app.register_blueprint(health)
    app.register_blueprint(sandbox_pages)
    errors.register(app)
    cli.register(app)
    _drain_inprocess_jobs_after_requests(app)
    return app


def _drain_inprocess_jobs_after_requests(app: Flask) -> None:
    """In-process mode: run the jobs a request's commits left, before answering."""
    from app.extensions import db
    from app.queue import run_inprocess_jobs

    @app.after_request
    def run_jobs(response):
        run_inprocess_jobs(db.session)
        return response
