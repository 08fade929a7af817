"""The sandbox SMS provider: accepts a message without sending it anywhere (the `message`
row keeps what was "sent": recipient, body, provider reference, time). A recipient matching
SANDBOX_SMS_FAIL_PATTERN (a regular expression; unset: none) is refused, so failures and
retries can be tried out."""
import re
import secrets

from flask import current_app

from services.messaging import SendFailed

MOBILE = re.compile(r"1[3-9][0-9]{9}")


class SandboxSms:
    name = "sandbox"

    def send(self, recipient: str, body: str, provider_template: str | None) -> str:
        if not isinstance(recipient, str) or not MOBILE.fullmatch(recipient):
            raise SendFailed(f"Not a mainland mobile number: {recipient!r}")
        pattern = current_app.config.get("SANDBOX_SMS_FAIL_PATTERN")
        if pattern and re.search(pattern, recipient):
            raise SendFailed("The sandbox refused the recipient (SANDBOX_SMS_FAIL_PATTERN)")
        if not body:
            raise SendFailed("Empty message")
        return f"sbx-{secrets.token_hex(8)}"
