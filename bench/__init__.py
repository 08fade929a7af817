"""Runnable benchmarks (never part of the test suite): `python -m bench` runs them all.

Each benchmark prints its figure and the ratio to a ceiling measured in the same run, as the
median of several runs; see bench/README.md for the latest results and what they imply.
"""
