import pytest

from benchmarks.cases_corpus import cases

CASES = cases(quick=True)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.stage}:{c.name}" for c in CASES])
def test_corpus(benchmark, case):
    benchmark.group = case.stage
    benchmark.extra_info.update(items=case.items, unit=case.unit, baseline=case.baseline)
    benchmark.pedantic(case.fn, rounds=max(case.repeat, 1), warmup_rounds=case.warmup)
