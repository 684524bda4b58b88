"""``ecgfast info PATH``: splits and labels of a PTB-XL folder or a cache.

For a cache it also prints what was skipped at build (missing / bad records),
its format version and the start of its fingerprint digest. Bad input (a csv,
a corrupted or old-format cache) is one ``error:`` line and exit status 1.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ecgfast.base.errors import DataError
from ecgfast.data.cache import SPLITS

SPLIT_FOLDS = {"train (folds 1-8)": SPLITS["train"], "val (fold 9)": SPLITS["val"], "test (fold 10)": SPLITS["test"]}


def summarize(folds: np.ndarray, labels: np.ndarray, classes) -> str:
    """A table: records, labelled records and per-class counts for each split."""
    has_label = labels.any(axis=1)
    head = f"{'split':<18}{'records':>9}{'labelled':>10}" + "".join(f"{c:>7}" for c in classes)
    lines = [head, "-" * len(head)]
    for name, fs in list(SPLIT_FOLDS.items()) + [("all", range(1, 11))]:
        m = np.isin(folds, list(fs))
        counts = labels[m].sum(0).astype(int)
        lines.append(f"{name:<18}{int(m.sum()):>9}{int(has_label[m].sum()):>10}"
                     + "".join(f"{n:>7}" for n in counts))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ecgfast info", description=__doc__)
    p.add_argument("path", type=Path, help="a PTB-XL folder or an ecgfast cache file")
    args = p.parse_args(argv)
    try:
        if args.path.is_dir():
            from ecgfast.data.metadata import load_metadata

            meta = load_metadata(args.path)
            print(f"PTB-XL folder {args.path} (version {meta.version}): {len(meta)} records")
            print(summarize(meta.folds, meta.labels, meta.classes))
        else:
            from ecgfast.data.cache import open_cache

            with open_cache(args.path) as c:
                fp = c.fingerprint
                print(f"cache {args.path}: {len(c)} records at {c.sampling_rate} Hz, "
                      f"{c.signal_length} samples, {fp.get('skipped', 0)} skipped at build "
                      f"({fp.get('skipped_missing', 0)} missing, {fp.get('skipped_bad', 0)} bad); "
                      f"format {fp.get('format_version')}, fingerprint {c.fingerprint_digest[:16]}")
                print(summarize(c.folds, c.labels, c.classes))
    except (DataError, FileNotFoundError) as exc:
        print(f"ecgfast info: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
