"""站内信: the message row is the message; the storefront reads a member's inbox through
/api/v1/member_message/. Nothing leaves the platform, so sending only stamps it."""
from services.messaging import SendFailed


class Inbox:
    name = "inbox"

    def send(self, recipient: str, body: str, provider_template: str | None) -> str:
        if not recipient:
            raise SendFailed("No member to deliver to")
        return "inbox"
