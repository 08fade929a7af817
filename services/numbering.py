"""Business numbers (trades, orders, payments, refunds, after-sales, tickets, invoices, journal
entries, statements): readable and unique."""
import secrets

from services.clock import now


def number(prefix: str) -> str:
    """The prefix, the moment to the microsecond and 6 random digits: two numbers collide only
    if made in the same microsecond drawing the same digits. At most 26 characters after the
    prefix."""
    return f"{prefix}{now().strftime('%Y%m%d%H%M%S%f')}{secrets.randbelow(10**6):06d}"
