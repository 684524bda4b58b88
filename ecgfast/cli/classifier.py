"""``ecgfast finetune`` / ``ecgfast supervised``: train a classifier on PTB-XL (ecgfast.train.classifier).

``finetune`` starts from a pretrained encoder (``--freeze-encoder``: a linear probe);
``supervised`` is the same classifier from random initialisation.
"""
from __future__ import annotations

import argparse
import sys

from ecgfast.cli.boundary import run_command

DESCRIPTIONS = {
    "finetune": "Fine-tune (or, with --freeze-encoder, linear-probe) a pretrained encoder on a fraction of the labels.",
    "supervised": "The supervised baseline: the same classifier from random initialisation.",
}


def build_parser(mode: str, prog: str | None = None) -> argparse.ArgumentParser:
    from ecgfast.train.config import add_classifier_flags

    p = argparse.ArgumentParser(prog=prog or f"ecgfast {mode}", description=DESCRIPTIONS[mode])
    if mode == "finetune":
        p.add_argument("--ssl-checkpoint", required=True,
                       help="encoder checkpoint of a pretraining run; 'none' for a random-init encoder")
        p.add_argument("--freeze-encoder", action="store_true", help="train the linear head only (probe)")
    add_classifier_flags(p, mode)
    return p


def main(argv: list[str] | None = None, prog: str | None = None, command: str = "finetune") -> int:
    from ecgfast.train.config import classifier_from_args

    cfg = classifier_from_args(build_parser(command, prog).parse_args(argv), command)

    def go() -> None:
        from ecgfast.base.checkpoint import load_checkpoint
        from ecgfast.train.classifier import train

        out = train(cfg)
        ckpt = load_checkpoint(out, kind="classifier")
        print(f"saved the classifier to {out} (best fold-9 macro AUROC {ckpt['val_macro_auroc']:.4f})")

    return run_command(command, go)


if __name__ == "__main__":
    sys.exit(main())
