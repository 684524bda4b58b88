"""The one error boundary (which exception -> which line and exit status) and the library's log lines."""
from __future__ import annotations

import errno
import logging
import warnings

import pytest

from ecgfast.base.errors import CheckpointError, OutputError
from ecgfast.cli.boundary import configure_logging, run_command


def _raise(exc):
    raise exc


@pytest.mark.parametrize("exc, line, status", [
    (CheckpointError("checkpoint x.pt: not a checkpoint"),
     "ecgfast evaluate: error: checkpoint x.pt: not a checkpoint", 1),
    (OutputError("cannot write out.h5: disk full"), "ecgfast evaluate: error: cannot write out.h5: disk full", 1),
    (OSError("Unable to open file (file signature not found)\nmore"),
     "ecgfast evaluate: error: Unable to open file (file signature not found)", 1),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "/no/such.h5"),
     "ecgfast evaluate: error: cannot access /no/such.h5: ", 1),
    (KeyboardInterrupt(), "ecgfast evaluate: interrupted; a run with periodic checkpoints continues with --resume",
     130),
])
def test_errors_become_one_line_and_a_status(capsys, exc, line, status):
    assert run_command("evaluate", _raise, exc) == status
    err = capsys.readouterr().err
    assert err.startswith(line), err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_success_and_a_returned_status(capsys):
    assert run_command("info", lambda: None) == 0
    assert run_command("info", lambda: 3) == 3
    assert capsys.readouterr().err == ""


def test_a_bug_is_not_swallowed():
    """Anything but the project's errors and file-system errors is a bug: its traceback is kept."""
    with pytest.raises(ZeroDivisionError):
        run_command("info", lambda: 1 / 0)


def test_log_records_and_warnings_are_single_lines_on_stderr(capsys):
    configure_logging()
    configure_logging()  # idempotent: still one line per record
    logging.getLogger("ecgfast").warning("ecgfast: cache c.h5 is stale (csv changed); rebuilding it")
    logging.getLogger("ecgfast.data").info("ecgfast: a notice")
    logging.getLogger("ecgfast").debug("not shown")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        configure_logging()  # (the formatter of warnings is set again inside this block)
        warnings.warn("pin_memory needs CUDA; batches are not pinned", UserWarning, stacklevel=1)
    err = capsys.readouterr().err
    assert err.splitlines() == ["ecgfast: cache c.h5 is stale (csv changed); rebuilding it", "ecgfast: a notice",
                                "ecgfast: warning: pin_memory needs CUDA; batches are not pinned"]


def test_only_rank_zero_says_its_lines(capsys, monkeypatch):
    """Under torchrun every rank runs the same code: a notice or a warning is said once, by rank 0."""
    try:
        monkeypatch.setenv("RANK", "1")
        configure_logging()
        logging.getLogger("ecgfast").warning("ecgfast: using cache c.h5 as it is")
        logging.getLogger("ecgfast").error("ecgfast: an error every rank reports")
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            configure_logging()
            warnings.warn("pin_memory needs CUDA", UserWarning, stacklevel=1)
        assert capsys.readouterr().err.splitlines() == ["ecgfast: an error every rank reports"]
        monkeypatch.setenv("RANK", "0")
        configure_logging()
        logging.getLogger("ecgfast").warning("ecgfast: using cache c.h5 as it is")
        assert capsys.readouterr().err.splitlines() == ["ecgfast: using cache c.h5 as it is"]
    finally:
        monkeypatch.delenv("RANK", raising=False)
        configure_logging()  # back to INFO for the tests that follow
