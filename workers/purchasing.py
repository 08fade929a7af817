"""Jobs of the purchasing center: telling a drop-shipping supplier about its notice."""
from app.extensions import db
from services import purchasing
from workers import job


@job("dropship_notify")
def notify_supplier(notice_id: int) -> bool:
    """POST a drop-shipped notice, signed, to its supplier (a repeat sends the same notice
    again: the supplier keys on `notice_no`). Raises on a refused delivery, so RQ retries."""
    sent = purchasing.notify_supplier(notice_id)
    db.session.rollback()
    return sent
