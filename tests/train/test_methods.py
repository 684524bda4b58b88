"""The method strategies (train/methods.py) and the engine driving a Method and a data object it does not know."""
import json
import logging
from pathlib import Path

import pytest
import torch

from ecgfast.data import Batch, Normalizer
from ecgfast.losses import NTXentLoss, byol_loss
from ecgfast.models import DEFAULT_ENCODER, build_encoder
from ecgfast.train import config, pretrain
from ecgfast.train.methods import BYOL, METHODS, Method, SimCLR
from ecgfast.train.pretrain import Pretrainer, resume_path


def test_the_method_table_names_every_method_the_config_accepts():
    assert set(METHODS) == set(config.METHODS) == {"simclr", "byol"}
    assert all(METHODS[name].name == name for name in METHODS)
    cfg = config.PretrainConfig(temperature=0.2, projection_dim=16, tau=0.9)
    simclr, byol = SimCLR.from_config(cfg, world=1), BYOL.from_config(cfg)
    assert (simclr.temperature, simclr.projection_dim, byol.tau) == (0.2, 16, 0.9)


def _views(n=8, length=128):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 12, length, generator=g), torch.randn(n, 12, length, generator=g)


def test_simclr_loss_is_nt_xent_of_both_views_projections():
    torch.manual_seed(0)
    method = SimCLR(projection_dim=16, temperature=0.1)
    model = method.build(build_encoder(DEFAULT_ENCODER, in_ch=12)).eval()
    v1, v2 = _views()
    z1, z2 = model(torch.cat([v1, v2])).chunk(2)
    assert torch.equal(method.loss(model, model, v1, v2), NTXentLoss(0.1)(z1, z2))
    assert method.encoder(model) is model.encoder
    method.after_step(model)  # SimCLR has nothing to do after a step


def test_byol_loss_is_symmetric_against_the_target_and_after_step_moves_the_target_by_ema():
    torch.manual_seed(0)
    method = BYOL(tau=0.75)
    model = method.build(build_encoder(DEFAULT_ENCODER, in_ch=12)).eval()
    v1, v2 = _views()
    p = model(torch.cat([v1, v2]))
    z = model.target(torch.cat([v2, v1]))
    want = byol_loss(p[:8], z[:8]) + byol_loss(p[8:], z[8:])
    got = method.loss(model, model, v1, v2)
    assert torch.allclose(got, want, rtol=1e-6, atol=1e-7)
    online = [p.detach().clone() for p in model.online_parameters()]
    target = [p.detach().clone() for p in model.target_parameters()]
    with torch.no_grad():
        for q in model.online_parameters():
            q.add_(0.5)  # as if the optimiser had stepped
    method.after_step(model)
    for t0, o0, t1 in zip(target, online, model.target_parameters()):
        torch.testing.assert_close(t1, 0.75 * t0 + 0.25 * (o0 + 0.5), rtol=1e-6, atol=1e-6)
    state = method.resume_state(model)
    assert any(k.startswith("target_encoder.") for k in state)  # the resume file keeps the target network


# ---------------------------------------------------------------- the engine with a method and data of its own
class Align(Method):
    """A method the engine has never heard of: pull the two views' pooled embeddings together."""

    name = "align"

    def __init__(self):
        self.after_steps = 0

    def build(self, encoder):
        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.encoder = encoder

            def forward(self, x):
                return self.encoder(x)

        return Net()

    def loss(self, net, model, v1, v2):
        return (net(v1) - net(v2)).pow(2).mean()

    def after_step(self, model):
        self.after_steps += 1


class Records:
    """PretrainData over in-memory records, shuffled per epoch; records which batches it handed out."""

    sampling_rate, leads, classes = 100, tuple(f"L{i}" for i in range(12)), ("a",)

    def __init__(self, n=64, batch=16, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 12, 160, generator=g)
        self.batch, self.seed = batch, seed
        self.normalizer = Normalizer([0.0], [1.0])
        self.digest, self.where = "records-digest", "in memory"
        self.notes = [(logging.INFO, "about these records")]
        self.corpora_info = [{"name": "memory", "records": n}]
        self.epoch, self.position, self.handed_out = 0, 0, []

    def __len__(self):
        return len(self.x) // self.batch

    def set_epoch(self, epoch, start_batch=0):
        self.epoch, self.position = epoch, start_batch

    def state_dict(self):
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state):
        self.set_epoch(state["epoch"], state["position"])

    def __iter__(self):
        order = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(self.seed * 1000 + self.epoch))
        while self.position < len(self):
            idx = order[self.position * self.batch:(self.position + 1) * self.batch]
            self.position += 1
            self.handed_out.append((self.epoch, idx.tolist()))
            yield Batch(self.x[idx], torch.zeros(len(idx), 1), idx)

    def epoch_stats(self):
        return {"memory_epoch": self.epoch}


def _cfg(out: Path, **kw) -> config.PretrainConfig:
    return config.PretrainConfig(out=out, epochs=2, batch_size=16, signal_length=128, checkpoint_every=1,
                                 run=config.RunConfig(device="cpu", precision="fp32", progress=False), **kw)


def test_the_engine_trains_any_method_on_any_data_behind_the_protocols(tmp_path, caplog):
    method, data = Align(), Records()
    with caplog.at_level(logging.INFO, logger="ecgfast"):
        out = Pretrainer(_cfg(tmp_path / "enc.pt"), method=method, data=data).fit()
    notes = [r for r in caplog.records if "about these records" in r.getMessage()]
    said = [(r.levelno, r.getMessage()) for r in notes]
    assert said == [(logging.INFO, "ecgfast pretrain-align: about these records")]  # the data's notes, once
    assert method.after_steps == 2 * len(data) == 8
    assert [e for e, _ in data.handed_out] == [0] * 4 + [1] * 4 and (data.epoch, data.position) == (2, 0)
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["data"] == {"corpora": data.corpora_info, "records_seen": 8 * 16}
    assert ckpt["spec"]["sampling_rate"] == 100 and ckpt["normalizer"] == data.normalizer.state_dict()
    log = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]
    assert [(r["method"], r["memory_epoch"]) for r in log] == [("align", 0), ("align", 1)]
    resume = torch.load(resume_path(out), weights_only=True)
    assert (resume["epoch"], resume["step_in_epoch"], resume["dataset"]) == (2, 0, "records-digest")


def test_the_engine_resumes_a_data_object_where_it_stopped(tmp_path, monkeypatch):
    """Stopped at step 5 (epoch 2, batch 2), resumed: the rest of the batches and the encoder are the whole run's."""
    whole = Records()
    Pretrainer(_cfg(tmp_path / "whole.pt"), method=Align(), data=whole).fit()
    real = Pretrainer.train_step

    def stop_at_5(self, x):
        if self.global_step == 5:
            raise KeyboardInterrupt
        return real(self, x)

    monkeypatch.setattr(Pretrainer, "train_step", stop_at_5)
    with pytest.raises(KeyboardInterrupt):
        Pretrainer(_cfg(tmp_path / "cut.pt"), method=Align(), data=Records()).fit()
    monkeypatch.setattr(Pretrainer, "train_step", real)
    assert torch.load(resume_path(tmp_path / "cut.pt"), weights_only=True)["step_in_epoch"] == 1
    resumed = Records()
    Pretrainer(_cfg(tmp_path / "cut.pt", resume=True), method=Align(), data=resumed).fit()
    assert resumed.handed_out == whole.handed_out[5:]  # from epoch 2's second batch on
    a = torch.load(tmp_path / "whole.pt", weights_only=True)["encoder"]
    b = torch.load(tmp_path / "cut.pt", weights_only=True)["encoder"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_pretrain_keeps_the_loss_functions_importable_from_the_engine():
    from ecgfast.train import methods

    assert pretrain.simclr_loss is methods.simclr_loss and pretrain.byol_loss_of is methods.byol_loss_of
