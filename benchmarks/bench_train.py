"""pytest-benchmark: the train stage's cases (``pytest benchmarks/bench_train.py --benchmark-only``)."""
from benchmarks.harness import pytest_benchmark_test

test_train = pytest_benchmark_test("train")
