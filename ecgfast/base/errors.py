"""The library's error types: one per layer, each caught at the command boundary.

Every message names the file, record or flag, the problem, and what to do. A
command prints it as one line (``ecgfast CMD: error: ...``) and exits with 1;
the Python API raises it. Each type also derives from the builtin that callers
caught before it existed (``ValueError``), so old ``except`` clauses still hold.
"""
from __future__ import annotations


class EcgfastError(Exception):
    """Base of every error ecgfast raises on purpose."""


class DataError(EcgfastError, ValueError):
    """Bad, stale, corrupted or missing input data (csv, header, signal, cache, shard)."""


class CheckpointError(EcgfastError, ValueError):
    """A checkpoint that is missing, unreadable, unsafe, of the wrong kind or inconsistent with the run."""


class ConfigError(EcgfastError, ValueError):
    """A flag or argument out of range, or inconsistent with the others, the data or the machine."""


class OutputError(EcgfastError, OSError):
    """An output that cannot be written: a full disk, a read-only file system, no permission.

    ``errno`` and ``filename`` are the failed call's; ``str()`` is the one-line message.
    """

    def __init__(self, message: str, errno: int | None = None, filename=None):
        if errno is None:
            super().__init__(message)
        else:
            super().__init__(errno, message, filename)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):  # crosses process pools (corpus build workers) intact
        return type(self), (self.message, self.errno, self.filename)


class TrainingError(EcgfastError, FloatingPointError):
    """Training diverged (non-finite loss or gradients, weights running away); the last good checkpoint is kept."""


__all__ = ["CheckpointError", "ConfigError", "DataError", "EcgfastError", "OutputError", "TrainingError"]
