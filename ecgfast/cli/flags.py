"""The command-line side of the run configurations: flags generated from the config fields.

Every flag of a training command comes from one field of ``ecgfast.train.config`` (its name, help,
choices, range, the commands it belongs to): :func:`add_flags` declares them, the config's
``from_args`` reads them back. Parse-time checks use the same ranges as ``validate()``, so a bad
value fails with the flag named either way.

``--config FILE`` takes a run file (TOML or JSON; YAML only where PyYAML is installed), the one
every finished run writes beside its checkpoint (``OUT.run.toml``); the flags given with it win,
wherever they stand on the command line. The augmentation ablation, ``--config NAME`` before, is
``--augment NAME``; an ablation name given to ``--config`` still works, with a deprecation note.
"""
from __future__ import annotations

import argparse
import dataclasses
import warnings
from pathlib import Path

from ecgfast.base.errors import ConfigError
from ecgfast.cli.types import number
from ecgfast.models.backbones import DEFAULT_ENCODER, ENCODER_NAMES
from ecgfast.train.config import (
    AUGMENT_CONFIGS,
    ClassifierConfig,
    DataConfig,
    PretrainConfig,
    RunConfig,
    coerce,
    default_of,
    field_types,
    flag_of,
    has_flag,
    leaf_fields,
    read_run_file,
    run_file_values,
    to_toml,
    yaml_available,
)

GIVEN = "_flags_given"  # namespace attribute: the dests given explicitly on the command line


# -- actions that remember which flags were given (so a run file never overrides them) -------------
def _tracked(base: type) -> type:
    class Tracked(base):
        def __call__(self, parser, namespace, values, option_string=None):
            given = set(getattr(namespace, GIVEN, ()) or ())
            if isinstance(self, argparse._AppendAction) and self.dest not in given:
                setattr(namespace, self.dest, [])  # a repeated flag replaces a run file's list, not extends it
            super().__call__(parser, namespace, values, option_string)
            setattr(namespace, GIVEN, given | {self.dest})
    Tracked.__name__ = "Tracked" + base.__name__.lstrip("_")
    return Tracked


_STORE, _TRUE, _FALSE, _APPEND = (_tracked(a) for a in (argparse._StoreAction, argparse._StoreTrueAction,
                                                       argparse._StoreFalseAction, argparse._AppendAction))


def add_flags(p: argparse.ArgumentParser, cls, command: str | None = None, only=None, skip=(),
              help: dict | None = None, defaults: dict | None = None) -> None:
    """Add the flags of config class ``cls`` (nested data/run configs included) for ``command``: every
    field that has a flag and belongs to ``command``, or just those named in ``only``, minus ``skip``.
    ``help``/``defaults`` (field -> text/value) adapt a flag to a command that reuses it (the
    experiment). The dest of every flag is its field's name."""
    for owner, f in leaf_fields(cls):
        if not has_flag(f, command) or (only is not None and f.name not in only) or f.name in skip:
            continue
        if flag_of(f) in p._option_string_actions:  # declared by the command itself (same dest): keep its own
            continue
        p.add_argument(flag_of(f), **_argument(owner, f, command, (help or {}).get(f.name),
                                               (defaults or {}).get(f.name, dataclasses.MISSING)))


def _argument(owner, f, command, help_text, default) -> dict:
    m, ftype = f.metadata, field_types(owner)[f.name]
    kw = {"dest": f.name, "help": (help_text or m["help"]).replace("%", "%%")}
    if m.get("metavar"):
        kw["metavar"] = m["metavar"]
    if command in (m.get("required") or ()):
        kw["required"] = True
    elif m.get("part"):
        kw["default"] = argparse.SUPPRESS  # recipe parts: absent unless given (recipe.explicit_parts)
    else:
        kw["default"] = default_of(f, command) if default is dataclasses.MISSING else default
    if m.get("switch"):
        kw["action"] = _TRUE if m["switch"] == "on" else _FALSE
        return kw
    if ftype.sequence and m.get("nargs"):
        kw.update(action=_STORE, nargs=m["nargs"])  # --seeds 1 2 3
    elif ftype.sequence:
        kw.update(action=_APPEND, default=[])
    else:
        kw["action"] = _STORE
    if m.get("choices") is not None:
        kw["choices"] = m["choices"]
    if m.get("const") is not None:
        kw.update(nargs="?", const=m["const"])
    if ftype.base in (int, float):
        kw["type"] = number(ftype.base, m.get("range") or ())
    elif ftype.base is Path and not m.get("none_word"):
        kw["type"] = Path
    return kw


# -- --config: a run file, or (deprecated) an augmentation ablation ------------------------------------
class RunFileAction(argparse.Action):
    """``--config FILE``: the file's settings for every flag not given on the command line (flags after
    it override it anyway); ``--config ABLATION`` (a name of ``ecgfast.augment.CONFIGS``, never a file):
    ``--augment ABLATION``, with a deprecation note."""

    def __init__(self, *args, config_class=None, command=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.config_class, self.command = config_class, command

    def __call__(self, parser, namespace, value, option_string=None):
        setattr(namespace, self.dest, value)
        given = set(getattr(namespace, GIVEN, ()) or ())
        fields = {f.name: (owner, f) for owner, f in leaf_fields(self.config_class) if has_flag(f, self.command)}
        if value in AUGMENT_CONFIGS and "augment" in fields:
            warnings.warn(f"--config {value}: an augmentation ablation is now --augment {value} (--config takes "
                          "a run file)", FutureWarning, stacklevel=2)
            if "augment" not in given:
                namespace.augment = value
            return
        try:
            values = read_run_file(value)
        except ConfigError as exc:
            parser.error(str(exc))
        command_field = next((f.name for _, f in leaf_fields(self.config_class) if f.metadata.get("command")), None)
        if command_field in values:
            if values.pop(command_field) != self.command:
                parser.error(f"--config {value}: a run file of another command than {self.command}")
        unknown = sorted(set(values) - set(fields))
        if unknown:
            parser.error(f"--config {value}: {', '.join(unknown)}: not a setting of {parser.prog}")
        for k, v in values.items():
            owner, f = fields[k]
            try:
                coerce(field_types(owner)[k], f, v, f"--config {value}: ")  # a wrong type fails here, naming the file
            except ConfigError as exc:
                parser.error(str(exc))
            if k not in given:
                setattr(namespace, k, v)


def add_config_flag(p: argparse.ArgumentParser, cls, command: str | None = None) -> None:
    yaml = "YAML too: PyYAML is installed" if yaml_available() else "YAML only where PyYAML is installed: not here"
    p.add_argument("--config", action=RunFileAction, config_class=cls, command=command, default=None,
                   metavar="RUN_FILE",
                   help=f"replay a run file: TOML or JSON ({yaml}), e.g. the OUT.run.toml every finished run "
                        "writes beside its checkpoint; flags given with it override it. (An augmentation "
                        "ablation name here is deprecated: use --augment.)")
    p.add_argument("--print-config", action="store_true",
                   help="print this run's whole configuration as a run file (TOML) and exit, without running")


def _print_config(cfg, a: argparse.Namespace, command: str):
    """``cfg``; with ``--print-config``, its run file on stdout and exit 0 (Lightning's ``--print_config``)."""
    if getattr(a, "print_config", False):
        cfg.validate()
        print(to_toml(run_file_values(cfg, command)), end="")
        raise SystemExit(0)
    return cfg


# -- the training commands (names kept for ecgfast.cli.pretrain / cli.classifier) -----------------------
def add_pretrain_flags(p: argparse.ArgumentParser, method: str) -> None:
    add_flags(p, PretrainConfig, method)
    add_config_flag(p, PretrainConfig, method)


def pretrain_from_args(a: argparse.Namespace, method: str) -> PretrainConfig:
    return _print_config(PretrainConfig.from_args(a, method), a, method)


def add_classifier_flags(p: argparse.ArgumentParser, mode: str) -> None:
    """The flags of ``finetune`` (with its ``--ssl-checkpoint``, ``--freeze-encoder``, ``--probe``,
    ``--layer-lr-decay``) or ``supervised``."""
    add_flags(p, ClassifierConfig, mode)
    add_config_flag(p, ClassifierConfig, mode)


def classifier_from_args(a: argparse.Namespace, mode: str) -> ClassifierConfig:
    return _print_config(ClassifierConfig.from_args(a, mode), a, mode)


def add_data_flags(p: argparse.ArgumentParser, **adapt) -> None:
    """``--data-root``, ``--cache``, ``--sampling-rate``, ... (``adapt``: add_flags' only/skip/help/defaults)."""
    add_flags(p, DataConfig, **adapt)


def data_from_args(a: argparse.Namespace) -> DataConfig:
    return DataConfig.from_args(a)


def add_run_flags(p: argparse.ArgumentParser, only=None) -> None:
    """Device, precision, compile, seed, progress, memory format (or just those in ``only``)."""
    add_flags(p, RunConfig, only=only)


def add_device_flag(p: argparse.ArgumentParser) -> None:
    add_run_flags(p, only=("device",))


def run_from_args(a: argparse.Namespace) -> RunConfig:
    return RunConfig.from_args(a)


def add_encoder_flag(p: argparse.ArgumentParser, default: str | None = DEFAULT_ENCODER, help: str = "") -> None:
    """``--encoder NAME`` for commands outside the training configs (embed, export, the experiment)."""
    add_flags(p, PretrainConfig, only=("encoder",), defaults={"encoder": default},
              help={"encoder": help or f"the encoder (backbone): {', '.join(ENCODER_NAMES)} (default {default})"})


def add_task_flag(p: argparse.ArgumentParser) -> None:
    add_flags(p, ClassifierConfig, only=("task",))
