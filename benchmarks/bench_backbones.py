"""pytest-benchmark: the backbones stage's cases (``pytest benchmarks/bench_backbones.py --benchmark-only``)."""
from benchmarks.harness import pytest_benchmark_test

test_backbones = pytest_benchmark_test("backbones")
