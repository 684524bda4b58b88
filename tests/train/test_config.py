"""The run configurations: each field declared once (flag, help, range, resume rule), the flags generated
from it, the resume check, and run files that replay a run (--config)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import tomllib
import warnings

import pytest
import torch

from ecgfast.base.errors import ConfigError
from ecgfast.cli.flags import (
    add_classifier_flags,
    add_flags,
    add_pretrain_flags,
    classifier_from_args,
    number,
    pretrain_from_args,
)
from ecgfast.train.config import (
    LOWER,
    MATCH,
    METHODS,
    ClassifierConfig,
    DataConfig,
    PretrainConfig,
    Range,
    RunConfig,
    flag_of,
    leaf_fields,
    read_run_file,
    resume_mismatches,
    run_file_path,
    run_file_values,
    to_toml,
    write_run_file,
)
from ecgfast.train.recipe import PARTS, apply_recipe

COMMANDS = [(PretrainConfig, m) for m in METHODS] + [(ClassifierConfig, m) for m in ("finetune", "supervised")]
REQUIRED = {"finetune": ["--ssl-checkpoint", "none"]}


def _parser(cls, command):
    p = argparse.ArgumentParser(prog=f"ecgfast {command}")
    (add_pretrain_flags if cls is PretrainConfig else add_classifier_flags)(p, command)
    return p


def _config(cls, command, argv):
    args = _parser(cls, command).parse_args(REQUIRED.get(command, []) + argv)
    return (pretrain_from_args if cls is PretrainConfig else classifier_from_args)(args, command)


@pytest.mark.parametrize("cls", [DataConfig, RunConfig, PretrainConfig, ClassifierConfig])
def test_every_field_declares_its_help_and_a_known_resume_rule(cls):
    for _, f in leaf_fields(cls):
        assert f.metadata.get("help", "").strip(), f"{cls.__name__}.{f.name} has no help"
        assert f.metadata["resume"] in ("match", "free", "lower")


def test_the_resume_rules_are_the_ones_pretraining_always_had():
    rules = {f.name: f.metadata["resume"] for _, f in leaf_fields(PretrainConfig)}
    assert {k for k, v in rules.items() if v == MATCH} == {
        "encoder", "method", "batch_size", "temperature", "projection_dim", "tau", "signal_length", "sampling_rate",
        "seed", "augment", "epochs", "crop_seconds", "resized_crop_min", "optimizer", "weight_decay", "schedule",
        "warmup_epochs", "recipe"}
    assert {k for k, v in rules.items() if v == LOWER} == {"lr"}


@pytest.mark.parametrize("cls,command", COMMANDS)
def test_no_flags_give_the_dataclass_defaults(cls, command):
    cfg = _config(cls, command, [])
    defaults = cls(**{f.name: command for f in dataclasses.fields(cls) if f.metadata.get("command")})
    expected = dataclasses.replace(defaults, out=cls.command_default(command).out)
    if cls is ClassifierConfig and command == "supervised":
        expected = dataclasses.replace(expected, encoder="ecg1dcnn")  # the flag's default: the seed's backbone
    assert cfg == expected == cls.command_default(command)
    cfg.validate()


@pytest.mark.parametrize("cls,command", COMMANDS)
def test_every_flag_round_trips_a_non_default_value(cls, command):
    """Each flag given a value other than its default reaches its field (and only it)."""
    base = _config(cls, command, []).flat()
    for owner, f in leaf_fields(cls):
        flag = flag_of(f)
        if flag is None or f.name not in base and f.name != "ssl_checkpoint":
            continue
        p = _parser(cls, command)
        if not any(flag in a.option_strings for a in p._actions):
            continue
        value, argv = _other_value(owner, f, base.get(f.name), flag)
        if argv is None:
            continue
        got = _config(cls, command, argv).flat()
        assert got[f.name] == value, (flag, got[f.name], value)
        changed = {k for k in base if got[k] != base[k]} - {f.name} - (set(PARTS) if f.name == "recipe" else set())
        implied = {"freeze_encoder"} if f.name == "probe" else set()  # --probe logistic: a frozen encoder
        assert changed == implied, (flag, changed)


def _other_value(owner, f, current, flag):
    m = f.metadata
    if m.get("switch"):
        return (m["switch"] == "on"), [flag]
    if m.get("choices"):
        other = next(c for c in m["choices"] if c != current)
        return other, [flag, str(other)]
    t = typing_base(owner, f.name)
    if f.name == "corpus":
        return ["a.json:2"], [flag, "a.json:2"]
    if f.name == "ssl_checkpoint":
        return "enc.pt", [flag, "enc.pt"]
    if f.name == "device":
        return "cpu", [flag, "cpu"]
    if t is int:
        value = (current or 1) + 1
        return value, [flag, str(value)]
    if t is float:
        value = 0.5 if current in (None, 1.0) else current / 2
        return value, [flag, repr(value)]
    value = "x/other.pt"
    return value, [flag, value]


def typing_base(owner, name):
    from ecgfast.train.config import field_types

    return field_types(owner)[name].base


def test_parse_time_and_validate_read_the_same_range():
    r = Range(2, note="(a batch needs negatives)")
    assert r.need() == ">= 2 (a batch needs negatives)" and not r.holds(1) and r.holds(2)
    assert Range(0, 1, low_open=True).need() == "in (0, 1]" and not Range(0).holds(math.nan)
    parse = number(int, (r,))
    with pytest.raises(argparse.ArgumentTypeError, match=r"must be >= 2 \(a batch needs negatives\), got 1"):
        parse("1")
    with pytest.raises(ConfigError, match=r"--batch-size 1: must be >= 2 \(a batch needs negatives\)"):
        PretrainConfig(batch_size=1).validate()
    with pytest.raises(ConfigError, match=r"--tau 1.5: must be in \(0, 1\)"):
        PretrainConfig(tau=1.5).validate()
    with pytest.raises(ConfigError, match="--lr nan: must be > 0"):
        ClassifierConfig(lr=math.nan).validate()


def test_method_specific_flags_stay_with_their_method():
    def options(cls, command):
        return {o for a in _parser(cls, command)._actions for o in a.option_strings}

    simclr, byol = options(PretrainConfig, "simclr"), options(PretrainConfig, "byol")
    finetune, supervised = options(ClassifierConfig, "finetune"), options(ClassifierConfig, "supervised")
    assert {"--temperature", "--projection-dim"} <= simclr - byol and "--tau" in byol - simclr
    assert {"--ssl-checkpoint", "--freeze-encoder", "--probe", "--layer-lr-decay"} <= finetune - supervised
    with pytest.raises(SystemExit):
        _parser(ClassifierConfig, "finetune").parse_args([])  # --ssl-checkpoint is required


def test_add_flags_adapts_a_flag_for_another_command():
    p = argparse.ArgumentParser()
    add_flags(p, DataConfig, skip=("workers",), defaults={"sampling_rate": None})
    a = p.parse_args([])
    assert a.sampling_rate is None and not hasattr(a, "workers") and a.data_root is not None


# -- resume --------------------------------------------------------------------------------
def test_resume_mismatches_follow_the_rules():
    cfg = PretrainConfig(lr=1e-3)
    saved = cfg.flat()
    assert resume_mismatches(saved, cfg) == []
    assert resume_mismatches({**saved, "lr": 1e-2, "precision": "bf16", "log_every": 3}, cfg) == []  # lower, free
    assert resume_mismatches({**saved, "lr": 1e-4}, cfg) == ["lr"]
    assert resume_mismatches({**saved, "batch_size": 16, "seed": 1, "method": "byol"}, cfg) == [
        "method", "seed", "batch_size"]
    old = {k: v for k, v in saved.items() if k not in ("encoder", "recipe", "optimizer", "schedule")}
    assert resume_mismatches(old, cfg) == []  # written before those settings: the seed's values


# -- run files -----------------------------------------------------------------------------
def test_toml_writer_round_trips_through_tomllib():
    values = {"a": 1, "b": -2.5e-07, "c": "quo\"te\\ and ünïcode\n", "d": True, "e": [], "f": ["x:1", "y"],
              "g": 256.0, "h": math.inf, "i": [1, 2]}
    assert tomllib.loads(to_toml(values, header="two\nlines")) == values
    with pytest.raises(TypeError):
        to_toml({"a": None})


@pytest.mark.parametrize("cls,command", COMMANDS)
def test_a_saved_run_file_replays_the_same_config(cls, command, tmp_path):
    argv = ["--out", str(tmp_path / "m.pt"), "--epochs", "3", "--seed", "7", "--recipe", "field", "--no-progress",
            "--lr", "0.01", "--crop-seconds", "2", "--compile"]
    if cls is PretrainConfig:
        argv += ["--augment", "no-mixup", "--corpus", "a.json:0.5", "--corpus", "b.json"]
    cfg = _config(cls, command, argv)
    path = write_run_file(cfg)
    assert path == run_file_path(cfg.out) == tmp_path / "m.run.toml"
    assert tomllib.loads(path.read_text()) == run_file_values(cfg)
    replay = _config(cls, command, ["--config", str(path)])
    assert replay.flat() == cfg.flat() and replay == cfg
    if cls is PretrainConfig:  # a list given on the command line replaces the file's
        assert _config(cls, command, ["--config", str(path), "--corpus", "c.json"]).corpus == ("c.json",)
    # flags win over the file, before or after --config
    for argv in (["--epochs", "5", "--config", str(path)], ["--config", str(path), "--epochs", "5"]):
        again = _config(cls, command, argv)
        assert again == apply_recipe(dataclasses.replace(cfg, epochs=5), cfg.recipe, lr=0.01, crop_seconds=2.0)


def test_run_files_in_json_and_errors_name_the_file(tmp_path, capsys):
    cfg = _config(PretrainConfig, "byol", ["--tau", "0.99", "--batch-size", "8"])
    j = tmp_path / "run.json"
    j.write_text(json.dumps(run_file_values(cfg)))
    assert _config(PretrainConfig, "byol", ["--config", str(j)]) == cfg
    assert "tau" not in run_file_values(_config(PretrainConfig, "simclr", []))  # not a SimCLR setting
    bad = tmp_path / "bad.toml"
    for text, message in [("epochs = [", "not a valid TOML file"), ("bogus = 1", "bogus: not a setting of"),
                          ('method = "simclr"', "a run file of another command than byol"),
                          ("[table]\nx = 1", "one flat table")]:
        bad.write_text(text)
        with pytest.raises(SystemExit):
            _config(PretrainConfig, "byol", ["--config", str(bad)])
        err = capsys.readouterr().err
        assert f"--config {bad}" in err and message in err, err
    bad.write_text('epochs = "three"')
    with pytest.raises(SystemExit):
        _config(PretrainConfig, "byol", ["--config", str(bad)])
    assert f"--config {bad}: --epochs 'three': expected an integer" in capsys.readouterr().err
    (tmp_path / "run.ini").write_text("epochs = 3")
    with pytest.raises(SystemExit):
        _config(PretrainConfig, "byol", ["--config", str(tmp_path / "run.ini")])
    assert "unknown run-file type .ini" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--config: cannot read .*missing.toml: no such file"):
        read_run_file(tmp_path / "missing.toml")


def test_config_with_an_ablation_name_is_augment_with_a_deprecation_note():
    with pytest.warns(FutureWarning, match="--config no-mixup: an augmentation ablation is now --augment no-mixup"):
        cfg = _config(PretrainConfig, "simclr", ["--config", "no-mixup"])
    assert cfg.augment == "no-mixup" == _config(PretrainConfig, "simclr", ["--augment", "no-mixup"]).augment
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _config(PretrainConfig, "simclr", ["--augment", "full", "--config", "no-mixup"]).augment == "full"


def test_a_tiny_run_replayed_from_its_run_file_writes_the_same_config(tiny_cache, tmp_path):
    from ecgfast.train_ssl_simclr import main as simclr_main

    tiny = ["--cache", str(tiny_cache), "--epochs", "1", "--batch-size", "32", "--signal-length", "256",
            "--no-progress", "--precision", "fp32", "--device", "cpu", "--seed", "3", "--temperature", "0.2"]
    assert simclr_main(tiny + ["--out", str(tmp_path / "a.pt")]) == 0
    run_file = tmp_path / "a.run.toml"
    assert run_file.is_file()
    assert simclr_main(["--config", str(run_file), "--out", str(tmp_path / "b.pt")]) == 0
    a, b = (torch.load(tmp_path / n, weights_only=True)["config"] for n in ("a.pt", "b.pt"))
    assert a.pop("out").endswith("a.pt") and b.pop("out").endswith("b.pt")
    assert a == b and a["temperature"] == 0.2 and a["seed"] == 3
    assert tomllib.loads((tmp_path / "b.run.toml").read_text())["out"].endswith("b.pt")


def test_yaml_run_files_where_pyyaml_is_installed(tmp_path):
    yaml = pytest.importorskip("yaml")
    cfg = _config(ClassifierConfig, "supervised", ["--epochs", "4", "--task", "rhythm"])
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(run_file_values(cfg)))
    assert _config(ClassifierConfig, "supervised", ["--config", str(path)]) == cfg


def test_print_config_prints_the_run_file_and_exits(capsys):
    cfg = _config(PretrainConfig, "simclr", ["--epochs", "2", "--recipe", "field"])
    with pytest.raises(SystemExit) as exc:
        _config(PretrainConfig, "simclr", ["--epochs", "2", "--recipe", "field", "--print-config"])
    assert exc.value.code == 0
    assert tomllib.loads(capsys.readouterr().out) == run_file_values(cfg)
