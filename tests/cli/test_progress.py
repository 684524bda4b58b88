"""Progress bars draw only on a terminal: a log file gets no carriage-return flood."""
from __future__ import annotations

import io

from ecgfast.base.progress import progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _drawn(stream, enabled=True) -> str:
    for _ in progress_bar(range(50), enabled=enabled, file=stream, mininterval=0, desc="x"):
        pass
    return stream.getvalue()


def test_a_bar_draws_on_a_terminal():
    assert "\r" in _drawn(_Terminal()) and "50/50" in _drawn(_Terminal())


def test_no_bar_when_not_a_terminal_or_not_enabled():
    assert _drawn(io.StringIO()) == ""
    assert _drawn(_Terminal(), enabled=False) == ""


def test_a_command_writing_to_a_file_draws_no_bar(capsys, tmp_path):
    """``ecgfast synth`` with its bar on (no --no-progress flag there), stderr captured (not a terminal)."""
    from ecgfast.cli import main

    assert main(["synth", "--out", str(tmp_path / "s"), "--records", "30", "--sampling-rates", "100",
                 "--workers", "1"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"wrote 30 records to {tmp_path / 's'}") and err == ""
