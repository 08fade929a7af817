"""Races on the product center, on PostgreSQL with real threads: the SKU grid and prices."""
import threading
from contextlib import contextmanager
from decimal import Decimal

import pytest
from sqlalchemy import event

from app.extensions import db
from models.product import PriceChange, Sku
from services import product
from services.actor import Actor, acting_as
from tests.conftest import requires_postgres
from tests.factories import catalog, make_spu


@contextmanager
def recorded_statements():
    """The SQL statements sent while the block runs, in order."""
    statements = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(" ".join(statement.split()).upper())

    engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def locked_before_write(statements, locked_table, written_table) -> bool:
    """A `SELECT ... FROM <locked_table> ... FOR UPDATE` comes before the first write."""
    writes = [i for i, s in enumerate(statements)
              if s.startswith((f"INSERT INTO {written_table.upper()}",
                               f"UPDATE {written_table.upper()}"))]
    locks = [i for i, s in enumerate(statements)
             if s.startswith("SELECT") and f"FROM {locked_table.upper()}" in s and "FOR UPDATE" in s]
    return bool(writes) and bool(locks) and locks[0] < writes[0]


def grid(parts):
    attributes = parts["attributes"]
    return {str(attributes["Colour"].id): ["red", "blue"], str(attributes["Size"].id): ["S", "M"]}


def test_grid_generation_locks_the_spu_before_writing(app, shops):
    requires_postgres(app)
    parts = catalog()
    spu = make_spu(shops["A"])
    with acting_as(Actor.system("test")), recorded_statements() as statements:
        product.generate_skus(spu.id, grid(parts), Decimal("10.00"))
        db.session.commit()
    assert locked_before_write(statements, "spu", "sku")


def test_control_the_lock_check_catches_a_missing_lock(app, shops, monkeypatch):
    requires_postgres(app)
    parts = catalog()
    spu = make_spu(shops["A"])

    def without_lock(spu_id):
        return db.session.get(product.Spu, spu_id)

    monkeypatch.setattr(product, "spu_for_update", without_lock)
    with acting_as(Actor.system("test")), recorded_statements() as statements:
        product.generate_skus(spu.id, grid(parts), Decimal("10.00"))
        db.session.commit()
    assert not locked_before_write(statements, "spu", "sku")


def run_in_threads(app, count, work):
    """Run `work(i)` in `count` threads at once, each with its own context and session."""
    barrier = threading.Barrier(count)
    errors = []

    def runner(i):
        with app.app_context():
            with acting_as(Actor.system(f"thread-{i}")):
                barrier.wait()
                try:
                    work(i)
                    db.session.commit()
                except Exception as exc:  # noqa: BLE001 - collected and asserted below
                    db.session.rollback()
                    errors.append(exc)
                finally:
                    db.session.remove()

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_eight_concurrent_grid_generations_make_each_combination_once(app, shops):
    requires_postgres(app)
    parts = catalog()
    spu_id = make_spu(shops["A"]).id  # plain ids: threads must not touch this session
    choices = grid(parts)
    errors = run_in_threads(app, 8, lambda i: product.generate_skus(spu_id, choices))
    assert errors == []
    db.session.expire_all()
    assert Sku.query.filter_by(spu_id=spu_id).count() == 4


def test_concurrent_bulk_price_changes_keep_a_consistent_history(app, shops):
    """Eight bulk edits over the same grid, in different orders: no deadlock, and the history
    of each SKU is a chain (each change starts from the price the previous one left)."""
    requires_postgres(app)
    spu = make_spu(shops["A"], with_skus=True)
    ids = [sku.id for sku in spu.skus]

    def bulk(i):
        order = ids if i % 2 else list(reversed(ids))
        product.change_prices(order, Decimal(100 + i), f"run {i}")

    assert run_in_threads(app, 8, bulk) == []
    db.session.expire_all()
    for sku_id in ids:
        chain = PriceChange.query.filter_by(sku_id=sku_id).order_by(PriceChange.id).all()
        assert all(a.new_price == b.old_price for a, b in zip(chain, chain[1:]))
        assert db.session.get(Sku, sku_id).price == chain[-1].new_price


def test_bulk_price_change_locks_skus_in_id_order(app, shops):
    requires_postgres(app)
    spu = make_spu(shops["A"], with_skus=True)
    ids = [sku.id for sku in spu.skus]
    with acting_as(Actor.system("test")), recorded_statements() as statements:
        product.change_prices(list(reversed(ids)), Decimal("95.00"), "lock order")
        db.session.commit()
    lock = next(s for s in statements if "FROM SKU" in s and "FOR UPDATE" in s)
    assert "ORDER BY SKU.ID" in lock
    assert locked_before_write(statements, "sku", "sku")


@pytest.fixture(autouse=True)
def _no_leftover_sessions(app):
    yield
    db.session.remove()
