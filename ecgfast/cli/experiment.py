"""``ecgfast experiment``: every arm x seed x label fraction, with statistics (ecgfast.study.experiment).

The study itself (arms, axes, resuming, outputs) is described in ecgfast.study.experiment;
this module turns the flags into its ``ExperimentConfig`` and prints the summary table.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ecgfast import TASKS
from ecgfast.cli.boundary import run_command
from ecgfast.cli.types import non_negative_int, positive_int, unit_fraction
from ecgfast.study import experiment
from ecgfast.study.experiment import ARMS, AXES, DEFAULT_RECIPE, ExperimentConfig
from ecgfast.train.recipe import RECIPES


def build_parser(prog: str = "ecgfast experiment") -> argparse.ArgumentParser:
    from ecgfast.models.backbones import DEFAULT_ENCODER, ENCODER_NAMES
    from ecgfast.train.config import add_data_flags, add_encoder_flag, add_task_flag

    p = argparse.ArgumentParser(prog=prog, description=experiment.__doc__.split("\n\n")[0])
    add_data_flags(p)
    p.add_argument("--arms", nargs="+", choices=ARMS, default=["simclr", "byol", "supervised", "random-init-probe"])
    p.add_argument("--seeds", nargs="+", type=int, default=[42, 52, 62])
    p.add_argument("--label-fractions", nargs="+", type=unit_fraction, default=[0.01, 0.05, 0.1, 0.25, 1.0])
    p.add_argument("--no-reference", action="store_true", help="skip the 100 %%-label supervised reference")
    p.add_argument("--pretrain-epochs", type=positive_int, default=20)
    p.add_argument("--pretrain-batch-size", type=positive_int, default=256)
    p.add_argument("--finetune-epochs", type=positive_int, default=30)
    p.add_argument("--finetune-batch-size", type=positive_int, default=64)
    p.add_argument("--probe-epochs", type=positive_int, default=100,
                   help="epochs of the linear head on frozen features")
    p.add_argument("--signal-length", type=positive_int, default=1000)
    add_task_flag(p)
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument("--compile", choices=["auto", "on", "off"], default="auto")
    p.add_argument("--bootstrap", type=non_negative_int, default=1000)
    p.add_argument("--out", type=Path, default=Path("runs/experiment"))
    p.add_argument("--no-progress", action="store_true")
    add_encoder_flag(p, help=f"the encoder (backbone) of every arm: {', '.join(ENCODER_NAMES)} (default "
                             f"{DEFAULT_ENCODER}); --encoders compares several")
    p.add_argument("--encoders", nargs="+", choices=ENCODER_NAMES, default=None, metavar="NAME",
                   help=f"backbones to compare (an axis of the study): some of {', '.join(ENCODER_NAMES)}")
    p.add_argument("--recipes", nargs="+", choices=RECIPES, default=[DEFAULT_RECIPE], metavar="NAME",
                   help=f"recipes to compare (an axis): some of {', '.join(RECIPES)} (default {DEFAULT_RECIPE}); "
                        "each applies to pretraining and to the classifiers (docs/recipes.md)")
    p.add_argument("--tasks", nargs="+", choices=TASKS, default=None, metavar="NAME",
                   help=f"PTB-XL tasks to compare (an axis): some of {', '.join(TASKS)} (default: --task)")
    return p


def from_args(a: argparse.Namespace) -> ExperimentConfig:
    from ecgfast.train.config import RunConfig, data_from_args

    run = RunConfig(a.device, a.precision, a.compile, 0, not a.no_progress)
    return ExperimentConfig(data=data_from_args(a), run=run, out=a.out, arms=tuple(a.arms), seeds=tuple(a.seeds),
                            label_fractions=tuple(a.label_fractions),
                            reference=not a.no_reference, pretrain_epochs=a.pretrain_epochs,
                            pretrain_batch_size=a.pretrain_batch_size, finetune_epochs=a.finetune_epochs,
                            finetune_batch_size=a.finetune_batch_size, probe_epochs=a.probe_epochs,
                            signal_length=a.signal_length, bootstrap=a.bootstrap, encoder=a.encoder, task=a.task,
                            encoders=tuple(a.encoders or ()), recipes=tuple(a.recipes), tasks=tuple(a.tasks or ()))


def main(argv: list[str] | None = None, prog: str = "ecgfast experiment", command: str = "experiment") -> int:
    cfg = from_args(build_parser(prog).parse_args(argv))

    def go() -> None:
        print(experiment.run(cfg))
        extra = ", axes.png" if any(len(cfg.axis(n)) > 1 for n in AXES) else ""
        print(f"\nresults in {cfg.out}: results.csv, results.json, summary.md, roc_curves.png, "
              f"auroc_vs_fraction.png{extra}")

    return run_command(command, go)


if __name__ == "__main__":
    sys.exit(main())
