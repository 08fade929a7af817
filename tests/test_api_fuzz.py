"""API fuzzing from the OpenAPI document: every operation /api/v1/_openapi describes is called
in-process (WSGI) with requests generated from its description (schemathesis: valid and
deliberately invalid parameters and bodies), once as Admin and once as a merchant.

Each answer must be: not a 5xx; a status code the operation documents; the documented content
type; a body matching the documented schema for that status.

Budget: HOUTAI_FUZZ_EXAMPLES examples per operation and role (default 5, as on `.ci/run`'s
PostgreSQL pass; 2 on its SQLite pass). Generation is derandomized (fixed seed), so a
failure reproduces with the same command; HOUTAI_FUZZ_ONLY (a regular expression on the path) narrows the run:

    HOUTAI_FUZZ_ONLY='^/api/v1/spu/' .venv/bin/python -m pytest tests/test_api_fuzz.py

Before fuzzing, the database holds one row of every shop-owned model in shop A
(tests/factories.py ROW_FACTORIES), and a path id is drawn either from those rows' ids or
freely, so reads, updates, actions and deletes reach real records, not only 404s.

Excluded: nothing. Every operation of the document is fuzzed for both roles.
"""
import os
import re
from datetime import timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance,
                                               response_schema_conformance,
                                               status_code_conformance)

EXAMPLES = int(os.environ.get("HOUTAI_FUZZ_EXAMPLES", "5"))
ONLY = os.environ.get("HOUTAI_FUZZ_ONLY", "")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
ROLES = ["Admin", "merchant_a"]
# no shrinking: a failure is reported as found (shrinking can take minutes of the budget)
PHASES = [Phase.explicit, Phase.generate]


def _seed_rows(shops) -> None:
    """One row of each shop-owned model in shop A, made as the product makes them."""
    from tests.factories import ROW_FACTORIES

    for factory in ROW_FACTORIES.values():
        factory(shops["A"])


def _ids_by_resource(app) -> dict[str, list[int]]:
    """{"/api/v1/<resource>/": a few existing ids of its model} for every REST resource."""
    from flask_appbuilder import ModelRestApi
    from sqlalchemy import select

    from app.extensions import db

    found = {}
    for view in app.appbuilder.baseviews:
        if not isinstance(view, ModelRestApi):
            continue
        pk = view.datamodel.get_pk()
        ids = db.session.execute(select(pk).order_by(pk).limit(3)).scalars().all()
        found[f"/api/v1/{view.resource_name}/"] = [int(i) for i in ids]
    db.session.rollback()
    return found


def _long_lived_token(app, user) -> str:
    """An access token like the login's, valid for the whole run however long it takes."""
    from flask_jwt_extended import create_access_token

    with app.app_context():
        return create_access_token(identity=str(user.id), fresh=True,
                                   expires_delta=timedelta(hours=2))


def load_document(app, token):
    """The application's own OpenAPI document, as schemathesis reads it."""
    with app.app_context():
        loaded = schemathesis.openapi.from_wsgi(
            "/api/v1/_openapi", app, headers={"Authorization": f"Bearer {token}"})
    return loaded.include(path_regex=ONLY) if ONLY else loaded


def real_ids_hook(loaded, ids: dict[str, list[int]]) -> None:
    """A path id is drawn from the resource's real rows or freely."""

    @loaded.hook
    def flatmap_path_parameters(context, path_parameters):
        if not path_parameters or "pk" not in path_parameters:
            return st.just(path_parameters)
        prefix = re.sub(r"\{pk\}.*$", "", context.operation.path)
        real = ids.get(prefix, [])
        return st.sampled_from([path_parameters] + [{**path_parameters, "pk": i} for i in real])


def fuzz(app, operation, token) -> str | None:
    """Run one operation's examples; the failure report (with a curl line), or None."""
    strategy = st.one_of(
        operation.as_strategy(generation_mode=mode, hooks=operation.schema.hooks)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE))

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=PHASES)
    @given(strategy)
    def examples(case):
        # Each request in its own application context, as in a real server.
        with app.app_context():
            case.call_and_validate(headers={"Authorization": f"Bearer {token}"},
                                   checks=CHECKS)

    try:
        examples()
    except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - report all, walk on
        return f"{operation.label}: {type(exc).__name__}: {exc}"
    return None


@pytest.mark.parametrize("role", ROLES)
def test_every_operation_answers_as_documented(app, users, shops, role):
    _seed_rows(shops)
    token = _long_lived_token(app, users[role])
    loaded = load_document(app, token)
    real_ids_hook(loaded, _ids_by_resource(app))
    operations = [result.ok() for result in loaded.get_all_operations()]
    assert operations, "the OpenAPI document lists no operation"
    failures = [report for operation in operations
                if (report := fuzz(app, operation, token)) is not None]
    assert not failures, f"{len(failures)} of {len(operations)} operations failed:\n" + \
        "\n\n".join(failures)
