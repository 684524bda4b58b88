"""pytest-benchmark: the losses stage's cases (``pytest benchmarks/bench_losses.py --benchmark-only``)."""
from benchmarks.harness import pytest_benchmark_test

test_losses = pytest_benchmark_test("losses")
