"""pytest-benchmark: the eval stage's cases (``pytest benchmarks/bench_eval.py --benchmark-only``)."""
from benchmarks.harness import pytest_benchmark_test

test_eval = pytest_benchmark_test("eval")
