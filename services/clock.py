"""The one clock of the application: UTC now, settable by tests and by `houtai tick --now`."""
from contextlib import contextmanager
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context

_frozen: datetime | None = None


def now() -> datetime:
    """The current time in UTC (or the time set with `set_now`)."""
    return _frozen if _frozen is not None else datetime.now(timezone.utc)


def set_now(value: datetime | None) -> None:
    """Freeze the clock at `value` (timezone-aware), or unfreeze it with None."""
    global _frozen
    if value is not None and value.tzinfo is None:
        raise ValueError("the clock takes timezone-aware times")
    _frozen = value.astimezone(timezone.utc) if value is not None else None


@contextmanager
def frozen_at(value: datetime):
    """Run a block with the clock at `value`, restoring it afterwards."""
    previous = _frozen
    set_now(value)
    try:
        yield
    finally:
        set_now(previous)


def business_zone() -> ZoneInfo:
    """The zone of the business day (HOUTAI_TIMEZONE, default Asia/Shanghai)."""
    name = current_app.config["HOUTAI_TIMEZONE"] if has_app_context() else "Asia/Shanghai"
    return ZoneInfo(name)


def business_date(moment: datetime | None = None):
    """The business day a moment falls on."""
    return (moment or now()).astimezone(business_zone()).date()


def business_day_bounds(day) -> tuple[datetime, datetime]:
    """The first moment of a business day and of the next one."""
    from datetime import time, timedelta

    start = datetime.combine(day, time.min, tzinfo=business_zone())
    return start, start + timedelta(days=1)


def business_time_text(moment: datetime | None) -> str:
    """A stored UTC time as people read it: business zone, to the second."""
    if moment is None:
        return ""
    return moment.astimezone(business_zone()).strftime("%Y-%m-%d %H:%M:%S")
