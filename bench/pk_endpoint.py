"""Bench-only: the ceiling endpoint of `bench.order_list`, served by the same application.

    GET /bench/pk/order/<id>  →  {"id", "order_no", "status", "payable"}

One primary-key SELECT of an order through SQLAlchemy (`db.session.get`) and a small JSON
answer: the same Flask app, the same session, pool (with its pre-ping) and after-request hooks
as the order list, but no FAB (no JWT, no permission check, no rison, no COUNT, no
marshmallow). It needs no login. Never registered by the application itself: `bench/wsgi.py`
(gunicorn) and the benchmark's in-process app add it with `register(app)`.

It is not loaded through HOUTAI_EXTENSIONS because `create_app()` imports those modules before
`db.init_app()` and outside any app context, without a handle on the app: such a module can add
event subscribers, not a blueprint.
"""
from flask import Blueprint, abort, jsonify

blueprint = Blueprint("bench_pk", __name__, url_prefix="/bench/pk")


@blueprint.route("/order/<int:pk>")
def order_by_pk(pk: int):
    from app.extensions import db
    from models.order import Order

    order = db.session.get(Order, pk)
    if order is None:
        abort(404)
    return jsonify(id=order.id, order_no=order.order_no, status=order.status.value,
                   payable=f"{order.payable:.2f}")


def register(app) -> None:
    if "bench_pk" not in app.blueprints:
        app.register_blueprint(blueprint)
