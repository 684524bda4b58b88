"""Building a corpus: shards of harmonised windows, written in parallel and atomically, plus a manifest.

Layout of ``OUT/``::

    manifest.json              what the corpus is (see below); written last, atomically
    shard-00000.npy            int16 (n, 12, T), windows at GAIN per mV (np.load(mmap_mode="r"))
    shard-00000.labels.npy     uint8 (n, 5), classes in CLASSES order (memory-mappable)
    shard-00000.meta.npz       per window: record_id, source, patient_id, has_label, fold, age, sex, start, valid
    shard-00000.json           the shard's record: written last, marks it finished

Items of the source (records, or blocks of rows) are grouped into shards of
about ``shard_records`` records, in the source's sorted order. Each shard is
built by one worker process and each file is written through
``ecgfast.base.fs.atomic_write``, so a killed build leaves whole shards; a rerun
keeps every shard whose ``.json`` matches the build's settings and the sizes
and mtimes of the shard's source files and whose files still hash as recorded
(an edited shard is rebuilt, never kept), and rebuilds the others (or refuses
with ``on_stale="refuse"``). The manifest holds the settings, the source's index
files' sha256, each shard's sha256 (of its signal file) and source digest,
the counts (records, windows, skipped with reasons, clipped samples, short
records dropped, PTB-XL duplicates dropped) and ``fingerprint_digest``, one
hash of all that.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import multiprocessing
import os
from pathlib import Path

import numpy as np

from ecgfast import CLASSES, LEADS, __version__
from ecgfast.base.errors import ConfigError, DataError
from ecgfast.base.fs import atomic_write, prepare_output_folder
from ecgfast.base.progress import progress_bar
from ecgfast.data.corpus.format import FORMAT, FORMAT_VERSION, MANIFEST, SUFFIXES, parse_shards  # noqa: F401
from ecgfast.data.corpus.format import file_entries as _file_entries
from ecgfast.data.corpus.format import sha256_file as _sha256_file
from ecgfast.data.corpus.harmonise import GAIN, harmonise
from ecgfast.data.errors import UnsafePathError
from ecgfast.data.sources import LAYOUTS
from ecgfast.data.sources.readers import MAX_RECORD_SAMPLES, RATE_RANGE, MissingSourceRecord, open_source

MAX_MESSAGES = 20


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _files_digest(root: Path, files) -> str:
    rows = []
    for f in files:
        try:
            st = f.stat()
            rows.append([str(f.relative_to(root)) if f.is_relative_to(root) else str(f), st.st_size,
                         st.st_mtime_ns])
        except FileNotFoundError:
            rows.append([str(f), None, None])
    return _digest(rows)


def _save_npy(path: Path, arr: np.ndarray) -> None:
    atomic_write(path, lambda f: np.lib.format.write_array(f, np.ascontiguousarray(arr), allow_pickle=False))


_SOURCES: dict = {}
_REFERENCE: dict = {}


def _source(layout, root, options):
    key = (layout, str(root), json.dumps(options, sort_keys=True))
    if key not in _SOURCES:
        _SOURCES[key] = open_source(layout, root, **options)
    return _SOURCES[key]


def _reference(path):
    if path is None:
        return None
    if path not in _REFERENCE:
        from ecgfast.data.corpus.dedup import DuplicateIndex

        idx = DuplicateIndex.load(path)
        _REFERENCE[path] = (idx, set(int(i) for i in idx.ids))
    return _REFERENCE[path]


def build_shard(job) -> dict:
    """Read, harmonise, deduplicate and write one shard; returns its record (also written as ``.json``)."""
    (layout, root, options, items, out, name, settings, skip_missing, skip_bad, ref_path, source_digest) = job
    from ecgfast.data.corpus.dedup import descriptor

    src = _source(layout, root, options)
    ref = _reference(ref_path)
    rate, T = settings["sampling_rate"], settings["signal_length"]
    windows, meta = [], {k: [] for k in ("record_id", "source", "patient_id", "has_label", "fold", "age", "sex",
                                         "start", "valid")}
    labels = []
    stats = {"records": 0, "missing": 0, "bad": 0, "short": 0, "clipped_samples": 0, "excluded_by_id": 0,
             "excluded_by_fingerprint": 0, "messages": [], "excluded": []}
    def skip(exc, n):
        """Count ``n`` records skipped for ``exc``, or raise it when its kind is not being skipped."""
        if isinstance(exc, UnsafePathError):  # a path escaping the source is never skipped
            raise exc
        missing = isinstance(exc, MissingSourceRecord)
        if not (skip_missing if missing else skip_bad):
            flag = "--skip-missing to skip and count missing" if missing else "--skip-bad to skip and count bad"
            raise DataError(f"{exc} (pass {flag} records)") from None
        stats["missing" if missing else "bad"] += n
        stats["messages"].append(str(exc))

    for item in items:
        try:  # an error of the whole item (an unreadable file) costs its records; a row's error, that row
            results = list(src.read_records(item))
        except DataError as exc:
            skip(exc, src.item_size(item))
            continue
        for rec in results:
            if isinstance(rec, DataError):
                skip(rec, 1)
                continue
            try:
                if rec.signal.shape[1] * rate / rec.sampling_rate > src.max_samples:
                    raise DataError(f"{rec.where or rec.record_id}: {rec.signal.shape[1]} samples at "
                                    f"{rec.sampling_rate:g} Hz resample to more than {src.max_samples} at {rate:g} Hz")
                mv, w, valid, starts, clipped = harmonise(rec, rate, T, settings["gain"], settings["min_fraction"])
            except DataError as exc:
                msg = str(exc)
                if rec.where and rec.where not in msg:  # harmonise names the record id; add its file
                    msg = f"{rec.where}: {msg}"
                skip(DataError(msg), 1)
                continue
            if ref is not None:
                index, ids = ref
                if rec.source == "ptbxl" and int(rec.record_id) in ids:
                    stats["excluded_by_id"] += 1
                    stats["excluded"].append([rec.source, rec.record_id, int(rec.record_id), "id"])
                    continue
                d = descriptor(mv, rate)
                hit = None if d is None else index.match(d)
                if hit is not None:
                    stats["excluded_by_fingerprint"] += 1
                    stats["excluded"].append([rec.source, rec.record_id, hit, "fingerprint"])
                    continue
            stats["records"] += 1
            if len(w) == 0:
                stats["short"] += 1
                continue
            stats["clipped_samples"] += clipped
            windows.append(w)
            k = len(w)
            labels.append(np.repeat(rec.labels[None].astype(np.uint8), k, 0))
            meta["record_id"] += [rec.record_id] * k
            meta["source"] += [rec.source] * k
            meta["patient_id"] += [rec.patient_id] * k
            meta["has_label"] += [rec.has_label] * k
            meta["fold"] += [rec.fold] * k
            meta["age"] += [rec.age] * k
            meta["sex"] += [rec.sex] * k
            meta["start"].append(starts)
            meta["valid"].append(valid)
    sig = np.concatenate(windows) if windows else np.zeros((0, len(LEADS), T), np.int16)
    lab = np.concatenate(labels) if labels else np.zeros((0, len(CLASSES)), np.uint8)
    arrays = {
        "record_id": np.array(meta["record_id"], dtype=str), "source": np.array(meta["source"], dtype=str),
        "patient_id": np.array(meta["patient_id"], dtype=np.int64),
        "has_label": np.array(meta["has_label"], dtype=bool), "fold": np.array(meta["fold"], dtype=np.int8),
        "age": np.array(meta["age"], dtype=np.float32), "sex": np.array(meta["sex"], dtype="<U1"),
        "start": np.concatenate(meta["start"]) if windows else np.zeros(0, np.int64),
        "valid": np.concatenate(meta["valid"]) if windows else np.zeros(0, np.int32),
    }
    out = Path(out)
    _save_npy(out / f"{name}.npy", sig)
    _save_npy(out / f"{name}.labels.npy", lab)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write(out / f"{name}.meta.npz", lambda f: f.write(buf.getvalue()))
    stats["messages"] = stats["messages"][:MAX_MESSAGES]
    files = _file_entries(out, name)
    info = {"name": name, "windows": int(len(sig)), "settings_digest": _digest(settings),
            "source_digest": source_digest, "sha256": files[".npy"]["sha256"],
            "bytes": files[".npy"]["bytes"], "files": files, **stats}
    atomic_write(out / f"{name}.json", lambda f: f.write(json.dumps(info, indent=1)), mode="w")
    return info


def _shard_ok(out: Path, name: str, settings_digest: str, source_digest: str):
    p = out / f"{name}.json"
    if not p.is_file():
        return None, "unbuilt"
    try:
        info = json.loads(p.read_text())
    except ValueError:
        return None, "unreadable record"
    if info.get("settings_digest") != settings_digest:
        return None, "built with other settings"
    if info.get("source_digest") != source_digest:
        return None, "its source files changed"
    files = info.get("files")
    if not isinstance(files, dict) or set(files) != set(SUFFIXES):
        return None, "its record lists no file hashes (an older ecgfast built it)"
    for suffix in SUFFIXES:
        if not (out / f"{name}{suffix}").is_file():
            return None, f"{name}{suffix} is missing"
        if (out / f"{name}{suffix}").stat().st_size != files[suffix].get("bytes"):
            return None, f"{name}{suffix} has the wrong size"
    for suffix in SUFFIXES:  # an edited shard must not be kept: the reader would refuse it again
        if _sha256_file(out / f"{name}{suffix}") != files[suffix].get("sha256"):
            return None, f"{name}{suffix} does not match its recorded hash (edited since it was built)"
    return info, "ok"


def _finite(name, value, low, high=None, low_open=True):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not np.isfinite(v) or (v <= low if low_open else v < low) \
            or (high is not None and v > high):
        rng = f"{'(' if low_open else '['}{low:g}, {'inf)' if high is None else f'{high:g}]'}"
        raise ConfigError(f"{name} must be a finite number in {rng}, got {value!r}")
    return v


def _int(name, value, low, high=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low \
            or (high is not None and value > high):
        raise ConfigError(f"{name} must be an integer in [{low}, {high if high is not None else 'inf'}), "
                          f"got {value!r}")
    return int(value)


def _check_arguments(layout, source, out, sampling_rate, seconds, gain, min_fraction, shard_records, workers,
                     exclude_folds, on_stale):
    """``ConfigError`` naming the argument for anything out of range (the CLI checks the same before)."""
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    _finite("sampling_rate", sampling_rate, RATE_RANGE[0], RATE_RANGE[1], low_open=False)
    _finite("seconds", seconds, 0)
    _finite("gain", gain, 0)
    _finite("min_fraction", min_fraction, 0, 1)
    _int("shard_records", shard_records, 1)
    _int("workers", workers, 1)
    folds = list(exclude_folds or ())
    for f in folds:
        _int("exclude_folds", f, 1, 10)
    if on_stale not in ("rebuild", "refuse"):
        raise ConfigError(f"on_stale must be 'rebuild' or 'refuse', got {on_stale!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is an existing file; name a folder (new, or a corpus to resume)")
    if not Path(source).exists():
        raise DataError(f"--source {source}: no such folder or file")
    src_real, out_real = Path(source).resolve(), out.resolve()
    if src_real == out_real:  # shards, temp-file cleanup and stale-shard removal would act on the source folder
        raise ConfigError(f"--out {out} is the --source folder; write the corpus elsewhere")


def build_corpus(layout: str, source, out, *, sampling_rate: float = 100, seconds: float = 10.0,
                 gain: float = GAIN, min_fraction: float = 0.5, shard_records: int = 2048, workers: int = 1,
                 skip_missing: bool = False, skip_bad: bool = False, exclude_ptbxl=None,
                 exclude_folds=(9, 10), source_options: dict | None = None, on_stale: str = "rebuild",
                 progress: bool = True) -> dict:
    """Build (or resume) the corpus of ``source`` in ``layout`` into folder ``out``; returns the manifest."""
    _check_arguments(layout, source, out, sampling_rate, seconds, gain, min_fraction, shard_records, workers,
                     exclude_folds, on_stale)
    out, root = Path(out), Path(source).resolve()
    options = dict(source_options or {})
    if layout == "ptbxl" and "sampling_rate" not in options:
        options["sampling_rate"] = 100 if sampling_rate <= 100 else 500
    T = int(round(seconds * sampling_rate))
    if T < 1:
        raise ConfigError(f"window of {seconds} s at {sampling_rate} Hz has no samples")
    if T > MAX_RECORD_SAMPLES:
        raise ConfigError(f"window of {seconds} s at {sampling_rate} Hz is {T} samples, more than the "
                          f"{MAX_RECORD_SAMPLES} a record may hold")
    src = open_source(layout, root, **options)
    absent = src.absent()
    if absent and not skip_missing:
        more = f" (and {len(absent) - 1} more)" if len(absent) > 1 else ""
        raise DataError(f"{absent[0]}{more} (pass --skip-missing to skip and count missing records)")
    items = src.items()
    prepare_output_folder(out)  # creates it, refuses a read-only or full one, removes killed writers' temps

    ref_path, ref_info = None, None
    if exclude_ptbxl is not None:
        from ecgfast.data.corpus.dedup import ptbxl_reference

        index, ref_info = ptbxl_reference(exclude_ptbxl, exclude_folds)
        ref_path = str(out / ".ptbxl-reference.npz")
        index.save(ref_path)
    settings = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "layout": layout, "source": str(root),
        "source_options": options, "sampling_rate": float(sampling_rate), "signal_length": T,
        "gain": float(gain), "min_fraction": float(min_fraction), "leads": list(LEADS), "classes": list(CLASSES),
        "index_files": {str(p.name): _sha256_file(p) for p in src.index_files() if p and p.is_file()},
        "exclude_ptbxl": ref_info and {"fingerprint": ref_info["fingerprint"], "folds": ref_info["folds"]},
    }
    settings_digest = _digest(settings)

    shards, current, size = [], [], 0
    for item in items:
        current.append(item)
        size += src.item_size(item)
        if size >= shard_records:
            shards.append(current)
            current, size = [], 0
    if current:
        shards.append(current)

    jobs, infos, stale = [], {}, []
    for k, group in enumerate(shards):
        name = f"shard-{k:05d}"
        files = [f for item in group for f in src.item_files(item)]
        sdig = _files_digest(root, files)
        info, why = _shard_ok(out, name, settings_digest, sdig)
        if info is not None:
            infos[name] = info
            continue
        if why != "unbuilt":
            if on_stale == "refuse":
                raise DataError(f"{out / name}: stale ({why}); rebuild the corpus or pass --rebuild-stale")
            stale.append((name, why))
        jobs.append((layout, str(root), options, group, str(out), name, settings, skip_missing, skip_bad,
                     ref_path, sdig))
    for p in out.glob("shard-*.json"):  # shards beyond the current count (the source shrank)
        if p.stem not in {f"shard-{k:05d}" for k in range(len(shards))}:
            for suffix in (*SUFFIXES, ".json"):
                (out / f"{p.stem}{suffix}").unlink(missing_ok=True)

    bar = progress_bar(total=len(jobs), desc=f"corpus {layout}", unit="shard", enabled=progress)
    workers = max(1, min(int(workers), len(jobs) or 1))
    pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
    try:
        results = pool.imap_unordered(build_shard, jobs) if pool else map(build_shard, jobs)
        for info in results:
            infos[info["name"]] = info
            bar.update()
    finally:
        bar.close()
        if pool:
            pool.terminate()
            pool.join()

    names = [f"shard-{k:05d}" for k in range(len(shards))]
    shard_list = [{"name": n, "windows": infos[n]["windows"], "sha256": infos[n]["sha256"],
                   "files": infos[n]["files"], "source_digest": infos[n]["source_digest"]} for n in names]
    totals = {k: int(sum(infos[n][k] for n in names)) for k in
              ("records", "missing", "bad", "short", "clipped_samples", "excluded_by_id",
               "excluded_by_fingerprint")}
    totals["missing"] += len(absent)  # listed by the index, held by no file: read by no shard
    totals["windows"] = int(sum(s["windows"] for s in shard_list))
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "created_by": f"ecgfast {__version__}",
        "settings": settings, "settings_digest": settings_digest, "shards": shard_list, "totals": totals,
        "skipped_messages": (absent[:MAX_MESSAGES] + [m for n in names for m in infos[n]["messages"]])[:MAX_MESSAGES],
        "excluded": [e for n in names for e in infos[n]["excluded"]],
        "rebuilt_stale": [n for n, _ in stale], "built_now": len(jobs),
        "fingerprint_digest": _digest([settings_digest, [s["sha256"] for s in shard_list]]),
    }
    atomic_write(out / MANIFEST, lambda f: f.write(json.dumps(manifest, indent=1)), mode="w")
    return manifest


def build_corpus_from_arrays(out, chunks, *, sampling_rate: float, signal_length: int, name: str = "arrays",
                             gain: float = GAIN) -> dict:
    """Write a corpus straight from arrays already harmonised: one shard per chunk; returns the manifest.

    ``chunks`` yields ``(signals, record_ids, labels)``: signals (n, 12, T) as int16 ADC values at
    ``gain`` per mV, or float mV (quantised here, clipped samples counted); record_ids (n,) strings
    or ints; labels (n, 5) multi-hot or None. For corpora made in memory (benchmarks, simulations,
    a dataset already resampled elsewhere): no reader, no resampling, no windowing.
    """
    _finite("sampling_rate", sampling_rate, 0)
    _finite("gain", gain, 0)
    T = _int("signal_length", signal_length, 1, MAX_RECORD_SAMPLES)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out {out} is an existing file; name a folder")
    prepare_output_folder(out)
    settings = {"format": FORMAT, "format_version": FORMAT_VERSION, "layout": name, "source": None,
                "source_options": {}, "sampling_rate": float(sampling_rate), "signal_length": T, "gain": float(gain),
                "min_fraction": 1.0, "leads": list(LEADS), "classes": list(CLASSES), "index_files": {},
                "exclude_ptbxl": None}
    settings_digest = _digest(settings)
    shard_list, windows, clipped = [], 0, 0
    for k, (sig, ids, labels) in enumerate(chunks):
        sig = np.asarray(sig)
        if sig.ndim != 3 or sig.shape[1:] != (len(LEADS), T):
            raise DataError(f"chunk {k}: signals of shape {sig.shape}, expected (n, 12, {T})")
        if sig.dtype.hasobject or sig.dtype.kind not in "fiu":
            raise DataError(f"chunk {k}: signals of dtype {sig.dtype}, expected int16 ADC values or float mV")
        if sig.dtype != np.int16:
            if sig.dtype.kind == "f" and not np.isfinite(sig).all():  # NaN would cast to an arbitrary int16
                rows = np.flatnonzero(~np.isfinite(sig).all(axis=(1, 2)))
                raise DataError(f"chunk {k}: record(s) at row(s) {rows[:10].tolist()} hold NaN/infinite samples")
            q = np.round(sig.astype(np.float64) * gain)
            clipped += int((np.abs(q) > 32767).sum())
            sig = np.clip(q, -32767, 32767).astype(np.int16)
        n = len(sig)
        lab = np.zeros((n, len(CLASSES)), np.uint8) if labels is None else np.asarray(labels, np.uint8)
        if lab.shape != (n, len(CLASSES)) or np.asarray(ids).shape != (n,):
            raise DataError(f"chunk {k}: {n} signals with record_ids of shape {np.asarray(ids).shape} and labels "
                            f"of shape {lab.shape}, expected ({n},) and ({n}, {len(CLASSES)})")
        sname = f"shard-{k:05d}"
        _save_npy(out / f"{sname}.npy", sig)
        _save_npy(out / f"{sname}.labels.npy", lab)
        arrays = {"record_id": np.asarray(ids).astype(str), "source": np.full(n, name),
                  "patient_id": np.full(n, -1, np.int64), "has_label": lab.any(1) if labels is not None else
                  np.zeros(n, bool), "fold": np.zeros(n, np.int8), "age": np.full(n, np.nan, np.float32),
                  "sex": np.full(n, "", dtype="<U1"), "start": np.zeros(n, np.int64),
                  "valid": np.full(n, T, np.int32)}
        meta = io.BytesIO()
        np.savez(meta, **arrays)
        atomic_write(out / f"{sname}.meta.npz", functools.partial(_write_bytes, meta.getvalue()))
        files = _file_entries(out, sname)
        shard_list.append({"name": sname, "windows": n, "sha256": files[".npy"]["sha256"], "files": files,
                           "source_digest": None})
        windows += n
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "created_by": f"ecgfast {__version__}",
                "settings": settings, "settings_digest": settings_digest, "shards": shard_list,
                "totals": {"records": windows, "windows": windows, "missing": 0, "bad": 0, "short": 0,
                           "clipped_samples": clipped, "excluded_by_id": 0, "excluded_by_fingerprint": 0},
                "skipped_messages": [], "excluded": [], "rebuilt_stale": [], "built_now": len(shard_list),
                "fingerprint_digest": _digest([settings_digest, [s["sha256"] for s in shard_list]])}
    atomic_write(out / MANIFEST, lambda f: f.write(json.dumps(manifest, indent=1)), mode="w")
    return manifest


def upgrade_corpus(manifest_path) -> tuple[dict, bool]:
    """Upgrade a version-1 manifest in place to this version (``ecgfast corpus upgrade``): (manifest, upgraded).

    Version 1 hashed only the signal files. Each one is hashed and checked against the
    manifest first (a mismatch is refused: rebuild); then the label and metadata files'
    sizes and sha256 are added as they are now, and the manifest is rewritten atomically.
    The settings and signal hashes are kept, so ``fingerprint_digest`` is unchanged (a
    checkpoint trained on the corpus still matches it). A version-2 manifest is left as is.
    """
    p = Path(manifest_path)
    if p.is_dir():
        p = p / MANIFEST
    try:
        m = json.loads(p.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"corpus manifest {p}: cannot be read ({exc})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise DataError(f"{p}: not an ecgfast corpus manifest")
    if m.get("format_version") == FORMAT_VERSION:
        return m, False
    if m.get("format_version") != 1:
        raise DataError(f"{p}: format version {m.get('format_version')!r} cannot be upgraded; rebuild the corpus "
                        "with `ecgfast corpus build`")
    shards = m.get("shards")
    if not isinstance(shards, list) or not all(isinstance(sh, dict) for sh in shards):
        raise DataError(f"corpus manifest {p}: 'shards' is not a list of objects; rebuild the corpus")
    for sh in shards:
        name = sh.get("name")
        f = p.parent / f"{name}.npy"
        if not isinstance(name, str) or "/" in name or os.sep in name or name in ("", ".", "..") \
                or not f.is_file():
            raise DataError(f"corpus manifest {p}: shard {name!r} is not a shard file in its folder; rebuild "
                            "the corpus")
        for suffix in SUFFIXES[1:]:
            if not (p.parent / f"{name}{suffix}").is_file():
                raise DataError(f"corpus {p}: shard file {p.parent / (name + suffix)} is missing; rebuild the corpus")
        digest = _sha256_file(f)
        if digest != sh.get("sha256"):
            raise DataError(f"corpus {p}: shard file {f} does not match its manifest hash (corrupted or "
                            "rewritten): not upgraded; rebuild the corpus with `ecgfast corpus build`")
        sh["files"] = _file_entries(p.parent, name)
    upgraded = {**m, "format_version": FORMAT_VERSION, "upgraded_from": 1, "shards": shards}
    parse_shards(upgraded, p)  # names, counts, entries: what the reader will check
    atomic_write(p, lambda fh: fh.write(json.dumps(upgraded, indent=1)), mode="w")
    return upgraded, True


def _write_bytes(data: bytes, f) -> None:
    f.write(data)
