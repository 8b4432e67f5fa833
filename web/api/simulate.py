"""REST: POST /apps/{app}/simulate — the dry run of the record pipeline (writes nothing)."""
from __future__ import annotations

from flask import jsonify

from runtime.simulate import simulate as run_simulation

from ..app import services
from ..auth import actor
from . import bp
from .util import check_token_app, json_body


@bp.post("/apps/<app_key>/simulate")
def simulate(app_key):
    check_token_app(actor(), app_key)
    body = json_body()
    from runtime.context import Context
    engine = services().engine
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            out = run_simulation(services().records, Context(conn, actor()), app_key, body)
        finally:
            trans.rollback()   # a simulation never writes, not even counters
    return jsonify(out)
