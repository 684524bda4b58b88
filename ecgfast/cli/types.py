"""Argument types and the parser of a command: a bad value is a one-line usage error, before any work.

Every type raises ``argparse.ArgumentTypeError`` with the problem and the value given;
argparse adds the flag (``argument --lr: must be > 0, got -1``) and exits with status 2.
"""
from __future__ import annotations

import argparse
import math

from ecgfast.train.config import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, Range


def number(kind: type, ranges=()):
    """An argparse ``type`` parsing ``kind`` (int or float; floats finite) and checking ``ranges``
    (``ecgfast.train.config.Range``, the bounds the config fields declare) in order:
    "must be >= 1, got 0"."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be finite, got {text}")
        for r in ranges:
            if not r.holds(value):
                raise argparse.ArgumentTypeError(f"must be {r.need()}, got {text}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in "invalid int value"
    return parse


positive_int = number(int, [AT_LEAST_ONE])
non_negative_int = number(int, [NON_NEGATIVE])
positive_float = number(float, [POSITIVE])
unit_fraction = number(float, [Range(0, 1, low_open=True)])
open_unit = number(float, [Range(0, 1, low_open=True, high_open=True)])
non_negative_float = number(float, [NON_NEGATIVE])


def command_parser(prog: str, doc: str, description: str | None = None) -> argparse.ArgumentParser:
    """A parser for ``prog`` (the name the command was called by) whose help shows ``doc``.

    ``doc`` is the command module's docstring: its first paragraph (after ``ecgfast X:``) is
    the description unless ``description`` is given, the rest the epilog.
    """
    head, _, rest = doc.partition("\n\n")
    return argparse.ArgumentParser(prog=prog, description=description or head.split(": ", 1)[-1].strip(),
                                   epilog=rest.replace("``", "") or None,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
