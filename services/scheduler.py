"""Scheduled work run by `houtai tick`: each center registers idempotent tasks here."""
from typing import Callable

_tasks: dict[str, Callable[[], int]] = {}


def scheduled(name: str):
    """Register `func() -> int` (how many things it handled) to run at every tick."""

    def register(func):
        _tasks[name] = func
        return func

    return register


def tasks() -> dict[str, Callable[[], int]]:
    return dict(_tasks)


def run_due() -> dict[str, int]:
    """Run every task once, in registration order; each commits its own work."""
    return {name: task() for name, task in _tasks.items()}


@scheduled("events.redeliver")
def _redeliver_events() -> int:
    from services.events import redeliver_due

    return redeliver_due()
