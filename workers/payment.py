"""Jobs of the payment center: the sandbox gateway's notifications and refunds to gateways."""
from services import payment
from services.gateways import sandbox
from workers import job


@job("sandbox_notify")
def sandbox_notify(tx_id: int) -> None:
    """Send one sandbox notification if still due (idempotent: an acknowledged one is not
    sent again)."""
    sandbox.notify(tx_id)


@job("submit_refund")
def submit_refund(refund_id: int) -> None:
    """Hand one refund to its gateway (idempotent: only a pending refund is sent)."""
    payment.submit_refund(refund_id)
