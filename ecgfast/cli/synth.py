"""``ecgfast synth``: write a synthetic PTB-XL in the real layout (ecgfast.data.synthetic), or another
corpus layout (ecgfast.data.sources.synthetic)."""
from __future__ import annotations

import sys
from pathlib import Path

from ecgfast.cli.boundary import run_command
from ecgfast.cli.types import command_parser

LAYOUTS = ["ptbxl", "cinc2021", "mimic-iv-ecg", "code15", "numpy"]


def build_parser(prog: str = "ecgfast synth"):
    p = command_parser(prog, __doc__, description="A synthetic PTB-XL in the real layout.")
    p.add_argument("--layout", default="ptbxl", choices=LAYOUTS,
                   help="which corpus layout to write (default ptbxl; the others: see ecgfast.data.sources.synthetic)")
    p.add_argument("--out", required=True, type=Path, help="folder to write (created)")
    p.add_argument("--records", type=int, default=2000, help="number of records (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sampling-rates", type=int, nargs="+", default=[100, 500], choices=[100, 500])
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    return p


def _synth(args) -> None:
    if args.layout != "ptbxl":
        from ecgfast.data.sources.synthetic import write_layout

        summary = write_layout(args.layout, args.out, args.records, args.seed)
        print(f"wrote a synthetic {args.layout} corpus to {args.out}: {summary}")
        return
    from ecgfast.data.metadata import load_metadata
    from ecgfast.data.synthetic import write_synthetic_ptbxl

    write_synthetic_ptbxl(args.out, args.records, args.seed, args.sampling_rates, workers=args.workers)
    meta = load_metadata(args.out)
    print(f"wrote {len(meta)} records to {args.out} ({', '.join(map(str, args.sampling_rates))} Hz); "
          f"labels: {meta.label_counts()}, unlabelled: {int((~meta.has_label).sum())}")


def main(argv: list[str] | None = None, prog: str = "ecgfast synth", command: str = "synth") -> int:
    args = build_parser(prog).parse_args(argv)
    return run_command(command, _synth, args)


if __name__ == "__main__":
    sys.exit(main())
