"""Crash-safe files: atomic writes, temp files named by their writer, cleanup of orphans.

A temp file is ``.<name>.<pid>.<token>.tmp`` beside its target. It is renamed
over the target only when complete, so readers see the old file or the new one.
A killed writer leaves its temp file behind; ``remove_stale_temps`` deletes
those whose process is gone (never a live writer's) on the next run.
"""
from __future__ import annotations

import errno
import os
import re
import secrets
from pathlib import Path
from typing import Callable

_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


def temp_path(path: str | os.PathLike) -> Path:
    """A fresh temp-file path beside ``path`` that records this process's id."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Delete the temp files in ``folder`` (of target ``name``, or of any target) whose writer is gone."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        m = _TEMP.match(entry.name)
        if not m or (name is not None and m["name"] != name) or _alive(int(m["pid"])):
            continue
        try:
            entry.unlink()
            removed.append(entry)
        except FileNotFoundError:  # another process cleaned it first
            pass
    return removed


def os_error_message(exc: OSError, path: str | os.PathLike, action: str = "write") -> str:
    """One line for a file-system failure: which file, what went wrong, what to do."""
    what = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
            errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
            errno.EPERM: "permission denied", errno.ENOENT: "no such file or folder"}.get(
        exc.errno, exc.strerror or str(exc))
    hint = {errno.ENOSPC: "free some space or choose another --out",
            errno.EDQUOT: "free some space or choose another --out",
            errno.EROFS: "choose a writable location", errno.EACCES: "choose a location you can write to",
            errno.EPERM: "choose a location you can write to"}.get(exc.errno, "check the path")
    return f"cannot {action} {path}: {what} ({hint})"


def atomic_write(path: str | os.PathLike, write: Callable, mode: str = "wb") -> Path:
    """Call ``write(f)`` on a temp file beside ``path``, fsync it, then rename it over ``path``.

    A failure (including a full or read-only disk) leaves no temp file and the old
    ``path`` untouched; orphaned temps of killed writers are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent, path.name)
    tmp = temp_path(path)
    try:
        with open(tmp, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    return path
