"""Run every benchmark: `.venv/bin/python -m bench [args passed to each]`."""
import importlib
import sys

BENCHMARKS = ["bench.events", "bench.checkout", "bench.order_list", "bench.pricing",
              "bench.moderation"]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    status = 0
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        status |= importlib.import_module(name).main(argv) or 0
    return status


if __name__ == "__main__":
    sys.exit(main())
