"""``ecgfast info PATH``: splits and labels of a PTB-XL folder or a cache.

For a cache it also prints what was skipped at build (missing / bad records),
its format version and the start of its fingerprint digest. Bad input (a csv,
a corrupted or old-format cache) is one ``error:`` line and exit status 1.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ecgfast.cli.boundary import run_command
from ecgfast.cli.types import command_parser


def build_parser(prog: str = "ecgfast info"):
    p = command_parser(prog, __doc__)
    p.add_argument("path", type=Path, help="a PTB-XL folder or an ecgfast cache file")
    return p


def _info(path: Path) -> None:
    from ecgfast.data.info import summarize

    if path.is_dir():
        from ecgfast.data.metadata import load_metadata

        meta = load_metadata(path)
        print(f"PTB-XL folder {path} (version {meta.version}): {len(meta)} records")
        print(summarize(meta.folds, meta.labels, meta.classes))
        return
    from ecgfast.data.cache import open_cache

    with open_cache(path) as c:
        fp = c.fingerprint
        print(f"cache {path}: {len(c)} records at {c.sampling_rate} Hz, "
              f"{c.signal_length} samples, {fp.get('skipped', 0)} skipped at build "
              f"({fp.get('skipped_missing', 0)} missing, {fp.get('skipped_bad', 0)} bad); "
              f"format {fp.get('format_version')}, fingerprint {c.fingerprint_digest[:16]}")
        print(summarize(c.folds, c.labels, c.classes))


def main(argv: list[str] | None = None, prog: str = "ecgfast info", command: str = "info") -> int:
    args = build_parser(prog).parse_args(argv)
    return run_command(command, _info, args.path)


if __name__ == "__main__":
    sys.exit(main())
