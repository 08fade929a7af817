"""Shared helpers: the machine description, a fresh PostgreSQL database, medians, tables."""
import os
import platform
import statistics
import subprocess
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
VENV_BIN = PROJECT_ROOT / ".venv" / "bin"
RESULTS_DIR = BENCH_DIR / "results"  # git-ignored

PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_BENCH_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")


def median(values):
    return statistics.median(values) if values else float("nan")


def database_url(name: str) -> str:
    """The URL of database `name` on the admin URL's server."""
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


def recreate_database(name: str) -> str:
    """Drop (forcing out any session) and create database `name`; returns its URL."""
    import psycopg

    if not name.replace("_", "").isalnum():
        raise ValueError(f"unsafe database name {name!r}")
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_url(name)


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def machine(redis_url: str = REDIS_BENCH_URL) -> dict:
    """nproc, memory, CPU, Python, PostgreSQL and Redis versions of this run."""
    import psycopg
    import rq
    from redis import Redis

    info = {"nproc": os.cpu_count(), "python": platform.python_version(), "rq": rq.__version__}
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        total_kb = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
        info["memory_gb"] = round(total_kb / 1024 / 1024, 1)
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
        info["cpu"] = next((line.split(":", 1)[1].strip() for line in cpuinfo
                            if line.startswith("model name")), platform.machine())
    except OSError:
        info["cpu"] = platform.machine()
    with psycopg.connect(PG_ADMIN_URL) as conn:
        info["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
    info["redis"] = Redis.from_url(redis_url).info("server")["redis_version"]
    try:
        info["load_1min"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    return info


def describe_machine(info: dict) -> str:
    return (f"{info['nproc']} CPU ({info.get('cpu', '?')}), {info.get('memory_gb', '?')} GB RAM, "
            f"PostgreSQL {info['postgresql']}, Redis {info['redis']}, Python {info['python']}, "
            f"RQ {info['rq']}, load {info.get('load_1min', '?')}")


def markdown_table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def git_revision() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT,
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
