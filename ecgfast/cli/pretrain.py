"""``ecgfast pretrain-simclr`` / ``ecgfast pretrain-byol``: self-supervised pretraining of the ECG encoder.

The engine is ecgfast.train.pretrain (``pretrain(PretrainConfig)``); this module turns the
flags into that config and prints where the encoder was saved.
"""
from __future__ import annotations

import argparse
import os
import sys

from ecgfast.cli.boundary import run_command

PREFIX = "pretrain-"


def build_parser(method: str, prog: str | None = None) -> argparse.ArgumentParser:
    from ecgfast.train.config import add_pretrain_flags

    p = argparse.ArgumentParser(prog=prog or f"ecgfast {PREFIX}{method}",
                                description=f"Self-supervised pretraining of the ECG encoder with {method.upper()}.")
    add_pretrain_flags(p, method)
    return p


def main(argv: list[str] | None = None, prog: str | None = None, command: str = "pretrain-simclr") -> int:
    from ecgfast.train.config import pretrain_from_args

    method = command.removeprefix(PREFIX)
    cfg = pretrain_from_args(build_parser(method, prog).parse_args(argv), method)

    def go() -> None:
        from ecgfast.train.pretrain import pretrain

        out = pretrain(cfg)
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"saved the encoder to {out}")

    return run_command(command, go)  # errors read 'ecgfast pretrain-simclr: error: ...'


if __name__ == "__main__":
    sys.exit(main())
