"""The customs interface (跨境报关): every customs service (the built-in sandbox, a real
single-window adapter) answers the same calls, so the customs center never knows which one
it talks to. CUSTOMS_ADAPTER names the one in use.

    submit(declaration)          → the customs' number of the submission (it decides later)
    decision_notice(body, headers) → a verified decision callback (BadSignature, 401, if not)
    query(customs_no)            → the decision on one submission (status None: pending)
"""
from dataclasses import dataclass
from typing import Protocol

from flask import current_app

from services.errors import NotFoundError
from services.gateways import BadSignature  # noqa: F401  (the same 401 refusal)

CLEARED, HELD = "cleared", "held"


@dataclass(frozen=True)
class Decision:
    customs_no: str
    status: str | None          # cleared | held | None (not decided yet)
    message: str | None = None


class CustomsAdapter(Protocol):
    name: str

    def submit(self, declaration) -> str: ...

    def decision_notice(self, body: bytes, headers) -> Decision: ...

    def query(self, customs_no: str) -> Decision: ...


_ADAPTERS: dict[str, CustomsAdapter] = {}


def register(adapter: CustomsAdapter) -> CustomsAdapter:
    _ADAPTERS[adapter.name] = adapter
    return adapter


def in_use() -> CustomsAdapter:
    """The adapter CUSTOMS_ADAPTER names."""
    return _ADAPTERS[current_app.config.get("CUSTOMS_ADAPTER") or "sandbox"]


def calling_back(name: str) -> CustomsAdapter:
    """The adapter a callback claims to come from: 404 when there is none."""
    if name not in _ADAPTERS:
        raise NotFoundError("Unknown customs adapter", {"adapter": ["No such adapter."]})
    return _ADAPTERS[name]


from services.customs_adapters import sandbox  # noqa: E402,F401  (registers the sandbox)
