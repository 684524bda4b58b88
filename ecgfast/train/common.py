"""Pieces every training entry point shares: seeding, precision, logging."""
from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import time
from pathlib import Path

import numpy as np
import torch

PRECISIONS = ("fp32", "bf16", "fp16")


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (the augmentation ops take their own seed)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast(precision: str, device: torch.device | str = "cpu"):
    """Autocast context for ``fp32`` (none), ``bf16`` or ``fp16``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def versions() -> dict:
    """Versions stored beside every checkpoint, so a result can be traced to its software."""
    from ecgfast import __version__
    from ecgfast._extension import EXTENSION_AVAILABLE

    return {
        "ecgfast": __version__,
        "torch": str(torch.__version__),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "extension": EXTENSION_AVAILABLE,
    }


class JsonlLogger:
    """Appends one JSON object per line; each line is flushed, so a crash loses nothing written."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def log(self, **record) -> None:
        if self.path is None:
            return
        record.setdefault("time", time.time())
        with open(self.path, "a") as f:
            f.write(json.dumps(record, default=float) + "\n")
