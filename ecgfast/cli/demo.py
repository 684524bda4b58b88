"""``ecgfast demo``: the whole job on a synthetic PTB-XL, end to end, on a laptop-sized budget.

Writes a synthetic PTB-XL, caches it, pretrains SimCLR, fine-tunes it on 10 %
of the labels, trains the supervised baseline and the random-init linear probe
on the same labels (plus the 100 %-label supervised reference), evaluates each on
fold 10 and prints the comparison table and the wall time of every stage
(ecgfast.study.demo).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ecgfast.cli.boundary import run_command
from ecgfast.cli.types import positive_int, unit_fraction


def build_parser(prog: str = "ecgfast demo") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0].split(": ", 1)[-1])
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    p.add_argument("--records", type=positive_int, default=3000, help="synthetic records (default 3000)")
    p.add_argument("--seeds", type=int, nargs="+", default=[42])
    p.add_argument("--pretrain-epochs", type=positive_int, default=25)
    p.add_argument("--finetune-epochs", type=positive_int, default=25)
    p.add_argument("--label-fraction", type=unit_fraction, default=0.1)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument("--no-progress", action="store_true")
    return p


def _demo(args) -> None:
    from ecgfast.study.demo import run_demo

    table, timings = run_demo(args.out, args.records, tuple(args.seeds), args.pretrain_epochs, args.finetune_epochs,
                              args.label_fraction, args.device, progress=not args.no_progress)
    print("\n" + table)
    print("\nwall time per stage:")
    for k, v in timings.items():
        print(f"  {k:<40} {v:7.1f} s")
    print(f"\nresults, plots and checkpoints in {args.out}")


def main(argv: list[str] | None = None, prog: str = "ecgfast demo", command: str = "demo") -> int:
    args = build_parser(prog).parse_args(argv)
    return run_command(command, _demo, args)


if __name__ == "__main__":
    sys.exit(main())
