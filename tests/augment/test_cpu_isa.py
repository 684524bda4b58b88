"""The C++ augmentation kernel under each x86 ISA level it is compiled for (ECGFAST_CPU_ISA), where
this CPU runs it: each gives the reference's views within the float tolerance of the backends."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ecg_signals import ecg_like

from ecgfast.augment import AugmentPipeline
from ecgfast.base.extension import EXTENSION_AVAILABLE

pytestmark = pytest.mark.skipif(not EXTENSION_AVAILABLE, reason="compiled extension not built")
ISAS = ["x86-64-v4", "x86-64-v3", "baseline"]
ALL_ON = {a: 1.0 for a in ("frequency_warp", "bandpass", "mixup", "cutmix", "motion_artifact",
                           "channel_noise", "temporal_dropout")}
_SCRIPT = """
import sys, torch
sys.path.insert(0, {helpers!r})
from ecg_signals import ecg_like
from ecgfast.augment import AugmentPipeline
x = ecg_like(24, length=1000, seed=21)
views = [torch.stack(AugmentPipeline(100, seed=4, rates=rates, backend="cpp")(x, step=2))
         for rates in (None, {all_on!r})]
torch.save({{"isa": torch.ops.ecgfast.augment_cpu_isa(), "views": views}}, {out!r})
"""


def _views_under(isa: str, tmp_path: Path) -> dict:
    out = tmp_path / f"{isa}.pt"
    script = _SCRIPT.format(helpers=str(Path(__file__).resolve().parents[1]), all_on=ALL_ON, out=str(out))
    env = {**os.environ, "ECGFAST_CPU_ISA": isa}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    if run.returncode != 0:
        if "this CPU does not have it" in run.stderr:
            pytest.skip(f"this CPU lacks {isa}")
        raise AssertionError(run.stderr[-2000:])
    return torch.load(out, weights_only=True)


@pytest.mark.parametrize("isa", ISAS)
def test_each_isa_compilation_gives_the_reference_views(isa, tmp_path):
    got = _views_under(isa, tmp_path)
    assert got["isa"] == isa  # the override took effect
    x = ecg_like(24, length=1000, seed=21)
    scale = x.abs().max()
    for rates, views in zip((None, ALL_ON), got["views"]):
        ref = torch.stack(AugmentPipeline(100, seed=4, rates=rates, backend="torch")(x, step=2))
        assert (views - ref).abs().max() <= 1e-5 * scale


def test_an_unknown_isa_is_refused_with_the_valid_names(tmp_path):
    code = "import torch, ecgfast.base.extension; torch.ops.ecgfast.augment_cpu_isa()"
    run = subprocess.run([sys.executable, "-c", code],
                         env={**os.environ, "ECGFAST_CPU_ISA": "avx9000"}, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode != 0
    assert "ECGFAST_CPU_ISA=avx9000: expected one of x86-64-v4, x86-64-v3, baseline" in run.stderr
