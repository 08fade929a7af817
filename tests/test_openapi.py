"""The OpenAPI document: every resource, explicit columns, our error responses, no secrets."""
def openapi(api):
    answer = api("Admin").get("/api/v1/_openapi")
    assert answer.status_code == 200
    return answer.json


def test_document_lists_every_resource(api):
    paths = openapi(api)["paths"]
    for resource in ("shop", "audit_log", "outbox_event", "event_delivery"):
        assert f"/api/v1/{resource}/" in paths
    assert "/api/v1/security/login" in paths


def test_every_operation_lists_the_error_responses(app, api):
    from views.base import HoutaiModelApi

    document = openapi(api)
    ours = [f"/api/v1/{v.resource_name}/" for v in app.appbuilder.baseviews
            if isinstance(v, HoutaiModelApi)] + ["/api/v1/security/"]
    for path, operations in document["paths"].items():
        if not path.startswith(tuple(ours)):
            continue
        for method, operation in operations.items():
            codes = set(operation.get("responses", {}))
            assert {"400", "401", "403", "422"} <= codes, (path, method)
            if method in ("post", "put", "delete"):
                assert {"405", "409", "413"} <= codes, (path, method)
    error = document["components"]["responses"]["Error422"]
    schema = error["content"]["application/json"]["schema"]
    assert schema["required"] == ["message", "errors"]


def test_shop_resource_exposes_code_and_no_secrets(api):
    schemas = openapi(api)["components"]["schemas"]
    assert "code" in schemas["ShopApi.get_list"]["properties"]
    exposed = {name for schema in schemas.values() for name in schema.get("properties", {})}
    assert not exposed & {"password", "secret", "api_key", "token"}


def test_swagger_ui_is_served_from_local_assets(browser):
    page = browser("Admin").get("/swagger/v1")
    assert page.status_code == 200
    assert "swagger" in page.get_data(as_text=True).lower()
    assert "cdn" not in page.get_data(as_text=True).lower()
