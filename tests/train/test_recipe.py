"""Recipes, optimisers and schedules (ecgfast.train.recipe, ecgfast.train.common), the logistic probe."""
import json
import math

import numpy as np
import pytest
import torch

from ecgfast.base.errors import ConfigError
from ecgfast.train.common import LARS, LRSchedule, layer_lr_scales, make_optimizer, make_schedule, param_groups
from ecgfast.train.config import ClassifierConfig, PretrainConfig
from ecgfast.train.recipe import apply_recipe
from ecgfast.train_ssl_simclr import main as simclr_main

TINY = ["--epochs", "2", "--batch-size", "32", "--signal-length", "256", "--checkpoint-every", "3",
        "--no-progress", "--precision", "fp32"]


# -- LARS against its formula -------------------------------------------------------------------
def _lars_reference(w, b, grads, lr, momentum, wd, eta):
    """LARS in float64 NumPy, written from the formula: w (2-D) adapted and decayed, b (1-D) excluded."""
    w, b = w.astype(np.float64), b.astype(np.float64)
    vw, vb = np.zeros_like(w), np.zeros_like(b)
    for gw, gb in grads:
        u = gw + wd * w
        q = eta * np.linalg.norm(w) / np.linalg.norm(u)
        vw = momentum * vw + q * u
        vb = momentum * vb + gb
        w, b = w - lr * vw, b - lr * vb
    return w, b


def test_lars_follows_its_formula_on_a_toy_problem():
    """A least-squares problem: three LARS steps equal the formula's (trust ratio on the weight,
    plain momentum SGD without decay on the bias)."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 5, generator=g, dtype=torch.float64), torch.randn(16, 3, generator=g, dtype=torch.float64)
    lin = torch.nn.Linear(5, 3).double()
    w0, b0 = lin.weight.detach().numpy().copy(), lin.bias.detach().numpy().copy()
    opt = LARS(lin.parameters(), lr=0.5, momentum=0.9, weight_decay=0.1, eta=0.02)
    grads = []
    for _ in range(3):
        opt.zero_grad()
        ((lin(x) - y) ** 2).mean().backward()
        grads.append((lin.weight.grad.numpy().copy(), lin.bias.grad.numpy().copy()))
        opt.step()
    w, b = _lars_reference(w0, b0, grads, 0.5, 0.9, 0.1, 0.02)
    np.testing.assert_allclose(lin.weight.detach().numpy(), w, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(lin.bias.detach().numpy(), b, rtol=1e-12, atol=1e-14)
    assert not np.allclose(w, w0)  # it moved


def test_lars_leaves_a_zero_tensor_unscaled_and_a_group_flag_overrides_the_shape_rule():
    p = torch.nn.Parameter(torch.zeros(2, 2))
    p.grad = torch.ones(2, 2)
    LARS([p], lr=0.1, momentum=0.0, weight_decay=0.5).step()  # ||w|| = 0: trust ratio 1
    assert torch.equal(p.detach(), torch.full((2, 2), -0.1))
    q = torch.nn.Parameter(torch.ones(3))
    q.grad = torch.full((3,), 2.0)
    LARS([{"params": [q], "lars_exclude": False}], lr=1.0, momentum=0.0, weight_decay=0.0, eta=0.5).step()
    # adapted although 1-D: step = eta * ||w|| / ||g|| * g = 0.5 * sqrt(3) / sqrt(12) * 2 = 0.5
    torch.testing.assert_close(q.detach(), torch.full((3,), 0.5), rtol=0, atol=1e-7)


# -- schedules ------------------------------------------------------------------------------------
def test_warmup_then_cosine_follows_its_formula():
    s = LRSchedule("cosine", warmup_steps=4, total_steps=14)
    assert [s.factor(i) for i in range(4)] == [0.25, 0.5, 0.75, 1.0]
    for step in range(4, 14):
        assert s.factor(step) == pytest.approx(0.5 * (1 + math.cos(math.pi * (step - 4) / 10)), abs=1e-15)
    assert s.factor(4) == 1.0 and 0 < s.factor(13) < 0.03
    assert LRSchedule("constant", 2, 10).factor(1) == 1.0 and LRSchedule("constant", 2, 10).factor(0) == 0.5
    assert make_schedule("cosine", 1, 3, 5) == LRSchedule("cosine", 5, 15)
    with pytest.raises(ConfigError, match="--schedule 'step': expected one of constant, cosine"):
        make_schedule("step", 0, 1, 1)


def test_schedule_sets_each_groups_rate_from_its_initial_rate():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3))
    opt = make_optimizer(model, "adamw", 0.01, torch.device("cpu"), weight_decay=0.1)
    LRSchedule("cosine", 2, 10).apply(opt, 0)
    assert [g["lr"] for g in opt.param_groups] == [0.005, 0.005]


def test_no_weight_decay_on_biases_and_norms_and_layer_rates_fall_with_depth():
    from ecgfast.models import ECGClassifier, build_encoder

    model = ECGClassifier(build_encoder("ecg1dcnn"), num_classes=5)
    groups = param_groups(model, 1e-3, weight_decay=0.01, layer_lr_decay=0.5)
    for g in groups:
        assert all(p.ndim <= 1 for p in g["params"]) == (g["weight_decay"] == 0.0)
        assert g["lr"] == g["initial_lr"]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    scales = layer_lr_scales(model, 0.5)
    assert scales[id(model.head.weight)] == 1.0
    blocks = list(model.encoder.features)
    assert all(scales[id(p)] == 0.5 for p in blocks[-1].parameters())
    assert all(scales[id(p)] == 0.5 ** 6 for p in blocks[0].parameters())
    # the seed's Adam without decay: one group, the model's order (its resume files still load)
    seed = param_groups(model, 1e-3)
    assert len(seed) == 1 and [id(p) for p in seed[0]["params"]] == [id(p) for p in model.parameters()]


# -- the recipe table --------------------------------------------------------------------------
def test_the_seed_recipe_is_the_seeds_settings_and_field_is_the_table():
    seed = apply_recipe(PretrainConfig(), "seed")
    assert (seed.optimizer, seed.weight_decay, seed.schedule, seed.warmup_epochs, seed.lr, seed.crop_seconds,
            seed.resized_crop_min) == ("adam", 0.0, "constant", 0, 1e-3, None, None)
    field = apply_recipe(PretrainConfig(epochs=20), "field")
    assert (field.recipe, field.optimizer, field.weight_decay, field.schedule, field.warmup_epochs, field.lr,
            field.crop_seconds, field.resized_crop_min) == ("field", "adamw", 1e-2, "cosine", 2, 1e-3, 2.5, 0.5)
    big = apply_recipe(PretrainConfig(batch_size=2048), "field")  # LARS from batch 1024, SimCLR's lr rule
    assert (big.optimizer, big.weight_decay, big.lr) == ("lars", 1e-6, 0.3 * 2048 / 256)
    probe = apply_recipe(ClassifierConfig(freeze_encoder=True), "field")
    assert probe.probe == "logistic" and apply_recipe(probe, "seed").probe == "head"


def test_each_part_of_a_recipe_is_settable_alone():
    import argparse

    from ecgfast.cli.flags import add_pretrain_flags, pretrain_from_args

    p = argparse.ArgumentParser()
    add_pretrain_flags(p, "simclr")
    cfg = pretrain_from_args(p.parse_args(["--recipe", "field", "--optimizer", "adam", "--warmup-epochs", "0",
                                           "--lr", "0.01"]), "simclr")
    got = (cfg.optimizer, cfg.weight_decay, cfg.warmup_epochs, cfg.schedule, cfg.lr)
    assert got == ("adam", 0.0, 0, "cosine", 0.01)
    cfg = pretrain_from_args(p.parse_args(["--schedule", "cosine", "--weight-decay", "0.05"]), "simclr")
    assert (cfg.recipe, cfg.optimizer, cfg.schedule, cfg.weight_decay) == ("seed", "adam", "cosine", 0.05)
    cfg = pretrain_from_args(p.parse_args(["--recipe", "field", "--batch-size", "1024", "--lr", "0.5"]), "simclr")
    assert (cfg.optimizer, cfg.lr) == ("lars", 0.5)  # an explicit --lr wins over LARS's rule


@pytest.mark.parametrize("argv, message", [
    (["--recipe", "fancy"], "argument --recipe: invalid choice: fancy (choose from seed, field)"),
    (["--optimizer", "sgd"], "argument --optimizer: invalid choice: sgd (choose from adam, adamw, lars)"),
    (["--schedule", "step"], "argument --schedule: invalid choice"),
    (["--weight-decay", "-1"], "argument --weight-decay: must be >= 0, got -1"),
    (["--warmup-epochs", "2"], "--warmup-epochs 2: must be fewer than the 2 --epochs"),
])
def test_bad_recipe_flags_name_the_valid_values(synthetic_cache_path, tmp_path, argv, message, capsys):
    code = None
    try:
        code = simclr_main(["--cache", str(synthetic_cache_path), "--out", str(tmp_path / "x.pt"), *TINY, *argv])
    except SystemExit as exc:
        code = exc.code
    assert code in (1, 2)
    assert message in capsys.readouterr().err.replace("'", "")  # Python versions quote choices or not
    with pytest.raises(ConfigError, match="--recipe 'x': unknown recipe; expected one of seed, field"):
        apply_recipe(PretrainConfig(), "x")


# -- bitwise resume with warm-up + cosine ---------------------------------------------------------
def test_a_cosine_warmup_adamw_run_resumes_bitwise(synthetic_cache_path, tmp_path, monkeypatch):
    """Stopped after its first periodic checkpoint and resumed: the same encoder as an unbroken run."""
    from ecgfast.train import pretrain

    flags = ["--cache", str(synthetic_cache_path), *TINY, "--recipe", "field", "--warmup-epochs", "1"]
    full, broken = tmp_path / "full.pt", tmp_path / "broken.pt"
    assert simclr_main([*flags, "--out", str(full)]) == 0
    real = pretrain.Pretrainer.train_step

    def stop_at_5(self, x):
        if self.global_step == 5:
            raise KeyboardInterrupt
        return real(self, x)

    monkeypatch.setattr(pretrain.Pretrainer, "train_step", stop_at_5)
    assert simclr_main([*flags, "--out", str(broken)]) == 130
    monkeypatch.setattr(pretrain.Pretrainer, "train_step", real)
    resume = torch.load(pretrain.resume_path(broken), weights_only=True)
    assert resume["global_step"] == 3 and resume["schedule"]["schedule"] == "cosine"
    assert resume["schedule"]["warmup_steps"] > 3  # stopped inside the warm-up
    assert simclr_main([*flags, "--out", str(broken), "--resume"]) == 0
    a, b = torch.load(full, weights_only=True), torch.load(broken, weights_only=True)
    assert a["spec"]["recipe"] == "field" and a["config"]["optimizer"] == "adamw"
    for k in a["encoder"]:
        assert torch.equal(a["encoder"][k], b["encoder"][k]), k


# -- the logistic probe ---------------------------------------------------------------------------
def test_logistic_probe_picks_c_on_fold_9_and_its_head_reproduces_sklearn(synthetic_cache_path, tmp_path):
    from sklearn.linear_model import LogisticRegression

    from ecgfast.data import Normalizer, label_fraction_indices, open_cache
    from ecgfast.models import ECGClassifier, build_encoder
    from ecgfast.models.inference import embed, predict
    from ecgfast.train.classifier import LOGISTIC_C_GRID, fit_logistic, train_logistic_probe

    cache = open_cache(synthetic_cache_path)
    torch.manual_seed(0)
    model = ECGClassifier(build_encoder("ecg1dcnn"), num_classes=len(cache.classes)).eval()
    norm = Normalizer.fit(cache, cache.split_indices("train"))
    train_idx = label_fraction_indices(cache.labels, cache.folds, 0.5, 0, cache.has_label)
    val_idx = cache.split_indices("val", labelled_only=True)
    cfg = ClassifierConfig(signal_length=256, freeze_encoder=True, probe="logistic")
    cfg.run.progress = False
    state, auroc, history, p_val = train_logistic_probe(model, cache, train_idx, val_idx, norm, cfg)
    scores = [h["val_macro_auroc"] for h in history if "C" in h]
    assert [h["C"] for h in history if "C" in h] == list(LOGISTIC_C_GRID)
    assert auroc == max(scores) and history[-1]["chosen_C"] == LOGISTIC_C_GRID[scores.index(max(scores))]
    # the saved head (standardisation folded in) gives fold 9's probabilities of the chosen regression
    model.load_state_dict(state)
    got = predict(model, cache, val_idx, norm, 256)
    np.testing.assert_allclose(got, p_val, rtol=0, atol=2e-5)
    # ... which are scikit-learn's own for that C
    x = embed(model.encoder, cache, train_idx, norm, 256).double().numpy()
    xv = embed(model.encoder, cache, val_idx, norm, 256).double().numpy()
    mu, sd = x.mean(0), np.maximum(x.std(0, ddof=1), 1e-8)  # as the probe: dead features stay 0
    c = history[-1]["chosen_C"]
    j = int(np.argmax(cache.labels[train_idx].sum(0)))
    ref = LogisticRegression(C=c, solver="lbfgs", max_iter=2000).fit((x - mu) / sd, cache.labels[train_idx][:, j] > 0.5)
    np.testing.assert_allclose(p_val[:, j], ref.predict_proba((xv - mu) / sd)[:, 1], rtol=0, atol=2e-5)
    # a class with one label value among the training records: a constant score at its rate
    w, b = fit_logistic(np.random.default_rng(0).normal(size=(10, 3)), np.zeros((10, 1)), 1.0)
    assert np.all(w == 0) and b[0] == pytest.approx(math.log(1e-4 / (1 - 1e-4)))


def test_finetune_probe_logistic_writes_a_classifier_that_evaluates(synthetic_cache_path, tmp_path):
    from ecgfast.eval.evaluate import evaluate
    from ecgfast.train_finetune import main as finetune_main

    out = tmp_path / "probe.pt"
    assert finetune_main(["--cache", str(synthetic_cache_path), "--ssl-checkpoint", "none", "--probe", "logistic",
                          "--out", str(out), "--signal-length", "256", "--no-progress", "--precision", "fp32",
                          "--label-fraction", "0.5", "--epochs", "1"]) == 0
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["config"]["probe"] == "logistic" and ckpt["config"]["freeze_encoder"] is True
    assert ckpt["spec"]["recipe"] == "seed" and "chosen_C" in ckpt["history"][-1]
    r = evaluate(out, cache_path=synthetic_cache_path, n_boot=10)
    assert 0 <= r["macro_auroc"] <= 1 and r["n_records"] > 0


def test_older_checkpoints_are_the_seed_recipe():
    from ecgfast.base.checkpoint import checkpoint_spec as spec_of
    from ecgfast.base.checkpoint import recipe_of
    from ecgfast.train.spec import preprocessing_spec

    spec = preprocessing_spec(100, 1000, {"mean": [0.0], "std": [1.0]})
    assert "recipe" not in spec and spec_of({"spec": spec})["recipe"] == "seed" and recipe_of({}) == "seed"
    assert spec_of({"spec": preprocessing_spec(100, 1000, {}, recipe="field")})["recipe"] == "field"
    with pytest.raises(ConfigError, match="expected one of seed, field"):
        preprocessing_spec(100, 1000, {}, recipe="nope")


# -- the experiment's axes -------------------------------------------------------------------------
def test_experiment_keys_keep_the_seeds_and_name_the_new_axes():
    from ecgfast.study.experiment import run_dir, settings_key

    seed = {"lr": 1e-3, "recipe": "seed", "schedule": "constant", "optimizer": "adam", "weight_decay": 0.0,
            "warmup_epochs": 0, "crop_seconds": None, "task": "superdiagnostic", "probe": "head"}
    assert settings_key(seed) == {"lr": 1e-3}
    assert settings_key({**seed, "recipe": "field", "task": "rhythm", "optimizer": "adamw"}) == \
        {"lr": 1e-3, "recipe": "field", "task": "rhythm", "optimizer": "adamw"}
    from pathlib import Path

    assert run_dir(Path("o"), "byol", 1, 0.1) == Path("o/runs/byol/seed1/frac0.1")
    assert run_dir(Path("o"), "byol", 1, 0.1, "inception1d", "field", "form") == \
        Path("o/runs/inception1d/recipe-field/task-form/byol/seed1/frac0.1")


def _row(encoder, recipe, arm, seed, auroc):
    return {"encoder": encoder, "recipe": recipe, "task": "superdiagnostic", "arm": arm, "seed": seed,
            "fraction": 0.1, "macro_auroc": auroc, "macro_f1": 0.5}


def test_experiment_table_groups_by_the_axes_and_pairs_recipes_backbone_by_backbone():
    from ecgfast.report.stats import mean_sd_ci
    from ecgfast.study.experiment import summarize

    field = {1: 0.80, 2: 0.83, 3: 0.79}
    seed = {1: 0.75, 2: 0.74, 3: 0.78}
    rows = [_row("resnet1d_wang", "field", "byol", s, v) for s, v in field.items()] + \
        [_row("resnet1d_wang", "seed", "byol", s, v) for s, v in seed.items()] + \
        [_row("ecg1dcnn", r, "byol", s, 0.7) for r in ("seed", "field") for s in (1, 2, 3)]
    table, stats = summarize(rows, ["byol"], {"encoder": ["ecg1dcnn", "resnet1d_wang"], "recipe": ["seed", "field"],
                                              "task": ["superdiagnostic"]})
    assert "| encoder | recipe | arm | label fraction |" in table
    assert "| resnet1d_wang | field | byol | 0.1 | 3 | 0.8067 ± 0.0208 |" in table
    d = mean_sd_ci([field[s] - seed[s] for s in (1, 2, 3)])
    line = next(x for x in table.splitlines() if x.startswith("| resnet1d_wang byol: field vs seed |"))
    assert f"| {d['mean']:+.4f} | [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] |" in line
    assert "| seed byol: resnet1d_wang vs ecg1dcnn |" in table
    assert stats[("ecg1dcnn", "field", "byol", 0.1)]["mean"] == pytest.approx(0.7)


def test_experiment_compares_recipes_end_to_end(synthetic_cache_path, synthetic_root, tmp_path):
    from ecgfast.cli.experiment import build_parser, main
    from ecgfast.study import experiment

    argv = ["--data-root", str(synthetic_root), "--cache", str(synthetic_cache_path), "--arms", "supervised",
            "--seeds", "1", "2", "--label-fractions", "0.5", "--no-reference", "--finetune-epochs", "2",
            "--signal-length", "256", "--bootstrap", "10", "--out", str(tmp_path), "--no-progress",
            "--precision", "fp32", "--recipes", "seed", "field"]
    assert main(argv) == 0
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert sorted((r["recipe"], r["seed"]) for r in runs) == [("field", 1), ("field", 2), ("seed", 1), ("seed", 2)]
    field = torch.load(experiment.run_dir(tmp_path, "supervised", 1, 0.5, recipe="field") / "classifier.pt",
                       weights_only=True)
    assert field["spec"]["recipe"] == "field"
    assert (field["config"]["optimizer"], field["config"]["schedule"], field["config"]["warmup_epochs"]) == \
        ("adamw", "cosine", 1)
    seed = torch.load(experiment.run_dir(tmp_path, "supervised", 1, 0.5) / "classifier.pt", weights_only=True)
    assert seed["config"]["optimizer"] == "adam" and seed["spec"]["recipe"] == "seed"
    assert "supervised: field vs seed" in (tmp_path / "summary.md").read_text()
    assert (tmp_path / "axes.png").stat().st_size > 0
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--recipes", "fancy"])
