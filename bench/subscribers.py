"""Bench-only subscribers of the event bus and the tiny tables they write.

Importing this module registers the subscribers (in the publishing process, so that
`publish()` writes one delivery row per subscriber, and in every worker, so that
`deliver_event` finds them). The tables live only in the bench database and are created
with SQLAlchemy Core on their own MetaData, never on the application's.

| event | subscribers |
|---|---|
| `bench.one` | `bench.one.ledger`: INSERT one ledger row |
| `bench.three` | `bench.three.ledger`: INSERT one ledger row; `bench.three.stock`: conditional UPDATE of one of 100 counter rows; `bench.three.daily`: INSERT … ON CONFLICT DO UPDATE of a per-day total |
"""
from sqlalchemy import (BigInteger, Column, Date, Integer, MetaData, String, Table, func,
                        insert, select, update)
from sqlalchemy.dialects.postgresql import insert as pg_insert

from app.extensions import db
from services.events import subscribe

ONE = "bench.one"
THREE = "bench.three"
SKUS = 100

metadata = MetaData()

ledger = Table(
    "bench_ledger", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("event_key", String(32), nullable=False),
    Column("subscriber", String(64), nullable=False),
    Column("amount", Integer, nullable=False),
)
stock = Table(
    "bench_stock", metadata,
    Column("sku", Integer, primary_key=True),
    Column("on_hand", Integer, nullable=False),
    Column("reserved", Integer, nullable=False, default=0),
)
daily = Table(
    "bench_daily", metadata,
    Column("day", Date, primary_key=True),
    Column("shop_id", Integer, primary_key=True),
    Column("events", Integer, nullable=False),
    Column("amount", BigInteger, nullable=False),
)


def create_tables(connection) -> None:
    """Create the bench tables and their 100 stock rows (on an open connection)."""
    metadata.drop_all(connection)
    metadata.create_all(connection)
    connection.execute(insert(stock), [{"sku": s, "on_hand": 10**9, "reserved": 0}
                                       for s in range(SKUS)])


def reset_tables(connection) -> None:
    connection.execute(ledger.delete())
    connection.execute(daily.delete())
    connection.execute(update(stock).values(reserved=0))


def counts(connection) -> dict:
    return {
        "ledger": connection.execute(select(func.count()).select_from(ledger)).scalar_one(),
        "reserved": connection.execute(select(func.coalesce(func.sum(stock.c.reserved), 0))
                                       ).scalar_one(),
        "daily_events": connection.execute(select(func.coalesce(func.sum(daily.c.events), 0))
                                           ).scalar_one(),
    }


def _ledger_row(payload: dict, subscriber: str) -> None:
    db.session.execute(insert(ledger).values(event_key=payload["key"], subscriber=subscriber,
                                             amount=payload["amount"]))


@subscribe(ONE, name="bench.one.ledger")
def one_ledger(payload: dict) -> None:
    _ledger_row(payload, "bench.one.ledger")


@subscribe(THREE, name="bench.three.ledger")
def three_ledger(payload: dict) -> None:
    _ledger_row(payload, "bench.three.ledger")


@subscribe(THREE, name="bench.three.stock")
def three_stock(payload: dict) -> None:
    result = db.session.execute(
        update(stock).where(stock.c.sku == payload["sku"],
                            stock.c.on_hand - stock.c.reserved >= 1)
        .values(reserved=stock.c.reserved + 1))
    if result.rowcount != 1:
        raise RuntimeError(f"sku {payload['sku']} out of stock")


@subscribe(THREE, name="bench.three.daily")
def three_daily(payload: dict) -> None:
    statement = pg_insert(daily).values(day=func.current_date(), shop_id=payload["shop_id"],
                                        events=1, amount=payload["amount"])
    db.session.execute(statement.on_conflict_do_update(
        index_elements=[daily.c.day, daily.c.shop_id],
        set_={"events": daily.c.events + 1, "amount": daily.c.amount + statement.excluded.amount}))
