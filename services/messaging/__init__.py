"""Message channels: each sends one rendered message through an adapter.

An adapter has `send(recipient, body, provider_template) -> provider reference` and raises
`SendFailed` (or any error) when the message was not accepted. SMS goes through the adapter
named by the SMS_ADAPTER setting (only the sandbox ships with Houtai); 站内信 (inbox) messages
are the `message` rows themselves, read by the storefront.
"""
from flask import current_app


class SendFailed(RuntimeError):
    """The provider did not accept the message."""


def sms_adapter():
    from services.messaging import sandbox

    adapters = {"sandbox": sandbox.SandboxSms}
    name = current_app.config.get("SMS_ADAPTER", "sandbox")
    if name not in adapters:
        raise SendFailed(f"Unknown SMS_ADAPTER {name!r}")
    return adapters[name]()


def adapter(channel: str):
    """The adapter of a channel ("sms" or "inbox")."""
    if channel == "inbox":
        from services.messaging.inbox import Inbox

        return Inbox()
    if channel == "sms":
        return sms_adapter()
    raise SendFailed(f"Unknown channel {channel!r}")
