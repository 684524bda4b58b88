"""One home per checkpoint concept (issue 17): one reader, one spec for every format, one classifier loader,
one "does this state dict fit" check, one normaliser; checkpoints written before stay loadable."""
from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from checkpoint_helpers import make_checkpoint

from ecgfast import CLASSES, LEADS
from ecgfast.base.checkpoint import check_matches_cache, checkpoint_spec, load_checkpoint
from ecgfast.base.errors import CheckpointError
from ecgfast.models.pretrained import PretrainedClassifier, load_classifier, load_encoder

ROOT = Path(__file__).resolve().parents[2] / "ecgfast"


def _format_1(path: Path, kind: str = "classifier", drop=(), **config) -> Path:
    """A format-1 checkpoint (make_checkpoint's) with config keys ``drop`` removed and others set."""
    make_checkpoint(path, kind, seed=3, format_version=1)
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"] = {**{k: v for k, v in ckpt["config"].items() if k not in drop}, **config}
    torch.save(ckpt, path)
    return path


def _cache(rate=100, length=1000):
    return SimpleNamespace(path="c.h5", sampling_rate=rate, signal_length=length, leads=list(LEADS),
                           classes=list(CLASSES))


def _entry_points(path: Path):
    """Every way a command or the API reads a checkpoint's spec."""
    from ecgfast.eval.evaluate import load_classifier_checkpoint

    return {"checkpoint_spec": lambda: checkpoint_spec(load_checkpoint(path), path),
            "check_matches_cache": lambda: check_matches_cache(load_checkpoint(path), path, _cache()),
            "load_encoder": lambda: load_encoder(path).spec,
            "load_classifier": lambda: load_classifier(path).spec,
            "evaluate's loader": lambda: load_classifier_checkpoint(path)[0].spec}


def _specs(path: Path) -> dict:
    """What each entry point answers: rate, length, leads, encoder, recipe, normaliser."""
    keys = ("sampling_rate", "signal_length", "leads", "encoder", "recipe", "normalizer")
    out = {}
    for name, read in _entry_points(path).items():
        spec = read()
        out[name] = tuple(spec[k] for k in keys)
    return out


def test_format_1_without_a_rate_gets_one_answer_everywhere(tmp_path):
    """The old disagreement (one entry point assumed 100 Hz, one refused): now every entry point reads a
    format-1 file without config['sampling_rate'] as the seed's 100 Hz, 1000-sample window
    (docs/checkpoints.md), with the same leads, encoder, recipe and normaliser."""
    path = _format_1(tmp_path / "v1.pt", drop=("sampling_rate", "signal_length"))
    specs = _specs(path)
    first = specs["checkpoint_spec"]
    assert first[:5] == (100, 1000, list(LEADS), "ecg1dcnn", "seed")
    assert all(v == first for v in specs.values()), specs


def test_format_1_length_defaults_to_ten_seconds_everywhere(tmp_path):
    """A format-1 file with a rate and no length: 10 x rate samples through every entry point."""
    path = _format_1(tmp_path / "v1.pt", drop=("signal_length",), sampling_rate=100)
    specs = _specs(path)
    assert specs["checkpoint_spec"][:2] == (100, 1000)
    assert all(v == specs["checkpoint_spec"] for v in specs.values()), specs
    path500 = _format_1(tmp_path / "v1_500.pt", drop=("signal_length",), sampling_rate=500)
    assert checkpoint_spec(load_checkpoint(path500), path500)["signal_length"] == 5000


def test_bare_seed_encoder_file(tmp_path):
    """The seed's bare {"encoder": state_dict}: 100 Hz by every reader; it has no normaliser, so the loaders
    that run it refuse it naming that, while check_matches_cache (finetune's check) accepts a 100 Hz cache."""
    from ecgfast.models import ECGEncoder1DCNN

    path = tmp_path / "bare.pt"
    torch.save({"encoder": ECGEncoder1DCNN().state_dict()}, path)
    ckpt = load_checkpoint(path)
    assert checkpoint_spec(ckpt, path)["sampling_rate"] == 100 and checkpoint_spec(ckpt, path)["normalizer"] is None
    assert check_matches_cache(ckpt, path, _cache())["signal_length"] == 1000
    with pytest.raises(CheckpointError, match=rf"checkpoint {path}: no normaliser \(mean/std\) stored"):
        load_encoder(path)


@pytest.mark.parametrize("in_config", [False, True])
def test_format_1_classifier_loads_the_same_through_both_classifier_entry_points(tmp_path, in_config, ecg_batch):
    """evaluate's loader is load_classifier: the same weights, normaliser and probabilities, also for the
    format-1 variant that kept classes and normaliser inside config."""
    from ecgfast.eval.evaluate import load_classifier_checkpoint

    path = make_checkpoint(tmp_path / "v1.pt", "classifier", seed=5, format_version=1, v1_in_config=in_config)
    a = load_classifier(path)
    b, ckpt, norm = load_classifier_checkpoint(path)
    saved = torch.load(path, weights_only=True)
    stored_norm = saved.get("normalizer") or saved["config"]["normalizer"]
    assert norm.state_dict() == a.normalizer.state_dict()
    assert np.allclose(norm.state_dict()["mean"], stored_norm["mean"], rtol=1e-6, atol=1e-7)
    assert ckpt.keys() == saved.keys()
    for k, v in saved["classifier"].items():
        assert torch.equal(a.state_dict()[k], v) and torch.equal(b.state_dict()[k], v), k
    x = a.preprocess(ecg_batch, 100)
    assert torch.equal(a.predict_proba(x), b.predict_proba(x))


@pytest.mark.parametrize("format_version", [1, 2, 3])
def test_classifier_written_before_loads_as_an_ecg_classifier(tmp_path, format_version, ecg_batch):
    """A classifier checkpoint of the documented schema (ECGClassifier's state dict, as every release wrote it)
    loads into PretrainedClassifier, which is an ECGClassifier: same keys, same tensors, same logits."""
    from ecgfast.models import ECGClassifier, build_encoder

    path = make_checkpoint(tmp_path / "c.pt", "classifier", seed=6, format_version=format_version)
    state = torch.load(path, weights_only=True)["classifier"]
    model = load_classifier(path)
    assert isinstance(model, ECGClassifier)
    assert list(model.state_dict()) == list(state)
    ref = ECGClassifier(build_encoder("ecg1dcnn"), num_classes=len(CLASSES))
    ref.load_state_dict(state)
    ref.eval()
    x = model.preprocess(ecg_batch, 100)
    assert torch.equal(model(x), ref(x))


@pytest.mark.parametrize("name", ["ecg1dcnn", "resnet1d_wang", "xresnet1d50", "inception1d"])
def test_pretrained_classifier_keys_are_ecg_classifiers(name):
    """What a PretrainedClassifier would save is what training saves (no re-declared architecture)."""
    from ecgfast.models import ECGClassifier, build_encoder
    from ecgfast.train.spec import preprocessing_spec

    spec = preprocessing_spec(100, 1000, {"mean": [0.0], "std": [1.0], "per_lead": False}, encoder=name)
    spec = checkpoint_spec({"spec": spec})
    model = PretrainedClassifier(spec, list(CLASSES))
    ref = ECGClassifier(build_encoder(name), num_classes=len(CLASSES))
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in ref.state_dict().items()}


def test_one_fit_check_for_every_weight_loader(tmp_path, synthetic_encoder_of_another_backbone):
    """load_encoder and finetune's load_encoder_weights refuse weights of another backbone with the same
    message (one check, models.pretrained.load_state)."""
    from ecgfast.models import ECGClassifier, build_encoder
    from ecgfast.train.classifier import load_encoder_weights

    path = synthetic_encoder_of_another_backbone
    messages = []
    for load in (lambda: load_encoder(path),
                 lambda: load_encoder_weights(ECGClassifier(build_encoder("ecg1dcnn")), path)):
        with pytest.raises(CheckpointError) as err:
            load()
        messages.append(str(err.value))
    assert messages[0] == messages[1]
    assert f"checkpoint {path}: its encoder weights do not fit the ecg1dcnn encoder its spec names: they are " \
           "the weights of a inception1d encoder" in messages[0]


@pytest.fixture
def synthetic_encoder_of_another_backbone(tmp_path) -> Path:
    """An encoder checkpoint whose spec names ecg1dcnn but whose weights are an inception1d's."""
    path = make_checkpoint(tmp_path / "e.pt", "encoder", seed=7)
    other = make_checkpoint(tmp_path / "i.pt", "encoder", seed=7, encoder="inception1d")
    ckpt = torch.load(path, weights_only=True)
    ckpt["encoder"] = torch.load(other, weights_only=True)["encoder"]
    torch.save(ckpt, path)
    return path


@pytest.mark.parametrize("per_lead", [False, True])
def test_one_normaliser(tmp_path, per_lead, ecg_batch):
    """Preprocessing and the exported graph use the training's Normalizer: the same stats and the same bits
    as (x - mean) / std with float32 statistics, as training computes it."""
    from ecgfast.data import Normalizer
    from ecgfast.data.loader import normalize
    from ecgfast.deploy.export import ExportModule

    path = make_checkpoint(tmp_path / "e.pt", "encoder", seed=8, per_lead=per_lead)
    model = load_encoder(path)
    stored = torch.load(path, weights_only=True)["spec"]["normalizer"]
    shape = (1, -1, 1) if per_lead else (1, 1, 1)
    mean = torch.tensor(stored["mean"], dtype=torch.float32).view(shape)
    std = torch.tensor(stored["std"], dtype=torch.float32).view(shape)
    x = torch.from_numpy(ecg_batch)
    want = (x - mean) / std
    assert torch.equal(Normalizer.from_state_dict(stored)(x), want)
    assert torch.equal(model._pre.normalize(x), want) and torch.equal(normalize(x, mean, std), want)
    assert torch.equal(model.preprocess(ecg_batch, 100), want)
    module = ExportModule(model)
    assert torch.equal(module.mean, mean) and torch.equal(module.std, std)


def test_load_checkpoint_is_the_one_reader(tmp_path):
    """The format checks read_checkpoint made are load_checkpoint's, for every caller."""
    from ecgfast.base.checkpoint import FORMAT_VERSION

    path = make_checkpoint(tmp_path / "e.pt")
    ckpt = torch.load(path, weights_only=True)
    torch.save({**ckpt, "format_version": FORMAT_VERSION + 1}, tmp_path / "newer.pt")
    torch.save({**ckpt, "format": "someone-else"}, tmp_path / "other.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "none.pt")
    with pytest.raises(CheckpointError, match=f"format version {FORMAT_VERSION + 1}; this ecgfast reads 1 to"):
        load_checkpoint(tmp_path / "newer.pt", kind="encoder")
    with pytest.raises(CheckpointError, match="format 'someone-else' is not an ecgfast checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"none.pt is not an ecgfast checkpoint \(no 'encoder'"):
        load_checkpoint(tmp_path / "none.pt")
    assert load_checkpoint(path, kind="encoder")["kind"] == "encoder"


# The rooms these modules are in and what they may import (issue 17's layers: import only downward).
_BELOW = {"base": {"base"}, "data": {"base", "data"},
          "models": {"base", "data", "augment", "losses", "models"},
          "report": {"base", "data", "augment", "losses", "models", "report"}}


@pytest.mark.parametrize("module,room", [("base/checkpoint.py", "base"), ("models/pretrained.py", "models"),
                                         ("models/inference.py", "models"), ("models/heads.py", "models"),
                                         ("report/card.py", "report"), ("data/loader.py", "data")])
def test_checkpoint_and_model_modules_import_only_downward(module, room):
    """Every ecgfast import (top-level or inside a function) of these modules is of their room or one below."""
    tree = ast.parse((ROOT / module).read_text())
    rooms = set()
    for node in ast.walk(tree):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
            [a.name for a in node.names] if isinstance(node, ast.Import) else []
        rooms |= {n.split(".")[1] for n in names if n.startswith("ecgfast.")}
    allowed = _BELOW[room]
    assert rooms <= allowed, f"{module} imports {sorted(rooms - allowed)}, above {room}"
