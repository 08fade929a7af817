"""Jobs of the marketing center."""
from services import marketing
from workers import job


@job("issue_coupons")
def issue_coupons(batch_id: int) -> None:
    """Issue one batch of coupons (idempotent: a member gets one per batch, however often it
    runs)."""
    marketing.run_issue(batch_id)
