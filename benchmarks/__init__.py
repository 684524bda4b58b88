"""ecgfast benchmark suite: ``python -m benchmarks [--quick]`` or ``pytest benchmarks --benchmark-only``."""
