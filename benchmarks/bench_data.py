"""pytest-benchmark: the data stage's cases (``pytest benchmarks/bench_data.py --benchmark-only``)."""
from benchmarks.harness import pytest_benchmark_test

test_data = pytest_benchmark_test("data")
