"""客服中心 tickets: least-loaded assignment by skill, SLA due times and overdue, the
conversation (internal notes hidden from buyers), merchants on their shop's tickets, tickets
from after-sales requests, and calls with masked numbers."""
import threading
from datetime import timedelta
import pytest

from app.extensions import db
from models.ticket import Agent, CallRecord, Ticket
from services import clock, ticket as tickets
from services.actor import Actor, acting_as
from tests.conftest import requires_postgres
from tests.factories import _agent_user, make_order, paid_order, ticket_queue


@pytest.fixture(autouse=True)
def inprocess(app, monkeypatch):
    monkeypatch.setitem(app.config, "REDIS_URL", None)


def agent(*skills, available=True) -> Agent:
    made = Agent(user_id=_agent_user().id, skills=list(skills), available=available)
    db.session.add(made)
    db.session.commit()
    return made


def open_one(subject="Help", queue=None, **extra):
    with acting_as(Actor.system("test")):
        made = tickets.open_ticket((queue or ticket_queue()).id, subject, **extra)
        db.session.commit()
    return made


def test_tickets_go_to_the_least_loaded_available_agent_with_the_skill(app, shops):
    first, second = agent("general"), agent("general")
    agent("after_sale")                       # another skill
    agent("general", available=False)         # away
    assigned = [open_one(f"T{n}").assignee_id for n in range(4)]
    assert assigned == [first.id, second.id, first.id, second.id]
    with acting_as(Actor.system("test")):
        tickets.resolve(Ticket.query.filter_by(assignee_id=first.id).first().id)
        db.session.commit()
    assert open_one("T5").assignee_id == first.id
    assert open_one("T6", queue=ticket_queue("vip")).assignee_id is None   # nobody has it


def test_sla_due_times_and_overdue(app, api, shops, users):
    agent("general")
    clock.set_now(clock.now())
    made = open_one()
    assert made.response_due_at == clock.now() + timedelta(minutes=30)
    assert made.resolve_due_at == clock.now() + timedelta(minutes=240)
    assert not tickets.is_overdue(made)
    clock.set_now(clock.now() + timedelta(minutes=31))
    assert tickets.is_overdue(made)                         # no first response in time
    answer = api("CustomerService").post(f"/api/v1/ticket/{made.id}/reply",
                                         json={"body": "Looking into it"})
    assert answer.json["result"]["overdue"] is False and answer.json["result"]["status"] == \
        "pending"
    clock.set_now(clock.now() + timedelta(hours=4))
    assert api("CustomerService").get(f"/api/v1/ticket/{made.id}").json["result"]["overdue"]
    from tests.conftest import BrowserClient

    screen = BrowserClient(app, users["CustomerService"].username).get("/ticketview/list/")
    assert "label-danger" in screen.get_data(as_text=True)


def test_the_buyer_talks_agents_answer_and_notes_stay_internal(app, api, shops, users):
    agent("general")
    order_ = make_order(shops["A"])
    opened = api("Storefront").post("/api/v1/ticket/", json={
        "queue_id": ticket_queue().id, "subject": "Wrong size", "message": "I got an M.",
        "source": "chat", "order_id": order_.id})
    assert opened.status_code == 201, opened.json
    pk = opened.json["id"]
    assert opened.json["result"]["shop_id"] == shops["A"].id
    cs = api("CustomerService")
    cs.post(f"/api/v1/ticket/{pk}/reply", json={"body": "Buyer sounds upset", "internal": True})
    cs.post(f"/api/v1/ticket/{pk}/reply", json={"body": "We will send an L."})
    buyer_view = api("Storefront").get(f"/api/v1/ticket/{pk}").json["result"]["messages"]
    assert [m["body"] for m in buyer_view] == ["I got an M.", "We will send an L."]
    assert len(cs.get(f"/api/v1/ticket/{pk}").json["result"]["messages"]) == 3
    assert api("Storefront").post(f"/api/v1/ticket/{pk}/reply", json={
        "body": "x", "internal": True}).status_code == 422
    merchant = api("merchant_a")
    assert merchant.post(f"/api/v1/ticket/{pk}/reply",
                         json={"body": "Shipped the L today."}).status_code == 200
    assert api("merchant_b").get(f"/api/v1/ticket/{pk}").status_code == 404
    assert api("merchant_b").post(f"/api/v1/ticket/{pk}/reply",
                                  json={"body": "hi"}).status_code == 404
    assert merchant.post(f"/api/v1/ticket/{pk}/assign", json={}).status_code == 403
    kinds = [m["author_kind"] for m in cs.get(f"/api/v1/ticket/{pk}").json["result"]["messages"]]
    assert kinds == ["buyer", "agent", "agent", "merchant"]
    assert merchant.post(f"/api/v1/ticket/{pk}/resolve", json={}).json["result"]["status"] == \
        "resolved"


def test_an_after_sales_request_opens_a_ticket_in_its_queue(app, api, shops, users):
    queue = ticket_queue("after_sale")
    handler = agent("after_sale")
    line = paid_order(shops["A"]).lines[0]
    api("Storefront").post("/api/v1/after_sale/", json={
        "order_line_id": line.id, "kind": "refund_only", "quantity": 1, "amount": "10.00",
        "reason": "Changed my mind"})
    made = Ticket.query.one()
    assert (made.source, made.queue_id, made.shop_id, made.assignee_id) == \
        ("after_sale", queue.id, shops["A"].id, handler.id)
    assert made.after_sale_id is not None and "Changed my mind" in made.subject


def test_calls_keep_a_masked_number_a_duration_and_a_recording(app, api, shops, users):
    order_ = make_order(shops["A"])
    made = open_one(order_id=order_.id)
    clock.set_now(clock.now())
    placed = api("CustomerService").post(f"/api/v1/ticket/{made.id}/call", json={})
    assert placed.status_code == 201
    assert placed.json["result"]["masked_number"] == "138****5678"
    clock.set_now(clock.now() + timedelta(seconds=95))
    ended = api("CustomerService").post(
        f"/api/v1/call_record/{placed.json['result']['id']}/hang-up", json={})
    assert ended.json["result"]["duration_seconds"] == 95
    assert ended.json["result"]["recording_url"].endswith(placed.json["result"]["call_id"])
    assert "13812345678" not in str(CallRecord.query.one().__dict__)
    assert api("CustomerService").post(
        f"/api/v1/call_record/{placed.json['result']['id']}/hang-up", json={}).status_code == 409


def test_bad_tickets_are_refused(app, api, shops, users):
    storefront = api("Storefront")
    assert storefront.post("/api/v1/ticket/", json={"queue_id": 999, "subject": "x"}
                           ).status_code == 422
    assert storefront.post("/api/v1/ticket/", json={"queue_id": ticket_queue().id,
                                                    "subject": ""}).status_code == 422
    assert storefront.post("/api/v1/ticket/", json={"queue_id": ticket_queue().id,
                                                    "subject": "x", "priority": "asap"}
                           ).status_code == 422
    assert Ticket.query.count() == 0


def test_concurrent_tickets_are_spread_over_the_agents(app, shops):
    requires_postgres(app)
    agents = [agent("general") for _ in range(2)]
    queue_id = ticket_queue().id
    barrier = threading.Barrier(10)

    def open_concurrently(n):
        with app.app_context(), acting_as(Actor.system(f"client-{n}")):
            barrier.wait(timeout=10)
            tickets.open_ticket(queue_id, f"Ticket {n}")
            db.session.commit()
            db.session.remove()

    threads = [threading.Thread(target=open_concurrently, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    load = sorted(Ticket.query.filter_by(assignee_id=a.id).count() for a in agents)
    assert load == [5, 5]


def test_control_unlocked_assignment_piles_on_one_agent(app, shops, monkeypatch):
    """Counting load without locking the agents lets concurrent tickets see the same least
    loaded agent: the spread check above would catch it."""
    requires_postgres(app)
    agents = [agent("general") for _ in range(2)]
    queue_id = ticket_queue().id
    both_counted = threading.Barrier(2)

    def naive_assign(ticket):
        from sqlalchemy import func, select

        load = dict(db.session.execute(select(Ticket.assignee_id, func.count()).where(
            Ticket.status.in_(tickets.OPEN), Ticket.id != ticket.id)
            .group_by(Ticket.assignee_id)).all())
        both_counted.wait(timeout=10)
        ticket.assignee_id = min(agents, key=lambda a: (load.get(a.id, 0), a.id)).id

    monkeypatch.setattr(tickets, "assign", naive_assign)

    def open_concurrently(n):
        with app.app_context(), acting_as(Actor.system(f"client-{n}")):
            tickets.open_ticket(queue_id, f"Ticket {n}")
            db.session.commit()
            db.session.remove()

    threads = [threading.Thread(target=open_concurrently, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(Ticket.query.filter_by(assignee_id=a.id).count() for a in agents) == [0, 2]


def test_agents_and_the_shops_merchants_answer_from_the_console(app, api, browser, shops,
                                                                users):
    from models.ticket import TicketMessage

    made = open_one(order_id=make_order(shops["A"]).id, message="Where is it?")
    page = f"/ticketview/conversation/{made.ticket_no}"
    agent_screen = browser("CustomerService")
    assert "Where is it?" in agent_screen.get(page).get_data(as_text=True)
    agent_screen.post_form(page, {"body": "Checking with the warehouse", "internal": "y"},
                           token_from=page)
    merchant = browser("merchant_a")
    merchant.post_form(page, {"body": "It left today."}, token_from=page)
    bodies = [(m.author_kind, m.internal, m.body) for m in
              TicketMessage.query.filter_by(ticket_id=made.id).order_by(TicketMessage.id)]
    assert bodies[1:] == [("agent", True, "Checking with the warehouse"),
                          ("merchant", False, "It left today.")]
    assert browser("merchant_b").get(page).status_code == 404
    listing = agent_screen.get("/ticketview/list/").get_data(as_text=True)
    assert page in listing
