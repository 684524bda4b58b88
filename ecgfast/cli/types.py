"""Argument types and the parser of a command: a bad value is a one-line usage error, before any work.

Every type raises ``argparse.ArgumentTypeError`` with the problem and the value given;
argparse adds the flag (``argument --lr: must be > 0, got -1``) and exits with status 2.
"""
from __future__ import annotations

import argparse
import math


def number(kind, low=None, high=None, low_open=False, high_open=False, what=""):
    """An argparse type parsing ``kind`` (int or float) within [low, high] (ends open when asked)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be finite, got {text}")
        bad = ((low is not None and (value <= low if low_open else value < low))
               or (high is not None and (value >= high if high_open else value > high)))
        if bad:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in "invalid int value"
    return parse


positive_int = number(int, 1, what=">= 1")
non_negative_int = number(int, 0, what=">= 0")
positive_float = number(float, 0, low_open=True, what="> 0")
unit_fraction = number(float, 0, 1, low_open=True, what="in (0, 1]")
open_unit = number(float, 0, 1, low_open=True, high_open=True, what="in (0, 1)")
non_negative_float = number(float, 0, what=">= 0")


def command_parser(prog: str, doc: str, description: str | None = None) -> argparse.ArgumentParser:
    """A parser for ``prog`` (the name the command was called by) whose help shows ``doc``.

    ``doc`` is the command module's docstring: its first paragraph (after ``ecgfast X:``) is
    the description unless ``description`` is given, the rest the epilog.
    """
    head, _, rest = doc.partition("\n\n")
    return argparse.ArgumentParser(prog=prog, description=description or head.split(": ", 1)[-1].strip(),
                                   epilog=rest.replace("``", "") or None,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
