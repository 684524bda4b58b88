import copy
import json

import numpy as np
import pytest
import torch

from ecgfast.eval.evaluate import evaluate
from ecgfast.eval.evaluate import load_classifier_checkpoint as load_classifier
from ecgfast.models import ECGEncoder1DCNN
from ecgfast.models.inference import predict
from ecgfast.train_finetune import main as finetune_main
from ecgfast.train_supervised import main as supervised_main


@pytest.fixture(scope="module")
def supervised_run(synthetic_cache_path, tmp_path_factory):
    """A supervised run, with what it held in memory: the checkpoint dict as handed to the writer
    (deep-copied before it is written) and what ``train_classifier`` returned (best state, fold-9
    probabilities of the best epoch)."""
    import ecgfast.train.classifier as classifier

    out = tmp_path_factory.mktemp("sup") / "supervised.pt"
    seen = {}

    def save_spy(obj, path, _real=classifier.atomic_save):
        seen["saved"] = copy.deepcopy(obj)
        return _real(obj, path)

    def train_spy(*args, _real=classifier.train_classifier, **kwargs):
        seen["trained"] = result = _real(*args, **kwargs)
        seen["val_idx"] = np.asarray(args[3])
        return result

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(classifier, "atomic_save", save_spy)
        mp.setattr(classifier, "train_classifier", train_spy)
        assert supervised_main(["--cache", str(synthetic_cache_path), "--label-fraction", "1.0", "--epochs", "12",
                                "--batch-size", "32", "--out", str(out), "--no-progress"]) == 0
    return out, seen


@pytest.fixture(scope="module")
def supervised_ckpt(supervised_run):
    return supervised_run[0]


def test_trained_model_is_well_above_chance_on_fold_10(supervised_ckpt, synthetic_cache_path):
    """Chance is 0.5. Fold 10 of the 400-record fixture has ~40 labelled records, where the bootstrap
    SE of macro AUROC is ~0.03-0.04: a bar of 0.75 sits > 6 SE above chance, and a learnt model
    (0.85-0.95 here) clears it with room, while a broken pipeline (labels shuffled, wrong fold,
    un-normalised input) does not."""
    r = evaluate(supervised_ckpt, cache_path=synthetic_cache_path, n_boot=300)
    assert r["macro_auroc"] > 0.75
    assert r["ci95"]["macro_auroc"][0] > 0.6


def test_checkpoint_round_trips(supervised_run, synthetic_cache_path):
    """What is loaded from the file is the model that was in memory when it was saved: the same
    tensors, thresholds and normaliser, and the same predictions as that model."""
    from ecgfast.data import Normalizer, open_cache
    from ecgfast.models import ECGClassifier

    path, seen = supervised_run
    model, ckpt, norm = load_classifier(path)
    assert ckpt["classes"] == ["CD", "HYP", "MI", "NORM", "STTC"]
    assert ckpt["config"]["label_fraction"] == 1.0 and ckpt["config"]["mode"] == "supervised"
    # the stored best state is the one selected on fold 9
    assert ckpt["val_macro_auroc"] == pytest.approx(max(h["val_macro_auroc"] for h in ckpt["history"]))
    saved = seen["saved"]
    best_state = seen["trained"][0]  # train_classifier's best weights, in memory
    assert set(model.state_dict()) == set(best_state) == set(saved["classifier"])
    for k, v in model.state_dict().items():
        assert torch.equal(v, best_state[k]) and torch.equal(v, saved["classifier"][k]), k
    assert ckpt["thresholds"] == saved["thresholds"] and ckpt["normalizer"] == saved["normalizer"]
    assert norm.state_dict() == saved["normalizer"]
    in_memory = ECGClassifier(num_classes=5)
    in_memory.load_state_dict(best_state)
    in_memory.eval()
    cache = open_cache(synthetic_cache_path)
    idx = cache.split_indices("test")[:16]
    mem_norm = Normalizer.from_state_dict(saved["normalizer"])
    np.testing.assert_array_equal(predict(model, cache, idx, norm, 1000),
                                  predict(in_memory, cache, idx, mem_norm, 1000))


def _best_f1(y, p):
    """Brute force: the best F1 over every threshold ``p >= t`` with t one of the scores."""
    from sklearn.metrics import f1_score

    return max(f1_score(y, p >= t, zero_division=0) for t in np.unique(p))


def test_fold9_thresholds_maximise_f1_on_the_best_epochs_fold9_predictions(supervised_run, synthetic_cache_path):
    """The checkpoint's thresholds are, per class, a threshold reaching the best F1 (sklearn's
    f1_score, brute force over every score) of the selected epoch's fold-9 probabilities; and
    those probabilities are the saved model's predictions on fold 9."""
    from sklearn.metrics import f1_score

    from ecgfast.data import open_cache

    path, seen = supervised_run
    model, ckpt, norm = load_classifier(path)
    cache = open_cache(synthetic_cache_path)
    val_idx = seen["val_idx"]
    np.testing.assert_array_equal(val_idx, cache.split_indices("val", labelled_only=True))
    assert (cache.folds[val_idx] == 9).all()
    y, p_val = cache.labels[val_idx], seen["trained"][3]
    assert len(ckpt["thresholds"]) == 5
    for j, t in enumerate(ckpt["thresholds"]):
        assert 0 < y[:, j].sum() < len(y)  # every class has positives and negatives on fold 9 here
        got = f1_score(y[:, j], p_val[:, j] >= t, zero_division=0)
        assert got == pytest.approx(_best_f1(y[:, j], p_val[:, j]), abs=1e-12), ckpt["classes"][j]
    length = ckpt["config"]["signal_length"]
    again = predict(model, cache, val_idx, norm, length, ckpt["config"]["precision"])
    np.testing.assert_allclose(again, p_val, rtol=1e-5, atol=1e-6)


def test_best_state_is_a_copy_not_a_live_reference(synthetic_cache_path):
    from ecgfast.data import Normalizer, open_cache
    from ecgfast.models import ECGClassifier
    from ecgfast.train.classifier import train_classifier
    from ecgfast.train.config import ClassifierConfig, RunConfig

    cache = open_cache(synthetic_cache_path)
    model = ECGClassifier()
    cfg = ClassifierConfig(run=RunConfig(seed=0, progress=False), epochs=2, batch_size=32, signal_length=256)
    best, _, _, p_val = train_classifier(model, cache, cache.split_indices("train", True)[:64],
                                         cache.split_indices("val", True), Normalizer(0.0, 1.0), cfg, False)
    assert p_val.shape == (len(cache.split_indices("val", True)), 5)
    live = model.state_dict()
    assert all(best[k].data_ptr() != live[k].data_ptr() for k in live)


def test_finetune_and_probe_from_an_ssl_checkpoint(synthetic_cache_path, tmp_path):
    enc = tmp_path / "enc.pt"
    torch.save({"encoder": ECGEncoder1DCNN().state_dict()}, enc)
    for flags in ([], ["--freeze-encoder"]):
        out = tmp_path / f"ft{len(flags)}.pt"
        assert finetune_main(["--ssl-checkpoint", str(enc), "--cache", str(synthetic_cache_path), "--epochs", "2",
                              "--label-fraction", "0.5", "--out", str(out), "--no-progress", *flags]) == 0
        ckpt = torch.load(out, weights_only=True)
        assert ckpt["config"]["freeze_encoder"] == bool(flags)
        if flags:  # a linear probe leaves the encoder as it was
            saved = {k[len("encoder."):]: v for k, v in ckpt["classifier"].items() if k.startswith("encoder.")}
            orig = torch.load(enc, weights_only=True)["encoder"]
            assert all(torch.equal(saved[k], orig[k]) for k in orig)


def test_finetune_refuses_a_wrong_shape_encoder(synthetic_cache_path, tmp_path, capsys):
    enc = tmp_path / "narrow.pt"
    torch.save({"encoder": ECGEncoder1DCNN(width=32).state_dict()}, enc)
    assert finetune_main(["--ssl-checkpoint", str(enc), "--cache", str(synthetic_cache_path),
                          "--out", str(tmp_path / "x.pt"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert str(enc) in err and "shape mismatch: features.0.block.0.weight (32, 12, 11) vs (64, 12, 11)" in err
    bad = tmp_path / "nokey.pt"
    torch.save({"model": {}}, bad)
    assert finetune_main(["--ssl-checkpoint", str(bad), "--cache", str(synthetic_cache_path),
                          "--out", str(tmp_path / "x.pt"), "--no-progress"]) == 1
    assert "is not an ecgfast checkpoint, but this command needs a pretraining run's output" in capsys.readouterr().err


@pytest.mark.parametrize("loss", ["focal", "weighted", "class_balanced"])
def test_losses_and_oversampling_train(synthetic_cache_path, tmp_path, monkeypatch, loss):
    """The flags reach the training loop (the losses' and the sampler's values are tested in
    tests/train/test_classifier_losses.py): the loss built is the one asked for, on the training
    labels, and every epoch trains on an oversampled draw."""
    import ecgfast.train.classifier as classifier

    calls = {"loss": [], "oversample": 0}
    real_loss, real_oversample = classifier.make_loss, classifier.oversample

    def loss_spy(kind, labels, *args):
        calls["loss"].append((kind, len(labels)))
        return real_loss(kind, labels, *args)

    def oversample_spy(indices, labels, rng):
        calls["oversample"] += 1
        return real_oversample(indices, labels, rng)

    monkeypatch.setattr(classifier, "make_loss", loss_spy)
    monkeypatch.setattr(classifier, "oversample", oversample_spy)
    out = tmp_path / f"{loss}.pt"
    assert supervised_main(["--cache", str(synthetic_cache_path), "--loss", loss, "--sampling", "oversample",
                            "--epochs", "2", "--signal-length", "256", "--out", str(out), "--no-progress"]) == 0
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["config"]["loss"] == loss and ckpt["config"]["sampling"] == "oversample"
    assert calls["loss"] == [(loss, ckpt["config"]["n_train"])] and calls["oversample"] == 2


def test_evaluate_cli_writes_json(supervised_ckpt, synthetic_cache_path, tmp_path, capsys):
    from ecgfast.evaluate import main

    out = tmp_path / "eval.json"
    assert main(["--checkpoint", str(supervised_ckpt), "--cache", str(synthetic_cache_path), "--json", str(out),
                 "--bootstrap", "100", "--robustness"]) == 0
    r = json.loads(out.read_text())
    assert set(r["per_class"]) == {"CD", "HYP", "MI", "NORM", "STTC"}
    assert r["ci95"]["macro_auroc"][0] <= r["macro_auroc"] <= r["ci95"]["macro_auroc"][1]
    assert set(r["robustness_macro_auroc"]) == {"noise=0.05", "noise=0.1", "noise=0.2", "mask=0.1", "mask=0.25"}
    out_text = capsys.readouterr().out
    assert "macro_auroc" in out_text and "labelled records, task superdiagnostic" in out_text
