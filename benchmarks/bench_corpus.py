"""pytest-benchmark: the corpus stage's cases (``pytest benchmarks/bench_corpus.py --benchmark-only``)."""
from benchmarks.harness import pytest_benchmark_test

test_corpus = pytest_benchmark_test("corpus")
