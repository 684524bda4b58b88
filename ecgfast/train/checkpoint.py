"""Checkpoints that survive a crash: written to a temp file, then renamed."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def _atomic_write(path: str | os.PathLike, mode: str, write) -> Path:
    """Call ``write(f)`` on a temp file beside ``path``, flush it to disk, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically: readers see the old file or the new one, never half."""
    return _atomic_write(path, "wb", lambda f: torch.save(obj, f))


def load_checkpoint(path: str | os.PathLike, required_keys: tuple[str, ...] = ()) -> dict:
    """Load a checkpoint dict on the CPU, with a clear error when it is missing or incomplete."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # truncated or not a torch file
        raise ValueError(f"checkpoint {path} could not be read: {exc}") from exc
    if not isinstance(ckpt, dict):
        raise ValueError(f"checkpoint {path} holds a {type(ckpt).__name__}, expected a dict")
    missing = [k for k in required_keys if k not in ckpt]
    if missing:
        raise ValueError(f"checkpoint {path} lacks the key(s) {missing}; it has {sorted(ckpt)}")
    return ckpt


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a text file atomically (temp file in the same folder, then rename)."""
    return _atomic_write(path, "w", lambda f: f.write(text))
