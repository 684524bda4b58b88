"""The ``ecgfast`` command: one front for every entry point (the command wing).

Every command is a module here with ``main(argv=None, prog=..., command=...) -> int``: it
parses argv, calls the library, prints the result, and runs behind the one error boundary
(:mod:`ecgfast.cli.boundary`). ``ecgfast X --help`` shows its flags. The library modules
below never parse argv or print.

The ``python -m ecgfast.train_ssl_simclr`` style names kept from before are aliases of
commands, listed in ``ALIASES``; ``python -m ALIAS`` and ``ecgfast COMMAND`` are the same
program, and each ``--help`` shows the name it was called by.
"""
from __future__ import annotations

import importlib
import sys

# command -> (the cli module holding its main, one line for ``ecgfast --help``)
COMMANDS = {
    "synth": ("ecgfast.cli.synth", "write a synthetic PTB-XL in the real layout"),
    "cache": ("ecgfast.cli.cache", "convert a PTB-XL folder into one HDF5 cache"),
    "corpus": ("ecgfast.cli.corpus",
               "build, inspect or stream pretraining corpora (CinC 2021, MIMIC-IV-ECG, CODE-15%, arrays)"),
    "info": ("ecgfast.cli.info", "summarise a PTB-XL folder or cache: splits and labels"),
    "pretrain-simclr": ("ecgfast.cli.pretrain", "self-supervised pretraining with SimCLR"),
    "pretrain-byol": ("ecgfast.cli.pretrain", "self-supervised pretraining with BYOL"),
    "finetune": ("ecgfast.cli.classifier", "fine-tune or linear-probe a pretrained encoder"),
    "supervised": ("ecgfast.cli.classifier", "the supervised baseline from random init"),
    "evaluate": ("ecgfast.cli.evaluate", "evaluate a classifier checkpoint on fold 10"),
    "experiment": ("ecgfast.cli.experiment", "every arm x seed x label fraction, with statistics"),
    "embed": ("ecgfast.cli.embed", "one representation per record from a trained encoder"),
    "predict": ("ecgfast.cli.predict", "class probabilities and labels per record from a classifier"),
    "export": ("ecgfast.cli.export", "a checkpoint as TorchScript, torch.export or ONNX, preprocessing inside"),
    "demo": ("ecgfast.cli.demo", "the whole job on a synthetic PTB-XL, end to end"),
}

# ``python -m MODULE`` aliases -> the command they run (each MODULE is a shim calling alias_main)
ALIASES = {
    "ecgfast.train_ssl_simclr": "pretrain-simclr",
    "ecgfast.train_ssl_byol": "pretrain-byol",
    "ecgfast.train_finetune": "finetune",
    "ecgfast.train_supervised": "supervised",
    "ecgfast.evaluate": "evaluate",
    "ecgfast.experiment": "experiment",
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: ecgfast COMMAND [options]   (ecgfast COMMAND --help for its options)", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {desc}" for name, (_, desc) in COMMANDS.items()]
    return "\n".join(lines)


def run(command: str, argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run ``command`` (a key of COMMANDS) on ``argv``; ``prog`` is the name its usage shows."""
    module = importlib.import_module(COMMANDS[command][0])
    return int(module.main(argv, prog=prog or f"ecgfast {command}", command=command) or 0)


def alias_main(module_name: str):
    """The ``main(argv=None) -> int`` of the alias module ``module_name`` (a key of ALIASES)."""
    command = ALIASES[module_name]

    def main(argv: list[str] | None = None) -> int:
        return run(command, argv, prog=f"python -m {module_name}")

    main.__doc__ = f"``python -m {module_name}``: an alias of ``ecgfast {command}``."
    return main


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
    return run(name, rest)


if __name__ == "__main__":
    sys.exit(main())
