"""pytest-benchmark: ``pytest benchmarks --benchmark-only [--benchmark-json FILE]``.

The same cases as ``python -m benchmarks --quick``; the stored JSON carries the
machine description measured in the same run.
"""


def pytest_benchmark_update_machine_info(config, machine_info):
    from benchmarks.machine import describe

    machine_info["ecgfast"] = describe()
