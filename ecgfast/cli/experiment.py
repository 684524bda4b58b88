"""``ecgfast experiment``: every arm x seed x label fraction, with statistics (ecgfast.study.experiment).

The study itself (arms, axes, resuming, outputs) is described in ecgfast.study.experiment;
this module turns the flags into its ``ExperimentConfig`` and prints the summary table.
"""
from __future__ import annotations

import argparse
import sys

from ecgfast.cli.boundary import run_command
from ecgfast.cli.flags import add_flags
from ecgfast.study import experiment
from ecgfast.study.experiment import AXES, ExperimentConfig


def build_parser(prog: str = "ecgfast experiment") -> argparse.ArgumentParser:
    """The experiment's flags, every one from a field of ``ExperimentConfig`` (its data and run
    configs included; the run seed is per run, an axis, so it has no flag)."""
    p = argparse.ArgumentParser(prog=prog, description=experiment.__doc__.split("\n\n")[0])
    add_flags(p, ExperimentConfig, "experiment", skip=("seed",))
    return p


def from_args(a: argparse.Namespace) -> ExperimentConfig:
    return ExperimentConfig.from_args(a, "experiment")


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
