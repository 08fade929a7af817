"""呼叫中心: the telephony adapter interface and its sandbox. A real carrier's adapter answers the
same two calls; the sandbox "connects" every call and measures it until hang-up.

    place_call(number, agent) → PlacedCall(call_id, masked_number)
    hang_up(call_id, started_at) → EndedCall(status, duration_seconds, recording_url)
"""
import secrets
from dataclasses import dataclass
from datetime import datetime

from flask import current_app

from services.clock import now
from services.member import mask_phone


@dataclass(frozen=True)
class PlacedCall:
    call_id: str
    masked_number: str


@dataclass(frozen=True)
class EndedCall:
    status: str
    duration_seconds: int
    recording_url: str | None


class SandboxTelephony:
    """Every call is answered; it lasts from placing to hang-up; its recording is a URL of
    this application (a sandbox has no audio)."""

    def place_call(self, number: str, agent: str) -> PlacedCall:
        return PlacedCall(f"CALL{secrets.token_hex(8).upper()}", mask_phone(number) or "***")

    def hang_up(self, call_id: str, started_at: datetime) -> EndedCall:
        seconds = max(int((now() - started_at).total_seconds()), 0)
        base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
        return EndedCall("completed", seconds, f"{base}/sandbox/recordings/{call_id}")


def adapter():
    """The adapter in use (tests may set `app.extensions["houtai_telephony"]`)."""
    return current_app.extensions.get("houtai_telephony") or SandboxTelephony()
