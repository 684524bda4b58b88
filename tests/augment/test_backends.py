"""All backends give the same views; the op is a well-behaved torch custom op."""
import subprocess
import sys

import pytest
import torch
from ecg_signals import ecg_like

from ecgfast.augment import AugmentPipeline
from ecgfast.augment import backend as default_backend
from ecgfast.base.extension import EXTENSION_AVAILABLE

needs_ext = pytest.mark.skipif(not EXTENSION_AVAILABLE, reason="compiled extension not built")
ALL_ON = {a: 1.0 for a in ("frequency_warp", "bandpass", "mixup", "cutmix", "motion_artifact",
                           "channel_noise", "temporal_dropout")}


@needs_ext
@pytest.mark.parametrize("rates", [None, ALL_ON], ids=["design-rates", "all-on"])
def test_cpp_numba_and_torch_agree(rates):
    x = ecg_like(64, length=1000, seed=11)
    views = {b: torch.stack(AugmentPipeline(100, seed=5, rates=rates, backend=b)(x, step=3))
             for b in ("cpp", "numba", "torch")}
    scale = x.abs().max()
    assert (views["cpp"] - views["numba"]).abs().max() <= 1e-5 * scale
    assert (views["cpp"] - views["torch"]).abs().max() <= 1e-5 * scale


def test_same_seed_and_step_same_views_new_step_new_views():
    x = ecg_like(16, seed=12)
    a = AugmentPipeline(100, seed=5)
    b = AugmentPipeline(100, seed=5)
    first = torch.stack(a(x))
    assert torch.equal(first, torch.stack(b(x)))  # same internal step 0
    assert not torch.equal(torch.stack(a(x)), first)  # the counter advanced
    assert torch.equal(torch.stack(b(x, step=0)), first)
    c = AugmentPipeline(100, seed=6)
    assert not torch.equal(torch.stack(c(x, step=0)), first)


def test_state_dict_resumes_the_sequence():
    x = ecg_like(8, seed=13)
    a = AugmentPipeline(100, seed=2)
    for _ in range(3):
        a(x)
    b = AugmentPipeline(100, seed=0)
    b.load_state_dict(a.state_dict())
    assert torch.equal(torch.stack(a(x)), torch.stack(b(x)))


_THREADS_SCRIPT = """
import sys, torch, numba
torch.set_num_threads({n}); numba.set_num_threads({n})
sys.path.insert(0, {helpers!r})
from ecg_signals import ecg_like
from ecgfast.augment import AugmentPipeline
x = ecg_like(32, seed=14)
v = torch.stack(AugmentPipeline(100, seed=9, backend={backend!r})(x, step=7))
torch.save(v, {out!r})
"""


@pytest.mark.parametrize("name", [pytest.param("cpp", marks=needs_ext), "numba"])
def test_same_views_with_one_and_two_threads(name, tmp_path):
    import os

    helpers = os.path.dirname(os.path.dirname(__file__))  # tests/, where ecg_signals.py is
    outs = []
    for n in (1, 2):
        out = tmp_path / f"{n}.pt"
        subprocess.run([sys.executable, "-c", _THREADS_SCRIPT.format(n=n, helpers=helpers, backend=name,
                                                                      out=str(out))], check=True)
        outs.append(torch.load(out))
    assert torch.equal(outs[0], outs[1])


def test_batch_split_into_parts_gives_the_same_views(backend):
    """Parameters depend on (seed, step, view, sample id) only, so a batch augmented in
    two parts, each with its samples' ids, equals the whole (partner-free augmentations;
    mixup/CutMix partners are drawn within the batch given)."""
    no_partners = {"mixup": False, "cutmix": False}
    x = ecg_like(10, length=200, seed=15)
    pipe = AugmentPipeline(100, seed=4, enabled=no_partners, rates=ALL_ON, backend=backend)
    whole = torch.stack(pipe(x, step=2))
    parts = [torch.stack(pipe(x[s], step=2, sample_ids=torch.arange(10)[s].numpy()))
             for s in (slice(0, 3), slice(3, 10))]
    assert torch.equal(torch.cat(parts, dim=1), whole)


@needs_ext
def test_opcheck():
    x = ecg_like(4, length=128, seed=16)
    params = AugmentPipeline(100, seed=1, rates=ALL_ON).draw(4, 128, step=0)
    torch.library.opcheck(torch.ops.ecgfast.augment_views.default, (x, params, 100.0))


@needs_ext
def test_model_calling_the_op_compiles_fullgraph():
    class AugmentThenPool(torch.nn.Module):
        def forward(self, x, params):
            views = torch.ops.ecgfast.augment_views(x, params, 100.0)
            return views.mean(dim=-1)

    x = ecg_like(4, length=128, seed=17)
    params = AugmentPipeline(100, seed=1).draw(4, 128, step=0)
    model = AugmentThenPool()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    assert torch.equal(compiled(x, params), model(x, params))


def test_backend_names_the_backend_in_use(monkeypatch):
    assert default_backend() == ("cpp" if EXTENSION_AVAILABLE else "numba")
    monkeypatch.setenv("ECGFAST_BACKEND", "numba")
    assert default_backend() == "numba" and AugmentPipeline().backend == "numba"
    monkeypatch.setenv("ECGFAST_BACKEND", "fortran")
    with pytest.raises(ValueError, match="ECGFAST_BACKEND='fortran'|ECGFAST_BACKEND=fortran"):
        default_backend()


@pytest.mark.parametrize("bad,error,match", [
    (torch.zeros(12, 1000), ValueError, r"\(batch, leads, time\)"),
    (torch.zeros(2, 12, 1000, dtype=torch.int16), TypeError, "floating-point"),
    (torch.zeros(2, 8, 1000), ValueError, "expected 12 leads, got 8"),
    (torch.zeros(2, 12, 20), ValueError, "too short"),
    (torch.tensor(float("nan")).expand(2, 12, 1000), ValueError, "NaN or Inf"),
    (torch.tensor(float("inf")).expand(2, 12, 1000), ValueError, "NaN or Inf"),
])
def test_bad_input_is_refused_clearly(bad, error, match, backend):
    with pytest.raises(error, match=match):
        AugmentPipeline(100, backend=backend)(bad)


def test_bad_settings_are_refused_clearly():
    with pytest.raises(ValueError, match="sampling_rate must be positive"):
        AugmentPipeline(0)
    with pytest.raises(ValueError, match="sampling_rate must be positive"):
        AugmentPipeline(-100)
    with pytest.raises(ValueError, match="unknown augmentation config 'no-jitter'"):
        AugmentPipeline(enabled="no-jitter")
    with pytest.raises(ValueError, match="rate of mixup must be in"):
        AugmentPipeline(rates={"mixup": 1.5})
    with pytest.raises(TypeError, match="unknown augmentation parameter"):
        AugmentPipeline(mixup_beta=0.2)


@needs_ext
def test_op_refuses_bad_arguments():
    x = ecg_like(2, length=128)
    params = AugmentPipeline(100).draw(2, 128, step=0)
    with pytest.raises(RuntimeError, match="sampling rate must be positive"):
        torch.ops.ecgfast.augment_views(x, params, 0.0)
    with pytest.raises(RuntimeError, match="params must be"):
        torch.ops.ecgfast.augment_views(x, params[:, :1], 100.0)
    with pytest.raises(RuntimeError, match="too short"):
        torch.ops.ecgfast.augment_views(x[..., :20], params, 100.0)

# The compiled op on each device (CUDA == the CPU kernel, CPU == the reference), every augmentation and config:
# tests/augment/test_augment_devices.py (the cuda cases marked cuda).
