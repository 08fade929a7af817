"""Jobs of the integrations center: sending a webhook delivery."""
from services import webhook
from workers import job


@job("webhook_send")
def send_delivery(delivery_id: int) -> str | None:
    """One attempt at a delivery, if it is due and no other sender holds it (a repeat of the
    job does nothing). Never raises for the receiver's answer: retries are the delivery's
    own (`houtai tick`), not RQ's."""
    return webhook.send(delivery_id)
