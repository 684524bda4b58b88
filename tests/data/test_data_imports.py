"""The data layer's modules import one way: the corpus format is shared by the writer and the reader
(neither imports the other), the synthetic layouts use the PTB-XL generator (never the reverse)."""
from __future__ import annotations

import subprocess
import sys

import pytest


def _loaded_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(m for m in sys.modules if m.startswith('ecgfast')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.parametrize("module,never", [
    ("ecgfast.data.corpus.store", "ecgfast.data.corpus.build"),
    ("ecgfast.data.corpus.build", "ecgfast.data.corpus.store"),
    ("ecgfast.data.synthetic", "ecgfast.data.sources.synthetic"),
    ("ecgfast.data.leads", "ecgfast.models"),
    ("ecgfast.data.records", "ecgfast.deploy"),
    ("ecgfast.data.source", "ecgfast.deploy"),
])
def test_no_circle_and_no_upward_import(module, never):
    loaded = _loaded_after_import(module)
    assert module in loaded
    assert not any(m == never or m.startswith(never + ".") for m in loaded), f"{module} loads {never}"
