"""Crash-safe files: atomic writes, temp files named by their writer, cleanup of orphans,
and the one explanation of a file-system failure.

A temp file is ``.<name>.<pid>.<token>.tmp`` beside its target. It is renamed
over the target only when complete, so readers see the old file or the new one.
A killed writer leaves its temp file behind; ``remove_stale_temps`` deletes
those whose process is gone (never a live writer's) on the next run.

Every ecgfast writer goes through :func:`atomic_write` (or, for HDF5 caches that
h5py writes by path, its own temp + rename with :func:`explain_os_error`): a
full disk, a read-only file system or a missing permission becomes one
:class:`~ecgfast.base.errors.OutputError` naming the file and the reason, the temp
file is removed and the old file (if any) is left as it was. Commands call
:func:`check_writable` on their outputs before the long work, so a wrong
``--out`` fails in a second, not after an hour of training or evaluation.
"""
from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

from ecgfast.base.errors import OutputError

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
    """Delete the temp files in ``folder`` (of target ``name``, or of any target) whose writer is gone.

    A folder that cannot be listed or changed (read-only, no permission) is left alone: the
    write that follows reports the problem.
    """
    folder = Path(folder)
    removed = []
    try:
        if not folder.is_dir():
            return removed
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP.match(entry.name)
        if not m or (name is not None and m["name"] != name) or _alive(int(m["pid"])):
            continue
        try:
            entry.unlink()
            removed.append(entry)
        except OSError:  # cleaned by another process first, or a read-only folder
            pass
    return removed


_REASONS = {errno.ENOSPC: ("the disk is full", "free some space or choose another --out"),
            errno.EDQUOT: ("the disk quota is exceeded", "free some space or choose another --out"),
            errno.EFBIG: ("the file is too large for the file system", "choose another --out"),
            errno.EROFS: ("the file system is read-only", "choose a writable location"),
            errno.EACCES: ("permission denied", "choose a location you can write to"),
            errno.EPERM: ("permission denied", "choose a location you can write to"),
            errno.ENOENT: ("no such file or folder", "check the path"),
            errno.ENOTDIR: ("a part of the path is a file, not a folder", "check the path"),
            errno.EISDIR: ("it is a folder", "name a file")}


def os_error_message(exc: OSError, path: str | os.PathLike, action: str = "write") -> str:
    """One line for a file-system failure: which file, what went wrong, what to do."""
    what, hint = _REASONS.get(exc.errno, (exc.strerror or str(exc) or type(exc).__name__, "check the path"))
    return f"cannot {action} {path}: {what} ({hint})"


def _nearly_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < (1 << 20)
    except OSError:
        return False


def explain_os_error(exc: OSError, path: str | os.PathLike, action: str = "write") -> OutputError:
    """The :class:`OutputError` for ``exc`` raised while writing ``path``.

    HDF5 reports a full disk as an errno-less ``OSError`` ("file write failed"): when the
    folder has under 1 MiB free that is taken to be ENOSPC, so the message says so.
    """
    if isinstance(exc, OutputError):
        return exc
    path = Path(path)
    code = exc.errno
    if code is None and _nearly_full(path.parent):
        code = errno.ENOSPC
    shown = OSError(code, os.strerror(code)) if code is not None and code != exc.errno else exc
    return OutputError(os_error_message(shown, path, action), code, str(path))


def _make_folder(folder: Path, shown: Path, action: str = "create the folder of") -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
    except FileExistsError:  # a file where a folder of the path should be
        raise explain_os_error(NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)), shown,
                               action) from None
    except OSError as exc:
        raise explain_os_error(exc, shown, action) from None


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:  # already gone, or a folder that no longer lets us
        pass


def _probe(folder: Path, shown: Path, action: str) -> None:
    """Write, fsync and remove a one-page temp file in ``folder``; a failure names ``shown``."""
    probe = temp_path(folder / ".ecgfast-write-check")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"\0" * 4096)  # a whole page: a full tmpfs refuses it
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        _unlink_quietly(probe)
        raise explain_os_error(exc, shown, action) from None
    _unlink_quietly(probe)


def check_writable(path: str | os.PathLike, need_bytes: int = 0) -> Path:
    """Refuse, before any long work, an output ``path`` that :func:`atomic_write` could not write.

    Creates the folder, then writes, fsyncs and removes a small probe file beside
    ``path`` (a read-only file system, a missing permission or a full disk fail
    here, as root too), and checks that ``need_bytes`` are free when given.
    Raises :class:`OutputError` naming ``path`` and the reason; returns ``path``.
    """
    path = Path(path)
    if path.is_dir():
        raise explain_os_error(IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)), path)
    _make_folder(path.parent, path)
    _probe(path.parent, path, "write")
    if need_bytes:
        try:
            free = shutil.disk_usage(path.parent).free
        except OSError as exc:
            raise explain_os_error(exc, path, "inspect the folder of") from None
        if free < need_bytes:
            msg = os_error_message(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), path)
            raise OutputError(f"{msg}; it needs about {need_bytes / 1e6:.1f} MB, {free / 1e6:.1f} MB are free",
                              errno.ENOSPC, str(path))
    return path


def prepare_output_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` for many outputs (a corpus, an experiment), check it is writable, and remove
    the temp files its killed writers left; raises :class:`OutputError` naming the folder."""
    folder = Path(folder)
    _make_folder(folder, folder, "create the folder")
    _probe(folder, folder, "write into")
    remove_stale_temps(folder)
    return folder


def atomic_write(path: str | os.PathLike, write: Callable, mode: str = "wb") -> Path:
    """Call ``write(f)`` on a temp file beside ``path``, fsync it, then rename it over ``path``.

    A failure leaves no temp file and the old ``path`` untouched; orphaned temps of
    killed writers are removed first. A file-system failure (full disk, read-only file
    system, no permission) is raised as one :class:`OutputError` naming ``path`` and the
    reason; any other exception of ``write`` passes through unchanged.
    """
    path = Path(path)
    _make_folder(path.parent, path)
    remove_stale_temps(path.parent, path.name)
    tmp = temp_path(path)
    try:
        with open(tmp, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise explain_os_error(exc, path) from exc
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return path
