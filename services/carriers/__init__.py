"""The carrier tracking interface: every tracking service (the built-in sandbox carrier, a
Kuaidi100-style aggregator) answers the same calls, so the tracking center never knows which
one it talks to. A Carrier row names its adapter (`Carrier.adapter`).

    parse_push(carrier, body, headers) → Push: the push verified (BadSignature, 401, if its
                                          signature is missing or wrong) and its scans
    acknowledge()                       → the body the service expects for a handled push
    polls()                             → whether `poll` can be asked (configured)
    poll(carrier, tracking_no)          → every scan the service knows of one shipment
    subscribe(carrier, tracking_no)     → register the shipment for pushes (idempotent)

A scan's `status` is one of models.logistics.TRACKING_STATUSES; its `external_id` identifies
it at the service (or is a digest of what it says), so the same scan twice is kept once.
"""
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from flask import current_app

from models.logistics import TRACKING_STATUSES
from services.errors import NotFoundError
from services.gateways import BadSignature  # noqa: F401  (the same 401 refusal)


@dataclass(frozen=True)
class Scan:
    tracking_no: str
    external_id: str
    status: str
    description: str | None
    location: str | None
    occurred_at: datetime

    def __post_init__(self):
        if self.status not in TRACKING_STATUSES:
            raise ValueError(f"unknown tracking status {self.status!r}")


@dataclass(frozen=True)
class Push:
    """A verified push: its replay key (`nonce`), when the service says it sent it (None when
    its format carries no time), and its scans."""

    nonce: str
    sent_at: datetime | None
    scans: list[Scan] = field(default_factory=list)


class CarrierAdapter(Protocol):
    name: str

    def parse_push(self, carrier, body: bytes, headers) -> Push: ...

    def acknowledge(self) -> dict: ...

    def polls(self) -> bool: ...

    def poll(self, carrier, tracking_no: str) -> list[Scan]: ...

    def subscribe(self, carrier, tracking_no: str) -> None: ...


_ADAPTERS: dict[str, CarrierAdapter] = {}


def register(adapter: CarrierAdapter) -> CarrierAdapter:
    """Make an adapter available under its name (each module registers itself)."""
    _ADAPTERS[adapter.name] = adapter
    return adapter


def names() -> list[str]:
    return sorted(_ADAPTERS)


def polling_names() -> list[str]:
    """The adapters that can be polled now (configured)."""
    return [name for name in names() if _ADAPTERS[name].polls()]


def adapter_for(carrier) -> CarrierAdapter:
    """The adapter a carrier names: 404 naming `adapter` when none is registered."""
    found = _ADAPTERS.get(getattr(carrier, "adapter", None) or "")
    if found is None:
        raise NotFoundError("The carrier has no tracking adapter",
                            {"adapter": [f"One of: {', '.join(names())}."]})
    return found


# -- transports: how an outside service and this application reach each other ----------------

class HttpTransport:
    """A POST over the network (production shape)."""

    def post(self, url: str, body: bytes, headers: dict) -> tuple[int, bytes]:
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        except (urllib.error.URLError, OSError) as error:
            return 0, str(error).encode()


class WsgiTransport:
    """A POST to this application's own path through its WSGI stack (no socket): tests and
    the one-process embedded mode. The URL's path is what counts."""

    def post(self, url: str, body: bytes, headers: dict) -> tuple[int, bytes]:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        response = current_app.test_client().post(path, data=body, headers=headers)
        return response.status_code, response.get_data()


def callback_transport(extension_key: str):
    """How a sandbox service calls this application back: a transport set in
    `app.extensions[extension_key]` (tests inject failing ones), else SANDBOX_NOTIFY_TRANSPORT
    (`http` to PUBLIC_BASE_URL, or `wsgi`)."""
    injected = current_app.extensions.get(extension_key)
    if injected is not None:
        return injected
    if current_app.config.get("SANDBOX_NOTIFY_TRANSPORT") == "wsgi":
        return WsgiTransport()
    return HttpTransport()


def public_url(path: str) -> str:
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/") + path


def push_path(carrier_code: str) -> str:
    return f"/api/v1/carrier_push/{carrier_code}"


from services.carriers import sandbox  # noqa: E402,F401  (registers the sandbox adapter)
from services.carriers import kuaidi100  # noqa: E402,F401  (registers the kuaidi100 adapter)
