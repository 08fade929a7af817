"""Jobs of the exports: build one export's file."""
from services import export
from workers import job


@job("export_build")
def build_export(export_id: int) -> None:
    """Build a queued export (idempotent: a job already claimed, built or failed is left
    alone)."""
    export.build(export_id)
