"""`flask --app run houtai ...`: the operators' commands (stable: scripts depend on them)."""
from datetime import datetime

import click
from flask import current_app
from flask.cli import AppGroup

from services.actor import Actor, acting_as

houtai = AppGroup("houtai", help="Houtai operations: init, users, demo data, scheduled work.")


def _finish_jobs():
    from app.extensions import db
    from app.queue import run_inprocess_jobs

    run_inprocess_jobs(db.session)


@houtai.command("init")
def init_command():
    """Migrate the database and sync roles and permissions (idempotent)."""
    from flask_migrate import upgrade

    from app.security import sync_roles

    with acting_as(Actor.system("init")):
        upgrade()
        counts = sync_roles(current_app.appbuilder)
    for role, count in counts.items():
        click.echo(f"role {role}: {count} permissions")


@houtai.command("create-user")
@click.argument("username")
@click.option("--password", required=True)
@click.option("--role", required=True)
@click.option("--shop", "shop_code", default=None, help="Shop code (Merchant users)")
def create_user_command(username, password, role, shop_code):
    """Create a user, or update an existing one's password, role and shop (idempotent)."""
    from services.errors import HoutaiError
    from services.security import upsert_user

    try:
        with acting_as(Actor.system("create-user")):
            user, created = upsert_user(username, password, role, shop_code)
    except HoutaiError as err:
        for field, reasons in err.errors.items():
            click.echo(f"error: {field}: {'; '.join(reasons)}", err=True)
        raise SystemExit(2)
    click.echo(f"{'created' if created else 'updated'} user {user.username} ({role})")


@houtai.command("demo")
def demo_command():
    """Load demo shops and users (idempotent; resets the demo users' password)."""
    from services.demo import load_demo

    with acting_as(Actor.system("demo")):
        result = load_demo()
        _finish_jobs()
    click.echo("Demo logins (password for all: %s):" % result["password"])
    for username, role, shop in result["users"]:
        click.echo(f"  {username:<12} {role}{' of shop ' + shop if shop else ''}")


@houtai.command("tick")
@click.option("--now", "at", default=None, help="Run as if it were this ISO 8601 time (with offset)")
def tick_command(at):
    """Run all due scheduled work once (idempotent)."""
    from services import clock, scheduler

    if at:
        try:
            moment = datetime.fromisoformat(at)
        except ValueError:
            raise click.BadParameter("not an ISO 8601 time", param_hint="--now")
        if moment.tzinfo is None:
            raise click.BadParameter("give the time with its offset, e.g. 2026-11-25T10:00:00+08:00")
        clock.set_now(moment)
    try:
        with acting_as(Actor.system("tick")):
            results = scheduler.run_due()
            _finish_jobs()
    finally:
        if at:
            clock.set_now(None)
    for name, count in results.items():
        click.echo(f"{name}: {count}")


@houtai.command("reconcile")
@click.option("--date", "day", default=None, help="The business day (YYYY-MM-DD); yesterday if left out")
def reconcile_command(day):
    """Reconcile one day: payments and refunds against the gateways, trades against payments."""
    from datetime import date, timedelta

    from app.extensions import db
    from services import finance
    from services.clock import business_date

    try:
        when = date.fromisoformat(day) if day else business_date() - timedelta(days=1)
    except ValueError:
        raise click.BadParameter("not a date (YYYY-MM-DD)", param_hint="--date")
    with acting_as(Actor.system("reconcile")):
        run = finance.reconcile(when)
        db.session.commit()
        _finish_jobs()
        click.echo(f"{run.day.isoformat()}: {run.status} ({run.checked} checked, "
                   f"{run.mismatches} mismatches)")
        for item in run.items:
            if item.resolved_at is None:
                click.echo(f"  {item.kind} {item.reference}: ours {item.ours or '-'}, "
                           f"gateway {item.theirs or '-'}")


def register(app) -> None:
    app.cli.add_command(houtai)
