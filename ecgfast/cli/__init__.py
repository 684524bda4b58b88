"""The ``ecgfast`` command: one front for every entry point.

Each subcommand is a module with ``main(argv) -> int``; ``ecgfast X --help``
shows its flags. ``python -m ecgfast.train_ssl_simclr ...`` and
``ecgfast pretrain-simclr ...`` are the same program.
"""
from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "synth": ("ecgfast.data.synthetic", "write a synthetic PTB-XL in the real layout"),
    "cache": ("ecgfast.data.cache", "convert a PTB-XL folder into one HDF5 cache"),
    "corpus": ("ecgfast.cli.corpus", "build, inspect or stream pretraining corpora (CinC 2021, MIMIC-IV-ECG, CODE-15%, arrays)"),
    "info": ("ecgfast.data.info", "summarise a PTB-XL folder or cache: splits and labels"),
    "pretrain-simclr": ("ecgfast.train_ssl_simclr", "self-supervised pretraining with SimCLR"),
    "pretrain-byol": ("ecgfast.train_ssl_byol", "self-supervised pretraining with BYOL"),
    "finetune": ("ecgfast.train_finetune", "fine-tune or linear-probe a pretrained encoder"),
    "supervised": ("ecgfast.train_supervised", "the supervised baseline from random init"),
    "evaluate": ("ecgfast.evaluate", "evaluate a classifier checkpoint on fold 10"),
    "experiment": ("ecgfast.experiment", "every arm x seed x label fraction, with statistics"),
    "embed": ("ecgfast.deploy.embed", "one representation per record from a trained encoder"),
    "predict": ("ecgfast.deploy.predict", "class probabilities and labels per record from a classifier"),
    "export": ("ecgfast.deploy.export", "a checkpoint as TorchScript, torch.export or ONNX, preprocessing inside"),
    "demo": ("ecgfast.study.demo", "the whole job on a synthetic PTB-XL, end to end"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: ecgfast COMMAND [options]   (ecgfast COMMAND --help for its options)", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {desc}" for name, (_, desc) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from ecgfast import __version__

        print(f"ecgfast {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"ecgfast: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
