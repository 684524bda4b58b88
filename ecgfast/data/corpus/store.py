"""Reading a built corpus: ``open_corpus(manifest_path) -> Corpus``; shards memory-mapped on demand."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ecgfast.errors import DataError
from ecgfast.data.corpus.build import FORMAT, FORMAT_VERSION, MANIFEST, _sha256_file


class Corpus:
    """A corpus on disk: ``len()`` windows of (12, ``signal_length``) at ``sampling_rate``.

    Signals stay in the shard files (``np.load(mmap_mode="r")``: file-backed
    pages, shared through the page cache by every process on the machine);
    only the manifest and per-shard sizes are held in memory.
    """

    def __init__(self, manifest_path, verify: bool = False):
        p = Path(manifest_path)
        if p.is_dir():
            p = p / MANIFEST
        if not p.is_file():
            raise DataError(f"corpus manifest {p} not found: build it with `ecgfast corpus build`")
        try:
            m = json.loads(p.read_text())
        except ValueError as exc:
            raise DataError(f"corpus manifest {p}: not JSON ({exc})") from exc
        if m.get("format") != FORMAT:
            raise DataError(f"{p}: not an ecgfast corpus manifest")
        if int(m.get("format_version", -1)) != FORMAT_VERSION:
            raise DataError(f"{p}: format version {m.get('format_version')}, this ecgfast reads "
                            f"{FORMAT_VERSION}; rebuild the corpus")
        self.path, self.root, self.manifest = p, p.parent, m
        try:  # a hand-edited or truncated manifest: one line naming it, not a KeyError
            s = m["settings"]
            self.sampling_rate = float(s["sampling_rate"])
            self.signal_length = int(s["signal_length"])
            self.classes = tuple(s["classes"])
            self.leads = tuple(s["leads"])
            self.gain = float(s["gain"])
            self.layout = s["layout"]
            self.fingerprint_digest = m["fingerprint_digest"]
            self.shard_names = [str(sh["name"]) for sh in m["shards"]]
            self.shard_sizes = np.array([int(sh["windows"]) for sh in m["shards"]], dtype=np.int64)
            m["totals"]
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"corpus manifest {p}: malformed ({type(exc).__name__}: {exc}); rebuild the corpus") \
                from None
        if not (np.isfinite(self.sampling_rate) and self.sampling_rate > 0 and self.signal_length > 0
                and np.isfinite(self.gain) and self.gain > 0 and (self.shard_sizes >= 0).all()):
            raise DataError(f"corpus manifest {p}: sampling_rate, signal_length, gain or shard sizes out of range; "
                            "rebuild the corpus")
        for name in self.shard_names:  # shard files live beside the manifest, never elsewhere
            if not name or os.sep in name or "/" in name or name in (".", ".."):
                raise DataError(f"corpus manifest {p}: shard name {name!r} is not a file name in its folder")
        self.offsets = np.concatenate([[0], np.cumsum(self.shard_sizes)])
        self._maps: dict = {}
        self._fds: dict = {}
        row = 12 * self.signal_length * 2
        for sh in m["shards"]:
            f = self.root / f"{sh['name']}.npy"
            if not f.is_file():
                raise DataError(f"corpus {p}: shard {f.name} is missing")
            size, expected = f.stat().st_size, _npy_data_offset(f, p) + sh["windows"] * row
            if size < expected:
                raise DataError(f"corpus {p}: shard {f.name} is truncated ({size} bytes, its "
                                f"{sh['windows']} windows need {expected}): rebuild the corpus")
            if verify and _sha256_file(f) != sh["sha256"]:
                raise DataError(f"corpus {p}: shard {f.name} does not match its manifest hash (corrupted or "
                                "rewritten): rebuild the corpus")

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __repr__(self) -> str:
        return (f"Corpus({self.path}, {len(self)} windows, {len(self.shard_names)} shards, "
                f"{self.sampling_rate:g} Hz x {self.signal_length})")

    @property
    def totals(self) -> dict:
        return dict(self.manifest["totals"])

    def shard(self, k: int) -> np.ndarray:
        """int16 (n, 12, T) memory map of shard ``k``."""
        if k not in self._maps:
            name = self.shard_names[k]
            try:
                arr = np.load(self.root / f"{name}.npy", mmap_mode="r")
            except (OSError, ValueError) as exc:  # e.g. truncated after the corpus was opened
                raise DataError(f"corpus {self.path}: shard {name}.npy cannot be mapped ({exc}): it changed "
                                "since the corpus was built (truncated?); rebuild the corpus") from None
            if arr.shape != (self.shard_sizes[k], 12, self.signal_length) or arr.dtype != np.int16:
                raise DataError(f"corpus {self.path}: shard {name}.npy holds {arr.dtype} {arr.shape}, manifest "
                                f"says int16 ({self.shard_sizes[k]}, 12, {self.signal_length})")
            lab = np.load(self.root / f"{name}.labels.npy", mmap_mode="r")
            self._maps[k] = (arr, lab)
        return self._maps[k][0]

    def read_into(self, k: int, start: int, stop: int, out: np.ndarray) -> None:
        """Copy windows ``start:stop`` of shard ``k`` into ``out`` (int16 (stop-start, 12, T), C-contiguous).

        One ``pread`` from the shard file: the kernel copies from the page cache (shared by all
        processes on the machine) without mapping pages into this process one fault at a time,
        which is what reading the memory map would cost.
        """
        arr = self.shard(k)
        if not hasattr(os, "preadv") or not out.flags.c_contiguous:
            out[...] = arr[start:stop]
            return
        if k not in self._fds:
            self._fds[k] = os.open(self.root / f"{self.shard_names[k]}.npy", os.O_RDONLY)
        row = 12 * self.signal_length * 2
        want = (stop - start) * row
        got = os.preadv(self._fds[k], [memoryview(out).cast("B")], arr.offset + start * row)
        if got != want:
            raise DataError(f"corpus {self.path}: shard {self.shard_names[k]}.npy: short read ({got} of {want} "
                            "bytes): the file changed under the reader")

    def shard_labels(self, k: int) -> np.ndarray:
        self.shard(k)
        return self._maps[k][1]

    def shard_meta(self, k: int) -> dict:
        """Per-window metadata of shard ``k``: record_id, source, patient_id, has_label, fold, start, valid."""
        with np.load(self.root / f"{self.shard_names[k]}.meta.npz") as z:
            return {key: z[key] for key in z.files}

    def locate(self, indices) -> tuple[np.ndarray, np.ndarray]:
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"window index out of range [0, {len(self)})")
        k = np.searchsorted(self.offsets, idx, side="right") - 1
        return k, idx - self.offsets[k]

    def raw(self, indices) -> np.ndarray:
        """int16 (n, 12, T) of windows ``indices``."""
        k, r = self.locate(indices)
        out = np.empty((len(k), 12, self.signal_length), np.int16)
        for j, (kk, rr) in enumerate(zip(k, r)):
            out[j] = self.shard(int(kk))[rr]
        return out

    def signals(self, indices) -> np.ndarray:
        """float32 (n, 12, T) in mV."""
        return self.raw(indices).astype(np.float32) / np.float32(self.gain)

    def metadata(self) -> dict:
        """Every window's metadata, concatenated over shards (memory grows with the corpus: for inspection)."""
        parts = [self.shard_meta(k) for k in range(len(self.shard_names))]
        keys = parts[0].keys() if parts else []
        return {key: np.concatenate([p[key] for p in parts]) for key in keys}

    def close(self) -> None:
        self._maps.clear()
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_maps"], d["_fds"] = {}, {}
        return d


def _npy_data_offset(f: Path, manifest: Path) -> int:
    """Where the array data of the ``.npy`` file ``f`` starts (the header's length)."""
    try:
        with open(f, "rb") as fh:
            major, _ = np.lib.format.read_magic(fh)
            if major == 1:
                np.lib.format.read_array_header_1_0(fh)
            else:
                np.lib.format.read_array_header_2_0(fh)
            return fh.tell()
    except (OSError, ValueError) as exc:
        raise DataError(f"corpus {manifest}: shard {f.name} is not a readable .npy file ({exc}): "
                        "rebuild the corpus") from None


def open_corpus(manifest_path, verify: bool = False) -> Corpus:
    """Open a built corpus by its ``manifest.json`` (or its folder); ``verify`` re-hashes every shard."""
    return Corpus(manifest_path, verify=verify)
