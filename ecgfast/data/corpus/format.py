"""The corpus format: the manifest's name and version, a shard's files, their hashing and the shard list check.

The one home of what a corpus on disk is, shared by the writer (``build``) and the reader
(``store``), so that neither imports the other.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from ecgfast.base.errors import DataError

FORMAT = "ecgfast-corpus"
# 2: every shard lists the size and sha256 of each of its files (signals, labels, metadata);
# version-1 manifests are refused with the one command that upgrades them (``ecgfast corpus upgrade``).
# (age, sex in meta.npz are additive: readers ignore unknown keys)
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
SUFFIXES = (".npy", ".labels.npy", ".meta.npz")  # a shard's files: signals, labels, per-window metadata
REBUILD = "rebuild it with `ecgfast corpus build` (same --out: unchanged shards are kept)"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def file_entries(out: Path, name: str) -> dict:
    """``{suffix: {"bytes", "sha256"}}`` of shard ``name``'s files, as the manifest lists them."""
    return {s: {"bytes": (out / f"{name}{s}").stat().st_size, "sha256": sha256_file(out / f"{name}{s}")}
            for s in SUFFIXES}


MAX_COUNT = 2**48  # windows or bytes: beyond any disk, within int64 arithmetic


def _is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < MAX_COUNT


def parse_shards(m: dict, where) -> list[dict]:
    """The manifest's shard list, checked: ``[{"name", "windows", "files": {suffix: {"bytes", "sha256"}}}]``.

    ``DataError`` naming the manifest and the shard for a name that is not a plain file
    name, a repeated name, a count that is not a non-negative integer, or a file without
    its size and sha256.
    """
    shards = m.get("shards")
    if not isinstance(shards, list):
        raise DataError(f"corpus manifest {where}: 'shards' is not a list; {REBUILD}")
    out, seen = [], set()
    for i, sh in enumerate(shards):
        if not isinstance(sh, dict):
            raise DataError(f"corpus manifest {where}: shard entry {i} is not an object; {REBUILD}")
        name = sh.get("name")
        if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or os.sep in name \
                or "\x00" in name or (os.altsep and os.altsep in name):
            raise DataError(f"corpus manifest {where}: shard name {name!r} is not a file name in its folder")
        if name in seen:
            raise DataError(f"corpus manifest {where}: shard {name} is listed twice")
        seen.add(name)
        windows = sh.get("windows")
        if not _is_count(windows):
            raise DataError(f"corpus manifest {where}: shard {name} has window count {windows!r}, not an "
                            f"integer in [0, 2**48); {REBUILD}")
        files = sh.get("files")
        if not isinstance(files, dict) or set(files) != set(SUFFIXES):
            raise DataError(f"corpus manifest {where}: shard {name} does not list the sizes and hashes of its "
                            f"{', '.join(name + s for s in SUFFIXES)} files; {REBUILD}")
        for suffix, entry in files.items():
            if not (isinstance(entry, dict) and _is_count(entry.get("bytes"))
                    and isinstance(entry.get("sha256"), str) and _HEX64.match(entry["sha256"])):
                raise DataError(f"corpus manifest {where}: shard file {name}{suffix} has no valid size and sha256 "
                                f"in the manifest; {REBUILD}")
        if sh.get("sha256") != files[".npy"]["sha256"]:
            raise DataError(f"corpus manifest {where}: shard {name}: its sha256 and files['.npy'] disagree; {REBUILD}")
        out.append({"name": name, "windows": windows, "files": files})
    return out


__all__ = ["FORMAT", "FORMAT_VERSION", "MANIFEST", "MAX_COUNT", "REBUILD", "SUFFIXES", "file_entries",
           "parse_shards", "sha256_file"]
