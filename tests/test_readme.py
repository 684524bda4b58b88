"""The README's Python example runs as written, on a synthetic PTB-XL cached where it looks."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _first_python_block(text: str) -> str:
    """The first ```python block of the README: the whole job from Python."""
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


def test_the_readme_python_example_runs_as_written(tmp_path, monkeypatch):
    from ecgfast.data import build_cache, write_synthetic_ptbxl

    root = write_synthetic_ptbxl(tmp_path / "data" / "PTB-XL", n_records=300, seed=5, sampling_rates=(100,),
                                 progress=False)
    build_cache(root, root / "ecgfast_cache_100hz.h5", 100, progress=False)
    code = _first_python_block((REPO / "README.md").read_text())
    assert 'open_cache("data/PTB-XL/ecgfast_cache_100hz.h5")' in code  # the path built above
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the documented example itself
    loss, few = scope["loss"], scope["few"]
    assert loss.ndim == 0 and bool(loss.isfinite()) and loss.item() > 0  # NT-Xent of a real batch
    cache = scope["cache"]
    assert len(few) > 0 and set(cache.folds[few]) <= set(range(1, 9))  # labelled folds 1-8 only
