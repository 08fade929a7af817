"""Jobs of the event bus."""
from services import events
from workers import job


@job("deliver_event")
def deliver_event(event_id: int) -> None:
    """Run the subscribers of one outbox event that have not yet succeeded (idempotent)."""
    events.deliver(event_id)


@job("noop")
def noop() -> None:
    """A job that does nothing: the per-job cost ceiling for the benchmarks."""
