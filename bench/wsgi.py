"""Bench-only WSGI entry point: the application exactly as `run.py` builds it (settings from the
environment: DATABASE_URL, SECRET_KEY, HOUTAI_ENV, ...), plus the ceiling endpoint of
`bench/pk_endpoint.py`.

    gunicorn --no-control-socket -w 2 -b 127.0.0.1:PORT bench.wsgi:app

BENCH_INSTANCE_PATH (optional) puts the instance folder outside the project tree.
"""
import os

from app import create_app
from bench.pk_endpoint import register

app = create_app(instance_path=os.environ.get("BENCH_INSTANCE_PATH") or None)
register(app)
