"""``ecgfast export``: a checkpoint as TorchScript, torch.export or ONNX, preprocessing inside
(ecgfast.deploy.export)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ecgfast.cli.boundary import run_command
from ecgfast.cli.types import command_parser


def build_parser(prog: str = "ecgfast export") -> argparse.ArgumentParser:
    from ecgfast.deploy import export
    from ecgfast.train.config import add_encoder_flag

    p = command_parser(prog, export.__doc__)
    p.add_argument("--checkpoint", required=True, type=Path, help="encoder or classifier checkpoint")
    p.add_argument("--format", required=True, choices=export.FORMATS,
                   help="torchscript, exported (torch.export) or onnx")
    p.add_argument("--out", required=True, type=Path, help="output file (.pt, .pt2, .onnx by convention)")
    p.add_argument("--input-length", type=int, default=None,
                   help="samples per lead of the exported model's input (default: the trained length)")
    p.add_argument("--input-leads", nargs="+", default=None,
                   help="lead order of the exported model's input (default: the trained order)")
    p.add_argument("--crop", choices=("first", "center"), default="first",
                   help="window kept of a longer input (default first, as training)")
    add_encoder_flag(p, None, "the backbone the checkpoint must hold (default: whichever it holds); another one "
                              "is refused, naming both")
    return p


def main(argv: list[str] | None = None, prog: str = "ecgfast export", command: str = "export") -> int:
    args = build_parser(prog).parse_args(argv)

    def body() -> None:
        from ecgfast.deploy.export import export_model

        out, meta = export_model(args.checkpoint, args.format, args.out, input_length=args.input_length,
                                 input_leads=args.input_leads, crop=args.crop, return_metadata=True,
                                 encoder=args.encoder)
        i = meta["input"]
        print(f"wrote {out} ({args.format}, {meta['encoder']}): input float32 {tuple(i['shape'])} in mV at "
              f"{i['sampling_rate']} Hz, leads {' '.join(i['leads'])}; output {meta['output']}")

    return run_command(command, body)


if __name__ == "__main__":
    sys.exit(main())
