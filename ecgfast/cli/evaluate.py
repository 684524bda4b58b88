"""``ecgfast evaluate``: a classifier checkpoint on fold 10, with bootstrap CIs (ecgfast.eval.evaluate)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ecgfast.cli.boundary import run_command
from ecgfast.cli.types import non_negative_int


def build_parser(prog: str = "ecgfast evaluate") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog,
                                description="Evaluate a classifier checkpoint on fold 10, with bootstrap CIs.")
    p.add_argument("--checkpoint", required=True, type=Path, help="a classifier checkpoint")
    from ecgfast.cli.flags import add_data_flags, add_device_flag

    add_data_flags(p, skip=("workers",), defaults={"sampling_rate": None},
                   help={"sampling_rate": "default: the checkpoint's (a different one is refused)"})
    p.add_argument("--bootstrap", type=non_negative_int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    add_device_flag(p)
    p.add_argument("--robustness", action="store_true", help="also with added noise and masked spans")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    return p


def _evaluate(args) -> None:
    from ecgfast.base.checkpoint import atomic_write_text, checkpoint_spec, load_checkpoint
    from ecgfast.base.fs import check_writable
    from ecgfast.eval.evaluate import evaluate, format_report
    from ecgfast.train.config import DataConfig

    if args.json:
        check_writable(args.json)  # before the whole evaluation, not after it
    rate = args.sampling_rate or checkpoint_spec(load_checkpoint(args.checkpoint, kind="classifier"),
                                                  args.checkpoint)["sampling_rate"]
    data = DataConfig(args.data_root, args.cache, rate, args.skip_missing, skip_bad=args.skip_bad)
    r = evaluate(args.checkpoint, data, n_boot=args.bootstrap, seed=args.seed, robustness=args.robustness,
                 device=args.device)
    print(format_report(r))
    if args.json:
        atomic_write_text(args.json, json.dumps(r, indent=1))


def main(argv: list[str] | None = None, prog: str = "ecgfast evaluate", command: str = "evaluate") -> int:
    args = build_parser(prog).parse_args(argv)
    return run_command(command, _evaluate, args)


if __name__ == "__main__":
    sys.exit(main())
