"""``ecgfast cache``: convert a PTB-XL folder into one HDF5 cache, or verify one (ecgfast.data.cache)."""
from __future__ import annotations

import sys
from pathlib import Path

from ecgfast.cli.boundary import run_command
from ecgfast.cli.flags import add_data_flags
from ecgfast.cli.types import command_parser


def build_parser(prog: str = "ecgfast cache"):
    p = command_parser(prog, __doc__, description="Convert a PTB-XL folder into one HDF5 cache.")
    # the data flags of every command (DataConfig's fields), the cache being this command's --out
    add_data_flags(p, skip=("cache",), defaults={"data_root": None}, help={
        "data_root": "PTB-XL folder (with ptbxl_database.csv); required unless --verify --out is given",
        "skip_missing": "cache the records present, skip the rest",
        "skip_bad": "skip records with NaN samples or corrupted files (counted in the fingerprint)",
        "workers": "reader processes (default 1)"})
    p.add_argument("--out", type=Path, default=None,
                   help="cache file (default: DATA_ROOT/ecgfast_cache_<rate>hz.h5)")
    p.add_argument("--verify", action="store_true",
                   help="check an existing cache instead of building: every signal checksum and, with "
                        "--data-root, every source record re-hashed")
    return p


def _cache(args) -> None:
    from ecgfast.data.cache import build_cache, default_cache_path, open_cache, verify_cache

    out = args.out or default_cache_path(args.data_root, args.sampling_rate)
    if args.verify:
        r = verify_cache(out, args.data_root)
        against = f"; all {r['source_records']} source records match {r['data_root']}" if r["data_root"] else ""
        print(f"verified {out}: {r['records']} records, checksums and record hashes ok{against}; "
              f"fingerprint {r['fingerprint_digest'][:16]}")
        return
    build_cache(args.data_root, out, args.sampling_rate, args.skip_missing, args.workers, skip_bad=args.skip_bad)
    with open_cache(out) as c:
        print(f"wrote {out}: {len(c)} records at {c.sampling_rate} Hz, {out.stat().st_size / 1e6:.1f} MB"
              + (f", {c.fingerprint['skipped']} skipped" if c.fingerprint.get("skipped") else ""))


def main(argv: list[str] | None = None, prog: str = "ecgfast cache", command: str = "cache") -> int:
    p = build_parser(prog)
    args = p.parse_args(argv)
    if args.data_root is None and not (args.verify and args.out):
        p.error("--data-root is required (or --verify with --out)")
    return run_command(command, _cache, args)


if __name__ == "__main__":
    sys.exit(main())
