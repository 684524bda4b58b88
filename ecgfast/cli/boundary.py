"""The one error boundary of every command, and where the library's log lines go.

``run_command(name, fn)`` runs a command's body: an ``EcgfastError`` or a file-system
error becomes one line ``ecgfast NAME: error: ...`` on stderr and exit status 1, an
interrupt one line and status 130, never a traceback. Usage errors (a bad flag) are
argparse's: one line and status 2, before the body runs.

The library never prints: it logs to ``logging.getLogger("ecgfast")`` and warns with
``warnings.warn``. ``configure_logging()`` shows both as plain lines on stderr (INFO
and up; a warning is one line, ``ecgfast: warning: ...``). Under ``torchrun`` only rank 0
says them (the other ranks show errors only), so a K-process run prints each line once.
"""
from __future__ import annotations

import logging
import os
import sys
import warnings

from ecgfast.base.errors import EcgfastError

LOGGER = "ecgfast"


class _StderrHandler(logging.Handler):
    """Writes each record's message as one line to the *current* ``sys.stderr`` (so a
    redirected or captured stderr, e.g. pytest's, receives it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging must never break a run
            self.handleError(record)


def _rank() -> int:
    return int(os.environ.get("RANK", "0") or 0)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if _rank() != 0:  # rank 0 says it for all
        return
    text = str(message).splitlines()[0] if str(message) else category.__name__
    if not text.startswith("ecgfast"):
        text = f"ecgfast: warning: {text}"
    (file or sys.stderr).write(text + "\n")


def configure_logging(level: int = logging.INFO) -> None:
    """Show the library's log records (``level`` and up) and warnings as plain lines on stderr.

    Idempotent: a second call changes nothing but the level. A ``torchrun`` rank other than 0
    shows errors only.
    """
    logger = logging.getLogger(LOGGER)
    logger.setLevel(level if _rank() == 0 else max(level, logging.ERROR))
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        logger.addHandler(_StderrHandler())
    warnings.showwarning = _show_warning


def error_message(exc: BaseException) -> str:
    """The one line a command prints for ``exc`` (an EcgfastError or an OSError)."""
    if isinstance(exc, EcgfastError) or not isinstance(exc, OSError):
        return str(exc)
    if exc.errno is None:  # not a file-system error as such (e.g. h5py's): its own words
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    from ecgfast.base.fs import os_error_message

    return os_error_message(exc, exc.filename or "a file", "access")


def run_command(name: str, fn, *args, **kwargs) -> int:
    """Run a command's body ``fn(*args, **kwargs)`` behind the error boundary; its exit status.

    ``fn`` returns None (success) or an exit status.
    """
    configure_logging()
    try:
        result = fn(*args, **kwargs)
    except (EcgfastError, OSError) as exc:
        print(f"ecgfast {name}: error: {error_message(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"ecgfast {name}: interrupted; a run with periodic checkpoints continues with --resume",
              file=sys.stderr)
        return 130
    return 0 if result is None else int(result)
