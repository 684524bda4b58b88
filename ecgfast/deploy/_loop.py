"""The commands' shared pieces: ``command_parser`` (H1 moves it to ``ecgfast.cli``) and the device and command
helpers they import from here. The batched inference loop lives in ``ecgfast.models.inference``.
"""
from __future__ import annotations

from ecgfast.train.common import resolve_device, run_command  # noqa: F401 (re-exported for the commands)

__all__ = ["command_parser", "resolve_device", "run_command"]


def command_parser(prog: str, doc: str):
    """An argparse parser for ``ecgfast PROG`` whose help shows the module doc (first line, then the rest)."""
    import argparse

    head, _, rest = doc.partition("\n\n")
    return argparse.ArgumentParser(prog=f"ecgfast {prog}", description=head.split(": ", 1)[-1].strip(),
                                   epilog=rest.replace("``", ""),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
