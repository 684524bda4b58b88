"""pytest-benchmark: the augment stage's cases (``pytest benchmarks/bench_augment.py --benchmark-only``)."""
from benchmarks.harness import pytest_benchmark_test

test_augment = pytest_benchmark_test("augment")
