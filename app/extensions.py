"""Extensions created unbound and bound to an application in `create_app()`."""
from flask_appbuilder import Model
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

# One MetaData for FAB's ab_* tables and ours, so foreign keys to ab_user work.
db = SQLAlchemy(model_class=Model)
migrate = Migrate()
csrf = CSRFProtect()


def _sqlite_foreign_keys_on(dbapi_connection, connection_record) -> None:
    import sqlite3

    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def enforce_sqlite_foreign_keys() -> None:
    """SQLite ignores foreign keys unless asked per connection; ask, so the embedded default
    refuses what PostgreSQL refuses."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not event.contains(Engine, "connect", _sqlite_foreign_keys_on):
        event.listen(Engine, "connect", _sqlite_foreign_keys_on)
