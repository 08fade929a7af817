"""Helpers for the PostgreSQL race tests: clients in real threads meet at a point of the code
without depending on timing."""
import time

from sqlalchemy import text

from app.extensions import db

MEETING_SECONDS = 30


def met_or_blocked(arrived: list, lock, who) -> None:
    """Wait until the other client is here too, or is waiting for a row lock (so the race is
    real whichever way the database orders them)."""
    with lock:
        arrived.append(who)
    deadline = time.monotonic() + MEETING_SECONDS
    while time.monotonic() < deadline:
        with lock:
            if len(arrived) >= 2:
                return
        with db.engine.connect() as connection:
            if connection.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'")).scalar():
                return
        time.sleep(0.01)
    raise AssertionError("the other client neither arrived nor waited for a lock")
