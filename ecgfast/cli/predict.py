"""``ecgfast predict``: class probabilities and labels per record from a classifier (ecgfast.deploy.predict)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ecgfast.cli.boundary import run_command
from ecgfast.cli.embed import add_input_arguments, input_options
from ecgfast.cli.types import command_parser


def build_parser(prog: str = "ecgfast predict") -> argparse.ArgumentParser:
    from ecgfast.deploy import predict

    p = command_parser(prog, predict.__doc__)
    add_input_arguments(p)
    p.add_argument("--out", required=True, type=Path, help="output csv: id, p_<class>..., y_<class>...")
    return p


def main(argv: list[str] | None = None, prog: str = "ecgfast predict", command: str = "predict") -> int:
    args = build_parser(prog).parse_args(argv)

    def body() -> None:
        from ecgfast.deploy.predict import run_predict

        out, n = run_predict(args.checkpoint, args.input, args.out, **input_options(args))
        print(f"wrote {out}: {n} records")

    return run_command(command, body)


if __name__ == "__main__":
    sys.exit(main())
