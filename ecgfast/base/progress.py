"""Progress bars that draw only on a terminal.

``progress_bar(..., enabled=True)`` is ``tqdm`` with ``disable=None``: it draws when its
stream (stderr by default) is a terminal and is silent otherwise, so a run redirected to a
log file gets no carriage-return floods; ``enabled=False`` (``--no-progress``) never draws.
"""
from __future__ import annotations


def progress_bar(iterable=None, *, enabled: bool = True, **kwargs):
    """A ``tqdm`` bar over ``iterable`` (or a manual one), drawn only on a terminal and when ``enabled``."""
    from tqdm import tqdm

    return tqdm(iterable, disable=None if enabled else True, **kwargs)
