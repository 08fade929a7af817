"""Jobs of the customs center: the sandbox customs' decision callbacks."""
from services.customs_adapters import sandbox
from workers import job


@job("customs_sandbox_decide")
def sandbox_decide(declaration_id: int, customs_no: str) -> None:
    """The sandbox customs decides one submission and calls back (idempotent: a submission
    already decided, withdrawn or superseded is left alone)."""
    sandbox.decide(declaration_id, customs_no)
