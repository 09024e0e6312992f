"""Benchmarks: measured side by side in one run, tables written to `reports/bench/`.

Not part of leadloop's runtime packages (nothing imports them but `make bench-*` and the tests
that share their dataset definitions).
"""
