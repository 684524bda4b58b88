"""Reading a built corpus: ``open_corpus(manifest_path) -> Corpus``; shards memory-mapped on demand.

Nothing reaches a gradient unchecked. Opening a corpus checks the manifest (shard names are
file names that resolve inside the corpus folder, window counts are non-negative integers
that equal the shard files' own ``.npy`` headers, every signal, label and metadata file has
its size and sha256 in the manifest) and every file's size against it; then (``verify=True``,
the default) it hashes every file and compares with the manifest before any window is read.
A file verified once is remembered in a sidecar beside the manifest
(``.manifest.json.verified``: per file its size, mtime_ns, ctime_ns, inode, device and the
hash it matched), so an unchanged corpus is not rehashed; any change to the file (or a new
manifest expecting another hash) makes it rehashed. A read-only folder is verified all the
same, just not remembered. ``verify="full"`` rehashes every file regardless.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from ecgfast.base.errors import ConfigError, DataError, EcgfastError
from ecgfast.base.fs import atomic_write
from ecgfast.data.corpus.format import FORMAT, FORMAT_VERSION, MANIFEST, REBUILD, SUFFIXES, parse_shards  # noqa: F401
from ecgfast.data.corpus.format import sha256_file as _sha256_file

_VERIFIED_FORMAT = "ecgfast-corpus-verified"


def _npy_header(f: Path, manifest) -> tuple[tuple, np.dtype, bool, int]:
    """(shape, dtype, fortran_order, data offset) from the header of the ``.npy`` file ``f``."""
    try:
        with open(f, "rb") as fh:
            major, _ = np.lib.format.read_magic(fh)
            if major == 1:
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif major in (2, 3):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise ValueError(f"unknown .npy version {major}")
            return shape, dtype, fortran, fh.tell()
    except Exception as exc:  # numpy's header parser on hostile bytes: ValueError, SyntaxError, TokenError, ...
        raise DataError(f"corpus {manifest}: shard file {f} is not a readable .npy file "
                        f"({type(exc).__name__}: {exc}); {REBUILD}") from None


def _file_key(st: os.stat_result) -> list[int]:
    """What identifies one version of a file without reading it: any write changes one of these."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _hash_unchanged(f: Path, manifest) -> tuple[str, list[int]]:
    """(sha256, key) of ``f``, refusing a file that changed while it was read."""
    with open(f, "rb") as fh:
        before = _file_key(os.fstat(fh.fileno()))
        digest = _sha256_file(f)
        after = _file_key(os.fstat(fh.fileno()))
    if before != after or _file_key(f.stat()) != after:
        raise DataError(f"corpus {manifest}: shard file {f} changed while it was being verified; "
                        "open the corpus again once nothing writes to it")
    return digest, after


class Corpus:
    """A corpus on disk: ``len()`` windows of (12, ``signal_length``) at ``sampling_rate``.

    Signals stay in the shard files (``np.load(mmap_mode="r")``: file-backed
    pages, shared through the page cache by every process on the machine);
    only the manifest and per-shard sizes are held in memory.

    ``verify``: ``True`` (default) hashes every shard file not remembered as verified
    unchanged; ``"full"`` hashes every one; ``False`` checks names, counts, headers and
    sizes only (``corpus info`` without ``--verify``; a ``StreamingLoader`` given such a
    corpus verifies it before its first batch). ``self.verification`` says what was hashed.
    """

    def __init__(self, manifest_path, verify: bool | str = True):
        if verify not in (True, False, "full"):
            raise ConfigError(f"verify must be True, False or 'full', got {verify!r}")
        p = Path(manifest_path)
        if p.is_dir():
            p = p / MANIFEST
        if not p.is_file():
            raise DataError(f"corpus manifest {p} not found: build it with `ecgfast corpus build`")
        try:
            m = json.loads(p.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataError(f"corpus manifest {p}: not JSON ({exc})") from None
        if not isinstance(m, dict) or m.get("format") != FORMAT:
            raise DataError(f"{p}: not an ecgfast corpus manifest")
        version = m.get("format_version")
        if version == 1:
            raise DataError(f"{p}: corpus format version 1, whose manifest holds no hashes of the label and "
                            f"metadata files; upgrade it with `ecgfast corpus upgrade {p}` (this ecgfast reads "
                            f"version {FORMAT_VERSION})")
        if version != FORMAT_VERSION:
            raise DataError(f"{p}: format version {version!r}, this ecgfast reads {FORMAT_VERSION}; {REBUILD}")
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
            totals = dict(m["totals"])
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise DataError(f"corpus manifest {p}: malformed ({type(exc).__name__}: {exc}); {REBUILD}") \
                from None
        if not (np.isfinite(self.sampling_rate) and self.sampling_rate > 0 and self.signal_length > 0
                and np.isfinite(self.gain) and self.gain > 0):
            raise DataError(f"corpus manifest {p}: sampling_rate, signal_length or gain out of range; {REBUILD}")
        self._shards = parse_shards(m, p)
        self.shard_names = [sh["name"] for sh in self._shards]
        self.shard_sizes = np.array([sh["windows"] for sh in self._shards], dtype=np.int64)
        if "windows" in totals and totals["windows"] != int(self.shard_sizes.sum()):
            raise DataError(f"corpus manifest {p}: totals.windows {totals['windows']!r} is not the "
                            f"{int(self.shard_sizes.sum())} windows of its shards; {REBUILD}")
        self.offsets = np.concatenate([[0], np.cumsum(self.shard_sizes)])
        self._maps: dict = {}
        self._fds: dict = {}
        self._keys: dict = {}  # file name -> _file_key when verified (checked again when mapped)
        self.verified = False
        self.verification = {"files": 0, "hashed": 0, "remembered": 0, "bytes_hashed": 0, "seconds": 0.0}
        real_root = self.root.resolve()
        for sh in self._shards:
            for suffix, entry in sh["files"].items():
                self._check_file(real_root, sh, suffix, entry)
        if verify:
            self.verify(full=verify == "full")

    def _file(self, name: str, suffix: str) -> Path:
        return self.root / f"{name}{suffix}"

    def _check_file(self, real_root: Path, sh: dict, suffix: str, entry: dict) -> None:
        """Cheap checks of one shard file: inside the folder, regular, its manifest size, a matching header."""
        name, n = sh["name"], sh["windows"]
        f = self._file(name, suffix)
        if not f.is_file():
            raise DataError(f"corpus {self.path}: shard file {f} is missing; {REBUILD}")
        if f.resolve().parent != real_root:  # a link out of the corpus folder
            raise DataError(f"corpus {self.path}: shard file {f} resolves to {f.resolve()}, outside the corpus "
                            f"folder; {REBUILD}")
        size = f.stat().st_size
        if size != entry["bytes"]:
            raise DataError(f"corpus {self.path}: shard file {f} is {size} bytes, its manifest says "
                            f"{entry['bytes']} (truncated or rewritten since the build); {REBUILD}")
        if suffix == ".meta.npz":
            return  # a zip: its arrays' lengths are checked when read (shard_meta), its bytes by the hash
        shape, dtype, fortran, offset = _npy_header(f, self.path)
        want = ((n, 12, self.signal_length), np.dtype(np.int16)) if suffix == ".npy" else \
            ((n, len(self.classes)), np.dtype(np.uint8))
        if (tuple(shape), dtype) != want or fortran:
            raise DataError(f"corpus {self.path}: shard file {f} holds {dtype} {tuple(shape)}"
                            f"{' (Fortran order)' if fortran else ''}, its manifest says {want[1]} {want[0]}; "
                            f"{REBUILD}")
        if size != offset + n * int(np.prod(want[0][1:])) * want[1].itemsize:
            raise DataError(f"corpus {self.path}: shard file {f} is {size} bytes, its header needs "
                            f"{offset + n * int(np.prod(want[0][1:])) * want[1].itemsize}; {REBUILD}")

    @property
    def _memory_path(self) -> Path:
        return self.root / f".{self.path.name}.verified"

    def _load_memory(self) -> dict:
        try:
            d = json.loads(self._memory_path.read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            return {}
        if not isinstance(d, dict) or d.get("format") != _VERIFIED_FORMAT or not isinstance(d.get("files"), dict):
            return {}
        return d["files"]

    def _save_memory(self, files: dict) -> bool:
        """Remember ``files``; False where the folder cannot be written (read-only, full): nothing lost but time."""
        text = json.dumps({"format": _VERIFIED_FORMAT, "version": 1, "files": files}, indent=0)
        try:
            atomic_write(self._memory_path, lambda f: f.write(text), mode="w")
        except (OSError, EcgfastError):
            return False
        return True

    def verify(self, full: bool = False) -> dict:
        """Hash every shard file against the manifest, skipping (unless ``full``) those remembered unchanged.

        A file is remembered only with the exact (size, mtime_ns, ctime_ns, inode, device) it had
        when it hashed to the manifest's sha256: any edit, copy or replacement is rehashed.
        Raises ``DataError`` naming the first file that differs. Returns ``self.verification``.
        """
        t0 = time.perf_counter()
        memory = self._load_memory()
        fresh, stats = {}, {"files": 0, "hashed": 0, "remembered": 0, "bytes_hashed": 0}
        for sh in self._shards:
            for suffix, entry in sh["files"].items():
                f = self._file(sh["name"], suffix)
                rel = f.name
                key = _file_key(f.stat())
                seen = memory.get(rel)
                stats["files"] += 1
                if not full and isinstance(seen, dict) and seen.get("key") == key \
                        and seen.get("sha256") == entry["sha256"]:
                    stats["remembered"] += 1
                else:
                    digest, key = _hash_unchanged(f, self.path)
                    stats["hashed"] += 1
                    stats["bytes_hashed"] += key[0]
                    if digest != entry["sha256"]:
                        raise DataError(f"corpus {self.path}: shard file {f} does not match its manifest hash "
                                        f"(sha256 {digest[:12]}…, the manifest says {entry['sha256'][:12]}…): "
                                        f"corrupted or rewritten since the build; {REBUILD}")
                fresh[rel] = {"key": key, "sha256": entry["sha256"]}
                self._keys[rel] = key
        stats["remembered_saved"] = fresh == memory or self._save_memory(fresh)
        stats["seconds"] = time.perf_counter() - t0
        self.verified, self.verification = True, stats
        return stats

    def _check_unchanged(self, name: str, suffix: str) -> None:
        """A verified file must still be the one verified when it is first mapped (a cheap stat)."""
        f = self._file(name, suffix)
        key = self._keys.get(f.name)
        if key is not None and _file_key(f.stat()) != key:
            raise DataError(f"corpus {self.path}: shard file {f} changed since it was verified when the corpus "
                            f"was opened; {REBUILD}")

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
            for suffix in (".npy", ".labels.npy"):
                self._check_unchanged(name, suffix)
            try:
                arr = np.load(self._file(name, ".npy"), mmap_mode="r")
                lab = np.load(self._file(name, ".labels.npy"), mmap_mode="r")
            except Exception as exc:  # truncated or rewritten after the corpus was opened (any parser error)
                raise DataError(f"corpus {self.path}: shard {name} cannot be mapped ({exc}): it changed "
                                f"since the corpus was opened (truncated?); {REBUILD}") from None
            if arr.shape != (self.shard_sizes[k], 12, self.signal_length) or arr.dtype != np.int16 \
                    or lab.shape != (self.shard_sizes[k], len(self.classes)):
                raise DataError(f"corpus {self.path}: shard {name}.npy holds {arr.dtype} {arr.shape} (labels "
                                f"{lab.shape}), manifest says int16 ({self.shard_sizes[k]}, 12, {self.signal_length})")
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
            self._fds[k] = os.open(self._file(self.shard_names[k], ".npy"), os.O_RDONLY)
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
        name = self.shard_names[k]
        self._check_unchanged(name, ".meta.npz")
        f = self._file(name, ".meta.npz")
        try:
            with np.load(f, allow_pickle=False) as z:
                meta = {key: z[key] for key in z.files}
        except Exception as exc:  # zipfile/zlib/numpy on hostile bytes: BadZipFile, zlib.error, TokenError, ...
            raise DataError(f"corpus {self.path}: shard file {f} is not a readable .npz ({exc}); {REBUILD}") \
                from None
        for key, arr in meta.items():
            if arr.ndim != 1 or len(arr) != self.shard_sizes[k]:
                raise DataError(f"corpus {self.path}: shard file {f}: '{key}' holds shape {arr.shape}, the shard "
                                f"has {self.shard_sizes[k]} windows; {REBUILD}")
        return meta

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


def open_corpus(manifest_path, verify: bool | str = True) -> Corpus:
    """Open a built corpus by its ``manifest.json`` (or its folder), verified (see ``Corpus``)."""
    return Corpus(manifest_path, verify=verify)
