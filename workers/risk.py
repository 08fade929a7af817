"""Jobs of risk control."""
from services import risk
from workers import job


@job("risk_deferred")
def evaluate_deferred(fact_id: int) -> None:
    """Evaluate a fact's deferred rules (idempotent: a fact decided already is left as it
    is)."""
    risk.evaluate_deferred(fact_id)
