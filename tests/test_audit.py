"""The audit log: every write by a person or a job, in the same transaction, read-only."""
import pytest
from flask_appbuilder import ModelRestApi

from app.extensions import db
from models.audit import AuditLog
from services import audit
from services.actor import Actor, acting_as
from tests.factories import api_body


def entries(model, pk):
    db.session.expire_all()
    return AuditLog.query.filter_by(model=model, record_pk=str(pk)).order_by(AuditLog.id).all()


def writable_apis(appbuilder):
    return [v for v in appbuilder.baseviews if isinstance(v, ModelRestApi)
            and "post" in (v.include_route_methods or {"post"})
            and v.datamodel.obj.__tablename__ not in audit.NOT_AUDITED_TABLES]


def audit_gaps(app, client, shop, client_name="admin"):
    """Every writable REST resource: POST, PUT and DELETE each leave their audit row."""
    gaps = []
    for view in writable_apis(app.appbuilder):
        model = view.datamodel.obj
        base = f"/api/v1/{view.resource_name}"
        created = client.post(f"{base}/", json=api_body(model, shop))
        # 202: accepted for background work (an export), the row is made all the same
        if created.status_code not in (201, 202):
            gaps.append(f"{base} POST answered {created.status_code}: {created.json}")
            continue
        pk = created.json["id"]
        routes = view.include_route_methods or {"post", "put", "delete"}
        expected = ["insert"]
        field = next((c for c in ("name", "title", "code", "recipient", "detail")
                      if c in view.edit_columns), None)
        if "put" in routes and field is not None:
            client.put(f"{base}/{pk}", json={field: "audited"})
            expected.append("update")
        if "delete" in routes:
            client.delete(f"{base}/{pk}")
            expected.append("delete")
        actions = [(e.action, e.actor) for e in entries(model.__name__, pk)]
        for action in expected:
            if (action, client_name) not in actions:
                gaps.append(f"{base}: no audit row for {action} (found {actions})")
    return gaps


def test_every_rest_write_is_audited(app, api, shops):
    assert audit_gaps(app, api("Admin"), shops["A"]) == []


def test_control_audit_walk_catches_an_unaudited_write(app, api, shops):
    """Without the session hook the walk reports every write: it can fail."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    event.remove(Session, "after_flush", audit._after_flush)
    try:
        gaps = audit_gaps(app, api("Admin"), shops["A"])
    finally:
        audit.install()
    assert any("no audit row for insert" in gap for gap in gaps)


def test_update_records_old_and_new_values_and_who(api, shops):
    api("Operations").put(f"/api/v1/shop/{shops['B'].id}", json={"name": "Shop B renamed"})
    entry = entries("Shop", shops["B"].id)[-1]
    assert entry.action == "update"
    assert entry.actor == "operations"
    assert entry.changes == {"name": ["Shop B", "Shop B renamed"]}
    assert entry.shop_id == shops["B"].id


def test_screen_edit_is_audited(browser, shops):
    admin = browser("Admin")
    answer = admin.post_form(f"/shopview/edit/{shops['A'].id}", {
        "code": "A", "name": "Shop A via screen", "status": "open", "commission_rate": "0.0500"},
        token_from=f"/shopview/edit/{shops['A'].id}")
    assert answer.status_code == 302
    entry = entries("Shop", shops["A"].id)[-1]
    assert entry.actor == "admin"
    assert entry.changes["name"] == ["Shop A", "Shop A via screen"]


def test_job_writes_name_the_job(shops):
    with acting_as(Actor.job("settle")):
        shops["A"].settlement_account = "6222 0000"
        db.session.commit()
    entry = entries("Shop", shops["A"].id)[-1]
    assert entry.actor == "job:settle"
    assert entry.changes == {"settlement_account": [None, "6222 0000"]}


def test_audit_row_is_rolled_back_with_its_write(shops):
    shops["A"].name = "never stored"
    db.session.flush()
    db.session.rollback()
    assert [e.action for e in entries("Shop", shops["A"].id)] == ["insert"]


def test_reason_is_kept(shops):
    audit.set_reason(db.session, "merchant asked to close")
    shops["A"].status = "closed"
    db.session.commit()
    assert entries("Shop", shops["A"].id)[-1].reason == "merchant asked to close"


def test_password_changes_are_recorded_without_the_hash(users):
    from services.security import upsert_user

    upsert_user("merchant_a", "Another-pass-456", "Merchant", "A")
    entry = entries("UserAccount", users["merchant_a"].id)[-1]
    assert entry.changes["password"][1] == audit.HIDDEN
    assert "pbkdf2" not in str([e.changes for e in AuditLog.query.all()])


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_audit_log_is_read_only(api, shops, method):
    admin = api("Admin")
    pk = AuditLog.query.first().id
    url = "/api/v1/audit_log/" if method == "post" else f"/api/v1/audit_log/{pk}"
    answer = getattr(admin, method)(url, json={"actor": "forged"})
    assert answer.status_code == 405
    assert set(answer.json) == {"message", "errors"}
    assert AuditLog.query.filter_by(actor="forged").count() == 0


def test_audit_list_is_newest_first_and_merchants_see_their_shop_only(api, shops):
    api("Operations").put(f"/api/v1/shop/{shops['A'].id}", json={"name": "A2"})
    api("Operations").put(f"/api/v1/shop/{shops['B'].id}", json={"name": "B2"})
    everything = api("Admin").get("/api/v1/audit_log/").json["result"]
    assert [e["id"] for e in everything] == sorted((e["id"] for e in everything), reverse=True)
    mine = api("merchant_a").get("/api/v1/audit_log/?q=(page_size:100)").json["result"]
    assert mine and {e["shop_id"] for e in mine} == {shops["A"].id}


def test_audit_screens_offer_no_edit_or_delete(browser, shops):
    admin = browser("Admin")
    pk = AuditLog.query.first().id
    assert admin.get(f"/auditlogview/edit/{pk}").status_code == 404
    assert admin.post_form(f"/auditlogview/delete/{pk}", {}).status_code in (404, 405)
    assert AuditLog.query.get(pk) is not None


def test_bulk_action_by_a_person_is_audited(app, browser, shops, monkeypatch):
    from models.events import EventDelivery, OutboxEvent
    from services import clock

    monkeypatch.setitem(app.config, "REDIS_URL", None)
    event = OutboxEvent(name="probe.none", payload={}, created_at=clock.now())
    event.deliveries.append(EventDelivery(subscriber="gone.subscriber", status="failed",
                                          attempts=6, next_attempt_at=clock.now()))
    db.session.add(event)
    db.session.commit()
    delivery_id = event.deliveries[0].id
    answer = browser("Operations").post_form("/eventdeliveryview/action_post", {
        "action": "retry", "rowid": [str(delivery_id)]}, token_from="/eventdeliveryview/list/")
    assert answer.status_code == 302
    entry = entries("EventDelivery", delivery_id)[0]
    assert entry.actor == "operations"
    assert entry.changes["status"][0] == "failed"


def test_secret_derived_values_are_recorded_hidden(api, shops):
    """A supplier's key hash (and any *_hash / *_digest column) reaches the audit log as
    hidden: merchants read their shop's entries."""
    from tests.factories import make_supplier

    supplier = make_supplier(shops["A"], status="active", code="AUD")
    db.session.commit()
    answer = api("merchant_a").post(f"/api/v1/supplier/{supplier.id}/key", json={})
    assert answer.status_code == 201, answer.json
    entry = entries("Supplier", supplier.id)[-1]
    assert entry.changes["api_key_hash"][1] == audit.HIDDEN
    assert "v1$" not in str([e.changes for e in AuditLog.query.all()])
    assert audit._shown("buyer_id_digest", "abc", "customs_declaration") == audit.HIDDEN
    assert audit._shown("buyer_name", "王小明", "customs_declaration") == audit.HIDDEN
