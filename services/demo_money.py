"""Demo data of the money and service centers (once): ticket queues and an agent, a trade paid
through the sandbox gateway, an after-sales refund of part of it (with its ticket), an invoice,
and today's reconciliation. Everything goes through the services, as in production."""
from decimal import ROUND_DOWN, Decimal

from flask import current_app

from app.extensions import db
from models.member import Member
from models.security import UserAccount
from models.ticket import Agent, TicketQueue
from services import after_sale, finance, invoice, order, payment
from services.actor import Actor, acting_as
from services.clock import business_date
from services.gateways import sandbox

QUEUES = [("After-sales", "after_sale", 30, 1440), ("General questions", "general", 60, 2880)]


def load_money() -> bool:
    """Once: returns False when the demo already has its ticket queues."""
    if TicketQueue.query.first() is not None:
        return False
    with acting_as(Actor.system("demo")):
        _queues_and_agent()
        trade_id = _paid_through_sandbox()
        _partial_refund(trade_id)
        _invoice(trade_id)
        finance.reconcile(business_date())
        db.session.commit()
    return True


def _queues_and_agent() -> None:
    for name, skill, response, resolve in QUEUES:
        db.session.add(TicketQueue(name=name, skill=skill, response_minutes=response,
                                   resolve_minutes=resolve, enabled=True))
    agent_user = UserAccount.query.filter_by(username="cs").first()
    if agent_user is not None:
        db.session.add(Agent(user_id=agent_user.id, skills=["after_sale", "general"],
                             available=True))
    db.session.commit()


def _paid_through_sandbox() -> int:
    """A trade of the last demo member, paid on the sandbox's page; its notification is
    delivered through the application itself (no server runs during `houtai demo`)."""
    from services.demo_product import _demo_skus

    member = Member.query.order_by(Member.id.desc()).first()
    sku = _demo_skus()[4]
    placed = order.place({"member_id": member.id, "address_id": member.addresses[0].id,
                          "lines": [{"sku_id": sku.id, "quantity": 2}]}, "demo-sandbox")
    db.session.commit()
    trade = db.session.get(order.Trade, placed.trade_id)
    attempt, _ = payment.start_payment(trade, "sandbox")
    db.session.commit()
    tx = sandbox.settle(attempt.out_trade_no, paid=True, payer_account="demo-buyer@example.com")
    db.session.commit()
    _deliver_notifications_in_process(tx.id)
    return placed.trade_id


def _deliver_notifications_in_process(tx_id: int) -> None:
    from app.queue import run_inprocess_jobs

    extensions = current_app.extensions
    previous = extensions.get("houtai_sandbox_transport")
    extensions["houtai_sandbox_transport"] = sandbox.WsgiTransport()
    try:
        sandbox.notify(tx_id)
        run_inprocess_jobs(db.session)
    finally:
        if previous is None:
            extensions.pop("houtai_sandbox_transport", None)
        else:
            extensions["houtai_sandbox_transport"] = previous


def _partial_refund(trade_id: int) -> None:
    """The buyer asks for part of the money back (one unit arrived damaged); approved and
    refunded through the sandbox."""
    from models.payment import SandboxTransaction

    db.session.expire_all()
    line = db.session.get(order.Trade, trade_id).orders[0].lines[0]
    half = (line.payable / 2).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
    request = after_sale.request(line.id, "refund_only", 1, half,
                                 "One piece arrived damaged")
    db.session.commit()
    after_sale.approve(request.id)
    after_sale.refund(request.id)
    db.session.commit()
    from app.queue import run_inprocess_jobs

    run_inprocess_jobs(db.session)   # the refund goes to the sandbox
    refund_tx = SandboxTransaction.query.filter_by(kind="refund").order_by(
        SandboxTransaction.id.desc()).first()
    if refund_tx is not None:
        _deliver_notifications_in_process(refund_tx.id)


def _invoice(trade_id: int) -> None:
    db.session.expire_all()
    target = db.session.get(order.Trade, trade_id).orders[0]
    made = invoice.request(target.id, "personal", "周小红")
    db.session.commit()
    invoice.issue(made.id)
    db.session.commit()


