"""pytest-benchmark: the epoch stage's cases (``pytest benchmarks/bench_epoch.py --benchmark-only``)."""
from benchmarks.harness import pytest_benchmark_test

test_epoch = pytest_benchmark_test("epoch")
