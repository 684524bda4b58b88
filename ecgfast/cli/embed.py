"""``ecgfast embed``: one representation per record from a trained encoder (ecgfast.deploy.embed).

The input flags here are shared with ``ecgfast predict`` (ecgfast.cli.predict).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ecgfast.cli.boundary import run_command
from ecgfast.cli.types import command_parser, positive_int


def add_input_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, type=Path, help="checkpoint file (.pt)")
    p.add_argument("--input", required=True, nargs="+", metavar="SRC",
                   help="HDF5 cache, PTB-XL folder, text file of WFDB record paths, WFDB record path(s), "
                        ".npy (N, 12, T) with --sampling-rate, or a corpus manifest .json")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda or cuda:N (default auto)")
    p.add_argument("--batch-size", type=positive_int, default=256, help="windows per forward pass (default 256)")
    p.add_argument("--sampling-rate", type=float, default=None,
                   help="Hz of a .npy input (required there); the rate to read a PTB-XL folder at")
    p.add_argument("--leads", nargs="+", default=None,
                   help="lead names of a .npy input's channels, in order (default: the model's order)")
    p.add_argument("--units", default="mV", help="units of a .npy input: V, mV or uV (default mV)")
    p.add_argument("--pad", action="store_true",
                   help="zero-pad records shorter than the model's window (default: refuse them)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    from ecgfast.models.layout import MEMORY_FORMATS

    p.add_argument("--memory-format", choices=MEMORY_FORMATS, default="auto",
                   help="layout of the encoder's convolutions (channels-last or contiguous; auto = the faster one "
                        "measured for the device); the results are the same up to rounding")
    from ecgfast.train.config import add_encoder_flag  # (cli/flags.py once H5's config lands)

    add_encoder_flag(p, None, "the backbone the checkpoint must hold (default: whichever it holds); another one "
                              "is refused, naming both")


def input_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of ``run_embed`` / ``run_predict`` given by ``add_input_arguments``'s flags."""
    return dict(device=args.device, batch_size=args.batch_size, sampling_rate=args.sampling_rate, leads=args.leads,
                units=args.units, pad=args.pad, progress=not args.no_progress, encoder=args.encoder,
                memory_format=args.memory_format)


def build_parser(prog: str = "ecgfast embed") -> argparse.ArgumentParser:
    from ecgfast.deploy import embed

    p = command_parser(prog, embed.__doc__)
    add_input_arguments(p)
    p.add_argument("--out", required=True, type=Path, help="output: .h5/.hdf5, or .npy (+ <stem>.ids.csv)")
    return p


def main(argv: list[str] | None = None, prog: str = "ecgfast embed", command: str = "embed") -> int:
    args = build_parser(prog).parse_args(argv)

    def body() -> None:
        from ecgfast.deploy.embed import _run_embed

        files, n, dim = _run_embed(args.checkpoint, args.input, args.out, **input_options(args))
        print(f"wrote {', '.join(map(str, files))}: {n} records x {dim}")

    return run_command(command, body)


if __name__ == "__main__":
    sys.exit(main())
