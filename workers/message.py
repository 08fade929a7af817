"""Jobs of the integrations center: sending a message through its channel's adapter."""
from services import message
from workers import job


@job("message_send")
def send_message(message_id: int) -> str | None:
    """One attempt at a queued message, if no other sender holds it (a repeat of the job
    does nothing); a failure is recorded and retried by `houtai tick`."""
    return message.send(message_id)
